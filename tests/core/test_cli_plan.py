import json

from lokirl.cli import main


def test_plan_json(capsys):
    assert (
        main(
            [
                "plan",
                "--pipeline",
                "traffic_analysis",
                "--demand",
                "300",
                "--workers",
                "20",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["phase"] == "accuracy" and out["active_workers"] <= 20
    assert out["served_share"] == 1.0
    assert {"groups", "paths", "task_shares", "capacity", "solve_time_s", "status"} <= set(out)


def test_plan_table_is_readable(capsys):
    assert main(["plan", "--demand", "50", "--workers", "20"]) == 0
    out = capsys.readouterr().out
    assert "hardware" in out and "yolov5x" in out and "routing shares" in out


def test_sweep_shows_hardware_then_accuracy_scaling(capsys):
    assert main(["plan", "--sweep", "50:450:200", "--workers", "20", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["phase"] for r in rows] == ["hardware", "accuracy", "accuracy"]
    assert rows[0]["active_workers"] < 20
    accs = [r["expected_accuracy"] for r in rows]
    assert accs[0] > accs[1] > accs[2]


def test_bad_input_is_one_line_error(capsys):
    assert main(["plan", "--pipeline", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "traffic_analysis" in err
    assert main(["plan", "--cluster", "pascal4"]) == 2
    assert "TYPE=N" in capsys.readouterr().err
    assert main(["plan", "--pipeline", "detect_classify_hetero", "--cluster", "tpu=3"]) == 2
    assert main(["plan", "--sweep", "9:1"]) == 2
    assert main(["plan", "--demand", "-5"]) == 2
    capsys.readouterr()
    # A sweep too long to solve, or not finite, is refused before any solve.
    assert main(["plan", "--sweep", "0:1e9:1"]) == 2
    assert "1,000,000,001 demands" in capsys.readouterr().err
    assert main(["plan", "--sweep", "nan:100:1"]) == 2
    assert "finite" in capsys.readouterr().err
    zero = ["plan", "--pipeline", "detect_classify_hetero", "--cluster", "pascal=0,cpu=0"]
    assert main([*zero, "--demand", "40"]) == 2
    assert "--cluster" in capsys.readouterr().err


def test_heterogeneous_cluster_plan(capsys):
    code = main(
        [
            "plan",
            "--pipeline",
            "detect_classify_hetero",
            "--cluster",
            "pascal=2,cpu=4",
            "--demand",
            "20",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {g["accelerator"] for g in out["groups"]} <= {"pascal", "cpu"}
