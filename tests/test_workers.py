"""Backends give the same results as in-process evaluation, whatever the worker count, and
survive workers that die or hang."""

import csv
import os
import signal
import threading

import pytest
import torch

from archives import make_archive
from evo.algorithms.map_elites import MapElites
from evo.build import UniformInit, build_run
from evo.engine import Engine
from evo.workers.local import LocalEvaluator, WorkerFactory
from evo.workers.pool import ProcessEvaluator, split_slices
from experiments.config import load_raw, resolve
from worker_tasks import HangOnceArm, SlowArm


def run(name="me_arm", overrides=("budget.evaluations=1536", "batch_size=512"), **flags):
    config = resolve(load_raw(name), list(overrides), **flags)
    engine = build_run(config, progress=False)
    try:
        summary = engine.run()
    finally:
        engine.algorithm.evaluator.close()
    return summary, engine.algorithm.archive.elites()


def same(a, b):
    (sa, ea), (sb, eb) = a, b
    return (sa["qd_score"] == sb["qd_score"] and sa["coverage"] == sb["coverage"]
            and all(torch.equal(ea[k], eb[k]) for k in ea))


def test_process_pool_matches_local():
    assert same(run(), run(backend="process", workers=2))


@pytest.mark.parametrize("genome", ["flat", "chain"])
def test_process_pool_matches_local_on_the_maze(genome):
    over = ["budget.evaluations=600", "batch_size=200", f"deep_ga.genome={genome}",
            "task.episode_length=100"]
    local = run("ga_hard_maze", over)
    assert same(local, run("ga_hard_maze", over, backend="process", workers=2))
    assert same(local, run("ga_hard_maze", over, backend="process", workers=3))


def test_slices_cover_the_batch_in_order():
    s = split_slices(10, 3)
    assert [list(range(10))[x] for x in s] == [[0, 1, 2], [3, 4, 5, 6], [7, 8, 9]]
    assert split_slices(2, 4) == [slice(0, 1), slice(1, 2)]


def _batch(n=64, dim=8):
    genomes = torch.rand((n, dim), generator=torch.Generator().manual_seed(1))
    return genomes, torch.arange(n, dtype=torch.int64)


def _equal(a, b):
    return (torch.equal(a.fitness, b.fitness) and torch.equal(a.descriptors, b.descriptors)
            and torch.equal(a.failed, b.failed))


def test_transitions_come_back_from_worker_processes():
    from tasks import make_task
    from evo.policies import MLPPolicy

    task = make_task("hard_maze", episode_length=20)
    policy = MLPPolicy(task.obs_dim, task.action_dim)
    params = policy.init(10, torch.Generator().manual_seed(0))
    seeds = torch.arange(10)
    local = LocalEvaluator(task, policy)(params, seeds, transitions=True)
    pool = ProcessEvaluator(WorkerFactory(task, policy), 3)
    try:
        remote = pool(params, seeds, transitions=True)
        assert pool(params, seeds).transitions is None
    finally:
        pool.close()
    assert _equal(local, remote)
    for f in local.transitions.FIELDS:  # genome indices shifted to the whole batch
        assert torch.equal(getattr(local.transitions, f), getattr(remote.transitions, f)), f


def _survives_a_worker_killed_mid_batch(evaluator, kill_after_s: float) -> None:
    """SIGKILL one of ``evaluator``'s workers during a batch of SlowArm evaluations."""
    genomes, seeds = _batch()
    expected = LocalEvaluator(SlowArm(delay=0.0))(genomes, seeds)
    try:
        victim = evaluator.pids[0]
        threading.Timer(kill_after_s, os.kill, (victim, signal.SIGKILL)).start()
        got = evaluator(genomes, seeds)
        assert evaluator.restarts == 1 and victim not in evaluator.pids
        assert _equal(got, expected)
        assert _equal(evaluator(genomes, seeds), expected)  # the replacement keeps working
    finally:
        evaluator.close()


def test_a_killed_worker_is_replaced_and_its_slice_evaluated_again():
    _survives_a_worker_killed_mid_batch(ProcessEvaluator(WorkerFactory(SlowArm(delay=1.5)), 2), 0.5)


def test_a_hung_worker_is_replaced_and_the_event_is_in_metrics(tmp_path):
    flag = tmp_path / "hang"
    task = HangOnceArm(str(flag))
    init = UniformInit(task.solution_dim, *task.solution_bounds)

    def engine(run_dir, evaluator):
        archive = make_archive({"type": "grid", "dims": [20, 20]}, task.solution_dim,
                               task.descriptor_bounds, task.fitness_offset)
        algo = MapElites(task, evaluator, archive, 128, init, task.solution_bounds, seed=3)
        return Engine(algo, 128 * 4, run_dir, log_every=1, checkpoint_every=0, progress=False)

    reference = engine(tmp_path / "local", LocalEvaluator(task))
    reference.run()
    flag.write_text("")  # one worker will hang on its first slice
    pool = ProcessEvaluator(WorkerFactory(task), 2, timeout_s=3.0)
    try:
        faulty = engine(tmp_path / "pool", pool)
        summary = faulty.run()
    finally:
        pool.close()
    assert not flag.exists() and summary["worker_restarts"] == 1
    assert summary["qd_score"] == reference.summary()["qd_score"]
    assert summary["evaluations"] == reference.summary()["evaluations"]  # nothing counted twice
    with open(tmp_path / "pool" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["worker_restarts"] for r in rows] == ["1"] * len(rows)


def test_worker_errors_and_unpicklable_factories_are_reported():
    from evo.workers.pool import WorkerFailure

    with pytest.raises(ValueError, match="cannot be pickled"):
        ProcessEvaluator(WorkerFactory(SlowArm(delay=0.0), policy=lambda x: x), 1)
    pool = ProcessEvaluator(WorkerFactory(SlowArm(delay=0.0)), 1)
    try:
        with pytest.raises(WorkerFailure, match="raised"):
            pool(["not", "genomes"], torch.arange(2))  # no decoder for these
        assert pool.restarts == 0
    finally:
        pool.close()


@pytest.mark.slow
def test_ray_actors_match_local():
    assert same(run(), run(backend="ray", workers=2))


@pytest.mark.slow
def test_a_killed_ray_actor_is_replaced():
    from evo.workers.ray_actors import RayEvaluator

    _survives_a_worker_killed_mid_batch(RayEvaluator(WorkerFactory(SlowArm(delay=2.0)), 2), 0.7)


def test_a_worker_builds_its_environments_once_and_reuses_them():
    from evo.policies import MLPPolicy
    from tasks import make_task

    task = make_task("ant_omni", episode_length=5)
    policy = MLPPolicy(task.obs_dim, task.action_dim, hidden=(4,))
    built = []
    make_env = task.make_env
    task.make_env = lambda *a, **k: built.append(a[0]) or make_env(*a, **k)
    worker = WorkerFactory(task, policy, threads=2)()
    params = policy.init(8, torch.Generator().manual_seed(0))
    first = worker.evaluate(params, torch.arange(8))
    for n in (8, 5, 8, 5):
        worker.evaluate(params[:n], torch.arange(n))
    assert built == [8, 5]  # one environment per batch size, the model compiled once
    assert _equal(worker.evaluate(params, torch.arange(8)), first)  # reuse changes nothing
