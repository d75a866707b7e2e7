import math

import pytest
import torch

from tasks import make_task, task_defaults


def test_arm_straight_arm_reaches_the_right_edge_with_best_fitness():
    arm = make_task("arm", dof=8)
    ev = arm.evaluate(torch.full((1, 8), 0.5))  # every joint angle 0: arm along +x
    assert ev.fitness.item() == pytest.approx(0.0, abs=1e-6)
    assert ev.descriptors[0].tolist() == pytest.approx([1.0, 0.5], abs=1e-6)


def test_arm_folded_back_and_fitness_is_minus_population_std():
    arm = make_task("arm", dof=2)
    # first joint +pi/2 (g=0.75), second folds back by -pi/2 (g=0.25): end at (0.5, 0.5)/..
    g = torch.tensor([[0.75, 0.25]])
    ev = arm.evaluate(g)
    x = (math.cos(math.pi / 2) + math.cos(0.0)) / 4 + 0.5
    y = (math.sin(math.pi / 2) + math.sin(0.0)) / 4 + 0.5
    assert ev.descriptors[0].tolist() == pytest.approx([x, y], abs=1e-6)
    assert ev.fitness.item() == pytest.approx(-0.25, abs=1e-6)


def test_arm_clips_genomes_and_descriptors_stay_in_bounds():
    arm = make_task("arm", dof=8)
    g = torch.randn(500, 8) * 3
    ev = arm.evaluate(g)
    assert torch.equal(ev.fitness, arm.evaluate(g.clamp(0, 1)).fitness)
    assert (ev.descriptors >= 0).all() and (ev.descriptors <= 1).all()
    assert (ev.fitness <= 0).all() and (ev.fitness >= -0.5).all()


@pytest.mark.parametrize("name", ["sphere", "rastrigin"])
def test_projection_tasks_optimum_is_100_and_descriptors_are_half_sums(name):
    task = make_task(name, dim=10)
    ev = task.evaluate(torch.full((1, 10), 5.12 * 0.4))
    assert ev.fitness.item() == pytest.approx(100.0, abs=1e-4)
    assert ev.descriptors[0].tolist() == pytest.approx([5 * 2.048, 5 * 2.048], rel=1e-5)
    worst = task.evaluate(torch.full((1, 10), -5.12)).fitness.item()
    # the far corner scores lowest; the normalisation bound keeps it >= 0
    assert 0.0 <= worst < (5.0 if name == "sphere" else 30.0)
    assert (task.evaluate(torch.rand(256, 10) * 10.24 - 5.12).fitness > worst).all()


def test_projection_descriptor_folds_outside_coordinates():
    task = make_task("sphere", dim=2)
    ev = task.evaluate(torch.tensor([[10.24, -1.0]]))
    assert ev.descriptors[0].tolist() == pytest.approx([0.5, -1.0])


def test_unknown_task_parameter_is_one_line_error():
    with pytest.raises(ValueError, match=r"task\.foo: unknown parameter .* accepted: dof"):
        make_task("arm", foo=1)
    assert task_defaults("rastrigin") == {"dim": 100}
