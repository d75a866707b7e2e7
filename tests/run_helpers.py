"""Shared test steps for run directories."""

import csv

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
