"""The Deep GA: truncation and elitism, improvement, seed-chain genomes, exact resume,
failed genomes, and the command line."""

import json
import math

import numpy as np
import pytest
from run_helpers import split_and_resume
import torch

from archives import load_archive, make_archive
from evo.algorithms.deep_ga import DeepGA
from evo.build import build_algorithm, genome_space
from evo.genomes import ChainDecoder
from evo.workers.local import LocalEvaluator, evaluate_batch
from experiments.cli import main
from experiments.config import resolve
from tasks import Evaluation
from tasks.functions import Arm

ARM = {"name": "arm", "dof": 8}
MAZE = {"name": "hard_maze", "episode_length": 12}


def _raw(task, batch=32, seed=0, dims=(20, 20), **ga):
    return {"algorithm": "deep_ga", "task": dict(task), "batch_size": batch, "seed": seed,
            "archive": {"type": "grid", "dims": list(dims)}, "deep_ga": ga}


def _make(task, batch=32, seed=0, **ga) -> DeepGA:
    return build_algorithm(resolve(_raw(task, batch, seed, **ga)))


def test_truncation_and_elitism_on_a_deterministic_task():
    T = 6
    algo = _make(ARM, batch=40, truncation=T, sigma=0.05)
    prev_elite, prev_fit = None, -math.inf
    for generation in range(12):
        genomes = algo.ask()
        assert genomes.shape == ((40 if generation == 0 else 39), 8)
        assert bool(((genomes >= 0) & (genomes <= 1)).all())  # mutations clipped to the bounds
        ev = algo.evaluate(genomes)
        stats = algo.tell(genomes, ev)
        # the elite never gets worse; when nothing beat it, it is the very same genome
        assert stats["elite_fitness"] >= prev_fit
        if stats["elite_fitness"] == prev_fit:
            assert torch.equal(algo.elite, prev_elite)
        assert stats["best_fitness"] == pytest.approx(float(ev.fitness.max()))
        assert algo.task.evaluate(algo.elite[None]).fitness.item() == pytest.approx(
            stats["elite_fitness"], abs=1e-7)
        # the parents are the top T of the population (previous elite + offspring)
        population = ev.fitness if prev_elite is None else torch.cat(
            [torch.tensor([prev_fit]), ev.fitness])
        top = population.sort(descending=True).values[:T]
        parents = algo.task.evaluate(algo.parents).fitness
        assert torch.allclose(parents, top, atol=1e-7)
        prev_elite, prev_fit = algo.elite.clone(), stats["elite_fitness"]
    assert algo.evaluations == 40 + 11 * 39  # the elite is carried over, never re-evaluated


@pytest.mark.parametrize("task,sigma,gain", [(ARM, 0.05, 0.04), ({"name": "sphere", "dim": 10}, 0.2, 4.0)])
def test_the_ga_improves_fitness(task, sigma, gain):
    algo = _make(task, batch=100, truncation=10, sigma=sigma)
    first = algo.step()["elite_fitness"]
    for _ in range(25):
        last = algo.step()
    assert last["elite_fitness"] > first + gain
    assert last["mean_fitness"] <= last["best_fitness"] <= last["elite_fitness"]


def _by_hand(policy, chain) -> torch.Tensor:
    """theta_0 = init(s_0); theta_k = theta_{k-1} + sigma_k * eps(s_k), written out plainly."""
    theta = policy.init(1, torch.Generator().manual_seed(chain[0][0]))[0]
    for seed, sigma in chain[1:]:
        eps = torch.randn(policy.num_params, generator=torch.Generator().manual_seed(seed))
        theta = theta + eps * torch.tensor(sigma, dtype=torch.float32)
    return theta


def test_chain_genomes_decode_exactly_and_the_archive_stores_ids():
    algo = _make(MAZE, batch=24, truncation=4, sigma=0.1, genome="chain")
    for _ in range(5):
        algo.step()
    genomes = algo.ask()
    stats = algo.tell(genomes, algo.evaluate(genomes))
    assert algo.archive.solution_dim == 0 and "genome_id" in algo.archive.extra_fields
    elites = algo.archive.elites()
    ids = elites["genome_id"]
    assert elites["genomes"].shape == (len(ids), 0)
    # the table holds exactly what the archive and the population reference
    assert set(algo.chain_table) == set(ids.tolist()) | set(algo.parents) | {algo.elite}
    policy = algo.evaluator.factory.policy
    chains = algo.chains(ids)
    assert max(len(c) for c in chains) >= 2
    expected = torch.stack([_by_hand(policy, c) for c in chains])
    assert torch.equal(algo.decode(ids), expected)  # through the run's cache
    assert torch.equal(ChainDecoder.for_policy(policy, cache_size=0).decode_batch(chains), expected)
    ev = evaluate_batch(algo.task, expected, torch.zeros(len(ids), dtype=torch.int64), policy)
    assert torch.allclose(ev.fitness, elites["fitness"], atol=1e-4)
    assert torch.allclose(ev.descriptors, elites["descriptors"], atol=1e-5)
    # bytes of float32 parameters over bytes of chains, for the generation just evaluated
    assert stats["chain_compression"] == pytest.approx(
        len(genomes) * policy.num_params * 4 / sum(c.nbytes for c in genomes))
    assert algo.summary()["chain_compression"] == stats["chain_compression"]


@pytest.mark.parametrize("task,ga", [
    (ARM, {"sigma": 0.05, "truncation": 5}),
    (MAZE, {"genome": "chain", "sigma": 0.1, "truncation": 5}),
    (ARM, {"truncation": 5, "elite_candidates": 3, "elite_reevaluations": 2}),
], ids=["flat", "chain", "reevaluations"])
def test_resume_is_exact(tmp_path, task, ga):
    raw = dict(_raw(task, batch=20, seed=4, **ga), log_every=1, checkpoint_every=2,
               budget={"evaluations": 200})
    whole, resumed = split_and_resume(raw, tmp_path, 90)
    a, b = whole.algorithm, resumed.algorithm
    sa, sb = a.archive.state_dict(), b.archive.state_dict()
    assert sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k]) for k in sa)
    if a.genome == "chain":
        assert a.chain_table == b.chain_table and a.parents == b.parents and a.elite == b.elite
    else:
        assert torch.equal(a.parents, b.parents) and torch.equal(a.elite, b.elite)
    assert torch.equal(a.generator.get_state(), b.generator.get_state())


class NoisyArm(Arm):
    """The arm with seed-dependent fitness noise: a stochastic task."""

    def evaluate(self, genomes, seeds=None):
        ev = super().evaluate(genomes, seeds)
        noise = torch.stack([torch.randn((), generator=torch.Generator().manual_seed(int(s)))
                             for s in seeds])
        return Evaluation(ev.fitness + 0.01 * noise, ev.descriptors)


def test_elite_reevaluation_counts_and_picks_the_best_mean():
    task = NoisyArm()
    dim, init, bounds = genome_space(task, None)
    calls = []
    inner = LocalEvaluator(task)

    def recording(genomes, seeds):
        ev = inner(genomes, seeds)
        calls.append((genomes.clone(), ev))
        return ev

    archive = make_archive({"type": "grid", "dims": [10, 10]}, dim, task.descriptor_bounds,
                           task.fitness_offset)
    algo = DeepGA(task, recording, archive, 20, init, bounds, truncation=5, sigma=0.05,
                  elite_candidates=3, elite_reevaluations=4)
    algo.step()
    assert algo.evaluations == 20 + 3 * 4
    algo.step()
    assert algo.evaluations == 20 + 3 * 4 + 19 + 3 * 4
    candidates, ev = calls[-1]  # the re-evaluation batch: 3 candidates x 4 episodes
    means = ev.fitness.view(3, 4).mean(dim=1)
    best = int(means.argmax())
    assert algo.elite_fitness == pytest.approx(float(means[best]))
    assert torch.equal(algo.elite, candidates[4 * best])
    assert len(algo.archive) <= 20 + 19  # re-evaluations are not archived


def test_nan_genomes_fail_and_never_enter_archive_or_population():
    algo = _make(ARM, batch=16, truncation=4)
    algo.step()
    genomes = algo.ask()
    genomes[3] = float("nan")
    ev = algo.evaluate(genomes)
    assert bool(ev.failed[3]) and int(ev.failed.sum()) == 1
    algo.tell(genomes, ev)
    assert algo.failed_evaluations == 1
    assert bool(torch.isfinite(algo.archive.elites()["genomes"]).all())
    assert bool(torch.isfinite(algo.parents).all()) and bool(torch.isfinite(algo.elite).all())
    # a generation where everything fails keeps the elite and breeds from it alone
    elite, fit = algo.elite.clone(), algo.elite_fitness
    genomes = torch.full_like(algo.ask(), float("nan"))
    stats = algo.tell(genomes, algo.evaluate(genomes))
    assert math.isnan(stats["best_fitness"]) and stats["elite_fitness"] == fit
    assert torch.equal(algo.elite, elite) and algo.parents.shape == (1, 8)
    assert algo.failed_evaluations == 1 + 15


def test_bad_settings_name_their_key(capsys):
    assert main(["run", "deep_ga_arm", "--set", "deep_ga.genome=tree"]) == 2
    assert "deep_ga.genome" in capsys.readouterr().err
    assert main(["run", "deep_ga_arm", "--set", "deep_ga.truncation=0"]) == 2
    assert "deep_ga.truncation" in capsys.readouterr().err
    assert main(["run", "deep_ga_arm", "--set", "deep_ga.mutation=3"]) == 2
    assert "deep_ga.mutation: unknown key" in capsys.readouterr().err


def test_cli_runs_the_arm_config(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "deep_ga_arm", "--set", "budget.evaluations=3000", "--set",
                 "batch_size=256", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 256 + 11 * 255 and summary["coverage"] > 0
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"best_fitness", "mean_fitness", "elite_fitness"} <= set(header)
    assert (out / "heatmap.png").exists()


def test_cli_runs_chain_genomes_on_the_maze(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "ga_hard_maze", "--set", "task.episode_length=10", "--set",
                 "batch_size=16", "--set", "budget.evaluations=80", "--set",
                 "deep_ga.genome=chain", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chain_compression"] > 0 and "solved" in summary
    archive = load_archive(out / "archive.npz")
    assert archive.solution_dim == 0 and "genome_id" in archive.extra_fields
    assert "chain_compression" in (out / "metrics.csv").read_text().splitlines()[0]
