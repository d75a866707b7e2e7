"""MAP-Elites with composable emitters (Mouret & Clune 2015; iso+line of Vassiliades &
Mouret 2018). A batch is cut into emitter shares in set proportions, as QDax's mixing
emitter and pyribs' scheduler do.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from evo.algorithms.base import Algorithm, keyword_defaults
from evo.operators import gaussian_mutation, isoline_variation
from tasks import Evaluation


class IsoLineEmitter:
    """Offspring by iso+line variation of two elites drawn uniformly from the archive."""

    def __init__(self, iso_sigma: float = 0.005, line_sigma: float = 0.05) -> None:
        if iso_sigma < 0 or line_sigma < 0:
            raise ValueError(f"map_elites.emitters.iso_sigma/line_sigma: must be >= 0, "
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
            raise ValueError(f"map_elites.emitters.sigma: must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def ask(self, archive, n: int, generator: torch.Generator, bounds, device) -> Tensor:
        return gaussian_mutation(archive.sample(n, generator).to(device), self.sigma,
                                 generator, bounds)


EMITTERS = {"isoline": IsoLineEmitter, "gaussian": GaussianEmitter}


def complete_emitter_spec(spec: dict) -> dict:
    """``spec`` with every parameter of its emitter filled in from the emitter's signature
    (what ``config.yaml`` records); an unknown type or parameter raises a one-line error."""
    kind = spec.get("type")
    if kind not in EMITTERS:
        raise ValueError(f"map_elites.emitters.type: unknown emitter {kind!r}; accepted: "
                         f"{', '.join(EMITTERS)}")
    accepted = keyword_defaults(EMITTERS[kind].__init__)
    for key in spec:
        if key not in accepted and key not in ("type", "proportion"):
            raise ValueError(f"map_elites.emitters: unknown parameter {key!r} for {kind!r}; "
                             f"accepted: type, proportion, {', '.join(accepted)}")
    return {"type": kind, "proportion": 1.0, **accepted, **spec}


def make_emitter(spec: dict):
    spec = complete_emitter_spec(spec)
    kind = spec.pop("type")
    spec.pop("proportion")
    return EMITTERS[kind](**spec)


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
        Each ``{"type": "isoline" | "gaussian", "proportion": p, ...params}``; missing
        parameters take the emitter's defaults. Default: iso+line alone.
    init : callable (n, generator) -> Tensor (n, D)
        How random genomes are drawn for the first batch (``batch_size`` of them): uniform
        within the genome bounds for direct tasks, the policy's initialiser for control tasks.
    bounds : (low, high) or None
        Genome bounds that variation clips to.
    """

    name = "map_elites"
    CONFIG_DEFAULTS = {"emitters": [complete_emitter_spec({"type": "isoline"})]}

    def __init__(self, task: Any, evaluator, archive, batch_size: int, init, bounds=None,
                 emitters: list[dict] | None = None, seed: int = 0, device="cpu") -> None:
        super().__init__(task, evaluator, archive, batch_size, seed, device)
        emitters = [complete_emitter_spec(e) for e in (emitters or [{"type": "isoline"}])]
        self.emitters = [make_emitter(e) for e in emitters]
        self.shares = split_batch(self.batch_size, [float(e["proportion"]) for e in emitters])
        self.init = init
        self.bounds = bounds

    @staticmethod
    def resolve_section(section: dict) -> dict:
        """The config section with every emitter parameter filled in (``config.yaml``)."""
        emitters = section.get("emitters")
        if not isinstance(emitters, list) or not all(isinstance(e, dict) for e in emitters):
            raise ValueError(f"map_elites.emitters: expected a list of mappings like "
                             f"[{{type: isoline, proportion: 1.0}}], got {emitters!r}")
        return {**section, "emitters": [complete_emitter_spec(e) for e in emitters]}

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
