"""neuroqd vs plain pyribs on `me_arm`, side by side in one process.

Both run MAP-Elites with iso+line variation (iso_sigma 0.005, line_sigma 0.05) on the 8-DoF
redundant arm, a 100x100 grid, batches of 1024, 200 iterations, from the same kind of
uniform random first batch. pyribs runs its documented loop: GridArchive + IsoLineEmitter +
Scheduler with a numpy arm evaluation. Runs alternate so that machine noise hits both.

    python experiments/benchmarks/bench_me_arm.py [--repeats 3] [--iterations 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def arm_numpy(solutions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The arm of tasks/functions.py in numpy, as a pyribs user would write it."""
    g = np.clip(solutions, 0.0, 1.0)
    objective = -np.std(g, axis=1)
    angles = np.cumsum(2 * np.pi * g - np.pi, axis=1)
    n = g.shape[1]
    measures = np.stack([np.cos(angles).sum(1) / (2 * n) + 0.5,
                         np.sin(angles).sum(1) / (2 * n) + 0.5], axis=1)
    return objective, measures


def run_pyribs(iterations: int, batch: int, seed: int) -> tuple[float, dict]:
    from ribs.archives import GridArchive
    from ribs.emitters import IsoLineEmitter
    from ribs.schedulers import Scheduler

    dof = 8
    rng = np.random.default_rng(seed)
    archive = GridArchive(solution_dim=dof, dims=[100, 100], ranges=[(0, 1), (0, 1)],
                          qd_score_offset=-1.0, seed=seed)
    emitter = IsoLineEmitter(archive, iso_sigma=0.005, line_sigma=0.05,
                             initial_solutions=rng.uniform(0, 1, (batch, dof)),
                             bounds=[(0.0, 1.0)] * dof, batch_size=batch, seed=seed)
    scheduler = Scheduler(archive, [emitter])
    start = time.perf_counter()
    for _ in range(iterations):
        solutions = scheduler.ask()
        objective, measures = arm_numpy(solutions)
        scheduler.tell(objective, measures)
    elapsed = time.perf_counter() - start
    stats = archive.stats
    return elapsed, {"qd_score": float(stats.qd_score), "coverage": float(stats.coverage)}


def run_neuroqd(iterations: int, batch: int, seed: int) -> tuple[float, dict]:
    from evo.build import build_run
    from experiments.config import load_raw, resolve

    config = resolve(load_raw("me_arm"), [f"budget.evaluations={iterations * batch}",
                                          f"batch_size={batch}"], seed=seed)
    engine = build_run(config, run_dir=None, progress=False)
    engine.log_every = iterations  # the engine logs metrics once, like the pyribs loop
    start = time.perf_counter()
    summary = engine.run()
    elapsed = time.perf_counter() - start
    return elapsed, {"qd_score": summary["qd_score"], "coverage": summary["coverage"]}


def overhead_growth(iterations: int = 1000, batch: int = 256) -> None:
    """Per-iteration time early and late in a long run: engine overhead must stay flat."""
    from evo.build import build_run
    from experiments.config import load_raw, resolve

    config = resolve(load_raw("me_arm"), [f"budget.evaluations={iterations * batch}",
                                          f"batch_size={batch}", "log_every=1"])
    stamps: list[float] = []
    engine = build_run(config, run_dir=None, progress=False,
                       callbacks=[lambda eng, row: stamps.append(time.perf_counter())])
    engine.run()
    steps = np.diff(stamps) * 1e3
    early, late = np.median(steps[10:110]), np.median(steps[-100:])
    print(f"\nengine overhead over {iterations} iterations (batch {batch}, metrics logged every "
          f"iteration): median {early:.3f} ms/iteration at 10-110, {late:.3f} ms at the last 100 "
          f"(ratio {late / early:.2f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--batch", type=int, default=1024)
    args = p.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}; "
          f"{args.iterations} iterations x {args.batch}")
    for fn in (run_neuroqd, run_pyribs):  # warm-up: imports, allocator, first-call paths
        fn(5, args.batch, seed=99)
    results = {"neuroqd": [], "pyribs": []}
    for r in range(args.repeats):
        for name, fn in (("neuroqd", run_neuroqd), ("pyribs", run_pyribs)):
            elapsed, m = fn(args.iterations, args.batch, seed=r)
            evals = args.iterations * args.batch
            results[name].append((evals / elapsed, m["qd_score"], m["coverage"]))
            print(f"  seed {r} {name:8s} {evals / elapsed:10,.0f} evals/s  "
                  f"qd_score {m['qd_score']:9.1f}  coverage {m['coverage']:.4f}")
    med = {k: [statistics.median(col) for col in zip(*v)] for k, v in results.items()}
    print(f"\n{'':10s}{'evals/s':>12s}{'QD score':>12s}{'coverage':>10s}   (medians)")
    for k, (eps, qd, cov) in med.items():
        print(f"{k:10s}{eps:12,.0f}{qd:12.1f}{cov:10.4f}")
    speed = med["neuroqd"][0] / med["pyribs"][0]
    qd_gap = (med["neuroqd"][1] - med["pyribs"][1]) / med["pyribs"][1]
    print(f"\nspeed ratio neuroqd/pyribs: {speed:.2f}x   QD score difference: {100 * qd_gap:+.2f}%")
    overhead_growth()


if __name__ == "__main__":
    main()
