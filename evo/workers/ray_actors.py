"""Ray actors as evaluation workers, on one machine or a cluster (``workers.address``).

Same contract as the process pool: every actor builds a :class:`evo.workers.local.Worker` from
the picklable factory and evaluates a contiguous slice, so results do not depend on the backend
or the number of actors. An actor that dies mid-batch or runs past ``timeout_s`` is killed,
replaced, and its slice evaluated again.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Sequence

from torch import Tensor

from evo.workers.pool import (MAX_SLICE_RETRIES, WorkerFailure, evaluate_arrays,
                              evaluation_from_parts, pickled_factory, slice_batch)
from tasks import Evaluation


class _Actor:
    def __init__(self, payload: bytes) -> None:
        import pickle

        import torch

        torch.set_num_threads(1)
        self.worker = pickle.loads(payload)()

    def pid(self) -> int:
        return os.getpid()

    def evaluate(self, genomes, seeds, transitions):
        return evaluate_arrays(self.worker, genomes, seeds, transitions)


def _check_reachable(address: str) -> None:
    """Fail in a second, not after Ray's minute of retries, when nothing listens there."""
    host, _, port = address.rpartition(":")
    if "://" in address or not port.isdigit():
        return  # ray://, "auto" and the like: Ray's own checks apply
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as exc:
        raise ValueError(f"workers.address: nothing answers at {address} ({exc.strerror or exc}); "
                         f"accepted: the address of a running cluster (ray start --head), or "
                         f"null for a local instance") from None


def ray_module():
    try:
        import ray
    except ImportError:
        raise ValueError("workers.backend: 'ray' needs the ray package (pip install ray); "
                         "accepted without it: local, process") from None
    return ray


class RayEvaluator:
    """Evaluates a batch across ``count`` Ray actors.

    Parameters
    ----------
    factory : WorkerFactory
        What each actor is built from.
    count : int
        Actors, one CPU each.
    address : str, optional
        A running cluster to join (``ray.init(address=...)``, e.g. ``"127.0.0.1:6379"``); None
        starts a local Ray instance sized for ``count`` actors, whose workers see this
        process's ``sys.path`` (so tasks defined in a script or a test module import there).
    timeout_s : float or None
        An actor still busy with its slice after this many seconds is killed and replaced.

    Attributes
    ----------
    restarts : int
        Actors replaced so far (died or timed out).
    """

    backend = "ray"

    def __init__(self, factory, count: int, address: str | None = None,
                 timeout_s: float | None = None) -> None:
        ray = ray_module()
        if count < 1:
            raise ValueError(f"workers.count: must be >= 1, got {count}")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"workers.timeout_s: must be > 0 or null, got {timeout_s}")
        self._ray = ray
        self.count = int(count)
        self.timeout_s = timeout_s
        self.restarts = 0
        self._payload = pickled_factory(factory)
        if not ray.is_initialized():
            if address:
                _check_reachable(address)
                kwargs = {"address": address}
            else:
                path = os.pathsep.join(p for p in sys.path if p)
                # "local": a fresh instance, even when another cluster runs on this machine
                # (plain ray.init() would join it).
                kwargs = {"address": "local", "num_cpus": self.count,
                          "runtime_env": {"env_vars": {"PYTHONPATH": path}}}
            try:
                ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
            except Exception as exc:  # no cluster at that address, or Ray cannot start here
                raise ValueError(f"workers.address: cannot start or join Ray "
                                 f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                                 f"accepted: the address of a running cluster (ray start --head), "
                                 f"or null for a local instance") from None
        self._actor_cls = ray.remote(num_cpus=1, max_restarts=0)(_Actor)
        self._actors = [self._new_actor() for _ in range(self.count)]
        ray.get([a.pid.remote() for a in self._actors])  # built (or failed) before the first batch

    def _new_actor(self):
        return self._actor_cls.remote(self._payload)

    @property
    def pids(self) -> list[int]:
        """Process ids of the actors (on their nodes)."""
        return self._ray.get([a.pid.remote() for a in self._actors])

    def __call__(self, genomes: Tensor | Sequence, seeds: Tensor,
                 transitions: bool = False) -> Evaluation:
        ray = self._ray
        slices = slice_batch(genomes, seeds, self.count)
        refs = {i: self._actors[i].evaluate.remote(*slices[i], transitions) for i in range(len(slices))}
        started = {i: time.monotonic() for i in refs}
        tries = [0] * len(slices)
        results: dict[int, dict] = {}
        while refs:
            ready, _ = ray.wait(list(refs.values()), num_returns=1, timeout=self._wait_for([started[i] for i in refs]))
            for i in [i for i, r in refs.items() if r in ready]:
                try:
                    results[i] = ray.get(refs.pop(i))
                except ray.exceptions.RayActorError:
                    self._retry(i, refs, started, tries, slices, transitions)
                except ray.exceptions.RayTaskError as exc:
                    raise WorkerFailure(f"a Ray worker raised while evaluating its slice:\n{exc}") from None
            if self.timeout_s:
                now = time.monotonic()
                for i in [i for i in refs if now - started[i] > self.timeout_s]:
                    refs.pop(i)
                    self._retry(i, refs, started, tries, slices, transitions)
        return evaluation_from_parts([results[i] for i in range(len(slices))])

    def _wait_for(self, started: list[float]) -> float | None:
        if not self.timeout_s:
            return None
        return max(0.0, min(started) + self.timeout_s - time.monotonic())

    def _retry(self, i, refs, started, tries, slices, transitions) -> None:
        tries[i] += 1
        if tries[i] > MAX_SLICE_RETRIES:
            raise WorkerFailure(f"workers: slice {i} killed or hung its actor {tries[i]} times; "
                                f"giving up on this batch")
        self._ray.kill(self._actors[i], no_restart=True)
        self.restarts += 1
        self._actors[i] = self._new_actor()
        refs[i] = self._actors[i].evaluate.remote(*slices[i], transitions)
        started[i] = time.monotonic()

    def close(self) -> None:
        for a in self._actors:
            self._ray.kill(a)
        self._actors = []
