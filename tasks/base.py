"""The task protocol: what every benchmark declares and how a batch is evaluated.

Two kinds of task share one set of declarations (descriptor space, fitness offset):

* a *direct* task scores genomes itself (`evaluate`), e.g. sphere, rastrigin, arm;
* a *control* task is a batched environment that a policy drives (`make_env`), e.g. the mazes.
  Tasks never see policies: `evo.workers` runs the policy, the task only steps the world.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@dataclass
class Evaluation:
    """Outcome of evaluating a batch of B genomes.

    Attributes
    ----------
    fitness : Tensor (B,) float32
    descriptors : Tensor (B, d) float32, inside the task's ``descriptor_bounds``.
    failed : Tensor (B,) bool
        Evaluations that must never enter an archive (non-finite fitness, descriptor,
        parameters or actions; unstable physics). Their fitness/descriptor values are
        meaningless.
    info : dict[str, Tensor]
        Per-genome extras with a leading batch dimension, e.g. ``solved`` (B,) bool for
        tasks with a goal, or ``trajectory`` (B, T, 2).
    """

    fitness: Tensor
    descriptors: Tensor
    failed: Tensor | None = None
    info: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        finite = torch.isfinite(self.fitness) & torch.isfinite(self.descriptors).all(dim=1)
        failed = ~finite
        if self.failed is not None:
            failed = failed | self.failed.to(failed.device)
        self.failed = failed

    def __len__(self) -> int:
        return self.fitness.shape[0]

    def to(self, device: torch.device | str) -> "Evaluation":
        if self.fitness.device == torch.device(device):
            return self
        return Evaluation(
            self.fitness.to(device),
            self.descriptors.to(device),
            self.failed.to(device),
            {k: v.to(device) for k, v in self.info.items()},
        )

    def select(self, index: Tensor | slice) -> "Evaluation":
        return Evaluation(
            self.fitness[index],
            self.descriptors[index],
            self.failed[index],
            {k: v[index] for k, v in self.info.items()},
        )

    @staticmethod
    def cat(parts: list["Evaluation"]) -> "Evaluation":
        keys = parts[0].info.keys()
        return Evaluation(
            torch.cat([p.fitness for p in parts]),
            torch.cat([p.descriptors for p in parts]),
            torch.cat([p.failed for p in parts]),
            {k: torch.cat([p.info[k] for p in parts]) for k in keys},
        )


class TaskBase:
    """Declarations shared by every task.

    Attributes
    ----------
    name : str
    descriptor_dim : int
    descriptor_bounds : list[tuple[float, float]]
        One (low, high) pair per descriptor dimension; descriptors are clipped into them.
    fitness_offset : float
        A lower bound on fitness: ``qd_score = sum over elites of (fitness - fitness_offset)``
        (pyribs' ``qd_score_offset``; QDax adds ``-fitness_offset`` per elite).
    has_goal : bool
        Whether evaluations report ``info["solved"]``.
    descriptor_names : tuple[str, ...]
        Axis labels for plots.
    descriptor_y_down : bool
        Plots draw the second descriptor growing downwards (image-like maze coordinates).
    """

    name: str = "task"
    descriptor_dim: int = 2
    descriptor_bounds: list[tuple[float, float]] = []
    fitness_offset: float = 0.0
    has_goal: bool = False
    descriptor_names: tuple[str, ...] = ("descriptor 1", "descriptor 2")
    descriptor_y_down: bool = False

    def clip_descriptors(self, descriptors: Tensor) -> Tensor:
        """Clip into ``descriptor_bounds`` (the contract says descriptors always lie there)."""
        low = torch.tensor([b[0] for b in self.descriptor_bounds], dtype=descriptors.dtype,
                           device=descriptors.device)
        high = torch.tensor([b[1] for b in self.descriptor_bounds], dtype=descriptors.dtype,
                            device=descriptors.device)
        return torch.maximum(torch.minimum(descriptors, high), low)


@runtime_checkable
class DirectTask(Protocol):
    """A task whose genome is the solution itself."""

    name: str
    solution_dim: int
    solution_bounds: tuple[float, float]
    descriptor_dim: int
    descriptor_bounds: list[tuple[float, float]]
    fitness_offset: float

    def evaluate(self, genomes: Tensor, seeds: Tensor) -> Evaluation:
        """Score a batch.

        Parameters
        ----------
        genomes : Tensor (B, solution_dim) float32
        seeds : Tensor (B,) int64
            One seed per genome, so results do not depend on how a batch is split.
        """


class BatchedEnv(Protocol):
    """B environments stepped together (torch-native or a vector of simulators)."""

    def reset(self, seeds: Tensor) -> Tensor:
        """Reset all B environments; returns observations (B, obs_dim) float32."""

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Apply actions (B, action_dim); returns (obs (B, obs_dim), reward (B,), done (B,) bool)."""

    def outcome(self) -> Evaluation:
        """Fitness, descriptors and info of the episodes so far."""


@runtime_checkable
class ControlTask(Protocol):
    """A task whose genome parameterises a policy acting in an environment."""

    name: str
    obs_dim: int
    action_dim: int
    action_bounds: tuple[float, float]
    episode_length: int
    descriptor_dim: int
    descriptor_bounds: list[tuple[float, float]]
    fitness_offset: float

    def make_env(self, batch_size: int, device: torch.device | str = "cpu") -> BatchedEnv:
        ...


def is_control_task(task: object) -> bool:
    return hasattr(task, "make_env")
