import pytest
import torch

from evo.operators import (gaussian_mutation, isoline_variation, knn_distances,
                           local_competition, novelty, truncation_select)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_isoline_zero_iso_moves_along_the_line_between_parents():
    x, y = torch.zeros(64, 3), torch.ones(64, 3)
    child = isoline_variation(x, y, 0.0, 0.5, gen())
    # every coordinate of a child moved by the same line coefficient
    assert torch.allclose(child, child[:, :1].expand(-1, 3))
    assert child.std() > 0.1


def test_isoline_statistics_and_determinism():
    x, y = torch.zeros(20000, 2), torch.zeros(20000, 2)
    c = isoline_variation(x, y, 0.1, 0.3, gen(1))
    assert c.std().item() == pytest.approx(0.1, rel=0.05)
    assert torch.equal(c, isoline_variation(x, y, 0.1, 0.3, gen(1)))
    assert not torch.equal(c, isoline_variation(x, y, 0.1, 0.3, gen(2)))


def test_mutation_respects_bounds():
    x = torch.full((1000, 4), 0.99)
    c = gaussian_mutation(x, 0.5, gen(), bounds=(0.0, 1.0))
    assert c.min() >= 0 and c.max() <= 1 and (c == 1.0).any()


def test_truncation_select_is_stable_and_puts_nan_last():
    s = torch.tensor([1.0, float("nan"), 3.0, 3.0, 2.0])
    assert truncation_select(s, 3).tolist() == [2, 3, 4]
    assert truncation_select(s, 5)[-1].item() == 1


def test_novelty_is_mean_knn_distance():
    ref = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0]])
    q = torch.tensor([[0.0, 0.0]])
    assert novelty(q, ref, k=2).item() == pytest.approx(0.5)  # 0 and 1
    # self excluded: point 0's neighbours are 1 and 3
    nov = novelty(ref, ref, k=2, exclude_self=True)
    assert nov.tolist() == pytest.approx([2.0, 1.5, 2.5])
    assert novelty(q, ref[:0], k=3).isinf().all()


def test_local_competition_counts_beaten_neighbours():
    ref_fit = torch.tensor([1.0, 2.0, 3.0])
    d, idx = knn_distances(torch.tensor([[0.0]]), torch.tensor([[0.0], [1.0], [2.0]]), k=3)
    assert local_competition(torch.tensor([2.5]), ref_fit, idx).item() == 2
