"""MAP-Elites with composable emitters (Mouret & Clune 2015; iso+line of Vassiliades &
Mouret 2018). A batch is cut into emitter shares in set proportions, as QDax's mixing
emitter and pyribs' scheduler do; emitters (``evo.algorithms.emitters``) carry their own state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from evo.algorithms.base import Algorithm
from evo.algorithms.emitters import (EmitterContext, complete_emitter_spec, make_emitter,
                                     split_batch)
from tasks import Evaluation


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
                 emitters: list[dict] | None = None, seed: int = 0, device="cpu",
                 policy: Any = None) -> None:
        super().__init__(task, evaluator, archive, batch_size, seed, device)
        specs = [complete_emitter_spec(e) for e in (emitters or [{"type": "isoline"}])]
        self.context = EmitterContext(task, policy, archive.solution_dim, bounds, self.device,
                                      self.generator, archive, self.evaluate)
        self.emitters = [make_emitter(e, self.context) for e in specs]
        self.shares = split_batch(self.batch_size, [float(e["proportion"]) for e in specs])
        self.wants_transitions = any(e.wants_transitions for e in self.emitters)
        self.init = init
        self.bounds = bounds
        self._rows: list[slice] = []  # each emitter's rows in the batch being evaluated

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
                   config["seed"], config["device"], policy=policy)

    def ask(self) -> Tensor:
        if len(self.archive) == 0:  # the random first batch belongs to no emitter
            self._rows = [slice(0, 0)] * len(self.emitters)
            return self.init(self.batch_size, self.generator).to(self.device)
        parts, self._rows, start = [], [], 0
        for emitter, n in zip(self.emitters, self.shares):
            if n > 0:
                parts.append(emitter.ask(self.archive, n))
            self._rows.append(slice(start, start + n))
            start += n
        return torch.cat(parts)

    def step(self) -> dict[str, float]:
        genomes = self.ask()
        evaluation = self.evaluate(genomes, transitions=self.wants_transitions)
        stats = self.tell(genomes, evaluation)
        self.iteration += 1
        return stats

    def tell(self, genomes: Tensor, evaluation: Evaluation) -> dict[str, float]:
        status = self.archive.add(genomes, evaluation.fitness, evaluation.descriptors,
                                  evaluation.failed)
        stats = {"inserted": int((status > 0).sum()), "new_cells": int((status == 2).sum())}
        rows = self._rows or [slice(0, 0)] * len(self.emitters)
        for emitter, r in zip(self.emitters, rows):
            stats.update(emitter.tell(genomes, evaluation, status, r))
        return stats

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {**super().state_dict(), "emitters": [e.state_dict() for e in self.emitters]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for emitter, s in zip(self.emitters, state.get("emitters", [{}] * len(self.emitters))):
            emitter.load_state_dict(s)

    def checkpoint_state(self, directory: Path) -> dict:
        """:meth:`state_dict` for a checkpoint in ``directory``: emitters with large state (a
        replay buffer) keep it there incrementally instead of inside every checkpoint.
        Emitters with a descriptor-conditioned actor also save it as a standalone policy in
        the run directory's ``distilled/`` (so a run has it during and after training)."""
        for e in self.emitters:
            if hasattr(e, "export_policy") and len(e.buffer):
                e.export_policy(directory.parent / "distilled")
        return {**super().state_dict(), "emitters": [
            e.checkpoint_state(directory / f"emitter_{i}") if hasattr(e, "checkpoint_state")
            else e.state_dict() for i, e in enumerate(self.emitters)]}

    def load_checkpoint_state(self, state: dict, directory: Path) -> None:
        super().load_state_dict(state)
        for i, (emitter, s) in enumerate(zip(self.emitters, state["emitters"])):
            if hasattr(emitter, "load_checkpoint_state"):
                emitter.load_checkpoint_state(s, directory / f"emitter_{i}")
            else:
                emitter.load_state_dict(s)
