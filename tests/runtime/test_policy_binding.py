"""A trained policy is checked against the served cluster at start-up and bound before it decides."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lokirl.errors import ConfigError

POLICIES = Path(__file__).parents[2] / "lokirl" / "data" / "policies"
SHIPPED = POLICIES / "ppo_traffic_analysis"  # ppo-v1


def _v2_policy(tmp_path: Path, **scope) -> str:
    """A version-2 feature file (no model: the start-up check reads the feature file alone)."""
    doc = json.loads((SHIPPED / "model.features.json").read_text())
    doc.update(version=2, workers=None)
    doc["scope"] = {
        "pipeline": "traffic_analysis",
        "accelerators": ["gpu"],
        "workers": [10, 30],
        "swaps": ["overlap"],
        **scope,
    }
    (tmp_path / "model.features.json").write_text(json.dumps(doc))
    return "ppo:" + str(tmp_path / "model.zip")


def test_shipped_policies_refused_outside_their_scope():
    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    cfg = RuntimeConfig(pipeline="traffic_analysis", workers=8, controller="ppo-v1", emulate=True)
    with pytest.raises(ConfigError, match="exactly 20 workers, not 8") as info:
        Runtime(cfg)
    assert "Fix:" in str(info.value)
    with pytest.raises(ConfigError, match=r"10\.\.100 workers, not 8") as info:
        Runtime(replace(cfg, controller="ppo"))
    assert "Fix:" in str(info.value)


def test_version2_scope_is_checked_at_start_up(tmp_path):
    from lokirl.core.pipeline_config import load_pipeline
    from lokirl.runtime.runtime import Runtime, RuntimeConfig, precheck_policy

    spec = _v2_policy(tmp_path)
    p = load_pipeline("traffic_analysis")
    from lokirl.core.pipeline import Cluster

    precheck_policy(spec, p, Cluster({"gpu": 20}), "overlap")  # fits: no model needed
    # Runtime refuses before it would load the (absent) model.
    base = RuntimeConfig(pipeline="traffic_analysis", workers=8, controller=spec, emulate=True)
    with pytest.raises(ConfigError, match=r"clusters of 10\.\.30 workers, not 8"):
        Runtime(base)
    with pytest.raises(ConfigError, match="swap modes \\['overlap'\\], not 'stop'"):
        Runtime(replace(base, workers=20, swap="stop"))
    with pytest.raises(ConfigError, match="trained on pipeline traffic_analysis"):
        precheck_policy(spec, replace(p, name="other"), Cluster({"gpu": 20}), "overlap")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_with_the_policy_at_another_size_fails_fast():
    exe = Path(sys.executable).with_name("lokirl")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "lokirl"]
    args = ["serve", "--pipeline", "traffic_analysis", "--emulate", "--workers", "8"]
    args += ["--controller", "ppo", "--port", str(_free_port())]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    t0 = time.monotonic()
    r = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60, env=env)
    took = time.monotonic() - t0
    assert r.returncode == 2 and took < 30, (took, r.stderr)
    assert "10..100 workers, not 8" in r.stderr and "Fix:" in r.stderr
    assert "Traceback" not in r.stderr and "serving" not in r.stdout


@pytest.mark.ray
@pytest.mark.slow
def test_shipped_policy_serves_an_emulated_cluster_of_a_size_it_was_not_trained_on(ray_local):
    pytest.importorskip("stable_baselines3")
    import yaml

    from lokirl.runtime.runtime import Runtime, RuntimeConfig

    trained = yaml.safe_load((POLICIES / "ppo" / "traffic_analysis" / "config.yaml").read_text())
    assert 12 not in trained["env"]["randomise"]["workers"]  # the sizes it was trained on
    cfg = RuntimeConfig(
        pipeline="traffic_analysis",
        workers=12,
        controller="ppo",
        emulate=True,
        initial_demand=20.0,
        solve_in_subprocess=False,
        ping_timeout_s=30.0,  # twelve actors starting on a busy 2-core box are not hung
        load_timeout_s=300.0,
    )

    async def main() -> dict:
        rt = Runtime(cfg)
        await rt.start()
        member = rt.controller.active  # the set's traffic_analysis policy serves
        assert member is not None and member.spec.scope.pipeline == "traffic_analysis"
        try:
            frame = np.zeros((3, 8, 8), np.uint8)
            outs = []
            for _ in range(30):  # 3 s at 10 frames/s: the policy decides at three ticks
                outs.append(asyncio.create_task(rt.submit(frame)))
                await asyncio.sleep(0.1)
            await asyncio.gather(*outs)
            await asyncio.sleep(0.5)
            return {**rt.status(), "decided": len(rt.decisions)}
        finally:
            await rt.stop()

    status = asyncio.run(main())
    assert status["controller"] == "ppo"
    assert status["tick_errors"] == 0 and status["decided"] >= 2, status
    f = status["frames"]
    assert f["arrived"] == 30
    assert f["arrived"] == f["on_time"] + f["late"] + sum(f["dropped"].values()) + f["in_flight"]
    # Served (how many in time depends on the box's load: this one is shared).
    assert f["on_time"] + f["late"] >= 1, f
