"""neuroqd tasks as EvoTorch problems: EvoTorch's own searchers run on them."""

import logging

import pytest
import torch
from evotorch.algorithms import CMAES, PGPE, SNES, GeneticAlgorithm
from evotorch.operators import GaussianMutation, SimulatedBinaryCrossOver

from evo.evotorch_adapter import TaskProblem, as_evotorch_problem, descriptors_of, failed_of
from tasks import make_task

logging.getLogger("evotorch").setLevel(logging.WARNING)


def _in_bounds(task, d):
    low = torch.tensor([b[0] for b in task.descriptor_bounds])
    high = torch.tensor([b[1] for b in task.descriptor_bounds])
    return bool(((d >= low) & (d <= high)).all())


def test_problem_declares_the_task():
    task = make_task("sphere", dim=6)
    p = as_evotorch_problem(task, seed=1)
    assert isinstance(p, TaskProblem) and p.solution_length == 6
    assert p.senses == ["max"] and p.eval_data_length == task.descriptor_dim + 1
    assert float(p.initial_lower_bounds.min()) == pytest.approx(-5.12)
    batch = p.generate_batch(8)
    p.evaluate(batch)
    expected = task.evaluate(batch.values.as_subclass(torch.Tensor).clone(), None)
    assert torch.equal(batch.evals[:, 0].as_subclass(torch.Tensor), expected.fitness)
    assert torch.equal(descriptors_of(p, batch), expected.descriptors)
    assert not bool(failed_of(p, batch).any()) and p.evaluations == 8


@pytest.mark.parametrize("make_searcher", [
    lambda p: SNES(p, popsize=40, stdev_init=1.0),
    lambda p: CMAES(p, popsize=20, stdev_init=1.0),
    lambda p: GeneticAlgorithm(p, popsize=40, operators=[
        SimulatedBinaryCrossOver(p, tournament_size=4, cross_over_rate=1.0, eta=8),
        GaussianMutation(p, stdev=0.2)]),
], ids=["snes", "cmaes", "ga"])
def test_evotorch_searchers_improve_the_sphere(make_searcher):
    p = as_evotorch_problem(make_task("sphere", dim=8), seed=0)
    searcher = make_searcher(p)
    searcher.step()
    first = float(searcher.status["pop_best_eval"])
    searcher.run(25)
    assert float(searcher.status["best_eval"]) > first + 2.0
    assert float(searcher.status["best_eval"]) > 98.0  # 100 is the optimum


@pytest.mark.parametrize("task_name,make_searcher", [
    ("arm", lambda p: SNES(p, popsize=30, stdev_init=0.1)),
    ("hard_maze", lambda p: PGPE(p, popsize=30, center_learning_rate=0.1,
                                 stdev_learning_rate=0.1, stdev_init=0.1)),
])
def test_descriptors_come_back_in_bounds(task_name, make_searcher):
    task = make_task(task_name, **({"episode_length": 50} if task_name == "hard_maze" else {}))
    p = as_evotorch_problem(task, seed=0)
    searcher = make_searcher(p)
    searcher.run(2)
    d = descriptors_of(p, searcher.population)
    assert d.shape == (30, 2) and _in_bounds(task, d)
    assert not bool(failed_of(p, searcher.population).any())


def test_failed_evaluations_get_the_failed_fitness():
    p = as_evotorch_problem("arm", seed=0)
    batch = p.generate_batch(4)
    values = batch.access_values()
    values[1] = float("nan")
    p.evaluate(batch)
    assert bool(failed_of(p, batch)[1]) and int(failed_of(p, batch).sum()) == 1
    assert float(batch.evals[1, 0]) == float("-inf")
    finite = as_evotorch_problem("arm", seed=0, failed_fitness=-2.0)
    batch = finite.generate_batch(2)
    batch.access_values()[0] = float("nan")
    finite.evaluate(batch)
    assert float(batch.evals[0, 0]) == -2.0


def test_policy_problems_start_from_the_policy_initialiser():
    from evo.policies import make_policy

    task = make_task("hard_maze", episode_length=5)
    policy = make_policy({"hidden": [8]}, task.obs_dim, task.action_dim)
    p = as_evotorch_problem(task, policy, seed=3)
    assert p.solution_length == policy.num_params
    values = p.generate_values(4)
    assert torch.equal(values.as_subclass(torch.Tensor),
                       policy.init(4, torch.Generator().manual_seed(3)))
