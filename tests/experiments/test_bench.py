import gzip
import json
import os
import subprocess
import sys

import pytest

from lokirl.cli import main
from lokirl.experiments.runner import ROW_FIELDS


def _tables(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith("results:"))


def _bench(out, hash_seed: str) -> str:
    cmd = [sys.executable, "-m", "lokirl.cli", "bench", "--suite", "dev", "--no-mlflow"]
    cmd += ["--jobs", "2", "--bootstrap", "500", "--out", str(out)]
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "COLUMNS": "200"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_bench_dev_end_to_end_and_deterministic(tmp_path):
    # Two processes with different string-hash seeds: no set/dict-order dependence.
    first = _bench(tmp_path / "a", "1")
    second = _bench(tmp_path / "b", "2")
    assert "paired vs trigger" in first and "ta10-bursts" in first
    assert _tables(first) == _tables(second)  # the same command prints the same tables
    (folder,) = (tmp_path / "a").iterdir()
    for name in ("per_episode.json", "summary.json", "report.md", "pareto.png", "config.yaml"):
        assert (folder / name).is_file(), name
    data = json.loads((folder / "per_episode.json").read_text())
    rows = data["rows"]
    assert len(rows) == 3 * 2 * 3  # cases x seeds x controllers
    assert all(set(r) == set(ROW_FIELDS) for r in rows)
    assert {r["suite_hash"] for r in rows} == {data["meta"]["suite_hash"]}
    assert all(r["commit"] for r in rows)
    assert not [r for r in rows if r["error"]]
    ok = [r for r in rows if r["controller"] == "trigger"]
    assert all(0 <= r["frame_violation_ratio"] <= 1 and r["solves"] >= 1 for r in ok)
    (other,) = (tmp_path / "b").iterdir()
    second_rows = json.loads((other / "per_episode.json").read_text())["rows"]

    def strip(rs):
        return [{k: v for k, v in r.items() if k not in ("wall_s", "cpu_s")} for r in rs]

    assert strip(rows) == strip(second_rows)


def test_test_suite_needs_allow_test(capsys):
    assert main(["bench", "--suite", "test", "--no-mlflow"]) == 2
    err = capsys.readouterr().err
    assert "--allow-test" in err and "never to choose" in err


def test_print_hash_and_source_errors(capsys):
    assert main(["bench", "--suite", "test", "--print-hash"]) == 0
    out = capsys.readouterr().out.strip()
    assert len(out) == 64
    assert main(["bench"]) == 2
    assert "exactly one of --suite, --trace and --from" in capsys.readouterr().err
    assert main(["bench", "--suite", "dev", "--controllers", "nope", "--no-mlflow"]) == 2
    assert main(["bench", "--suite", "dev", "--reference", "loki-5s", "--no-mlflow"]) == 2
    assert "--reference" in capsys.readouterr().err


def test_help_explains_suites(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = capsys.readouterr().out
    for word in ("dev", "validation", "test", "--allow-test", "hierarchical", "pareto.png"):
        assert word in out


def test_bench_on_a_user_trace(tmp_path, capsys):
    trace = tmp_path / "mine.csv"
    trace.write_text("time_s,qps\n" + "".join(f"{i},{20 + 5 * i}\n" for i in range(12)))
    args = ["bench", "--trace", str(trace), "--workers", "6", "--duration", "8", "--seeds", "1"]
    args += ["--controllers", "trigger,loki-5s", "--no-mlflow", "--out", str(tmp_path / "o")]
    assert main(args) == 0
    cap = capsys.readouterr()
    out = cap.out
    assert "suite adhoc-mine" in out and "loki-5s" in out
    # how the file was read, so that a unit guessed wrong shows
    assert f"bench: {trace}: read as a rate file (time_s,qps rows), auto-detected: 12 bins" in (
        cap.err
    )
    # stderr is not a terminal here: plain progress lines stand in for the live bar
    assert "bench adhoc-mine: episodes 2/2 (100%)" in cap.err
    (folder,) = (tmp_path / "o").iterdir()
    rows = json.loads((folder / "per_episode.json").read_text())["rows"]
    assert [(r["case"], r["controller"], r["error"]) for r in rows] == [
        ("mine", "trigger", None),
        ("mine", "loki-5s", None),
    ]
    assert "less than --duration" not in cap.err  # 12 s of trace, 8 played
    # a trace shorter than --duration plays what it has, and says so
    args[args.index("8")] = "30"
    assert main([*args[:-1], str(tmp_path / "p")]) == 0
    assert "mine.csv lasts 12 s, less than --duration 30: 12 s played" in capsys.readouterr().err


def test_cases_filter_plays_only_matching_cases(tmp_path, capsys):
    args = ["bench", "--suite", "dev", "--no-mlflow", "--controllers", "static"]
    args += ["--bootstrap", "100", "--out", str(tmp_path), "--json"]
    assert main([*args, "--cases", "sm10-*"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["meta"]["cases"] == ["sm10-bursts"]
    # A pattern that matches nothing is an error naming the cases to pick from.
    assert main([*args, "--cases", "ta20-*"]) == 2
    err = capsys.readouterr().err
    assert "--cases" in err and "ta10-bursts" in err


def test_from_reports_a_subset_of_the_recorded_cases(tmp_path, capsys):
    args = ["bench", "--suite", "dev", "--no-mlflow", "--bootstrap", "100", "--json"]
    whole = [*args, "--controllers", "static,trigger", "--reference", "trigger"]
    assert main([*whole, "--cases", "sm10-*,ta10-b*", "--out", str(tmp_path / "w")]) == 0
    both = json.loads(capsys.readouterr().out)
    (folder,) = (tmp_path / "w").iterdir()
    sub = ["bench", "--from", str(folder), "--no-mlflow", "--bootstrap", "100", "--json"]
    assert main([*sub, "--cases", "ta10-b*", "--out", str(tmp_path / "s")]) == 0
    one = json.loads(capsys.readouterr().out)
    assert one["meta"]["cases"] == ["ta10-bursts"] and len(both["meta"]["cases"]) == 2
    assert main([*whole, "--cases", "ta10-b*", "--out", str(tmp_path / "d")]) == 0
    direct = json.loads(capsys.readouterr().out)  # the subset played on its own
    assert one["aggregate"] == direct["aggregate"] != both["aggregate"]
    assert main([*sub, "--cases", "ta99-*", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "--cases" in err and "ta10-bursts" in err and "sm10-bursts" in err


def test_from_merges_runs_into_the_table_of_one_run(tmp_path, capsys):
    base = ["bench", "--suite", "dev", "--no-mlflow", "--bootstrap", "200", "--json"]
    base += ["--cases", "sm10-*"]

    def play(controllers, out):
        assert main([*base, "--controllers", controllers, "--out", str(out)]) == 0
        capsys.readouterr()
        (folder,) = out.iterdir()
        return folder

    a, b = play("static", tmp_path / "a"), play("trigger", tmp_path / "b")
    assert main([*base, "--controllers", "static,trigger", "--out", str(tmp_path / "ab")]) == 0
    joint = json.loads(capsys.readouterr().out)
    merged_args = ["bench", "--from", f"{a},{b}", "--reference", "trigger", "--no-mlflow"]
    merged_args += ["--bootstrap", "200", "--json", "--out", str(tmp_path / "m")]
    assert main(merged_args) == 0
    merged = json.loads(capsys.readouterr().out)
    joint["meta"].pop("merged", None)
    merged["meta"].pop("merged", None)
    joint["meta"]["reference"] = "trigger"
    assert merged["aggregate"] == joint["aggregate"]
    assert merged["per_case"] == joint["per_case"]
    # A controller played in two runs is kept once when its episodes are the same
    # (e.g. the reference beside each candidate) ...
    assert main([*merged_args[:-1], str(tmp_path / "m2"), "--from", f"{a},{b},{b}"]) == 0
    twice = json.loads(capsys.readouterr().out)
    assert twice["aggregate"] == merged["aggregate"]
    # ... and refused when they differ: its episodes would count twice, with two values.
    data = json.loads((b / "per_episode.json").read_text())
    data["rows"][0]["reward"] += 1.0
    (tmp_path / "b2").mkdir()
    (tmp_path / "b2" / "per_episode.json").write_text(json.dumps(data))
    assert main(["bench", "--from", f"{a},{b},{tmp_path / 'b2'}", "--no-mlflow"]) == 2
    assert "played in two of the runs with different results" in capsys.readouterr().err
    # A record keeping its table gzipped is read as its run folder; a folder without
    # a table is refused naming it.
    (tmp_path / "gz").mkdir()
    (tmp_path / "gz" / "per_episode.json.gz").write_bytes(
        gzip.compress((b / "per_episode.json").read_bytes())
    )
    assert main([*merged_args[:-1], str(tmp_path / "mz"), "--from", f"{a},{tmp_path / 'gz'}"]) == 0
    assert json.loads(capsys.readouterr().out)["aggregate"] == merged["aggregate"]
    assert main(["bench", "--from", f"{a},{tmp_path / 'none'}", "--no-mlflow"]) == 2
    assert "no per_episode.json" in capsys.readouterr().err
    # Pooled: one controller averaging the members per episode.
    pool_args = [*merged_args[:-1], str(tmp_path / "p"), "--pool", "both=*i*"]
    assert main(pool_args) == 0
    pooled = json.loads(capsys.readouterr().out)
    agg = {c: v["reward"]["overall"]["estimate"] for c, v in pooled["aggregate"].items()}
    assert agg["both"] == pytest.approx((agg["static"] + agg["trigger"]) / 2)
    assert "both" in pooled["paired"]["reward"]
    assert pooled["pooled"] == ["both"] and merged["pooled"] == []
    assert pooled["runtime"]["episodes"] == merged["runtime"]["episodes"]  # pooled rows not played
    (folder,) = (tmp_path / "p").iterdir()
    assert "except the pooled `both`: per 120 s" in (folder / "report.md").read_text()
    assert main([*pool_args[:-1], "both=nothing*"]) == 2
    assert "--pool" in capsys.readouterr().err
    # A pool as the reference (a new policy's seeds against an older one's): it was refused
    # as "not one of the merged controllers"
    vs_pool = [*merged_args[:-1], str(tmp_path / "q"), "--pool", "both=*i*", "--reference", "both"]
    assert main(vs_pool) == 0
    against = json.loads(capsys.readouterr().out)
    assert against["meta"]["reference"] == "both"
    diff = against["paired"]["reward"]["static"]["overall"]["mean"]["estimate"]
    assert diff == pytest.approx((agg["static"] - agg["trigger"]) / 2)


def test_from_merges_runs_of_different_commits_only_on_a_bridge(tmp_path, capsys):
    base = ["bench", "--suite", "dev", "--no-mlflow", "--bootstrap", "100", "--json"]
    base += ["--cases", "sm10-*", "--reference", "static"]
    folders = {}
    for name, controllers in (("a", "static"), ("b", "static,trigger")):
        assert main([*base, "--controllers", controllers, "--out", str(tmp_path / name)]) == 0
        capsys.readouterr()
        (folders[name],) = (tmp_path / name).iterdir()

    def recorded(name, commit, keep=None, bump=0.0):
        """Run ``b`` as if recorded at ``commit`` (only ``keep``'s rows; a reward moved)."""
        data = json.loads((folders["b"] / "per_episode.json").read_text())
        rows = [r for r in data["rows"] if keep is None or r["controller"] in keep]
        for r in rows:
            r["commit"] = commit
        rows[0]["reward"] += bump
        data["rows"], data["meta"]["commit"] = rows, commit
        if keep is not None:
            data["meta"]["controllers"] = list(keep)
        (tmp_path / name).mkdir()
        (tmp_path / name / "per_episode.json").write_text(json.dumps(data))
        return tmp_path / name

    later = recorded("later", "f" * 40)
    merge = ["bench", "--no-mlflow", "--bootstrap", "100", "--json", "--reference", "static"]
    merge += ["--from", f"{folders['a']},{later}"]
    assert main([*merge, "--out", str(tmp_path / "m0")]) == 2
    err = capsys.readouterr().err
    assert "differ in commit" in err and "--allow-commits" in err
    # Across commits on a bridge: static played at both, its episodes identical.
    assert main([*merge, "--allow-commits", "--out", str(tmp_path / "m1")]) == 0
    merged = json.loads(capsys.readouterr().out)
    same = ["bench", "--no-mlflow", "--bootstrap", "100", "--json", "--reference", "static"]
    assert main([*same, "--from", str(folders["b"]), "--out", str(tmp_path / "m2")]) == 0
    alone = json.loads(capsys.readouterr().out)
    assert merged["aggregate"] == alone["aggregate"]
    across = merged["meta"]["across_commits"]
    n_static = sum(1 for r in json.loads((folders["a"] / "per_episode.json").read_text())["rows"])
    assert across["bridge_episodes"] == n_static > 0 and "f" * 40 in across["commits"]
    (folder,) = (tmp_path / "m1").iterdir()
    assert (
        f"the {n_static} episodes of controllers played at more than one commit"
        in (folder / "report.md").read_text()
    )
    # The bridge came out differently: the change between the commits altered its play.
    moved = recorded("moved", "e" * 40, bump=1.0)
    argv = [*merge[:-1], f"{folders['a']},{moved}", "--allow-commits"]
    assert main([*argv, "--out", str(tmp_path / "m3")]) == 2
    assert "at different commits" in capsys.readouterr().err
    # No bridge between the commits: nothing shows they play alike, even where each
    # run shares a controller with a run of its own commit (or with itself, twice).
    lone = recorded("lone", "d" * 40, keep=["trigger"])
    for runs in ([folders["a"], lone], [folders["a"], folders["a"], lone, lone]):
        argv = [*merge[:-1], ",".join(map(str, runs)), "--allow-commits"]
        assert main([*argv, "--out", str(tmp_path / "m4")]) == 2
        err = capsys.readouterr().err
        assert "commit dddddddddd" in err and "no controller was played both at it" in err
    # A bridge counts each shared episode once, however many runs replay it.
    argv = [*merge[:-1], f"{folders['a']},{folders['a']},{later}", "--allow-commits"]
    assert main([*argv, "--out", str(tmp_path / "m5")]) == 0
    assert json.loads(capsys.readouterr().out)["meta"]["across_commits"]["bridge_episodes"] == (
        n_static
    )
    # It merges recorded runs only.
    assert main([*base, "--controllers", "static", "--allow-commits"]) == 2
    assert "use it with --from" in capsys.readouterr().err


def test_mlflow_run_per_suite_with_a_child_run_per_case(tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'ml.db'}"
    args = ["bench", "--suite", "dev", "--controllers", "static,trigger", "--cases", "*10-bursts"]
    args += ["--bootstrap", "100", "--out", str(tmp_path / "o"), "--tracking-uri", uri]
    assert main(args) == 0
    capsys.readouterr()
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("lokirl-bench")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {r.data.params["case"] for r in children} == {"ta10-bursts", "sm10-bursts"}
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children)
    assert "trigger/reward" in children[0].data.metrics


def test_keyword_specs_with_commas_are_one_controller(tmp_path, capsys):
    from lokirl.commands.options import split_specs

    spec = "periodic(period_s=5.0,headroom=1.3)"
    assert split_specs(f"loki, {spec},trigger") == ["loki", spec, "trigger"]
    args = ["bench", "--suite", "dev", "--no-mlflow", "--cases", "sm10-*", "--json"]
    args += ["--controllers", f"static,{spec}", "--bootstrap", "100", "--out", str(tmp_path)]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["meta"]["controllers"] == ["static", spec]
    assert (
        main(["bench", "--suite", "dev", "--controllers", "periodic(period_s=5", "--no-mlflow"])
        == 2
    )
    assert "unbalanced parentheses" in capsys.readouterr().err


def test_solver_time_sensitivity_runs_are_recorded_and_not_merged_with_modelled(tmp_path, capsys):
    base = ["bench", "--suite", "dev", "--no-mlflow", "--bootstrap", "100", "--json"]
    base += ["--cases", "sm10-*", "--controllers", "trigger"]
    for bad in ("fast", "inf", "-1", "5"):  # 5 s: longer than the suite's 1 s epochs
        assert main([*base, "--solver-time", bad, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "--solver-time" in err and "0.02" in err, (bad, err)
    assert not list(tmp_path.iterdir())  # refused before any work
    assert main([*base, "--solver-time", "0.5", "--out", str(tmp_path / "fixed")]) == 0
    fixed = json.loads(capsys.readouterr().out)
    assert fixed["meta"]["solver_time"] == 0.5
    assert main([*base, "--out", str(tmp_path / "model")]) == 0
    capsys.readouterr()
    (f,), (m,) = (tmp_path / "fixed").iterdir(), (tmp_path / "model").iterdir()
    assert "every solve takes 0.5 s" in (f / "report.md").read_text()
    rows_f = json.loads((f / "per_episode.json").read_text())["rows"]
    rows_m = json.loads((m / "per_episode.json").read_text())["rows"]
    # Every solve after the first plan (in force at time 0, free) took 0.5 s.
    assert all(r["solves"] >= 2 for r in rows_f)
    for r in rows_f:
        assert r["solver_time_s"] == pytest.approx(0.5 * (r["solves"] - 1))
    assert [r["solver_time_s"] for r in rows_f] != [r["solver_time_s"] for r in rows_m]
    # Runs of different solve times are never paired, and --from plays nothing.
    assert main(["bench", "--from", f"{f},{m}", "--no-mlflow"]) == 2
    assert "differ in solver_time" in capsys.readouterr().err
    assert main(["bench", "--from", str(f), "--solver-time", "0.1", "--no-mlflow"]) == 2
    assert "--solver-time" in capsys.readouterr().err


def test_swap_override_plays_every_case_under_that_mode_and_is_not_merged(tmp_path, capsys):
    base = ["bench", "--suite", "dev", "--no-mlflow", "--bootstrap", "100", "--json"]
    base += ["--cases", "ta10-step-file", "--controllers", "loki"]
    runs = {}
    for mode in ("free", "overlap", "stop"):  # this case is `stop`: a no-op, recorded so
        assert main([*base, "--swap", mode, "--out", str(tmp_path / mode)]) == 0
        meta = json.loads(capsys.readouterr().out)["meta"]
        assert meta["swap"] == (None if mode == "stop" else mode)
        (folder,) = (tmp_path / mode).iterdir()
        runs[mode] = folder
    rows = {m: json.loads((f / "per_episode.json").read_text())["rows"] for m, f in runs.items()}
    for mode, rs in rows.items():
        assert {r["swap"] for r in rs} == {mode}
    # A swap that costs nothing loses fewer frames than one that stops the worker.
    viol = {m: sum(r["frame_violation_ratio"] for r in rs) for m, rs in rows.items()}
    assert viol["free"] < viol["overlap"] < viol["stop"], viol
    assert "swap mode `free` (`--swap`)" in (runs["free"] / "report.md").read_text()
    assert "swaps:" not in (runs["stop"] / "report.md").read_text()
    # Runs of different swap modes are never paired, and --from plays nothing.
    assert main(["bench", "--from", f"{runs['free']},{runs['stop']}", "--no-mlflow"]) == 2
    assert "differ in swap" in capsys.readouterr().err
    assert main(["bench", "--from", str(runs["free"]), "--swap", "free", "--no-mlflow"]) == 2
    assert "drop --swap" in capsys.readouterr().err


def test_arrival_jitter_runs_are_recorded_per_copy_and_not_merged(tmp_path, capsys):
    base = ["bench", "--suite", "dev", "--no-mlflow", "--bootstrap", "100", "--json"]
    base += ["--cases", "sm10-*", "--controllers", "trigger"]
    # refused before any work: a copy without a jitter, a bad jitter
    assert main([*base, "--jitter-copy", "2", "--out", str(tmp_path)]) == 2
    assert "add --arrival-jitter" in capsys.readouterr().err
    assert main([*base, "--arrival-jitter", "-3", "--out", str(tmp_path)]) == 2
    assert "--arrival-jitter" in capsys.readouterr().err
    assert not tmp_path.exists() or not list(tmp_path.iterdir())
    runs = {}
    for name, extra in (("c1", ["--jitter-copy", "1"]), ("c2", ["--jitter-copy", "2"])):
        assert main([*base, "--arrival-jitter", "4", *extra, "--out", str(tmp_path / name)]) == 0
        meta = json.loads(capsys.readouterr().out)["meta"]
        assert meta["arrival_timing"] == {"jitter_ms": 4.0, "copy": int(name[1])}
        (runs[name],) = (tmp_path / name).iterdir()
    assert (
        "each delayed by up to 4 ms (`--arrival-jitter`, copy 2)"
        in (runs["c2"] / "report.md").read_text()
    )
    rows = {k: json.loads((f / "per_episode.json").read_text())["rows"] for k, f in runs.items()}
    arrived = {k: [r["frames"]["arrived"] for r in rs] for k, rs in rows.items()}
    assert arrived["c1"] == arrived["c2"]  # the same frames in every copy
    # two copies are never paired with each other, and --from plays nothing
    assert main(["bench", "--from", f"{runs['c1']},{runs['c2']}", "--no-mlflow"]) == 2
    assert "differ in arrival_timing" in capsys.readouterr().err
    assert main(["bench", "--from", str(runs["c1"]), "--arrival-jitter", "4", "--no-mlflow"]) == 2
    assert "drop --arrival-jitter" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--suite", "dev", "--duration", "5", "--seeds", "1"], "--duration, --seeds"),
        (["--suite", "dev", "--workers", "40", "--column", "ts"], "--workers, --column"),
        (["--from", "runs/nothing", "--load", "0.1:1"], "--load"),
    ],
)
def test_the_options_of_tracess_one_case_are_refused_with_a_suite(capsys, argv, named):
    # a suite (or merged runs) played them unchanged, without a word
    assert main(["bench", *argv, "--no-mlflow"]) == 2
    err = capsys.readouterr().err
    assert f"{named}: these shape the one case of --trace and would be ignored" in err


def test_a_bad_pool_is_refused_before_any_episode(capsys, tmp_path):
    args = ["bench", "--suite", "dev", "--controllers", "static", "--no-mlflow"]
    for pool in ("foo", "x=zz*", "static=stat*"):  # it was refused after every episode
        assert main([*args, "--pool", pool, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert "--pool" in err and "episodes" not in err
    assert not list(tmp_path.iterdir())


def test_a_pool_can_be_the_reference_of_a_played_run(capsys, tmp_path):
    args = ["bench", "--suite", "dev", "--cases", "sm10-*", "--controllers", "static,trigger"]
    args += ["--no-mlflow", "--bootstrap", "100", "--json", "--out", str(tmp_path)]
    assert main([*args, "--pool", "both=*i*", "--reference", "both"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["meta"]["reference"] == "both"
    assert set(out["paired"]["reward"]) == {"static", "trigger"}


def test_from_merges_a_run_of_every_case_with_one_of_a_subset_on_the_cases_asked(tmp_path, capsys):
    base = ["bench", "--suite", "dev", "--no-mlflow", "--bootstrap", "100", "--json"]

    def play(controllers, cases, out):
        assert main([*base, "--controllers", controllers, "--cases", cases, "--out", str(out)]) == 0
        capsys.readouterr()
        (folder,) = out.iterdir()
        return folder

    wide = play("static", "sm10-*,ta10-b*", tmp_path / "w")
    narrow = play("trigger", "ta10-b*", tmp_path / "n")
    merge = ["bench", "--from", f"{wide},{narrow}", "--reference", "trigger", *base[3:]]
    # without --cases the case lists differ: refused, as their episodes are not all paired
    assert main([*merge, "--out", str(tmp_path / "x")]) == 2
    assert "runs differ in cases" in capsys.readouterr().err
    # on the cases asked for they are paired: it was refused the same way
    assert main([*merge, "--cases", "ta10-b*", "--out", str(tmp_path / "m")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["meta"]["cases"] == ["ta10-bursts"]
    assert set(out["aggregate"]) == {"static", "trigger"}
    assert main([*merge, "--cases", "sm10-*", "--out", str(tmp_path / "y")]) == 2
    assert "--cases" in capsys.readouterr().err


def test_a_batch_overhead_run_is_recorded_slower_and_not_merged_with_a_plain_one(tmp_path, capsys):
    base = ["bench", "--suite", "dev", "--no-mlflow", "--bootstrap", "100", "--json"]
    base += ["--cases", "sm10-*", "--controllers", "loki"]
    # refused before any work: a negative overhead, one as long as an epoch
    for bad in ("-1", "5000"):
        assert main([*base, "--batch-overhead", bad, "--out", str(tmp_path)]) == 2
        assert "--batch-overhead" in capsys.readouterr().err
    assert not tmp_path.exists() or not list(tmp_path.iterdir())
    runs, metas = {}, {}
    for name, extra in (("plain", []), ("slow", ["--batch-overhead", "30"])):
        assert main([*base, *extra, "--out", str(tmp_path / name)]) == 0
        metas[name] = json.loads(capsys.readouterr().out)["meta"]
        (runs[name],) = (tmp_path / name).iterdir()
    assert metas["plain"]["batch_overhead_s"] == 0.0
    assert metas["slow"]["batch_overhead_s"] == pytest.approx(0.03)
    assert "30 ms beyond its profiled latency" in (runs["slow"] / "report.md").read_text()
    rows = {k: json.loads((f / "per_episode.json").read_text())["rows"] for k, f in runs.items()}
    for plain, slow in zip(rows["plain"], rows["slow"], strict=True):
        assert plain["frames"]["arrived"] == slow["frames"]["arrived"]  # the same arrivals
        f = slow["frames"]
        assert f["arrived"] == f["on_time"] + f["late"] + f["dropped"] + f["in_flight"]
    # batches held 30 ms longer, which no plan accounts for, lose frames
    on_time = {k: sum(r["frames"]["on_time"] for r in rs) for k, rs in rows.items()}
    assert on_time["slow"] < on_time["plain"]
    assert main(["bench", "--from", f"{runs['plain']},{runs['slow']}", "--no-mlflow"]) == 2
    assert "differ in batch_overhead_s" in capsys.readouterr().err
    assert main(["bench", "--from", str(runs["slow"]), "--batch-overhead", "4", "--no-mlflow"]) == 2
    assert "drop --batch-overhead" in capsys.readouterr().err
