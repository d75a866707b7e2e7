"""A pool of evaluation worker processes on this machine that survives its workers' faults.

Each process builds one :class:`evo.workers.local.Worker` from a pickled
:class:`~evo.workers.local.WorkerFactory` (so only genomes or seeds cross the process boundary
per batch) and evaluates one contiguous slice of every batch. Slices are cut in genome order and
every genome carries its own seed, so the result is the same for any number of workers, and
the same as in-process evaluation.

A worker that dies mid-batch (killed, segfault in a simulator) or that runs past ``timeout_s``
is killed, replaced by a fresh process built from the same factory, and its slice is evaluated
again; slices that finished are kept. Nothing is lost or counted twice, because the algorithm
counts a batch only once the evaluator returns it. ``restarts`` counts the replacements.

Why not ``concurrent.futures.ProcessPoolExecutor``: one dead worker breaks the whole executor
(``BrokenProcessPool``), and it cannot kill a worker that hangs.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
import time
import traceback
from multiprocessing.connection import wait
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from tasks import Evaluation, Transitions

# Seconds a fresh worker may take to import torch and build its task before it counts as broken.
STARTUP_TIMEOUT_S = 120.0
# How often one slice may kill or hang a worker before the batch is given up.
MAX_SLICE_RETRIES = 3


class WorkerFailure(RuntimeError):
    """A worker raised an error, or one slice kept killing its workers."""


def evaluation_to_arrays(ev: Evaluation) -> dict:
    """An :class:`Evaluation` as numpy arrays, to send between processes."""
    return {"fitness": ev.fitness.numpy(), "descriptors": ev.descriptors.numpy(),
            "failed": ev.failed.numpy(), "info": {k: v.numpy() for k, v in ev.info.items()},
            "transitions": None if ev.transitions is None else ev.transitions.to_arrays()}


def evaluation_from_parts(parts: list[dict]) -> Evaluation:
    """Join the per-slice arrays that workers send back (copied: they may be read-only)."""
    return Evaluation.cat([
        Evaluation(torch.tensor(p["fitness"]), torch.tensor(p["descriptors"]),
                   torch.tensor(p["failed"]), {k: torch.tensor(v) for k, v in p["info"].items()},
                   None if p["transitions"] is None else Transitions.from_arrays(p["transitions"]))
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


def evaluate_arrays(worker, genomes, seeds: np.ndarray, transitions: bool) -> dict:
    """One slice as it arrives from another process, evaluated by ``worker``."""
    if isinstance(genomes, np.ndarray):
        genomes = torch.from_numpy(genomes)
    return evaluation_to_arrays(worker.evaluate(genomes, torch.from_numpy(seeds), transitions))


def pickled_factory(factory) -> bytes:
    try:
        return pickle.dumps(factory)
    except Exception as exc:  # a lambda, a closure, an open handle in the task or policy
        raise ValueError(f"workers.backend: the task, policy or decoder cannot be pickled for "
                         f"worker processes ({exc}); accepted: picklable objects, or the local "
                         f"backend") from None


def _serve(conn, payload: bytes) -> None:
    """A worker process: build the worker, then evaluate slices until the pipe closes."""
    # One torch thread per worker: the pool is the parallelism; physics threads are set apart.
    torch.set_num_threads(1)
    try:
        worker = pickle.loads(payload)()
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    conn.send(("ready", None))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            conn.send(("ok", evaluate_arrays(worker, *job)))
        except Exception:
            conn.send(("error", traceback.format_exc()))


class _Process:
    def __init__(self, ctx, payload: bytes) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, payload), daemon=True)
        self.process.start()
        child.close()
        self.job: int | None = None  # the slice it is evaluating
        self.started = 0.0

    def wait_ready(self) -> None:
        if not self.conn.poll(STARTUP_TIMEOUT_S):
            self.kill()
            raise WorkerFailure(f"a worker process did not start within {STARTUP_TIMEOUT_S:.0f} s")
        try:
            kind, message = self.conn.recv()
        except EOFError:
            raise WorkerFailure(f"a worker process died while starting "
                                f"(exit code {self.process.exitcode})") from None
        if kind != "ready":
            raise WorkerFailure(f"a worker process failed to build its task:\n{message}")

    def kill(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()


class ProcessEvaluator:
    """Evaluates a batch across ``count`` worker processes.

    Parameters
    ----------
    factory : WorkerFactory
        What each worker is built from (pickled once, sent to every process).
    count : int
        Worker processes; started once, reused for every batch, replaced when they fail.
    timeout_s : float or None
        A worker still busy with its slice after this many seconds is killed and replaced,
        and the slice evaluated again. None: no limit.

    Attributes
    ----------
    restarts : int
        Workers replaced so far (died or timed out).
    """

    backend = "process"

    def __init__(self, factory, count: int, timeout_s: float | None = None) -> None:
        if count < 1:
            raise ValueError(f"workers.count: must be >= 1, got {count}")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"workers.timeout_s: must be > 0 or null, got {timeout_s}")
        self.count = int(count)
        self.timeout_s = timeout_s
        self.restarts = 0
        self._payload = pickled_factory(factory)
        # spawn, not fork: forking a process that already runs torch threads can deadlock.
        self._ctx = mp.get_context("spawn")
        self._procs = [_Process(self._ctx, self._payload) for _ in range(self.count)]
        try:
            for p in self._procs:  # they start in parallel; wait for all
                p.wait_ready()
        except Exception:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        """Process ids of the current workers (for monitoring, and for tests that kill one)."""
        return [p.process.pid for p in self._procs]

    def __call__(self, genomes: Tensor | Sequence, seeds: Tensor,
                 transitions: bool = False) -> Evaluation:
        slices = slice_batch(genomes, seeds, self.count)
        results: dict[int, dict] = {}
        tries = [0] * len(slices)
        for i, proc in enumerate(self._procs[: len(slices)]):
            self._send(proc, i, slices[i], transitions)
        while len(results) < len(slices):
            busy = [p for p in self._procs if p.job is not None]
            waits = [p.started + self.timeout_s - time.monotonic() for p in busy] if self.timeout_s else []
            wait([x for p in busy for x in (p.conn, p.process.sentinel)],
                 timeout=max(0.0, min(waits)) if waits else None)
            for k, proc in enumerate(self._procs):
                if proc.job is None:
                    continue
                i = proc.job
                message = None
                if proc.conn.poll():
                    try:
                        message = proc.conn.recv()
                    except (EOFError, OSError):
                        message = None
                if message is not None and message[0] == "ok":
                    results[i], proc.job = message[1], None
                elif message is not None:
                    raise WorkerFailure(f"a worker raised while evaluating its slice:\n{message[1]}")
                elif not proc.process.is_alive() or (
                        self.timeout_s and time.monotonic() - proc.started > self.timeout_s):
                    tries[i] += 1
                    if tries[i] > MAX_SLICE_RETRIES:
                        raise WorkerFailure(f"workers: slice {i} killed or hung its worker "
                                            f"{tries[i]} times; giving up on this batch")
                    self._procs[k] = self._replace(proc)
                    self._send(self._procs[k], i, slices[i], transitions)
        return evaluation_from_parts([results[i] for i in range(len(slices))])

    def _send(self, proc: _Process, i: int, part: tuple, transitions: bool) -> None:
        proc.job, proc.started = i, time.monotonic()
        try:
            proc.conn.send((*part, transitions))
        except (BrokenPipeError, OSError):
            pass  # it died already; the loop sees it and replaces it

    def _replace(self, proc: _Process) -> _Process:
        proc.kill()
        self.restarts += 1
        fresh = _Process(self._ctx, self._payload)
        fresh.wait_ready()
        return fresh

    def close(self) -> None:
        for p in self._procs:
            try:
                p.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for p in self._procs:
            p.process.join(timeout=5)
            if p.process.is_alive():
                p.process.kill()
                p.process.join()
            p.conn.close()
        self._procs = []

    def __del__(self) -> None:
        try:
            for p in self._procs:
                p.process.kill()
        except Exception:
            pass
