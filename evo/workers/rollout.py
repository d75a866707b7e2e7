"""One batched episode: a population policy drives a ``BatchedEnv``, one row per genome.

Generic over environments: torch-native mazes and (later) vectors of MuJoCo simulators implement
the same ``tasks.base.BatchedEnv`` protocol, and this loop only relies on it.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from tasks.base import BatchedEnv, Evaluation

__all__ = ["rollout"]

# Off the CPU, ``bool(done.all())`` waits for the device, which stops the host from queueing the
# next steps ahead of it; checking every few steps keeps the queue full. Stopping a few steps
# late changes nothing because environments freeze rows that are done.
_DONE_CHECK_EVERY_OFF_CPU = 16


@torch.no_grad()
def rollout(forward: Callable[[Tensor], Tensor], env: BatchedEnv, episode_length: int,
            seeds: Tensor) -> Evaluation:
    """Run one episode of B environments under ``forward`` and return their outcome.

    Parameters
    ----------
    forward : callable
        ``obs (B, obs_dim) float32 -> actions (B, action_dim)``, row ``i`` acting for genome
        ``i`` (e.g. ``MLPPolicy.bind(params)``).
    env : BatchedEnv
        B environments. They are responsible for freezing rows that are done (a step on a done
        row must not change its outcome); this loop never masks.
    episode_length : int
        Maximum number of steps; the loop stops earlier only once every row is done.
    seeds : Tensor (B,) int64
        Passed to ``env.reset``.

    Returns
    -------
    Evaluation
        ``env.outcome()`` with ``failed`` also set for every genome whose policy produced a
        non-finite action at any step. Such actions are replaced by 0 before stepping, so one
        broken genome never stops or contaminates the rest of the batch.
    """
    obs = env.reset(seeds)
    all_finite: Tensor | None = None
    check_every = 1 if obs.device.type == "cpu" else _DONE_CHECK_EVERY_OFF_CPU
    for t in range(int(episode_length)):
        actions = forward(obs)
        finite = torch.isfinite(actions).all(dim=1)
        all_finite = finite if all_finite is None else all_finite.logical_and_(finite)
        actions = torch.nan_to_num(actions, nan=0.0, posinf=0.0, neginf=0.0)
        obs, _, done = env.step(actions)
        if (t + 1) % check_every == 0 and bool(done.all()):
            break
    evaluation = env.outcome()
    if all_finite is not None:
        evaluation = Evaluation(evaluation.fitness, evaluation.descriptors,
                                evaluation.failed | ~all_finite.to(evaluation.failed.device),
                                evaluation.info)
    return evaluation
