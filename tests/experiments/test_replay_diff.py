import gzip
import importlib.util
import json
import math
from pathlib import Path

import pytest

from lokirl.experiments.runner import Results, replay_diff


def _rows(commit: str, reward_b: float = 2.0) -> Results:
    base = {"case": "c1", "seed": 0, "frames": 10, "error": None, "commit": commit}
    rows = [
        {**base, "controller": "a", "reward": 1.0, "accuracy": math.nan, "wall_s": 0.5},
        {**base, "controller": "b", "reward": reward_b, "accuracy": 90.0, "wall_s": 0.7},
    ]
    return Results(rows=rows, meta={"commit": commit})


def test_timing_and_commit_do_not_count_but_any_result_does():
    old = _rows("abc")
    new = _rows("def")
    new.rows[0]["wall_s"] = 9.0
    d = replay_diff(old, new)
    assert d.same and d.identical == 2  # NaN equals NaN by repr
    changed = _rows("def", reward_b=2.0000000001)
    d = replay_diff(old, changed)
    assert not d.same and d.identical == 1
    assert d.differing == {"reward": (("b", "c1", 0),)}


def test_missing_and_extra_episodes_are_listed():
    old = _rows("abc")
    new = _rows("abc")
    extra = {**new.rows[0], "seed": 1}
    new = Results(rows=[new.rows[1], extra], meta=new.meta)
    d = replay_diff(old, new)
    assert d.only_recorded == (("a", "c1", 0),) and d.only_replayed == (("a", "c1", 1),)
    assert d.identical == 1 and not d.same


def test_script_exits_nonzero_on_a_different_table(tmp_path, capsys):
    path = Path(__file__).resolve().parents[2] / "scripts" / "same_rows.py"
    spec = importlib.util.spec_from_file_location("same_rows", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_rows("abc").to_dict()))
    b.write_text(json.dumps(_rows("def", reward_b=3.0).to_dict()))
    assert mod.main([str(a), str(a)]) == 0
    assert "same table" in capsys.readouterr().out
    # a record folder that keeps its table gzipped (as large records do)
    record = tmp_path / "record"
    record.mkdir()
    (record / "per_episode.json.gz").write_bytes(gzip.compress(a.read_bytes()))
    assert mod.main([str(record), str(a)]) == 0
    assert mod.main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "reward differs in 1 episodes" in out and "NOT the same table" in out
    # --subset: only the controllers the replay played
    only_a = tmp_path / "only_a.json"
    r = _rows("ghi", reward_b=3.0)
    only_a.write_text(json.dumps(Results([r.rows[0]], r.meta).to_dict()))
    assert mod.main([str(b), str(only_a)]) == 1  # b's controller "b" is missing
    assert mod.main(["--subset", str(b), str(only_a)]) == 0
    # --rename: the replay's "z" compared as the record's "a"; --common-cases: other cases aside
    renamed = tmp_path / "renamed.json"
    z = _rows("mno")
    more = {**z.rows[0], "case": "c2", "reward": 7.0}
    renamed.write_text(
        json.dumps(Results([{**z.rows[0], "controller": "z"}, more], z.meta).to_dict())
    )
    assert mod.main(["--subset", str(a), str(renamed)]) == 1  # "a" on c2 only in the replay
    assert mod.main(["--subset", "--common-cases", str(a), str(renamed)]) == 1  # "z" not "a"
    capsys.readouterr()
    assert mod.main(["--subset", "--common-cases", "--rename", "z=a", str(a), str(renamed)]) == 0
    assert "1 episodes identical" in capsys.readouterr().out
    # nothing in common is no evidence; a missing file is a usage error
    other = tmp_path / "other.json"
    z = _rows("jkl")
    other.write_text(json.dumps(Results([{**z.rows[0], "controller": "z"}], z.meta).to_dict()))
    capsys.readouterr()
    assert mod.main(["--subset", str(a), str(other)]) == 1
    assert "nothing compared" in capsys.readouterr().out
    with pytest.raises(SystemExit) as gone:
        mod.main([str(a), str(tmp_path / "missing")])
    assert gone.value.code == 2
