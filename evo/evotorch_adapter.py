"""neuroqd tasks as EvoTorch problems, so EvoTorch's own searchers (SNES, CMA-ES, PGPE, GA...)
run on them unchanged::

    from evotorch.algorithms import SNES
    from evo.evotorch_adapter import as_evotorch_problem, descriptors_of

    problem = as_evotorch_problem("hard_maze", seed=0)
    searcher = SNES(problem, popsize=200, stdev_init=0.1)
    searcher.run(20)
    desc = descriptors_of(problem, searcher.population)   # (200, 2), inside the task's bounds

The problem maximises the task's fitness. Each solution also stores, as EvoTorch "extra
evaluation data" (``eval_data_length = descriptor_dim + 1``), its descriptor followed by a
failed flag (1.0 for a failed evaluation: non-finite parameters, actions, fitness or
descriptor). A failed solution's fitness is ``failed_fitness`` (default ``-inf``): it ranks
below everything, which every rank-based EvoTorch searcher (SNES/XNES "nes" ranking, PGPE
"centered", CMA-ES, GA) handles. Searchers that weight raw fitness values (``ranking_method``
"raw"/None) need a finite value instead: pass e.g. ``failed_fitness=task.fitness_offset - 1``.

Evaluation goes through :func:`evo.workers.local.evaluate_batch` (one vectorised call per
batch). Every solution gets its own evaluation seed derived from the problem's seed and a
running evaluation counter, as :class:`evo.algorithms.base.Algorithm` does.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from evotorch import Problem, SolutionBatch

from evo.workers.local import evaluate_batch
from tasks import is_control_task, make_task

__all__ = ["TaskProblem", "as_evotorch_problem", "descriptors_of", "failed_of"]


class TaskProblem(Problem):
    """A neuroqd task (direct or control) as a vectorised, maximising EvoTorch problem.

    Parameters
    ----------
    task : direct or control task (``tasks``)
    policy : network policy or None
        Required for control tasks (genome = the policy's flat parameters).
    seed : int
        Seeds the problem's generator (EvoTorch's sampling), the initial solutions and the
        evaluation seeds.
    device : str or torch.device
        Where solutions live and evaluations run.
    failed_fitness : float
        Fitness given to failed evaluations (default ``-inf``).
    **problem_kwargs
        Passed to ``evotorch.Problem`` (e.g. ``num_actors``).

    Attributes
    ----------
    evaluations : int
        Solutions evaluated by this object so far.
    descriptor_dim : int

    Notes
    -----
    ``initial_bounds`` are the task's genome bounds for direct tasks. For policies they are
    ``(-a, a)`` with ``a`` the largest magnitude in 64 draws of the policy's initialiser (the
    scale of the policy's initial weights); new solutions are nevertheless drawn with the
    policy's own initialiser (``_fill``), not uniformly, so SNES/CMA-ES centres start as a
    normally initialised network.
    """

    def __init__(self, task: Any, policy: Any = None, seed: int = 0,
                 device: torch.device | str = "cpu", failed_fitness: float = float("-inf"),
                 **problem_kwargs) -> None:
        from evo.build import genome_space

        if is_control_task(task) and policy is None:
            raise ValueError(f"task {task.name!r} is a control task and needs a policy")
        dim, init, bounds = genome_space(task, policy)
        init_generator = torch.Generator().manual_seed(int(seed))
        if bounds is None:
            a = float(init(64, torch.Generator().manual_seed(int(seed))).abs().max())
            bounds = (-a, a)
        super().__init__("max", solution_length=int(dim), initial_bounds=tuple(map(float, bounds)),
                         dtype=torch.float32, eval_dtype=torch.float32, device=device,
                         eval_data_length=int(task.descriptor_dim) + 1, seed=int(seed),
                         **problem_kwargs)
        self.task, self.policy = task, policy
        self.descriptor_dim = int(task.descriptor_dim)
        self.failed_fitness = float(failed_fitness)
        self.run_seed = int(seed)
        self.evaluations = 0
        self._init = init
        self._init_generator = init_generator

    def _fill(self, values: Tensor) -> None:
        # The task's / policy's own initialiser with an explicit generator (draws on CPU).
        values.copy_(self._init(values.shape[0], self._init_generator).to(values))

    def _evaluate_batch(self, batch: SolutionBatch) -> None:
        # A plain copy: EvoTorch hands out read-only tensors, which refuse the policy's
        # preallocated in-place buffers.
        x = batch.values.as_subclass(torch.Tensor).clone()
        n = x.shape[0]
        # Actors (num_actors > 1) each count on their own; the actor index keeps their seeds apart.
        base = ((self.run_seed + 7919 * (self._actor_index or 0)) % 2**31) * 2**32
        seeds = torch.arange(self.evaluations, self.evaluations + n, dtype=torch.int64) + base
        ev = evaluate_batch(self.task, x, seeds, self.policy, device=x.device)
        self.evaluations += n
        fitness = torch.where(ev.failed, torch.full_like(ev.fitness, self.failed_fitness),
                              ev.fitness)
        extra = torch.cat([ev.descriptors, ev.failed.to(ev.descriptors.dtype)[:, None]], dim=1)
        batch.set_evals(fitness.to(device=batch.device, dtype=batch.eval_dtype),
                        extra.to(device=batch.device, dtype=batch.eval_dtype))


def as_evotorch_problem(task: Any, policy: Any = None, seed: int = 0,
                        device: torch.device | str = "cpu", **kwargs) -> TaskProblem:
    """``task`` (an object or a task name) as an EvoTorch :class:`~evotorch.Problem`.

    A control task without a policy gets the default policy (the ``policy:`` config
    defaults: an MLP with one hidden layer of 16 tanh units and tanh outputs).
    ``kwargs`` go to :class:`TaskProblem` (``failed_fitness``) and ``evotorch.Problem``.
    """
    if isinstance(task, str):
        task = make_task(task)
    if policy is None and is_control_task(task):
        from evo.policies import make_policy

        policy = make_policy({}, task.obs_dim, task.action_dim)
    return TaskProblem(task, policy, seed=seed, device=device, **kwargs)


def descriptors_of(problem: TaskProblem, batch: SolutionBatch) -> Tensor:
    """Descriptors ``(n, descriptor_dim)`` stored with an evaluated batch."""
    return batch.evals[:, 1:1 + problem.descriptor_dim].as_subclass(Tensor).clone()


def failed_of(problem: TaskProblem, batch: SolutionBatch) -> Tensor:
    """Failed flags ``(n,)`` bool stored with an evaluated batch."""
    return batch.evals[:, 1 + problem.descriptor_dim].as_subclass(Tensor) > 0.5
