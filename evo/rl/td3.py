"""TD3 (Fujimoto et al. 2018) as PGA-ME and DCG-ME / DCRL-ME train their critic and actor.

One :meth:`TD3.train` call runs ``steps`` critic updates; every ``policy_delay``-th critic update
is followed by one actor update and a soft (Polyak) update of both target networks. With the
default ``policy_delay = 2``, 3000 steps are the papers' "1500 iterations of (2 critic steps +
1 actor step + soft target update)". The step counter persists across calls, so the schedule
does not restart each generation.

Rewards are made non-negative, ``r' = max(r + reward_offset, 0)``. With descriptor-conditioned
networks (``lengthscale`` given) the critic and the actor are conditioned on the intended
descriptor d' and the reward is scaled by ``S = exp(-||d - d'||_2 / lengthscale)`` on
normalised descriptors (DCG-ME)::

    y = S r' + (1 - terminated) gamma min(Q1, Q2)_targ(s', clip(mu_targ(s'|d') + eps, -1, 1) | d')
    eps = clip(N(0, policy_noise^2), -noise_clip, noise_clip)

The critic error is masked on truncated steps (as DCRL-ME in QDax does; ``mask_truncated``).
"""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn

from evo.rl.networks import Actor, Critic, make_adam, make_generator, normalise_descriptors
from evo.rl.replay import ReplayBuffer

__all__ = ["TD3"]


class TD3:
    """Twin-critic TD3 learner over a :class:`~evo.rl.replay.ReplayBuffer`.

    Parameters
    ----------
    critic : Critic or DescriptorConditionedCritic
    actor : Actor or DescriptorConditionedActor
        Both already on the training device (the buffer's device). They are trained in place;
        the targets are deep copies made here.
    critic_lr, actor_lr : float
        Adam learning rates (3e-4 in PGA-ME and DCRL-ME).
    discount, tau : float
        gamma and the Polyak rate of the soft target update.
    policy_noise, noise_clip : float
        Target policy smoothing: std of the Gaussian noise and its clip.
    policy_delay : int
        Critic updates per actor update (and per target update).
    reward_offset : float
        Added to every reward before clipping at 0 (the task's per-step offset).
    lengthscale : float or None
        Similarity length scale l of DCG-ME (0.1); None for plain (PGA-ME) networks.
    descriptor_bounds : sequence of (low, high), optional
        Bounds to normalise the buffer's descriptors with; None when the buffer already holds
        normalised descriptors. Only used when ``lengthscale`` is given.
    mask_truncated : bool
        Leave truncated steps out of the critic error.
    generator : torch.Generator or int
        CPU generator (or seed) for minibatch indices and target policy noise.

    Attributes
    ----------
    num_critic_steps, num_actor_steps : int
        Critic updates attempted / actor updates applied so far.
    nan_updates : int
        Updates skipped because their loss was not finite (networks untouched).
    """

    def __init__(
        self,
        critic: Critic,
        actor: Actor,
        *,
        critic_lr: float = 3e-4,
        actor_lr: float = 3e-4,
        discount: float = 0.99,
        tau: float = 0.005,
        policy_noise: float = 0.2,
        noise_clip: float = 0.5,
        policy_delay: int = 2,
        reward_offset: float = 0.0,
        lengthscale: float | None = None,
        descriptor_bounds=None,
        mask_truncated: bool = True,
        generator: torch.Generator | int = 0,
    ) -> None:
        self.conditioned = lengthscale is not None
        if self.conditioned != (critic.descriptor_dim > 0) or self.conditioned != (actor.descriptor_dim > 0):
            raise ValueError("lengthscale must be given exactly when the critic and actor are descriptor-conditioned")
        if self.conditioned and not lengthscale > 0:
            raise ValueError(f"lengthscale must be positive, got {lengthscale}")
        if policy_delay < 1:
            raise ValueError(f"policy_delay must be >= 1, got {policy_delay}")
        self.critic, self.actor = critic, actor
        self.critic_target = copy.deepcopy(critic).requires_grad_(False)
        self.actor_target = copy.deepcopy(actor).requires_grad_(False)
        self.critic_optimizer = make_adam(critic.parameters(), critic_lr)
        self.actor_optimizer = make_adam(actor.parameters(), actor_lr)
        self.discount, self.tau = float(discount), float(tau)
        self.policy_noise, self.noise_clip = float(policy_noise), float(noise_clip)
        self.policy_delay = int(policy_delay)
        self.reward_offset = float(reward_offset)
        self.lengthscale = None if lengthscale is None else float(lengthscale)
        self.descriptor_bounds = descriptor_bounds
        self._bounds = None if descriptor_bounds is None else torch.as_tensor(
            descriptor_bounds, dtype=torch.float32, device=next(critic.parameters()).device)
        self.mask_truncated = bool(mask_truncated)
        self.generator = make_generator(generator)
        self.num_critic_steps = 0
        self.num_actor_steps = 0
        self.nan_updates = 0
        self._critic_params = list(critic.parameters())
        self._actor_params = list(actor.parameters())
        self._online = self._critic_params + self._actor_params
        self._targets = list(self.critic_target.parameters()) + list(self.actor_target.parameters())

    @property
    def device(self) -> torch.device:
        return self._critic_params[0].device

    def _normalise(self, d: Tensor) -> Tensor:
        return d if self._bounds is None else normalise_descriptors(d, self._bounds)

    def _prepare(self, batch: dict[str, Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Training reward ``(B,)`` and the conditioning inputs (``(d',)`` or ``()``)."""
        reward = (batch["reward"] + self.reward_offset).clamp(min=0.0)
        if not self.conditioned:
            return reward, ()
        desc, desc_prime = self._normalise(batch["desc"]), self._normalise(batch["desc_prime"])
        similarity = torch.exp(-torch.linalg.vector_norm(desc - desc_prime, dim=-1) / self.lengthscale)
        return similarity * reward, (desc_prime,)

    def _critic_loss(self, batch: dict[str, Tensor], reward: Tensor, cond: tuple[Tensor, ...]) -> Tensor:
        with torch.no_grad():
            # Drawn on the CPU generator, then moved: same noise on every device.
            noise = torch.randn(batch["action"].shape, generator=self.generator)
            noise = (noise * self.policy_noise).clamp_(-self.noise_clip, self.noise_clip).to(self.device)
            next_action = (self.actor_target(batch["next_obs"], *cond) + noise).clamp_(-1.0, 1.0)
            q1_t, q2_t = self.critic_target(batch["next_obs"], next_action, *cond)
            target = reward + (1.0 - batch["terminated"]) * self.discount * torch.minimum(q1_t, q2_t)
        q1, q2 = self.critic(batch["obs"], batch["action"], *cond)
        error = (q1 - target).square() + (q2 - target).square()
        if self.mask_truncated:
            # Mean over the whole minibatch with masked rows at 0, as QDax's td3_loss does.
            error = error * (1.0 - batch["truncated"])
        return error.mean()

    def _actor_loss(self, batch: dict[str, Tensor], cond: tuple[Tensor, ...]) -> Tensor:
        return -self.critic.q1(batch["obs"], self.actor(batch["obs"], *cond), *cond).mean()

    def train(self, buffer: ReplayBuffer, steps: int, batch_size: int = 100) -> dict:
        """Run ``steps`` critic updates (and the actor/target updates they schedule).

        Parameters
        ----------
        buffer : ReplayBuffer
            Non-empty, on the networks' device.
        steps : int
            Critic updates (DCRL-ME: 3000 per generation; PGA-ME in QDax: 300).
        batch_size : int
            Minibatch size (100 in the papers).

        Returns
        -------
        dict
            ``critic_loss``, ``actor_loss`` (means over the finite updates of this call, NaN if
            none), ``actor_updates`` (applied in this call), ``nan_updates`` (skipped in this
            call) and ``critic_steps`` (total so far).
        """
        critic_sum, critic_n, actor_sum, actor_n, skipped = 0.0, 0, 0.0, 0, 0
        for _ in range(int(steps)):
            batch = buffer.sample(batch_size, self.generator)
            reward, cond = self._prepare(batch)

            loss = self._critic_loss(batch, reward, cond)
            value = loss.item()  # the one host sync per update: logging and the finiteness test
            if math.isfinite(value):
                grads = torch.autograd.grad(loss, self._critic_params)
                for p, g in zip(self._critic_params, grads):
                    p.grad = g
                self.critic_optimizer.step()
                critic_sum += value
                critic_n += 1
            else:
                skipped += 1
            self.num_critic_steps += 1

            if self.num_critic_steps % self.policy_delay == 0:
                loss = self._actor_loss(batch, cond)
                value = loss.item()
                # A skipped actor update also skips the target update, so that a bad batch
                # leaves every network as it was.
                if math.isfinite(value):
                    # autograd.grad on the actor only: no wasted gradients for the critic's weights.
                    grads = torch.autograd.grad(loss, self._actor_params)
                    for p, g in zip(self._actor_params, grads):
                        p.grad = g
                    self.actor_optimizer.step()
                    self.num_actor_steps += 1
                    actor_sum += value
                    actor_n += 1
                    with torch.no_grad():
                        torch._foreach_lerp_(self._targets, self._online, self.tau)
                else:
                    skipped += 1
        self.nan_updates += skipped
        return {
            "critic_loss": critic_sum / critic_n if critic_n else math.nan,
            "actor_loss": actor_sum / actor_n if actor_n else math.nan,
            "actor_updates": actor_n,
            "nan_updates": skipped,
            "critic_steps": self.num_critic_steps,
        }

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict:
        """Networks, targets, both Adam states (integer keys, as torch gives them), counters and
        the generator state: loading it continues training exactly."""
        return {
            "critic": self.critic.state_dict(),
            "actor": self.actor.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "num_critic_steps": self.num_critic_steps,
            "num_actor_steps": self.num_actor_steps,
            "nan_updates": self.nan_updates,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore everything :meth:`state_dict` saved (networks keep their device)."""
        self.critic.load_state_dict(state["critic"])
        self.actor.load_state_dict(state["actor"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.actor_target.load_state_dict(state["actor_target"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.num_critic_steps = int(state["num_critic_steps"])
        self.num_actor_steps = int(state["num_actor_steps"])
        self.nan_updates = int(state["nan_updates"])
        self.generator.set_state(torch.as_tensor(state["generator"], dtype=torch.uint8).cpu())
