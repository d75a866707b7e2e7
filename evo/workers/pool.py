"""A process pool of evaluation workers on this machine.

Each worker process builds its own task, policy and seed-chain decoder from the run's
config (so only genomes or seeds cross the process boundary, never objects) and evaluates
one contiguous slice of the batch with :func:`evaluate_batch`. Slices are cut in genome
order and every genome carries its own seed, so the result is the same for any number of
workers, and the same as in-process evaluation.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from tasks import Evaluation

_WORKER: dict = {}


def _init_worker(config: dict) -> None:
    from evo.build import build_decoder, build_policy, build_task

    # One thread per worker: the pool is the parallelism; nested threads would oversubscribe.
    torch.set_num_threads(1)
    task = build_task(config)
    policy = build_policy(config, task)
    _WORKER.update(task=task, policy=policy, decoder=build_decoder(config, task, policy),
                   device=config["device"])


def _evaluate_slice(genomes, seeds: np.ndarray) -> dict:
    from evo.workers.local import evaluate_batch

    if isinstance(genomes, np.ndarray):
        genomes = torch.from_numpy(genomes)
    ev = evaluate_batch(_WORKER["task"], genomes, torch.from_numpy(seeds), _WORKER["policy"],
                        _WORKER["decoder"], _WORKER["device"])
    return {"fitness": ev.fitness.numpy(), "descriptors": ev.descriptors.numpy(),
            "failed": ev.failed.numpy(), "info": {k: v.numpy() for k, v in ev.info.items()}}


def evaluation_from_parts(parts: list[dict]) -> Evaluation:
    """Join the per-slice arrays that workers send back (copied: they may be read-only)."""
    return Evaluation.cat([
        Evaluation(torch.tensor(p["fitness"]), torch.tensor(p["descriptors"]),
                   torch.tensor(p["failed"]), {k: torch.tensor(v) for k, v in p["info"].items()})
        for p in parts])


def split_slices(n: int, parts: int) -> list[slice]:
    """``parts`` contiguous, nearly equal slices covering ``range(n)`` (empty ones dropped)."""
    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def slice_batch(genomes: Tensor | Sequence, seeds: Tensor, parts: int) -> list[tuple]:
    """(genomes, seeds) cut into ``parts`` contiguous slices, as numpy arrays (or lists of
    seed chains) ready to send to another process."""
    payload = genomes.detach().cpu().numpy() if isinstance(genomes, Tensor) else list(genomes)
    seeds = seeds.cpu().numpy()
    return [(payload[s], seeds[s]) for s in split_slices(len(payload), parts)]


class ProcessEvaluator:
    """Evaluates a batch across ``count`` worker processes.

    Parameters
    ----------
    config : dict
        The resolved run config (workers rebuild task, policy and decoder from it).
    count : int
        Worker processes; started once, reused for every batch.
    """

    backend = "process"

    def __init__(self, config: dict, count: int) -> None:
        if count < 1:
            raise ValueError(f"workers.count: must be >= 1, got {count}")
        self.count = int(count)
        # spawn, not fork: forking a process that already runs torch threads can deadlock.
        self._pool = ProcessPoolExecutor(max_workers=self.count, mp_context=mp.get_context("spawn"),
                                         initializer=_init_worker, initargs=(config,))

    def __call__(self, genomes: Tensor | Sequence, seeds: Tensor) -> Evaluation:
        futures = [self._pool.submit(_evaluate_slice, g, s)
                   for g, s in slice_batch(genomes, seeds, self.count)]
        return evaluation_from_parts([f.result() for f in futures])

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __del__(self) -> None:
        try:
            self._pool.shutdown(wait=False, cancel_futures=True)
        except Exception:
            pass
