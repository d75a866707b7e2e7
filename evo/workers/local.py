"""Evaluation of a genome batch in the current process."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from tasks import Evaluation, is_control_task


def evaluate_batch(task: Any, genomes: Tensor | Sequence, seeds: Tensor, policy: Any = None,
                   decoder: Any = None, device: torch.device | str = "cpu") -> Evaluation:
    """Evaluate B genomes on ``task`` in one batched call.

    Parameters
    ----------
    task : a direct or control task (see ``tasks.base``)
    genomes : Tensor (B, D) float32, or a sequence of B seed chains when ``decoder`` is given
    seeds : Tensor (B,) int64, one per genome
    policy : network policy (``evo.policies``), required for control tasks
    decoder : seed-chain decoder (``evo.genomes.ChainDecoder``), for compact genomes

    Returns
    -------
    Evaluation, on the CPU, with ``failed`` set for non-finite parameters, actions, fitness
    or descriptors.
    """
    if decoder is not None and not isinstance(genomes, Tensor):
        genomes = decoder.decode_batch(list(genomes))
    params = genomes.to(device=device, dtype=torch.float32)
    bad_params = ~torch.isfinite(params).all(dim=1)
    if bool(bad_params.any()):
        # A NaN genome must not poison the whole batch (e.g. via shared physics or matmuls).
        params = torch.where(bad_params[:, None], torch.zeros_like(params), params)
    with torch.no_grad():
        if is_control_task(task):
            if policy is None:
                raise ValueError(f"task {task.name!r} is a control task and needs a policy")
            from evo.workers.rollout import rollout

            env = task.make_env(params.shape[0], device)
            evaluation = rollout(policy.bind(params), env, task.episode_length, seeds.to(device))
        else:
            evaluation = task.evaluate(params, seeds.to(device))
    evaluation = evaluation.to("cpu")
    evaluation.failed = evaluation.failed | bad_params.cpu()
    return evaluation


class LocalEvaluator:
    """Evaluates whole batches in-process (vectorised tasks are fastest this way).

    Parameters
    ----------
    task, policy, decoder : see :func:`evaluate_batch`
    device : where policies and torch-native environments run
    """

    backend = "local"

    def __init__(self, task: Any, policy: Any = None, decoder: Any = None,
                 device: torch.device | str = "cpu") -> None:
        self.task, self.policy, self.decoder, self.device = task, policy, decoder, device

    def __call__(self, genomes: Tensor | Sequence, seeds: Tensor) -> Evaluation:
        return evaluate_batch(self.task, genomes, seeds, self.policy, self.decoder, self.device)

    def close(self) -> None:
        pass
