"""TD3 networks for PGA-ME and DCG-ME / DCRL-ME: twin critics and tanh actors, plain or
conditioned on a target descriptor d' (normalised to [-1, 1] and concatenated to the input).

Every network here is initialised with torch's own default ``nn.Linear`` distribution
(weights Kaiming-uniform with ``a = sqrt(5)``, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), biases
U(-1/sqrt(fan_in), 1/sqrt(fan_in))), but drawn from an explicit CPU ``torch.Generator`` rather
than torch's global RNG: two constructions with the same seed are identical and the global RNG is
left alone. Move a network with ``.to(device)`` after construction; the draws do not depend on
the device.

Actors have exactly the layout of an :class:`evo.policies.MLPPolicy` genome (``nn.Sequential``
of ``Linear, act, ..., Linear, tanh``), so a gradient-trained actor becomes a population member
with :func:`actor_to_genome`, and a descriptor-conditioned actor becomes plain genomes with
:func:`fold_descriptor` (actor injection).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from evo.policies import MLPPolicy

__all__ = [
    "Actor",
    "Critic",
    "DescriptorConditionedActor",
    "DescriptorConditionedCritic",
    "actor_to_genome",
    "fold_descriptor",
    "make_adam",
    "make_generator",
    "normalise_descriptors",
]


def make_adam(params, lr: float) -> torch.optim.Adam:
    """Adam with its fused kernel (one pass over each parameter tensor per step).

    On CPU torch otherwise runs Adam tensor by tensor, op by op (its foreach and fused defaults
    are for accelerators); for the (256, 256) twin critic that was a third of a TD3 step, and
    ``fused=True`` makes the step 1.2x faster (docs/benchmarks.md). Same update rule; results
    differ from the unfused Adam by float rounding (4e-6 after 230 TD3 steps) and are
    deterministic, so resumed runs stay exact.
    """
    return torch.optim.Adam(params, lr=lr, fused=True)


def make_generator(generator: torch.Generator | int) -> torch.Generator:
    """A CPU ``torch.Generator``: ``generator`` itself, or a new one seeded with the int given."""
    if isinstance(generator, torch.Generator):
        if generator.device.type != "cpu":
            raise ValueError("a CPU torch.Generator is needed (draws are made on CPU, then moved)")
        return generator
    return torch.Generator().manual_seed(int(generator))


def _init_linear_(layer: nn.Linear, generator: torch.Generator) -> None:
    # nn.Linear.reset_parameters' distribution, with an explicit generator (it has none).
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0.0
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def _build_mlp(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int],
    activation: str,
    output_activation: str,
    generator: torch.Generator,
) -> tuple[nn.Sequential, MLPPolicy]:
    """An ``nn.Sequential`` in MLPPolicy's layout, and that MLPPolicy (the layout's description).

    Built on the meta device first so that construction draws nothing from the global RNG,
    then materialised on CPU and initialised layer by layer from ``generator``.
    """
    spec = MLPPolicy(in_dim, out_dim, tuple(hidden), activation, output_activation)
    with torch.device("meta"):
        net = spec.to_module()
    net = net.to_empty(device="cpu")
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, nn.Linear):
                _init_linear_(layer, generator)
    return net, spec


def normalise_descriptors(descriptors: Tensor, bounds) -> Tensor:
    """Map descriptors from their bounds to [-1, 1]: ``2 (d - lo) / (hi - lo) - 1``.

    Parameters
    ----------
    descriptors : Tensor (..., d) float32
    bounds : sequence of (low, high) pairs, or Tensor (d, 2)
        A task's ``descriptor_bounds``.

    Returns
    -------
    Tensor (..., d), same dtype and device as ``descriptors``.
    """
    b = torch.as_tensor(bounds, dtype=descriptors.dtype, device=descriptors.device)
    if b.shape != (descriptors.shape[-1], 2):
        raise ValueError(f"bounds must be {descriptors.shape[-1]} (low, high) pairs, got shape {tuple(b.shape)}")
    lo, hi = b[:, 0], b[:, 1]
    return 2.0 * (descriptors - lo) / (hi - lo) - 1.0


class Critic(nn.Module):
    """TD3 twin critics Q1(s, a), Q2(s, a): two independent ReLU MLPs on ``[obs, action]``.

    Parameters
    ----------
    obs_dim, action_dim : int
    hidden : sequence of int
        Hidden widths of each of the two networks (TD3/PGA-ME: (256, 256)).
    generator : torch.Generator or int
        CPU generator (or seed) for the initial weights.

    Inputs may have any leading shape ``(...)``; outputs are ``(...)`` float32 (no trailing 1).
    """

    descriptor_dim = 0

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (256, 256),
        generator: torch.Generator | int = 0,
    ) -> None:
        super().__init__()
        g = make_generator(generator)
        self.obs_dim, self.action_dim, self.hidden = int(obs_dim), int(action_dim), tuple(hidden)
        in_dim = self.obs_dim + self.action_dim + self.descriptor_dim
        self.q1_net, _ = _build_mlp(in_dim, 1, hidden, "relu", "none", g)
        self.q2_net, _ = _build_mlp(in_dim, 1, hidden, "relu", "none", g)

    def _input(self, obs: Tensor, action: Tensor, desc: Tensor | None) -> Tensor:
        if desc is not None:
            raise ValueError("this critic is not descriptor-conditioned; pass no descriptor")
        return torch.cat([obs, action], dim=-1)

    def forward(self, obs: Tensor, action: Tensor, desc: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(obs (..., obs_dim), action (..., action_dim)) -> (q1 (...), q2 (...))``."""
        x = self._input(obs, action, desc)
        return self.q1_net(x).squeeze(-1), self.q2_net(x).squeeze(-1)

    def q1(self, obs: Tensor, action: Tensor, desc: Tensor | None = None) -> Tensor:
        """Q1 alone (the actor's and the PG variation's objective): ``(...)``."""
        return self.q1_net(self._input(obs, action, desc)).squeeze(-1)


class DescriptorConditionedCritic(Critic):
    """Twin critics Q(s, a | d') on ``[obs, action, d']``, ``d'`` the normalised target descriptor.

    Parameters
    ----------
    obs_dim, action_dim, descriptor_dim : int
    hidden : sequence of int
        (DCRL-ME: (256, 256).)
    generator : torch.Generator or int

    ``forward(obs (..., obs_dim), action (..., action_dim), desc (..., descriptor_dim))``
    returns ``(q1 (...), q2 (...))``; ``desc`` must be normalised to [-1, 1]
    (:func:`normalise_descriptors`).
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        descriptor_dim: int,
        hidden: Sequence[int] = (256, 256),
        generator: torch.Generator | int = 0,
    ) -> None:
        self.descriptor_dim = int(descriptor_dim)
        super().__init__(obs_dim, action_dim, hidden, generator)

    def _input(self, obs: Tensor, action: Tensor, desc: Tensor | None) -> Tensor:
        if desc is None:
            raise ValueError("a descriptor-conditioned critic needs the target descriptor desc")
        return torch.cat([obs, action, desc], dim=-1)


class Actor(nn.Module):
    """Deterministic tanh actor pi(s) in :class:`~evo.policies.MLPPolicy`'s genome layout.

    Parameters
    ----------
    obs_dim, action_dim : int
    hidden : sequence of int
        (PGA-ME/DCRL-ME policies: (128, 128).)
    activation : str
        Hidden activation, as in MLPPolicy (``"tanh"``, ``"relu"``).
    generator : torch.Generator or int

    Attributes
    ----------
    net : nn.Sequential
        ``parameters_to_vector(net.parameters())`` is a genome of :attr:`policy`.
    policy : MLPPolicy
        The population policy whose genomes have this actor's layout.
    """

    descriptor_dim = 0

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (128, 128),
        activation: str = "tanh",
        generator: torch.Generator | int = 0,
    ) -> None:
        super().__init__()
        g = make_generator(generator)
        self.obs_dim, self.action_dim = int(obs_dim), int(action_dim)
        self.hidden, self.activation = tuple(hidden), activation
        self.net, self.policy = _build_mlp(
            self.obs_dim + self.descriptor_dim, self.action_dim, hidden, activation, "tanh", g
        )

    def forward(self, obs: Tensor, desc: Tensor | None = None) -> Tensor:
        """``obs (..., obs_dim) -> actions (..., action_dim)`` in [-1, 1]."""
        if desc is not None:
            raise ValueError("this actor is not descriptor-conditioned; pass no descriptor")
        return self.net(obs)


class DescriptorConditionedActor(Actor):
    """Descriptor-conditioned tanh actor pi(s | d') on ``[obs, d']`` (the distilled policy).

    Same parameters as :class:`Actor` plus ``descriptor_dim``. Its :attr:`policy` takes
    ``obs_dim + descriptor_dim`` inputs; :func:`fold_descriptor` turns it into plain genomes of
    ``MLPPolicy(obs_dim, action_dim, hidden, activation, "tanh")``.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        descriptor_dim: int,
        hidden: Sequence[int] = (128, 128),
        activation: str = "tanh",
        generator: torch.Generator | int = 0,
    ) -> None:
        self.descriptor_dim = int(descriptor_dim)
        super().__init__(obs_dim, action_dim, hidden, activation, generator)

    def forward(self, obs: Tensor, desc: Tensor | None = None) -> Tensor:
        """``obs (..., obs_dim), desc (..., descriptor_dim) normalised -> (..., action_dim)``."""
        if desc is None:
            raise ValueError("a descriptor-conditioned actor needs the target descriptor desc")
        return self.net(torch.cat([obs, desc], dim=-1))


def actor_to_genome(actor: Actor) -> Tensor:
    """The actor's parameters as one genome ``(D,)`` float32 of ``actor.policy`` (detached copy).

    For a :class:`DescriptorConditionedActor` this is a genome of the conditioned layout
    (``obs_dim + descriptor_dim`` inputs); use :func:`fold_descriptor` for plain genomes.
    """
    return nn.utils.parameters_to_vector(actor.net.parameters()).detach().clone()


def fold_descriptor(actor: DescriptorConditionedActor, descriptors: Tensor) -> Tensor:
    """Actor injection: fold K target descriptors into the first layer of a conditioned actor.

    With first-layer weight ``W = [W_obs | W_d]`` and bias ``b``, the plain policy for a target
    ``d^`` has weight ``W_obs`` and bias ``b + W_d @ d^``: it computes exactly
    ``actor(obs, d^)`` without the descriptor input.

    Parameters
    ----------
    actor : DescriptorConditionedActor
    descriptors : Tensor (K, descriptor_dim)
        Normalised targets (:func:`normalise_descriptors`), on the actor's device.

    Returns
    -------
    Tensor (K, D) float32, detached
        Genomes of ``MLPPolicy(actor.obs_dim, actor.action_dim, actor.hidden,
        actor.activation, "tanh")``.
    """
    if descriptors.ndim != 2 or descriptors.shape[1] != actor.descriptor_dim:
        raise ValueError(
            f"descriptors must have shape (K, {actor.descriptor_dim}), got {tuple(descriptors.shape)}"
        )
    with torch.no_grad():
        first = actor.net[0]
        K = descriptors.shape[0]
        w_obs = first.weight[:, : actor.obs_dim]  # (h1, obs_dim)
        w_d = first.weight[:, actor.obs_dim :]  # (h1, descriptor_dim)
        bias = first.bias + descriptors.to(first.weight.dtype) @ w_d.T  # (K, h1)
        rest = nn.utils.parameters_to_vector(list(actor.net.parameters())[2:])
        return torch.cat(
            [w_obs.reshape(1, -1).expand(K, -1), bias, rest.unsqueeze(0).expand(K, -1)], dim=1
        ).contiguous()
