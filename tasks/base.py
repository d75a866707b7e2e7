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
    transitions : Transitions or None
        Every step of every episode, when the evaluator was asked for them
        (``transitions=True``); None otherwise.
    """

    fitness: Tensor
    descriptors: Tensor
    failed: Tensor | None = None
    info: dict[str, Tensor] = field(default_factory=dict)
    transitions: "Transitions | None" = None

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
            None if self.transitions is None else self.transitions.to(device),
        )

    @staticmethod
    def cat(parts: list["Evaluation"]) -> "Evaluation":
        """Join the evaluations of consecutive slices of one batch (genome indices of their
        transitions are shifted to index the joined batch)."""
        keys = parts[0].info.keys()
        transitions = None
        if all(p.transitions is not None for p in parts):
            offsets = [0]
            for p in parts[:-1]:
                offsets.append(offsets[-1] + len(p))
            transitions = Transitions.cat([p.transitions for p in parts], offsets)
        return Evaluation(
            torch.cat([p.fitness for p in parts]),
            torch.cat([p.descriptors for p in parts]),
            torch.cat([p.failed for p in parts]),
            {k: torch.cat([p.info[k] for p in parts]) for k in keys},
            transitions,
        )


@dataclass
class Transitions:
    """Steps of B episodes, flat and genome-major (row ``i * T + t`` is step ``t`` of genome
    ``i``), ready for a replay buffer. All float tensors are float32.

    Attributes
    ----------
    obs, next_obs : Tensor (N, obs_dim)
        ``next_obs`` is the true observation after the step (never an auto-reset one).
    action : Tensor (N, action_dim)
        The action the environment received (non-finite ones already replaced by 0).
    reward : Tensor (N,)
    terminated, truncated : Tensor (N,) bool
        The episode ended in a terminal state (bootstrap with 0) or was cut at its length
        (bootstrap from ``next_obs``).
    valid : Tensor (N,) bool
        False for padding steps after an episode ended; those are not transitions.
    genome : Tensor (N,) int64
        Index of the genome in the evaluated batch.
    descriptor : Tensor (N, d)
        The final descriptor of the episode the step belongs to.
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    terminated: Tensor
    truncated: Tensor
    valid: Tensor
    genome: Tensor
    descriptor: Tensor

    FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated", "valid",
              "genome", "descriptor")

    def __len__(self) -> int:
        return self.reward.shape[0]

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, f).element_size() * getattr(self, f).numel() for f in self.FIELDS)

    def to(self, device: torch.device | str) -> "Transitions":
        return Transitions(*(getattr(self, f).to(device) for f in self.FIELDS))

    def valid_only(self) -> "Transitions":
        """The rows that are real transitions (``valid``), in the same order."""
        keep = self.valid.nonzero().squeeze(1)
        return Transitions(*(getattr(self, f).index_select(0, keep) for f in self.FIELDS))

    def to_arrays(self) -> dict:
        """numpy arrays (to send between processes without pickling tensors)."""
        return {f: getattr(self, f).cpu().numpy() for f in self.FIELDS}

    @staticmethod
    def from_arrays(arrays: dict) -> "Transitions":
        return Transitions(*(torch.as_tensor(arrays[f]).clone() for f in Transitions.FIELDS))

    @staticmethod
    def cat(parts: list["Transitions"], genome_offsets: list[int] | None = None) -> "Transitions":
        offsets = genome_offsets or [0] * len(parts)
        fields = {f: torch.cat([getattr(p, f) for p in parts]) for f in Transitions.FIELDS}
        fields["genome"] = torch.cat([p.genome + o for p, o in zip(parts, offsets)])
        return Transitions(**fields)


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
    """B environments stepped together (torch-native or a vector of simulators).

    An environment may live on another device than the policy (MuJoCo on the CPU, the
    policy on CUDA): ``reset`` and ``step`` return tensors on the environment's device, and
    the rollout moves them.
    """

    def reset(self, seeds: Tensor) -> Tensor:
        """Reset all B environments; returns observations (B, obs_dim) float32.

        ``seeds`` (B,) int64 drive per-genome reset noise, if the task has any.
        """

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Apply actions (B, action_dim).

        Returns ``(obs (B, obs_dim) float32, reward (B,) float32, terminated (B,) bool,
        truncated (B,) bool)``. ``obs`` is a fresh tensor (safe to keep). ``terminated``: the
        episode ended in a terminal state (a fall); ``truncated``: it was cut at its length.
        A row that has ended is frozen: stepping it again changes none of its outcome, and
        it keeps reporting ``terminated | truncated``.
        """

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

    def make_env(self, batch_size: int, device: torch.device | str = "cpu",
                 threads: int = 1) -> BatchedEnv:
        """B environments; ``device`` for torch-native ones, ``threads`` for simulators
        stepped on C threads (others ignore it)."""


def is_control_task(task: object) -> bool:
    return hasattr(task, "make_env")
