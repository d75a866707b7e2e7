"""Network genomes: flat parameter vectors <-> one batched forward pass for a whole population.

A population of ``P`` genomes is a ``(P, num_params)`` float32 tensor. A policy turns it into
a callable ``forward(obs (P, obs_dim)) -> actions (P, action_dim)`` in which row ``i`` of the
output depends only on row ``i`` of the parameters and of the observations.

Two implementations share that API:

- :class:`MLPPolicy`: the fast path for the common case (small fully connected networks).
  The flat vectors are sliced once into stacked weights and every layer is one batched matmul.
- :class:`ModulePolicy`: any ``torch.nn.Module``, through ``torch.func.functional_call`` vmapped
  over the population.

Flat layout (shared by both, so the same genome runs in either): the parameters of each layer in
order, each layer as ``nn.Linear`` stores them, i.e. weight ``(out, in)`` row-major then bias
``(out,)``. This is exactly ``torch.nn.utils.parameters_to_vector`` of the equivalent
``nn.Sequential(Linear, act, Linear, act, ...)``, so genomes can be loaded into plain modules
(e.g. to render a video or to compare with a gradient-trained actor).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "MLPPolicy", "ModulePolicy", "make_policy"]

# name -> (out-of-place fn, in-place fn or None). In-place variants keep the no-grad rollout
# hot path free of extra allocations.
ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor] | None, Callable[[Tensor], Tensor] | None]] = {
    "tanh": (torch.tanh, torch.tanh_),
    "relu": (torch.relu, torch.relu_),
    "none": (None, None),
    "identity": (None, None),
}


def _check_activation(name: str, key: str) -> str:
    if name not in ACTIVATIONS:
        raise ValueError(f"{key}={name!r} is not an activation; accepted: {', '.join(ACTIVATIONS)}")
    return name


def _require_cpu_generator(generator: torch.Generator) -> None:
    if generator.device.type != "cpu":
        raise ValueError("init needs a CPU torch.Generator (draws are made on CPU for reproducibility)")


def _normal_layer_init(n: int, fan_in: int, fan_out: int, generator: torch.Generator) -> Tensor:
    """Deep GA layer initialiser: weights ~ N(0, 1) / sqrt(fan_in), biases 0.

    Returns ``(n, fan_out * fan_in + fan_out)`` float32 on CPU in the flat layout
    (weight ``(out, in)`` row-major, then bias).
    """
    w = torch.randn(n, fan_out * fan_in, generator=generator, dtype=torch.float32)
    w.mul_(1.0 / math.sqrt(fan_in))
    return torch.cat([w, torch.zeros(n, fan_out, dtype=torch.float32)], dim=1)


class MLPPolicy:
    """A population of fully connected networks evaluated as one stacked forward pass.

    Parameters
    ----------
    obs_dim, action_dim : int
        Input and output sizes.
    hidden : sequence of int
        Hidden layer widths, e.g. ``(16,)`` or ``(128, 128)``; ``()`` gives a linear policy.
    activation : str
        Hidden activation: ``"tanh"``, ``"relu"``, ``"none"``/``"identity"``.
    output_activation : str
        Activation on the last layer (``"tanh"`` keeps actions in ``[-1, 1]``).

    Attributes
    ----------
    num_params : int
        Length ``D`` of one flat genome.
    layer_shapes : list of (int, int)
        ``(in, out)`` of each linear layer.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden: Sequence[int] = (16,),
        activation: str = "tanh",
        output_activation: str = "tanh",
    ) -> None:
        sizes = [int(obs_dim), *[int(h) for h in hidden], int(action_dim)]
        if any(s <= 0 for s in sizes):
            raise ValueError(f"layer sizes must be positive, got {sizes}")
        self.obs_dim = sizes[0]
        self.action_dim = sizes[-1]
        self.hidden = tuple(sizes[1:-1])
        self.activation = _check_activation(activation, "activation")
        self.output_activation = _check_activation(output_activation, "output_activation")
        self.layer_shapes: list[tuple[int, int]] = list(zip(sizes[:-1], sizes[1:]))
        # (weight_start, bias_start, bias_end) of each layer in the flat vector
        self._offsets: list[tuple[int, int, int]] = []
        pos = 0
        for fan_in, fan_out in self.layer_shapes:
            w_end = pos + fan_in * fan_out
            self._offsets.append((pos, w_end, w_end + fan_out))
            pos = w_end + fan_out
        self.num_params = pos

    def __repr__(self) -> str:
        return (
            f"MLPPolicy(obs_dim={self.obs_dim}, action_dim={self.action_dim}, hidden={self.hidden}, "
            f"activation={self.activation!r}, output_activation={self.output_activation!r}, "
            f"num_params={self.num_params})"
        )

    def init(self, n: int, generator: torch.Generator, device: str | torch.device = "cpu") -> Tensor:
        """Draw ``n`` fresh genomes with the Deep GA initialiser.

        Each layer in turn: weights ~ N(0, 1) / sqrt(fan_in), biases 0 (the per-layer normal
        initialiser of Such et al. 2017). Draws are made on CPU from ``generator`` so the result is
        bit-identical on every device, then moved to ``device``.

        Returns
        -------
        Tensor
            ``(n, num_params)`` float32 on ``device``.
        """
        _require_cpu_generator(generator)
        parts = [_normal_layer_init(n, fi, fo, generator) for fi, fo in self.layer_shapes]
        return torch.cat(parts, dim=1).to(device)

    def to_module(self) -> nn.Sequential:
        """The equivalent ``nn.Sequential`` (same flat layout), e.g. for :class:`ModulePolicy`."""
        layers: list[nn.Module] = []
        for i, (fi, fo) in enumerate(self.layer_shapes):
            layers.append(nn.Linear(fi, fo))
            act = self.output_activation if i == len(self.layer_shapes) - 1 else self.activation
            if act == "tanh":
                layers.append(nn.Tanh())
            elif act == "relu":
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)

    def bind(self, params: Tensor) -> Callable[[Tensor], Tensor]:
        """Slice ``params`` once into stacked layers and return the population's forward.

        Parameters
        ----------
        params : Tensor
            ``(P, num_params)`` float32, on the device the forward will run on.

        Returns
        -------
        callable
            ``forward(obs)`` mapping ``(P, obs_dim)`` observations to ``(P, action_dim)`` actions
            (same dtype/device as ``params``). Without autograd the hidden activations live in
            buffers allocated on the first call and reused; only the returned actions are new.
        """
        if params.ndim != 2 or params.shape[1] != self.num_params:
            raise ValueError(
                f"params must have shape (P, {self.num_params}), got {tuple(params.shape)}"
            )
        P = params.shape[0]
        # Weights are stored (out, in) like nn.Linear; baddbmm takes the (P, in, out) transposed
        # view without a copy. Measured on CPU, idle, 2 threads (docs/benchmarks.md):
        # baddbmm on this view beat baddbmm on a contiguous (P, in, out) copy (1.28 vs 1.63 ms,
        # 16384 x 11-16-2), einsum (1.58 ms) and broadcast-multiply-sum (1.67 ms), and tied them on
        # 1024 x 27-128-128-8 (5.3 ms) where multiply-sum is 6x slower. So: views, no copies.
        weights, biases = [], []
        for (fi, fo), (w0, b0, b1) in zip(self.layer_shapes, self._offsets):
            weights.append(params[:, w0:b0].view(P, fo, fi).transpose(1, 2))  # (P, in, out) view
            biases.append(params[:, b0:b1].unsqueeze(1))  # (P, 1, out) view
        acts = [ACTIVATIONS[self.activation]] * (len(weights) - 1) + [ACTIVATIONS[self.output_activation]]
        n_layers = len(weights)
        buffers: list[Tensor | None] = [None] * n_layers

        def forward(obs: Tensor) -> Tensor:
            if obs.shape != (P, self.obs_dim):
                raise ValueError(f"obs must have shape ({P}, {self.obs_dim}), got {tuple(obs.shape)}")
            x = obs.to(params.dtype).unsqueeze(1)  # (P, 1, in)
            # In-place/out= only when nothing needs gradients through this graph.
            inplace = not (torch.is_grad_enabled() and (params.requires_grad or obs.requires_grad))
            for i in range(n_layers):
                (fn, fn_) = acts[i]
                last = i == n_layers - 1
                if inplace and not last:
                    buf = buffers[i]
                    if buf is None:
                        buf = buffers[i] = params.new_empty((P, 1, weights[i].shape[2]))
                    x = torch.baddbmm(biases[i], x, weights[i], out=buf)
                    if fn_ is not None:
                        fn_(x)
                elif inplace:
                    x = torch.baddbmm(biases[i], x, weights[i])
                    if fn_ is not None:
                        fn_(x)
                else:
                    x = torch.baddbmm(biases[i], x, weights[i])
                    if fn is not None:
                        x = fn(x)
            return x.squeeze(1)

        return forward

    def __call__(self, params: Tensor, obs: Tensor) -> Tensor:
        """``bind(params)(obs)``: ``(P, num_params)``, ``(P, obs_dim)`` -> ``(P, action_dim)``."""
        return self.bind(params)(obs)

    def forward_batched(self, params: Tensor, obs: Tensor) -> Tensor:
        """N observations per genome at once, differentiable through ``params`` and ``obs``.

        Used by the policy-gradient variation (``evo.rl.pg``), which trains P genomes together
        as one ``(P, D)`` leaf tensor; no in-place ops, so autograd sees every layer.

        Parameters
        ----------
        params : Tensor (P, num_params) float32
        obs : Tensor (P, N, obs_dim)
            May be an expanded view (one minibatch shared by all genomes).

        Returns
        -------
        Tensor (P, N, action_dim), dtype and device of ``params``.
        """
        if params.ndim != 2 or params.shape[1] != self.num_params:
            raise ValueError(f"params must have shape (P, {self.num_params}), got {tuple(params.shape)}")
        P = params.shape[0]
        if obs.ndim != 3 or obs.shape[0] != P or obs.shape[2] != self.obs_dim:
            raise ValueError(f"obs must have shape ({P}, N, {self.obs_dim}), got {tuple(obs.shape)}")
        x = obs.to(params.dtype)
        last = len(self.layer_shapes) - 1
        for i, ((fi, fo), (w0, b0, b1)) in enumerate(zip(self.layer_shapes, self._offsets)):
            w = params[:, w0:b0].view(P, fo, fi).transpose(1, 2)  # (P, in, out) view, as in bind
            x = torch.baddbmm(params[:, b0:b1].unsqueeze(1), x, w)
            fn = ACTIVATIONS[self.output_activation if i == last else self.activation][0]
            if fn is not None:
                x = fn(x)
        return x


class ModulePolicy:
    """Any ``torch.nn.Module`` as a population policy over flat parameter vectors.

    The module's parameters (in ``module.parameters()`` order, each flattened row-major) form the
    flat genome. ``bind`` runs ``torch.func.functional_call`` under ``torch.vmap`` over the
    population, so P networks still cost one batched forward. EvoTorch's
    ``ModuleExpectingFlatParameters`` is the alternative for a single vector; it loops over
    genomes one module call at a time, which is what vmap avoids here.

    Buffers (e.g. batch-norm statistics) are shared by the whole population and not evolved.

    Parameters
    ----------
    module : torch.nn.Module
        Maps one observation ``(obs_dim,)`` (or a batch ``(B, obs_dim)``) to actions. It is used
        as a template only: its own parameter values are never read by ``bind``.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        named = [(n, p) for n, p in module.named_parameters()]
        if not named:
            raise ValueError("module has no parameters to evolve")
        self._names = [n for n, _ in named]
        self._shapes = [tuple(p.shape) for _, p in named]
        self._numels = [p.numel() for _, p in named]
        self.num_params = int(sum(self._numels))
        self.layer_shapes = self._shapes  # parameter shapes, for symmetry with MLPPolicy

    def __repr__(self) -> str:
        return f"ModulePolicy({self.module.__class__.__name__}, num_params={self.num_params})"

    def init(self, n: int, generator: torch.Generator, device: str | torch.device = "cpu") -> Tensor:
        """Draw ``n`` genomes with the Deep GA initialiser applied per parameter tensor.

        Parameters with 2 or more dimensions are weights: N(0, 1) / sqrt(fan_in), where
        ``fan_in`` is the product of all dimensions but the first (``nn.Linear``/``nn.Conv*``
        layout). 1-D parameters (biases, norm shifts) are 0, except parameters named ``weight``
        with 1 dimension (norm scales) which are 1. We do not re-run each layer's
        ``reset_parameters``: those draw from the global RNG and would need it reseeded, which
        breaks the "explicit generator for every draw" contract. Draws are made on CPU.

        Returns
        -------
        Tensor
            ``(n, num_params)`` float32 on ``device``.
        """
        _require_cpu_generator(generator)
        parts = []
        for name, shape, numel in zip(self._names, self._shapes, self._numels):
            if len(shape) >= 2:
                fan_in = numel // shape[0]
                part = torch.randn(n, numel, generator=generator, dtype=torch.float32)
                part.mul_(1.0 / math.sqrt(fan_in))
            elif name.rsplit(".", 1)[-1] == "weight":
                part = torch.ones(n, numel, dtype=torch.float32)
            else:
                part = torch.zeros(n, numel, dtype=torch.float32)
            parts.append(part)
        return torch.cat(parts, dim=1).to(device)

    def flatten(self, module: nn.Module | None = None) -> Tensor:
        """Parameters of ``module`` (default: the template) as one ``(num_params,)`` float32 vector."""
        m = self.module if module is None else module
        return torch.cat([p.detach().reshape(-1).to(torch.float32) for p in m.parameters()])

    def load_into(self, module: nn.Module, vector: Tensor) -> nn.Module:
        """Copy a ``(num_params,)`` vector into ``module``'s parameters in place; returns it."""
        if vector.shape != (self.num_params,):
            raise ValueError(f"vector must have shape ({self.num_params},), got {tuple(vector.shape)}")
        torch.nn.utils.vector_to_parameters(vector.detach().to(next(module.parameters())), module.parameters())
        return module

    def _unflatten(self, params: Tensor) -> dict[str, Tensor]:
        P = params.shape[0]
        out, pos = {}, 0
        for name, shape, numel in zip(self._names, self._shapes, self._numels):
            out[name] = params[:, pos : pos + numel].view(P, *shape)
            pos += numel
        return out

    def bind(self, params: Tensor) -> Callable[[Tensor], Tensor]:
        """Return ``forward(obs (P, obs_dim)) -> actions (P, action_dim)`` for ``params (P, D)``."""
        if params.ndim != 2 or params.shape[1] != self.num_params:
            raise ValueError(
                f"params must have shape (P, {self.num_params}), got {tuple(params.shape)}"
            )
        stacked = self._unflatten(params)
        buffers = dict(self.module.named_buffers())
        module = self.module

        def one(p: dict[str, Tensor], o: Tensor) -> Tensor:
            return torch.func.functional_call(module, (p, buffers), (o,))

        batched = torch.vmap(one, in_dims=(0, 0))
        P = params.shape[0]

        def forward(obs: Tensor) -> Tensor:
            if obs.shape[0] != P:
                raise ValueError(f"obs must have {P} rows, got {tuple(obs.shape)}")
            return batched(stacked, obs.to(params.dtype))

        return forward

    def __call__(self, params: Tensor, obs: Tensor) -> Tensor:
        """``bind(params)(obs)``."""
        return self.bind(params)(obs)


_SPEC_KEYS = ("hidden", "activation", "output_activation")


def make_policy(spec: dict | None, obs_dim: int, action_dim: int) -> MLPPolicy:
    """Build an :class:`MLPPolicy` from a config dict.

    ``spec`` keys: ``hidden`` (list of int), ``activation``, ``output_activation``; missing keys
    take the :class:`MLPPolicy` defaults. An unknown key raises a one-line ``ValueError``.
    """
    spec = dict(spec or {})
    for key in spec:
        if key not in _SPEC_KEYS:
            raise ValueError(f"policy.{key} is not a policy key; accepted: {', '.join(_SPEC_KEYS)}")
    hidden = spec.get("hidden", (16,))
    if isinstance(hidden, int):
        hidden = (hidden,)
    if not isinstance(hidden, (list, tuple)) or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise ValueError(f"policy.hidden={hidden!r} must be a list of positive ints, e.g. [16]")
    return MLPPolicy(
        obs_dim,
        action_dim,
        hidden=tuple(hidden),
        activation=spec.get("activation", "tanh"),
        output_activation=spec.get("output_activation", "tanh"),
    )
