"""Direct-encoding benchmarks: sphere and rastrigin (pyribs' linear-projection descriptors)
and the redundant planar arm (QDax / Cully et al.)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tasks.base import Evaluation, TaskBase

_BOUND = 5.12  # the classic search-space bound of sphere and rastrigin


class _ProjectionTask(TaskBase):
    """Shared part of sphere and rastrigin.

    Descriptors are pyribs' linear projection: coordinates outside [-5.12, 5.12] are folded
    back as 5.12 / x, then the first half and the second half of the genome are summed.
    The objective is shifted so that the optimum is at x_i = 5.12 * 0.4 and normalised to
    [0, 100] (100 is optimal) over the genome bounds.
    """

    shift = _BOUND * 0.4

    def __init__(self, dim: int = 100) -> None:
        if int(dim) < 2:
            raise ValueError(f"task.dim: must be an integer >= 2, got {dim!r}")
        self.solution_dim = int(dim)
        self.solution_bounds = (-_BOUND, _BOUND)
        self.descriptor_dim = 2
        half = self.solution_dim // 2
        # Bounds of each half-sum; the second half may be one longer when dim is odd.
        self.descriptor_bounds = [(-half * _BOUND, half * _BOUND),
                                  (-(self.solution_dim - half) * _BOUND,
                                   (self.solution_dim - half) * _BOUND)]
        self.fitness_offset = 0.0

    def _raw(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _worst(self) -> float:
        raise NotImplementedError

    def evaluate(self, genomes: Tensor, seeds: Tensor | None = None) -> Evaluation:
        x = genomes.to(torch.float32)
        fitness = (self._worst() - self._raw(x)) / self._worst() * 100.0
        outside = x.abs() > _BOUND
        folded = torch.where(outside, _BOUND / torch.where(outside, x, torch.ones_like(x)), x)
        half = self.solution_dim // 2
        desc = torch.stack([folded[:, :half].sum(1), folded[:, half:].sum(1)], dim=1)
        return Evaluation(fitness, self.clip_descriptors(desc))


class Sphere(_ProjectionTask):
    name = "sphere"

    def _raw(self, x: Tensor) -> Tensor:
        return ((x - self.shift) ** 2).sum(1)

    def _worst(self) -> float:
        return (_BOUND + self.shift) ** 2 * self.solution_dim


class Rastrigin(_ProjectionTask):
    name = "rastrigin"
    A = 10.0

    def _raw(self, x: Tensor) -> Tensor:
        d = x - self.shift
        return (self.A + d * d - self.A * torch.cos(2 * math.pi * d)).sum(1)

    def _worst(self) -> float:
        # Per coordinate, A + d^2 - A cos(2 pi d) <= (5.12 + shift)^2 + 2A inside the bounds.
        return ((_BOUND + self.shift) ** 2 + 2 * self.A) * self.solution_dim


class Arm(TaskBase):
    """Redundant planar arm with ``dof`` joints and total length 1.

    Genome g in [0, 1]^dof (clipped); joint angles 2*pi*g - pi accumulate along the arm.
    Descriptor: end-effector position mapped to [0, 1]^2. Fitness: minus the standard
    deviation of the genome (prefer even joint angles), in [-0.5, 0]; ``fitness_offset`` -1
    gives the QDax examples' QD score.
    """

    name = "arm"
    descriptor_names = ("end-effector x", "end-effector y")

    def __init__(self, dof: int = 8) -> None:
        if int(dof) < 1:
            raise ValueError(f"task.dof: must be an integer >= 1, got {dof!r}")
        self.solution_dim = int(dof)
        self.solution_bounds = (0.0, 1.0)
        self.descriptor_dim = 2
        self.descriptor_bounds = [(0.0, 1.0), (0.0, 1.0)]
        self.fitness_offset = -1.0

    def evaluate(self, genomes: Tensor, seeds: Tensor | None = None) -> Evaluation:
        g = genomes.to(torch.float32).clamp(0.0, 1.0)
        # Population std (numpy's), written out: torch.std is several times slower on
        # short rows and this is the whole cost of the task.
        centred = g - g.mean(dim=1, keepdim=True)
        fitness = -(centred * centred).mean(dim=1).sqrt()
        angles = torch.cumsum(2 * math.pi * g - math.pi, dim=1)
        n = self.solution_dim
        x = torch.cos(angles).sum(1) / (2 * n) + 0.5
        y = torch.sin(angles).sum(1) / (2 * n) + 0.5
        return Evaluation(fitness, self.clip_descriptors(torch.stack([x, y], dim=1)))

    def joint_positions(self, genomes: Tensor) -> Tensor:
        """The arm's pose, for pictures: (B, dof + 1, 2) float32 positions of the base (0.5,
        0.5), each joint and the end effector, in descriptor units (links of length 1 / (2 dof)).

        The last point is the descriptor of :meth:`evaluate` before clipping, up to float
        rounding (``evaluate`` sums the links in another order and stays the hot path).
        """
        g = genomes.to(torch.float32).clamp(0.0, 1.0)
        angles = torch.cumsum(2 * math.pi * g - math.pi, dim=1)
        links = torch.stack([torch.cos(angles), torch.sin(angles)], dim=2) / (2 * self.solution_dim)
        return torch.cat([torch.zeros_like(links[:, :1]), links], dim=1).cumsum(dim=1) + 0.5
