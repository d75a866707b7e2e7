"""One batched episode: a population policy drives a ``BatchedEnv``, one row per genome.

Generic over environments: torch-native mazes, batches of MuJoCo simulations and Gymnasium
vector envs implement the same ``tasks.base.BatchedEnv`` protocol, and this loop only relies on
it. The environment and the policy may sit on different devices (MuJoCo on the CPU, the policy
on CUDA): observations go to the policy's device, actions back to the environment's.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from tasks.base import BatchedEnv, Evaluation, Transitions

__all__ = ["rollout"]

# Off the CPU, ``bool(alive.any())`` waits for the device, which stops the host from queueing the
# next steps ahead of it; checking every few steps keeps the queue full. Stopping a few steps
# late changes nothing because environments freeze rows that are done.
_DONE_CHECK_EVERY_OFF_CPU = 16


@torch.no_grad()
def rollout(forward: Callable[[Tensor], Tensor], env: BatchedEnv, episode_length: int,
            seeds: Tensor, transitions: bool = False,
            device: torch.device | str | None = None) -> Evaluation:
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
        Maximum number of steps; the loop stops earlier once every row has ended.
    seeds : Tensor (B,) int64
        Passed to ``env.reset``.
    transitions : bool
        Also record every step as :class:`tasks.base.Transitions` (``Evaluation.transitions``);
        nothing is recorded otherwise.
    device : device, optional
        Where ``forward`` runs (default: the environment's device).

    Returns
    -------
    Evaluation
        ``env.outcome()`` with ``failed`` also set for every genome whose policy produced a
        non-finite action at any step. Such actions are replaced by 0 before stepping, so one
        broken genome never stops or contaminates the rest of the batch.
    """
    obs = env.reset(seeds)
    env_device = obs.device
    device = env_device if device is None else torch.device(device)
    B, T = obs.shape[0], int(episode_length)
    alive = torch.ones(B, dtype=torch.bool, device=env_device)
    all_finite = torch.ones(B, dtype=torch.bool, device=device)
    record = _Recorder(B, T, obs) if transitions else None
    check_every = 1 if env_device.type == "cpu" and device.type == "cpu" else _DONE_CHECK_EVERY_OFF_CPU
    for t in range(T):
        actions = forward(obs.to(device, non_blocking=True))
        all_finite.logical_and_(torch.isfinite(actions).all(dim=1))
        actions = torch.nan_to_num(actions, nan=0.0, posinf=0.0, neginf=0.0).to(env_device)
        next_obs, reward, terminated, truncated = env.step(actions)
        if record is not None:
            record.step(t, actions, reward, next_obs, terminated, truncated, alive)
        alive = alive & ~(terminated | truncated)
        obs = next_obs
        if (t + 1) % check_every == 0 and not bool(alive.any()):
            break
    evaluation = env.outcome()
    failed = evaluation.failed | ~all_finite.to(evaluation.failed.device)
    return Evaluation(evaluation.fitness, evaluation.descriptors, failed, evaluation.info,
                      None if record is None else record.finish(evaluation.descriptors))


class _Recorder:
    """Time-major buffers of one episode, turned into genome-major ``Transitions`` at the end.

    Observations are kept once, ``(T + 1, B, obs_dim)``: ``obs`` and ``next_obs`` of a step are
    two rows of it, so each step costs one copy of the new observation. Every genome gets T rows,
    and every row after its episode ended is zeros marked invalid, whatever the frozen
    environment reported there and whenever the loop stopped: a genome's transitions do not
    depend on which batch or slice it was evaluated in.
    """

    def __init__(self, B: int, T: int, obs0: Tensor) -> None:
        kw = {"device": obs0.device}
        self.obs = torch.zeros((T + 1, B, obs0.shape[1]), dtype=torch.float32, **kw)
        self.obs[0] = obs0
        self.action: Tensor | None = None  # allocated at the first step (action_dim from it)
        self.reward = torch.zeros((T, B), dtype=torch.float32, **kw)
        self.terminated = torch.zeros((T, B), dtype=torch.bool, **kw)
        self.truncated = torch.zeros((T, B), dtype=torch.bool, **kw)
        self.valid = torch.zeros((T, B), dtype=torch.bool, **kw)

    def step(self, t, action, reward, next_obs, terminated, truncated, alive) -> None:
        if self.action is None:
            self.action = torch.zeros((self.reward.shape[0], *action.shape), dtype=torch.float32,
                                      device=self.reward.device)
        self.obs[t + 1] = next_obs
        self.action[t] = action
        self.reward[t] = reward
        self.terminated[t] = terminated
        self.truncated[t] = truncated
        self.valid[t] = alive

    def finish(self, descriptors: Tensor) -> Transitions:
        T, B = self.reward.shape

        def flat(x: Tensor) -> Tensor:  # (T, B, ...) -> (B * T, ...), genome-major, a copy
            return x.transpose(0, 1).reshape(B * T, *x.shape[2:])

        valid = flat(self.valid)
        fields = {"obs": flat(self.obs[:-1]), "action": flat(self.action),
                  "reward": flat(self.reward), "next_obs": flat(self.obs[1:]),
                  "terminated": flat(self.terminated), "truncated": flat(self.truncated)}
        padding = ~valid
        for x in fields.values():
            x[padding] = 0
        genome = torch.arange(B, device=valid.device).repeat_interleave(T)
        return Transitions(**fields, valid=valid, genome=genome,
                           descriptor=descriptors.to(valid.device, torch.float32)[genome])
