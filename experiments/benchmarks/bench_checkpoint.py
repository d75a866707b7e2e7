"""Checkpoint cost of a full replay buffer: incremental chunks against a full rewrite.

A PGA-ME / DCRL-ME emitter keeps up to 1e6 transitions (ant_omni: obs 27, action 8, descriptor 2;
68 float32 per row = 272 MB). Each checkpoint writes only the rows added since the previous one
(``ReplayChunks``: ``checkpoints/emitter_N/replay_<since>_<total>.npz``); the baseline, side by
side in the same run, writes the whole ring (``ReplayBuffer.state_dict`` through the same
``save_state``), which is what a checkpoint would cost without chunks.

    python experiments/benchmarks/bench_checkpoint.py [--capacity 1000000] [--rows 64000]

``--rows``: rows one generation adds (256 ant episodes of 250 steps: at most 64,000).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from archives import save_state
from evo.algorithms.pg_emitters import ReplayChunks
from evo.rl.replay import ReplayBuffer
from tasks.base import Transitions


def _transitions(n: int, obs: int, act: int, d: int, generator: torch.Generator) -> Transitions:
    r = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    return Transitions(obs=r(n, obs), action=r(n, act), reward=r(n), next_obs=r(n, obs),
                       terminated=torch.zeros(n, dtype=torch.bool),
                       truncated=torch.zeros(n, dtype=torch.bool),
                       valid=torch.ones(n, dtype=torch.bool),
                       genome=torch.zeros(n, dtype=torch.int64), descriptor=r(n, d))


def _size_mb(paths) -> float:
    return sum(p.stat().st_size for p in paths) / 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--capacity", type=int, default=1_000_000)
    p.add_argument("--rows", type=int, default=64_000, help="rows added between checkpoints")
    p.add_argument("--checkpoints", type=int, default=3, help="timed checkpoints (median)")
    args = p.parse_args()
    g = torch.Generator().manual_seed(0)
    buffer = ReplayBuffer(args.capacity, obs_dim=27, action_dim=8, descriptor_dim=2)
    block = _transitions(min(args.capacity, 250_000), 27, 8, 2, g)
    while buffer.total_added < args.capacity:  # fill the ring once
        buffer.add(block)
    with tempfile.TemporaryDirectory() as tmp:
        chunks = ReplayChunks(Path(tmp) / "emitter_0")
        chunks.save(buffer)  # the first checkpoint of a run writes what there is
        step = _transitions(args.rows, 27, 8, 2, g)
        inc_s, full_s, inc_mb, full_mb = [], [], [], []
        for k in range(args.checkpoints):
            buffer.add(step)
            before = set(chunks.directory.glob("*.npz"))
            start = time.perf_counter()
            chunks.save(buffer)
            inc_s.append(time.perf_counter() - start)
            inc_mb.append(_size_mb(set(chunks.directory.glob("*.npz")) - before))
            full = Path(tmp) / f"full_{k}.npz"
            start = time.perf_counter()
            save_state(full, buffer.state_dict())
            full_s.append(time.perf_counter() - start)
            full_mb.append(_size_mb([full]))
            full.unlink()
    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    print(f"replay ring {args.capacity:,} rows (obs 27, action 8, descriptor 2), full; "
          f"{args.rows:,} rows added per checkpoint; median of {args.checkpoints}")
    print(f"  full rewrite   {med(full_s):7.3f} s  {med(full_mb):8.1f} MB")
    print(f"  chunk (ours)   {med(inc_s):7.3f} s  {med(inc_mb):8.1f} MB")
    print(f"  ratio          {med(full_s) / med(inc_s):7.1f}x faster, "
          f"{med(full_mb) / med(inc_mb):.1f}x smaller")


if __name__ == "__main__":
    main()
