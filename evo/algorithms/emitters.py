"""Emitters: the parts of MAP-Elites that make offspring, each with its own state.

An emitter is built with an :class:`EmitterContext` (the task, the genome space, the policy, the
device, the run's generator, and a budget-counted ``evaluate`` for emitters that roll out extra
policies) and its own parameters. Each generation MAP-Elites asks every emitter for its share
of the batch, evaluates the whole batch once (with transitions when some emitter wants them),
adds it to the archive, and tells every emitter the outcome: the whole evaluated batch, the
archive's status for each offspring, and which rows were its own. Emitters carry their state
(critics, optimisers, replay buffers) through ``state_dict``/``load_state_dict``, so checkpoints
hold it.

The iso+line and Gaussian emitters are stateless; policy-gradient emitters (PGA-ME, DCG-ME,
DCRL-ME) use every hook.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from evo.algorithms.base import keyword_defaults
from evo.operators import gaussian_mutation, isoline_variation
from tasks import Evaluation


@dataclass
class EmitterContext:
    """What an emitter is built with.

    Attributes
    ----------
    task : the task (descriptor bounds, sizes; control tasks also obs/action sizes)
    policy : the network policy for control tasks (``evo.policies.MLPPolicy``), else None
    genome_dim : int
        D, the length of a genome.
    bounds : (low, high) or None
        Genome bounds that variation clips to.
    device : torch.device
        Where genomes (and networks) live.
    generator : torch.Generator
        The run's CPU generator: every random draw of every emitter comes from it, so a run
        is reproducible and a checkpoint restores it.
    archive : Archive
        The run's archive (DCG-ME draws its actor's targets from it).
    evaluate : callable or None
        ``evaluate(genomes, transitions=False) -> Evaluation``, counted against the budget, for
        emitters that evaluate more than their offspring (DCG-ME's actor rollouts).
    """

    task: Any
    policy: Any
    genome_dim: int
    bounds: tuple[float, float] | None
    device: torch.device
    generator: torch.Generator
    archive: Any = None
    evaluate: Callable[..., Evaluation] | None = None


class Emitter:
    """Base class. Subclasses implement :meth:`ask`, and :meth:`tell` and the state methods
    when they learn from what happened.

    Attributes
    ----------
    wants_transitions : bool
        Whether :meth:`tell` needs ``evaluation.transitions`` (rollouts record them then).
    """

    wants_transitions = False

    def __init__(self, context: EmitterContext) -> None:
        self.context = context

    def ask(self, archive, n: int) -> Tensor:
        """``n`` offspring, ``(n, D)`` float32 on the context's device."""
        raise NotImplementedError

    def tell(self, genomes: Tensor, evaluation: Evaluation, status: Tensor,
             rows: slice) -> dict[str, float]:
        """Learn from the evaluated batch.

        Parameters
        ----------
        genomes : Tensor (B, D)
            The whole batch, every emitter's offspring.
        evaluation : Evaluation
            Its evaluation (with ``transitions`` when this emitter wanted them).
        status : Tensor (B,) int8
            What the archive did with each offspring: 0 not added, 1 improved a cell, 2 new cell.
        rows : slice
            This emitter's own offspring in the batch.

        Returns
        -------
        dict
            Metrics for ``metrics.csv`` (same keys every generation).
        """
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class IsoLineEmitter(Emitter):
    """Offspring by iso+line variation of two elites drawn uniformly from the archive
    (Vassiliades & Mouret 2018): ``x + iso_sigma N(0, I) + line_sigma N(0, 1) (y - x)``."""

    def __init__(self, context: EmitterContext, iso_sigma: float = 0.005,
                 line_sigma: float = 0.05) -> None:
        super().__init__(context)
        if iso_sigma < 0 or line_sigma < 0:
            raise ValueError(f"map_elites.emitters.iso_sigma/line_sigma: must be >= 0, "
                             f"got {iso_sigma}, {line_sigma}")
        self.iso_sigma, self.line_sigma = float(iso_sigma), float(line_sigma)

    def ask(self, archive, n: int) -> Tensor:
        c = self.context
        parents = archive.sample(2 * n, c.generator).to(c.device)
        return isoline_variation(parents[:n], parents[n:], self.iso_sigma, self.line_sigma,
                                 c.generator, c.bounds)


class GaussianEmitter(Emitter):
    """Offspring by Gaussian mutation of one elite drawn uniformly from the archive."""

    def __init__(self, context: EmitterContext, sigma: float = 0.1) -> None:
        super().__init__(context)
        if sigma < 0:
            raise ValueError(f"map_elites.emitters.sigma: must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def ask(self, archive, n: int) -> Tensor:
        c = self.context
        return gaussian_mutation(archive.sample(n, c.generator).to(c.device), self.sigma,
                                 c.generator, c.bounds)


# type -> "module:Class" (imported when used: policy-gradient emitters pull in evo.rl).
EMITTERS: dict[str, str] = {
    "isoline": "evo.algorithms.emitters:IsoLineEmitter",
    "gaussian": "evo.algorithms.emitters:GaussianEmitter",
    "pg": "evo.algorithms.pg_emitters:PGEmitter",
    "dcrl": "evo.algorithms.pg_emitters:DCRLEmitter",
}


def emitter_class(kind: str) -> type:
    from evo.algorithms import import_entry

    return import_entry(EMITTERS, kind, "map_elites.emitters.type", "emitter")


def complete_emitter_spec(spec: dict) -> dict:
    """``spec`` with every parameter of its emitter filled in from the emitter's signature
    (what ``config.yaml`` records); an unknown type or parameter raises a one-line error."""
    kind = spec.get("type")
    accepted = keyword_defaults(emitter_class(kind).__init__, {"self", "context"})
    for key in spec:
        if key not in accepted and key not in ("type", "proportion"):
            raise ValueError(f"map_elites.emitters: unknown parameter {key!r} for {kind!r}; "
                             f"accepted: type, proportion, {', '.join(accepted)}")
    return {"type": kind, "proportion": 1.0, **accepted, **spec}


def make_emitter(spec: dict, context: EmitterContext) -> Emitter:
    params = complete_emitter_spec(spec)
    kind = params.pop("type")
    params.pop("proportion")
    return emitter_class(kind)(context, **params)


def split_batch(batch_size: int, proportions: list[float]) -> list[int]:
    """Cut ``batch_size`` into integer shares by largest remainder (shares sum exactly)."""
    total = sum(proportions)
    if total <= 0 or any(p < 0 for p in proportions):
        raise ValueError(f"map_elites.emitters.proportion: must be >= 0 with a positive sum, "
                         f"got {proportions}")
    raw = [batch_size * p / total for p in proportions]
    counts = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])
    for i in order[: batch_size - sum(counts)]:
        counts[i] += 1
    return counts
