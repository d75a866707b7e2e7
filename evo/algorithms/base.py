"""What every algorithm shares: evaluation bookkeeping, the result archive, state."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from archives import Archive
from tasks import Evaluation


def keyword_defaults(fn, skip: set[str] | frozenset = frozenset()) -> dict[str, Any]:
    """``fn``'s parameters that have defaults, with those defaults (the config layer reads
    defaults from signatures so that each is written once)."""
    import inspect

    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.name not in skip and p.default is not inspect.Parameter.empty}


def generator_for(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


class Algorithm:
    """Base class: one call of :meth:`step` is one generation.

    Subclasses implement :meth:`ask` and :meth:`tell` (or override :meth:`step` when a
    generation needs more than one evaluation call) and extend :meth:`state_dict`.

    Attributes
    ----------
    archive : Archive
        The result archive: its metrics are what the engine logs and plots.
    evaluations : int
        Evaluations spent so far (the budget unit).
    failed_evaluations : int
    evaluations_to_solve : int or None
        For tasks with a goal: evaluations spent when the first genome reached it.
    """

    name = "algorithm"

    def __init__(self, task: Any, evaluator: Callable, archive: Archive, batch_size: int,
                 seed: int = 0, device: torch.device | str = "cpu") -> None:
        self.task = task
        self.evaluator = evaluator
        self.archive = archive
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.device = torch.device(device)
        # CPU even for CUDA runs: the same seed then draws the same numbers on every device.
        self.generator = generator_for(seed)
        self.iteration = 0
        self.evaluations = 0
        self.failed_evaluations = 0
        self.evaluations_to_solve: int | None = None

    # -- the generation ------------------------------------------------------------------
    def ask(self) -> Tensor | Sequence:
        raise NotImplementedError

    def tell(self, genomes: Tensor | Sequence, evaluation: Evaluation) -> dict[str, float]:
        raise NotImplementedError

    def step(self) -> dict[str, float]:
        """Run one generation; returns algorithm-specific metrics (same keys every call)."""
        genomes = self.ask()
        evaluation = self.evaluate(genomes)
        stats = self.tell(genomes, evaluation)
        self.iteration += 1
        return stats

    def evaluate(self, genomes: Tensor | Sequence, transitions: bool = False) -> Evaluation:
        """Evaluate a batch and count it against the budget.

        Each genome gets its own seed, derived from the run seed and its evaluation number,
        so results do not depend on batching, workers or resumption. ``transitions`` asks the
        evaluator for every step of every episode as well (control tasks).
        """
        n = len(genomes)
        seeds = torch.arange(self.evaluations, self.evaluations + n, dtype=torch.int64)
        seeds += (self.seed % 2**31) * 2**32
        if transitions:
            evaluation = self.evaluator(genomes, seeds, transitions=True)
        else:  # evaluators written for direct tasks need not know the keyword
            evaluation = self.evaluator(genomes, seeds)
        solved = evaluation.info.get("solved")
        if solved is not None and self.evaluations_to_solve is None:
            hits = (solved.bool() & ~evaluation.failed).nonzero()
            if len(hits):
                self.evaluations_to_solve = self.evaluations + int(hits[0, 0]) + 1
        self.evaluations += n
        self.failed_evaluations += int(evaluation.failed.sum())
        return evaluation

    def summary(self) -> dict[str, Any]:
        """Final figures beyond the archive metrics."""
        out: dict[str, Any] = {}
        if getattr(self.task, "has_goal", False):
            out["solved"] = self.evaluations_to_solve is not None
            out["evaluations_to_solve"] = self.evaluations_to_solve
        return out

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "iteration": self.iteration,
            "evaluations": self.evaluations,
            "failed_evaluations": self.failed_evaluations,
            "evaluations_to_solve": self.evaluations_to_solve,
            "generator": self.generator.get_state(),
            "archive": self.archive.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.iteration = int(state["iteration"])
        self.evaluations = int(state["evaluations"])
        self.failed_evaluations = int(state["failed_evaluations"])
        self.evaluations_to_solve = state["evaluations_to_solve"]
        self.generator.set_state(torch.as_tensor(np.asarray(state["generator"]), dtype=torch.uint8))
        self.archive.load_state_dict(state["archive"])
