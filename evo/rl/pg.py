"""Policy-gradient variation of PGA-ME and DCG-ME / DCRL-ME, batched over offspring.

Each parent genome takes ``steps`` Adam steps on TD3's actor loss ``-mean_n Q1(s_n, pi(s_n))``
(DCG-ME: ``-mean_n Q1(s_n, pi(s_n) | d_parent)``). All P offspring are trained together: the
P genomes are one ``(P, D)`` leaf tensor, a PG step is one batched MLP forward
(:meth:`evo.policies.MLPPolicy.forward_batched`), one critic forward over ``P x N`` rows and
ONE backward. The loss is the sum over offspring of their own mean, so each row of the gradient
is exactly that offspring's own gradient.

Minibatches: all offspring share one replay minibatch per step (the papers' implementation
allows it). It costs P times fewer buffer gathers and makes the batched result equal, up to
float rounding, to training the offspring one after another with a generator restarted from the
same state for each (which is how it is tested).
"""

from __future__ import annotations

import torch
from torch import Tensor

from evo.policies import MLPPolicy
from evo.rl.networks import Critic, make_adam
from evo.rl.replay import ReplayBuffer

__all__ = ["pg_variation"]


def pg_variation(
    genomes: Tensor,
    policy: MLPPolicy,
    critic: Critic,
    buffer: ReplayBuffer,
    steps: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    descriptors: Tensor | None = None,
) -> Tensor:
    """Train P policy genomes against a fixed critic, each with its own fresh Adam.

    Parameters
    ----------
    genomes : Tensor (P, D) float32
        Parents, genomes of ``policy``, on the critic's and buffer's device. Not modified.
    policy : MLPPolicy
        Their layout (its ``forward_batched`` is used).
    critic : Critic or DescriptorConditionedCritic
        Only its Q1 is used; its weights are not changed and get no gradients.
    buffer : ReplayBuffer
        Minibatch observations come from here.
    steps : int
        PG steps per offspring (DCRL-ME: 150; PGA-ME in QDax: 100).
    lr : float
        Adam learning rate of the policies (DCRL-ME: 5e-3; QDax default 1e-3).
    batch_size : int
        Observations per step, shared by all offspring (the papers: 100).
    generator : torch.Generator
        CPU generator for the minibatch indices.
    descriptors : Tensor (P, descriptor_dim), optional
        Normalised descriptor of each parent, the condition d_p of a descriptor-conditioned
        critic; required exactly when the critic is conditioned.

    Returns
    -------
    Tensor (P, D) float32, detached
        The offspring. An offspring whose parameters became non-finite is returned as is;
        evaluation flags it as failed.
    """
    if genomes.ndim != 2 or genomes.shape[1] != policy.num_params:
        raise ValueError(f"genomes must have shape (P, {policy.num_params}), got {tuple(genomes.shape)}")
    P = genomes.shape[0]
    conditioned = critic.descriptor_dim > 0
    if conditioned != (descriptors is not None):
        raise ValueError("descriptors must be given exactly when the critic is descriptor-conditioned")
    if descriptors is not None and descriptors.shape != (P, critic.descriptor_dim):
        raise ValueError(
            f"descriptors must have shape ({P}, {critic.descriptor_dim}), got {tuple(descriptors.shape)}"
        )
    params = genomes.detach().clone().requires_grad_(True)
    # One Adam over the (P, D) leaf is exactly P independent Adams, one per offspring: Adam's
    # update is elementwise (moments, bias correction and step size per entry; no norms across
    # entries), and all offspring take their steps together so they share the step count.
    optimizer = make_adam([params], lr)
    for _ in range(int(steps)):
        obs = buffer.sample(batch_size, generator, fields=("obs",))["obs"]  # (N, obs_dim)
        obs = obs.unsqueeze(0).expand(P, -1, -1)  # a view: one minibatch for all offspring
        actions = policy.forward_batched(params, obs)  # (P, N, action_dim)
        cond = ()
        if conditioned:
            cond = (descriptors.to(actions.dtype).unsqueeze(1).expand(-1, obs.shape[1], -1),)
        q = critic.q1(obs, actions, *cond)  # (P, N)
        loss = -q.mean(dim=1).sum()
        # Gradient for the genomes only: the critic's weight gradients are never computed.
        (params.grad,) = torch.autograd.grad(loss, [params])
        optimizer.step()
    return params.detach()
