"""MAP-Elites with composable emitters (Mouret & Clune 2015; iso+line of Vassiliades &
Mouret 2018). A batch is cut into emitter shares in set proportions, as QDax's mixing
emitter and pyribs' scheduler do.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from evo.algorithms.base import Algorithm
from evo.operators import gaussian_mutation, isoline_variation
from tasks import Evaluation


class IsoLineEmitter:
    """Offspring by iso+line variation of two elites drawn uniformly from the archive."""

    def __init__(self, iso_sigma: float = 0.005, line_sigma: float = 0.05) -> None:
        if iso_sigma < 0 or line_sigma < 0:
            raise ValueError(f"isoline emitter: iso_sigma and line_sigma must be >= 0, "
                             f"got {iso_sigma}, {line_sigma}")
        self.iso_sigma, self.line_sigma = float(iso_sigma), float(line_sigma)

    def ask(self, archive, n: int, generator: torch.Generator, bounds, device) -> Tensor:
        parents = archive.sample(2 * n, generator).to(device)
        return isoline_variation(parents[:n], parents[n:], self.iso_sigma, self.line_sigma,
                                 generator, bounds)


class GaussianEmitter:
    """Offspring by Gaussian mutation of one elite drawn uniformly from the archive."""

    def __init__(self, sigma: float = 0.1) -> None:
        if sigma < 0:
            raise ValueError(f"gaussian emitter: sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def ask(self, archive, n: int, generator: torch.Generator, bounds, device) -> Tensor:
        return gaussian_mutation(archive.sample(n, generator).to(device), self.sigma,
                                 generator, bounds)


EMITTERS = {"isoline": IsoLineEmitter, "gaussian": GaussianEmitter}


def make_emitter(spec: dict):
    spec = dict(spec)
    kind = spec.pop("type", None)
    spec.pop("proportion", None)
    if kind not in EMITTERS:
        raise ValueError(f"map_elites.emitters.type: unknown emitter {kind!r}; accepted: "
                         f"{', '.join(EMITTERS)}")
    try:
        return EMITTERS[kind](**spec)
    except TypeError:
        import inspect
        accepted = [p for p in inspect.signature(EMITTERS[kind]).parameters]
        raise ValueError(f"map_elites.emitters: bad parameters {sorted(spec)} for {kind!r}; "
                         f"accepted: type, proportion, {', '.join(accepted)}") from None


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


class MapElites(Algorithm):
    """MAP-Elites: offspring of archive elites, kept when they improve or fill a cell.

    Parameters
    ----------
    emitters : list of dict
        Each ``{"type": "isoline" | "gaussian", "proportion": p, ...params}``.
    initial_population : int or None
        Size of the random first batch (defaults to ``batch_size``): uniform within the
        genome bounds for direct tasks, the policy's initialiser for control tasks.
    init : callable (n, generator) -> Tensor (n, D)
        How random genomes are drawn.
    bounds : (low, high) or None
        Genome bounds that variation clips to.
    """

    name = "map_elites"

    def __init__(self, task: Any, evaluator, archive, batch_size: int, init, bounds=None,
                 emitters: list[dict] | None = None, seed: int = 0, device="cpu") -> None:
        super().__init__(task, evaluator, archive, batch_size, seed, device)
        emitters = emitters or [{"type": "isoline", "proportion": 1.0}]
        self.emitters = [make_emitter(e) for e in emitters]
        self.shares = split_batch(self.batch_size, [float(e.get("proportion", 1.0)) for e in emitters])
        self.init = init
        self.bounds = bounds

    @classmethod
    def from_config(cls, config: dict, task: Any, policy: Any = None) -> "MapElites":
        from evo.build import build_evaluator, default_archive, genome_space

        dim, init, bounds = genome_space(task, policy)
        return cls(task, build_evaluator(config, task, policy), default_archive(config, task, dim),
                   config["batch_size"], init, bounds, config["map_elites"]["emitters"],
                   config["seed"], config["device"])

    def ask(self) -> Tensor:
        if len(self.archive) == 0:
            return self.init(self.batch_size, self.generator).to(self.device)
        parts = [emitter.ask(self.archive, n, self.generator, self.bounds, self.device)
                 for emitter, n in zip(self.emitters, self.shares) if n > 0]
        return torch.cat(parts)

    def tell(self, genomes: Tensor, evaluation: Evaluation) -> dict[str, float]:
        status = self.archive.add(genomes, evaluation.fitness, evaluation.descriptors,
                                  evaluation.failed)
        return {"inserted": int((status > 0).sum()), "new_cells": int((status == 2).sum())}
