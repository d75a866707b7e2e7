"""`workers.address` joins a running Ray cluster: a head started with `ray start --head` on the
loopback address runs a short job, which ends like the same job run in-process."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _neuroqd(*args, cwd, env=None):
    proc = subprocess.run([str(BIN / "neuroqd"), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.slow
def test_a_job_runs_through_a_ray_cluster_started_with_ray_start(tmp_path):
    port = _free_port()
    # Token authentication off for this loopback-only test cluster (and its one driver).
    env = dict(os.environ, RAY_ADDRESS="", RAY_AUTH_MODE="disabled")
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={port}", "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        small = ["--set", "budget.evaluations=1024", "--set", "batch_size=256", "--quiet"]
        deadline = time.monotonic() + 90
        while True:  # the head is up once `ray status` answers
            status = subprocess.run([str(BIN / "ray"), "status", f"--address=127.0.0.1:{port}"],
                                    capture_output=True, text=True, env=env)
            if status.returncode == 0:
                break
            assert time.monotonic() < deadline, "the Ray head did not start: " + status.stderr
            time.sleep(2)
        _neuroqd("run", "me_arm", "--out", str(tmp_path / "cluster"), "--backend", "ray",
                 "--workers", "2", "--set", f"workers.address=127.0.0.1:{port}", *small,
                 cwd=tmp_path, env=env)
        _neuroqd("run", "me_arm", "--out", str(tmp_path / "local"), *small, cwd=tmp_path)
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)
    cluster = json.loads((tmp_path / "cluster" / "summary.json").read_text())
    local = json.loads((tmp_path / "local" / "summary.json").read_text())
    assert cluster["qd_score"] == local["qd_score"] and cluster["evaluations"] == 1024


def test_a_ray_address_with_no_cluster_is_a_one_line_error(tmp_path):
    proc = subprocess.run([str(BIN / "neuroqd"), "run", "me_arm", "--backend", "ray", "--set",
                           f"workers.address=127.0.0.1:{_free_port()}", "--quiet"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neuroqd: error: workers.address:"), proc.stderr
