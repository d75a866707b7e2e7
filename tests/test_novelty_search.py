"""Novelty search (GA-NS) and NSLC: novelty, archive rules, Pareto ranking, exact resume,
failed genomes, the command line, and NS exploring the hard maze better than the Deep GA."""

import json
import math

import numpy as np
import pytest
from run_helpers import split_and_resume
import torch

from archives import make_archive
from evo.algorithms.novelty_search import NSLC, NoveltySearch, NoveltyThreshold, population_novelty
from evo.build import build_algorithm, build_run
from evo.operators import crowding_distance, non_dominated_ranks, rank_order
from evo.policies import make_policy
from experiments.cli import main
from experiments.config import load_raw, resolve
from tasks import Evaluation, make_task

MAZE = {"name": "hard_maze", "episode_length": 30}


class Plane:
    """A direct task whose descriptor is the first two genes (clipped to [0, 1]^2)."""

    name = "plane"
    descriptor_bounds = [(0.0, 1.0), (0.0, 1.0)]
    descriptor_dim = 2
    fitness_offset = -10.0
    has_goal = False
    solution_dim = 4
    solution_bounds = (-1.0, 2.0)


def plane_evaluator(genomes, seeds):
    d = genomes[:, :2].clamp(0, 1)
    return Evaluation(-genomes.pow(2).sum(1), d)


def _plane_ns(batch=8, seed=0, **kw):
    kw.setdefault("truncation", 4)
    task = Plane()
    archive = make_archive({"type": "grid", "dims": [10, 10]}, 4, task.descriptor_bounds,
                           task.fitness_offset)
    init = lambda n, g: torch.rand((n, 4), generator=g)
    return NoveltySearch(task, plane_evaluator, archive, batch, init, (-1.0, 2.0), seed=seed, **kw)


# -- novelty ---------------------------------------------------------------------------------------
def test_novelty_is_the_mean_distance_to_the_k_nearest_others():
    pop = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
    archive = torch.tensor([[3.0, 0.0]])
    nov = population_novelty(pop, archive, k=2)
    # p0: 1 (p1), 2 (p2), 3 (a) -> (1 + 2) / 2;  p1: 1, 2 (a), sqrt 5 -> (1 + 2) / 2;
    # p2: 2 (p0), sqrt 5 (p1), sqrt 13 (a) -> (2 + sqrt 5) / 2
    torch.testing.assert_close(nov, torch.tensor([1.5, 1.5, (2 + math.sqrt(5)) / 2]))
    # k larger than the others available: mean over all of them
    torch.testing.assert_close(population_novelty(pop, archive, k=10)[0], torch.tensor(2.0))
    # a failed member is -inf and nobody's neighbour
    nov = population_novelty(pop, archive, k=2, failed=torch.tensor([False, True, False]))
    torch.testing.assert_close(nov, torch.tensor([2.5, -math.inf, (2 + math.sqrt(13)) / 2]))
    # alone in an empty world: +inf
    assert population_novelty(pop[:1], archive[:0], k=3).item() == math.inf


def test_selection_takes_the_most_novel_as_parents():
    algo = _plane_ns(batch=6, truncation=2, sigma=0.0, archive_probability=0.0)
    genomes = torch.tensor([[0.50, 0.50, 0, 0], [0.52, 0.50, 0, 0], [0.50, 0.52, 0, 0],
                            [0.0, 0.0, 0, 0], [1.0, 1.0, 0, 0], [0.51, 0.51, 0, 0]])
    stats = algo.tell(genomes, algo.evaluate(genomes))
    assert set(algo.order[:2].tolist()) == {3, 4}  # the two far corners
    assert stats["novelty_max"] == pytest.approx(float(
        population_novelty(genomes[:, :2], torch.zeros(0, 2), 15).max()))
    children = algo.ask()  # sigma 0: copies of the parents
    assert all(any(torch.equal(c, genomes[i]) for i in (3, 4)) for c in children)


# -- the novelty archive ---------------------------------------------------------------------------
def test_probability_mode_adds_each_valid_offspring_with_probability_p():
    assert _run_plane(archive_probability=1.0).novelty_archive_size == 10 * 8
    assert _run_plane(archive_probability=0.0).novelty_archive_size == 0
    algo = _run_plane(archive_probability=0.25, generations=50, batch=40)
    assert 0.2 < algo.novelty_archive_size / 2000 < 0.3


def _run_plane(generations=10, batch=8, **kw):
    algo = _plane_ns(batch=batch, **kw)
    for _ in range(generations):
        algo.step()
    return algo


def test_threshold_decays_after_10_stale_generations_and_grows_after_more_than_4():
    t = NoveltyThreshold(initial=0.03, min=0.02, decay=0.95, stale_generations=10, growth=1.2,
                         max_additions=4)
    for _ in range(9):
        t.update(0)
    assert t.value == 0.03
    t.update(0)
    assert t.value == pytest.approx(0.03 * 0.95) and t.stale == 0
    t.update(4)  # 4 is not more than 4: unchanged, but the stale count restarts
    assert t.value == pytest.approx(0.0285)
    for _ in range(10):
        t.update(0)
    assert t.value == pytest.approx(0.0285 * 0.95)
    for _ in range(10 * 10):
        t.update(0)
    assert t.value == 0.02  # the floor
    t.update(5)
    assert t.value == pytest.approx(0.024)


def test_threshold_mode_adds_exactly_the_offspring_novel_enough():
    algo = _plane_ns(batch=30, archive_mode="threshold",
                     threshold={"initial": 0.1, "min": 0.01, "max_additions": 1000})
    for _ in range(5):
        before = algo.novelty_archive.clone()
        genomes = algo.ask()
        ev = algo.evaluate(genomes)
        expected = population_novelty(ev.descriptors, before, algo.k_neighbors)
        stats = algo.tell(genomes, ev)
        add = expected >= 0.1
        assert stats["archive_added"] == int(add.sum())
        torch.testing.assert_close(algo.novelty_archive, torch.cat([before, ev.descriptors[add]]))
        assert stats["novelty_threshold"] == 0.1


# -- NSLC ------------------------------------------------------------------------------------------
def test_pareto_ranks_crowding_and_order_on_a_hand_made_example():
    obj = torch.tensor([[3.0, 0.0], [2.0, 2.0], [1.0, 1.0], [0.0, 3.0], [1.0, 0.0], [2.0, 2.0]])
    ranks = non_dominated_ranks(obj)
    # (1,1) is dominated by (2,2); (1,0) by (1,1); equal points do not dominate each other
    assert ranks.tolist() == [0, 0, 1, 0, 2, 0]
    crowd = crowding_distance(obj, ranks)
    # front 0 sorted on either objective: (0,3) (2,2) (2,2) (3,0) or the reverse; each interior
    # point adds, per objective, the gap between its sorted neighbours over the range 3
    assert math.isinf(crowd[0]) and math.isinf(crowd[3])
    assert crowd[1] == pytest.approx((2 - 0) / 3 + (2 - 0) / 3)  # neighbours (0,3) and (2,2)
    assert crowd[5] == pytest.approx((3 - 2) / 3 + (3 - 2) / 3)  # neighbours (2,2) and (3,0)
    assert math.isinf(crowd[2]) and math.isinf(crowd[4])  # singleton fronts
    assert rank_order(ranks, crowd).tolist() == [0, 3, 1, 5, 2, 4]
    assert rank_order(ranks, obj[:, 0]).tolist() == [0, 1, 5, 3, 2, 4]  # ties by novelty


def _plane_nslc(batch=6, tie_break="crowding", threshold=0.05):
    task = Plane()
    result = make_archive({"type": "grid", "dims": [10, 10]}, 4, task.descriptor_bounds, -10.0)
    prox = make_archive({"type": "proximity", "k_neighbors": 2, "novelty_threshold": threshold,
                         "local_competition": True}, 4, task.descriptor_bounds, -10.0)
    init = lambda n, g: torch.rand((n, 4), generator=g)
    return NSLC(task, plane_evaluator, result, batch, init, (-1.0, 2.0), novelty_archive=prox,
                truncation=3, k_neighbors=2, tie_break=tie_break)


def test_nslc_ranks_novelty_and_local_competition():
    algo = _plane_nslc()
    # fitness = -|genome|^2; descriptors = first two genes
    genomes = torch.tensor([[0.0, 0.0, 0, 0], [0.1, 0.0, 0, 0], [0.0, 0.1, 0, 0],
                            [1.0, 1.0, 0, 0], [0.9, 1.0, 0, 0], [0.1, 0.1, 1, 0]])
    stats = algo.tell(genomes, algo.evaluate(genomes))
    d, f = genomes[:, :2], -genomes.pow(2).sum(1)
    nov = population_novelty(d, torch.zeros(0, 2), 2)
    dist = torch.cdist(d, d).fill_diagonal_(math.inf)
    nbrs = dist.topk(2, largest=False).indices
    lc = (f[nbrs] < f[:, None]).sum(1)
    assert lc.tolist() == [2, 1, 1, 0, 1, 0]
    ranks = non_dominated_ranks(torch.stack([nov.double(), lc.double()], 1))
    expected = rank_order(ranks, crowding_distance(torch.stack([nov, lc.float()], 1), ranks))
    assert algo.order.tolist() == expected.tolist()
    assert stats["first_front_size"] == int((ranks == 0).sum())
    assert stats["local_competition_mean"] == pytest.approx(lc.float().mean().item())
    # the first generation fills the (empty) proximity archive: everything is novel
    assert stats["novelty_archive_size"] == 6 and stats["archive_added"] == 6


# -- exact resume ----------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm,section", [
    ("novelty_search", {"archive_mode": "probability", "archive_probability": 0.2, "elitism": 2}),
    ("novelty_search", {"archive_mode": "threshold"}),
    ("nslc", {"tie_break": "crowding"}),
    ("nslc", {"tie_break": "novelty", "elitism": 1}),
])
def test_resume_is_exact(tmp_path, algorithm, section):
    raw = {"algorithm": algorithm, "task": dict(MAZE), "batch_size": 24, "seed": 3,
           "archive": {"type": "grid", "dims": [20, 20]}, "log_every": 1, "checkpoint_every": 2,
           "budget": {"evaluations": 240}, algorithm: dict(section, truncation=5)}
    whole, resumed = split_and_resume(raw, tmp_path, 100)
    a, b = whole.algorithm, resumed.algorithm
    for x, y in [(a.archive.state_dict(), b.archive.state_dict())] + (
            [(a.proximity.state_dict(), b.proximity.state_dict())] if algorithm == "nslc" else []):
        assert x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) for k in x)
    assert torch.equal(a.novelty_archive_descriptors(), b.novelty_archive_descriptors())
    assert a.novelty_archive_size > 0
    assert torch.equal(a.population, b.population) and torch.equal(a.order, b.order)
    assert torch.equal(a.generator.get_state(), b.generator.get_state())
    assert a.threshold.state_dict() == b.threshold.state_dict()


# -- failed evaluations ----------------------------------------------------------------------------
class NaNActionPolicy:
    """An MLP whose rows with a positive first weight act NaN at every step."""

    def __init__(self, inner):
        self.inner, self.num_params, self.init = inner, inner.num_params, inner.init

    def bind(self, params):
        forward, bad = self.inner.bind(params), params[:, 0] > 0

        def act(obs):
            a = forward(obs)
            return torch.where(bad[:, None], torch.full_like(a, math.nan), a)

        return act


@pytest.mark.parametrize("algorithm", ["novelty_search", "nslc"])
def test_nan_genomes_and_nan_actions_fail_and_are_never_inserted(algorithm):
    config = resolve({"algorithm": algorithm, "task": dict(MAZE), "batch_size": 16,
                      "archive": {"type": "grid", "dims": [20, 20]},
                      algorithm: {"truncation": 4, **({"archive_probability": 1.0}
                                                      if algorithm == "novelty_search" else {})}})
    task = make_task(MAZE["name"], episode_length=MAZE["episode_length"])
    policy = NaNActionPolicy(make_policy(config["policy"], task.obs_dim, task.action_dim))
    cls = NoveltySearch if algorithm == "novelty_search" else NSLC
    algo = cls.from_config(config, task, policy)
    init = algo.init

    def nan_init(n, g):
        x = init(n, g)
        x[0] = math.nan
        return x

    algo.init = nan_init
    failed_total = 0
    for _ in range(4):
        genomes = algo.ask()
        ev = algo.evaluate(genomes)
        expected_failed = ~torch.isfinite(genomes).all(1) | (genomes[:, 0] > 0)
        assert torch.equal(ev.failed, expected_failed)
        failed_total += int(expected_failed.sum())
        stats = algo.tell(genomes, ev)
        assert math.isfinite(stats["novelty_mean"])
        # failed genomes are never parents: nothing NaN is bred
        assert bool(torch.isfinite(algo.population[algo.order[:4]]).all())
        assert not bool(algo.failed[algo.order[:4]].any())
    assert algo.failed_evaluations == failed_total > 0
    elites = algo.archive.elites()
    assert bool(torch.isfinite(elites["genomes"]).all()) and bool((elites["genomes"][:, 0] <= 0).all())
    assert bool(torch.isfinite(algo.novelty_archive_descriptors()).all())
    if algorithm == "novelty_search":  # probability 1: exactly the valid ones went in
        assert algo.novelty_archive_size == algo.evaluations - failed_total
    else:
        prox = algo.proximity.elites()["genomes"]
        assert bool(torch.isfinite(prox).all()) and bool((prox[:, 0] <= 0).all())


# -- configs and the command line ------------------------------------------------------------------
def test_bad_values_name_the_key():
    with pytest.raises(ValueError, match="novelty_search.archive_mode"):
        _plane_ns(archive_mode="sometimes")
    with pytest.raises(ValueError, match="novelty_search.truncation"):
        _plane_ns(batch=8, truncation=9)
    with pytest.raises(ValueError, match="novelty_search.threshold.decay"):
        _plane_ns(threshold={"decay": 1.5})
    with pytest.raises(ValueError, match="nslc.tie_break"):
        _plane_nslc(tie_break="age")


@pytest.mark.parametrize("name", ["ns_hard_maze", "nslc_hard_maze", "ns_medium_maze"])
def test_shipped_configs_resolve(name):
    config = resolve(load_raw(name))
    assert config["task"]["name"] in ("hard_maze", "medium_maze")
    assert config["policy"] == {"hidden": [16], "activation": "tanh", "output_activation": "tanh"}
    algo = build_algorithm(resolve(load_raw(name), ["batch_size=24", "task.episode_length=5"]))
    algo.step()


def test_cli_runs_ns_hard_maze_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "ns_hard_maze", "--set", "budget.evaluations=300", "--set", "batch_size=100",
                 "--set", "task.episode_length=100", "--out", str(out), "--quiet"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 300 and summary["solved"] is False
    assert "evaluations_to_solve" in summary and summary["novelty_archive_size"] > 0
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:6] == ["iteration", "evaluations", "qd_score", "coverage", "max_fitness", "time_s"]
    assert {"novelty_mean", "novelty_max", "novelty_archive_size", "best_fitness"} <= set(header)
    assert (out / "heatmap.png").exists() and (out / "config.yaml").exists()
    assert main(["run", "ns_hard_maze", "--set", "novelty_search.archive_mode=often",
                 "--out", str(tmp_path / "bad")]) == 2


# -- novelty search explores the deceptive maze; the fitness-driven GA does not ---------------------
def _coverage_run(name, seed, budget, batch):
    config = resolve(load_raw(name), [f"budget.evaluations={budget}", f"batch_size={batch}",
                                      f"seed={seed}"])
    return build_run(config, None, progress=False).run()


def test_ns_covers_more_of_the_hard_maze_than_the_ga():
    ns = _coverage_run("ns_hard_maze", 0, 3000, 100)
    ga = _coverage_run("ga_hard_maze", 0, 3000, 100)
    assert ns["coverage"] > 1.4 * ga["coverage"]  # measured 1.7-1.9 on seeds 0-3


@pytest.mark.slow
def test_ns_solves_the_hard_maze_where_the_ga_gets_trapped():
    from experiments.results.hard_maze_ns_vs_ga import run_pair

    results = [run_pair(seed) for seed in range(3)]
    assert sum(r["ns"]["solved"] for r in results) >= 2
    assert sum(r["ga"]["solved"] for r in results) <= 1
