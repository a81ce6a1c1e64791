"""The benchmarks end to end, with Docker standing in for pyengine's daemon (tests/docker_as_pyengine.py).

Slow-ish (a few daemons start and stop); they check that every side is measured, reported and
cleaned up, not how fast anything is.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from pathlib import Path

import pytest
from pyengine.testing import dockerd

from bench import parallel_run, run_rm

DOCKER_AS_PYENGINE = f"{sys.executable} {Path(__file__).with_name('docker_as_pyengine.py')}"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not dockerd.dockerd_available(), reason="needs root and Debian's docker.io"
)


def temp_dirs() -> set[str]:
    return set(glob.glob("/tmp/pe-*") + glob.glob("/tmp/pdk-*") + glob.glob("/tmp/bench-*"))


def test_run_rm_measures_and_compares_all_three_sides(tmp_path):
    before = temp_dirs()
    out = tmp_path / "run_rm.json"
    assert (
        run_rm.main(["-n", "2", "--warmup", "1", "--pyengine", DOCKER_AS_PYENGINE, "--json", str(out)]) == 0
    )
    results = json.loads(out.read_text())
    assert set(results["sides"]) == {"pyengine", "docker-cli-on-pyengine", "docker"}
    for side in results["sides"].values():
        assert len(side["times"]) == 2 and side["error"] is None and side["notes"] == []
        assert side["command"][-5:] == ["--network", "none", "--rm", "busybox", "true"]
    assert results["ratios"]["pyengine/docker"]["median"] > 0
    assert "meets_bar" in results["bars"]["pyengine"]
    assert temp_dirs() <= before


def test_run_rm_reports_a_failing_side_and_exits_1_but_still_measures_docker(tmp_path, capsys):
    out = tmp_path / "run_rm.json"
    args = ["-n", "2", "--warmup", "0", "--pyengine", DOCKER_AS_PYENGINE, "--pyengine-network", "nosuchnet"]
    assert run_rm.main([*args, "--json", str(out)]) == 1
    results = json.loads(out.read_text())
    assert "nosuchnet" in results["sides"]["pyengine"]["error"]
    assert len(results["sides"]["docker"]["times"]) == 2
    assert "error: pyengine:" in capsys.readouterr().out


def test_parallel_run_waits_until_all_run_and_removes_them(tmp_path):
    before = temp_dirs()
    out = tmp_path / "parallel.json"
    argv = ["-c", "3", "-r", "1", "--pyengine", DOCKER_AS_PYENGINE, "--json", str(out)]
    assert parallel_run.main(argv) == 0
    results = json.loads(out.read_text())
    for side in results["sides"].values():
        assert side["error"] is None and len(side["all_running"]) == 1
    assert temp_dirs() <= before
