"""Time per generation of DCRL-ME (or any MAP-Elites config), split into its parts.

Runs a config for a few generations and times, per generation: the evaluation (MuJoCo physics
and policy forwards, transitions recorded), the critic training (TD3 steps), the PG variation
(all PG offspring at once), actor injection and parent sampling (the rest of ``ask``), the
archive insertion, and the replay-buffer insertion. The parts are measured by wrapping the
objects that do them, so the run itself is the normal code path.

    python experiments/benchmarks/bench_dcrl_generation.py [--config dcrl_me_ant_omni_paper]
        [--generations 3] [--device cpu|cuda] [--set key=value ...]

The default is the paper's setting on ant_omni (REFERENCE.md section 5): 256 evaluations of 250
steps, 3000 critic steps, minibatch 100, 64 x 150 PG steps. QDax 0.5 on this CPU (measured for
REFERENCE.md section 7): 7.4 s emitting (PG + iso+line + injection), 5.2 s evaluation (Brax
spring physics), 6.5 s archive add + 3000 critic steps; 18.7 s in all. The first generation
(random policies, no critic yet) is reported apart: it has no PG variation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict

import torch

from evo.build import build_run
from experiments.config import load_raw, resolve


def _timed(obj, name: str, bucket: str, times: dict) -> None:
    inner = getattr(obj, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            times[bucket] += time.perf_counter() - start

    setattr(obj, name, wrapper)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="dcrl_me_ant_omni_paper")
    p.add_argument("--generations", type=int, default=3, help="timed generations after the first")
    p.add_argument("--device", default="cpu")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()

    config = resolve(load_raw(args.config), args.set, device=args.device)
    config["budget"]["evaluations"] = 10**9
    engine = build_run(config, progress=False)
    algo = engine.algorithm
    times: dict[str, float] = defaultdict(float)
    import evo.rl.pg as pg_impl

    _timed(algo, "evaluator", "evaluation", times)  # wraps the instance attribute
    _timed(algo.archive, "add", "archive add", times)
    for e in algo.emitters:
        if hasattr(e, "td3"):
            _timed(e.td3, "train", "critic training", times)
            _timed(e.buffer, "add", "replay add", times)
    original_pg = pg_impl.pg_variation

    def pg_variation(*a, **k):
        start = time.perf_counter()
        try:
            return original_pg(*a, **k)
        finally:
            times["PG variation"] += time.perf_counter() - start

    pg_impl.pg_variation = pg_variation
    import evo.rl
    evo.rl.pg_variation = pg_variation  # the emitters import it from evo.rl when asking

    print(f"{args.config}: batch {config['batch_size']}, task {config['task']}, device "
          f"{args.device}, torch threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.2f}")
    rows = []
    for g in range(args.generations + 1):
        times.clear()
        start = time.perf_counter()
        algo.step()
        total = time.perf_counter() - start
        parts = dict(times)
        accounted = sum(parts.values())
        parts["other (iso+line, injection, sampling)"] = total - accounted
        parts["total"] = total
        rows.append(parts)
        label = "first (random, no critic yet)" if g == 0 else f"generation {g}"
        print(f"  {label}: " + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items()))
    timed = rows[1:]
    if timed:
        print("median over the timed generations:")
        for key in timed[-1]:
            print(f"  {key:<40} {statistics.median(r.get(key, 0.0) for r in timed):8.2f} s")
    getattr(algo.evaluator, "close", lambda: None)()


if __name__ == "__main__":
    main()
