"""Evaluation of a genome batch in the current process, and the worker every backend runs.

A :class:`WorkerFactory` (task, policy, decoder, device, threads) is all a backend needs: it is
picklable, so the process pool and Ray actors build the very same :class:`Worker` that runs
in-process here. Anything that evaluates locally therefore runs on every backend, including
tasks and policies made in Python rather than from a shipped config.
"""

from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

from tasks import Evaluation, is_control_task

# Environments kept per worker, by batch size: a run meets a few sizes (the batch, the last slice,
# re-evaluations), and each is built once.
_ENV_CACHE_SIZE = 4


@dataclass
class WorkerFactory:
    """Everything a worker is built from; picklable when its parts are.

    Attributes
    ----------
    task : a direct or control task (see ``tasks.base``)
    policy : network policy (``evo.policies``), required for control tasks
    decoder : seed-chain decoder (``evo.genomes.ChainDecoder``), for compact genomes
    device : where policies (and torch-native environments) run
    threads : physics threads per worker, for simulators stepped on C threads (MuJoCo)
    """

    task: Any
    policy: Any = None
    decoder: Any = None
    device: str = "cpu"
    threads: int = 1

    def __call__(self) -> "Worker":
        return Worker(self)


class Worker:
    """Evaluates batches with environments built once and reused across batches."""

    def __init__(self, factory: WorkerFactory) -> None:
        if int(factory.threads) < 1:
            raise ValueError(f"workers.threads: must be >= 1, got {factory.threads}")
        if is_control_task(factory.task) and factory.policy is None:
            raise ValueError(f"task {factory.task.name!r} is a control task and needs a policy")
        self.factory = factory
        self._envs: OrderedDict[int, Any] = OrderedDict()

    def env(self, batch_size: int):
        """The environment for ``batch_size`` genomes (built on first use, then reused)."""
        env = self._envs.get(batch_size)
        if env is None:
            f = self.factory
            env = self._envs[batch_size] = f.task.make_env(batch_size, f.device, threads=f.threads)
            while len(self._envs) > _ENV_CACHE_SIZE:
                self._envs.popitem(last=False)
        self._envs.move_to_end(batch_size)
        return env

    def evaluate(self, genomes: Tensor | Sequence, seeds: Tensor,
                 transitions: bool = False) -> Evaluation:
        """Evaluate B genomes in one batched call.

        Parameters
        ----------
        genomes : Tensor (B, D) float32, or a sequence of B seed chains when the factory has
            a decoder
        seeds : Tensor (B,) int64, one per genome
        transitions : bool
            Control tasks also return every step as ``Evaluation.transitions``.

        Returns
        -------
        Evaluation, on the CPU, with ``failed`` set for non-finite parameters, actions,
        fitness or descriptors (and unstable physics, as the task reports it).
        """
        f = self.factory
        if f.decoder is not None and not isinstance(genomes, Tensor):
            genomes = f.decoder.decode_batch(list(genomes))
        params = genomes.to(device=f.device, dtype=torch.float32)
        bad_params = ~torch.isfinite(params).all(dim=1)
        if bool(bad_params.any()):
            # A NaN genome must not poison the whole batch (e.g. via shared physics or matmuls).
            params = torch.where(bad_params[:, None], torch.zeros_like(params), params)
        with torch.no_grad(), _torch_threads(1 if _steps_on_own_threads(f) else None):
            if is_control_task(f.task):
                from evo.workers.rollout import rollout

                evaluation = rollout(f.policy.bind(params), self.env(params.shape[0]),
                                     f.task.episode_length, seeds, transitions, f.device)
            else:
                evaluation = f.task.evaluate(params, seeds.to(f.device))
        evaluation = evaluation.to("cpu")
        evaluation.failed = evaluation.failed | bad_params.cpu()
        return evaluation


def _steps_on_own_threads(factory: WorkerFactory) -> bool:
    """Whether the task's environments step on C threads of their own (MuJoCo)."""
    return bool(getattr(factory.task, "physics_threads", False)) and factory.device == "cpu"


@contextmanager
def _torch_threads(n: int | None):
    """torch's intra-op threads set to ``n`` inside the block (None: unchanged).

    During a MuJoCo rollout the physics threads hold the cores; torch's own threads for the
    policy forward then only contend with them (measured: 0.38x of the raw physics speed with
    torch's 2 default threads against 0.85x with 1, ant_omni, 2 physics threads, idle).
    """
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n is not None and n != before:
            torch.set_num_threads(before)


def evaluate_batch(task: Any, genomes: Tensor | Sequence, seeds: Tensor, policy: Any = None,
                   decoder: Any = None, device: torch.device | str = "cpu",
                   transitions: bool = False, threads: int = 1) -> Evaluation:
    """Evaluate B genomes on ``task`` once (a throwaway :class:`Worker`; see its ``evaluate``)."""
    return Worker(WorkerFactory(task, policy, decoder, str(device), threads)).evaluate(
        genomes, seeds, transitions)


class LocalEvaluator:
    """Evaluates whole batches in-process (vectorised tasks are fastest this way).

    Parameters
    ----------
    task, policy, decoder, device, threads : see :class:`WorkerFactory`
    """

    backend = "local"
    restarts = 0  # worker replacements (never in-process)

    def __init__(self, task: Any, policy: Any = None, decoder: Any = None,
                 device: torch.device | str = "cpu", threads: int = 1) -> None:
        self.factory = WorkerFactory(task, policy, decoder, str(device), int(threads))
        self.worker = self.factory()

    def __call__(self, genomes: Tensor | Sequence, seeds: Tensor,
                 transitions: bool = False) -> Evaluation:
        return self.worker.evaluate(genomes, seeds, transitions)

    def close(self) -> None:
        pass
