"""Shared test steps for run directories."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

from evo.build import build_run
from experiments.config import resolve


def metric_rows(path):
    """metrics.csv rows without the wall-clock column (the only one allowed to differ)."""
    with open(path, newline="") as f:
        return [{k: v for k, v in r.items() if k != "time_s"} for r in csv.DictReader(f)]


def split_and_resume(raw: dict, tmp_path, split_evaluations: int):
    """Run ``raw`` whole, and again stopped at ``split_evaluations`` then restored by fresh
    objects and continued; asserts equal metrics and returns (whole, resumed) engines."""
    whole = build_run(resolve(raw), tmp_path / "whole", progress=False)
    whole.run()
    build_run(resolve(dict(raw, budget={"evaluations": split_evaluations})), tmp_path / "split",
              progress=False).run()
    resumed = build_run(resolve(raw), tmp_path / "split", progress=False)
    assert resumed.restore() is not None
    assert 0 < resumed.algorithm.iteration < whole.algorithm.iteration
    resumed.run()
    assert metric_rows(tmp_path / "split" / "metrics.csv") == metric_rows(tmp_path / "whole" / "metrics.csv")
    return whole, resumed


def sigkill_then_resume(tmp_path, run_args: list[str], checkpoints: int = 2) -> None:
    """``neuroqd run *run_args`` whole, and again killed with SIGKILL once ``checkpoints``
    checkpoints exist, then ``neuroqd resume``d: asserts equal summaries, metrics (all columns
    before time_s) and archives."""
    args = ["run", *run_args, "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "experiments.cli"]
    subprocess.run(cmd + args + ["--out", str(tmp_path / "full")], check=True, env=env,
                   capture_output=True)
    proc = subprocess.Popen(cmd + args + ["--out", str(tmp_path / "killed")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(ckpts.glob("ckpt_*.npz"))) < checkpoints:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "summary.json").exists(), "run ended before the kill"
    subprocess.run(cmd + ["resume", str(tmp_path / "killed"), "--quiet"], check=True, env=env,
                   capture_output=True)

    def result(d):
        s = json.loads((d / "summary.json").read_text())
        s.pop("time_s")
        lines = (d / "metrics.csv").read_text().splitlines()
        metrics = [",".join(r.split(",")[:5]) for r in lines]  # all columns before time_s
        return s, metrics

    assert result(tmp_path / "full") == result(tmp_path / "killed")
    from archives import load_archive

    a = load_archive(tmp_path / "full" / "archive.npz").elites()
    b = load_archive(tmp_path / "killed" / "archive.npz").elites()
    assert all((a[k] == b[k]).all() for k in a)
