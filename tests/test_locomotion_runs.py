"""Locomotion runs end to end: the same seed gives the same run on every backend, worker count
and physics thread count, transitions come back from every backend, and a run killed with
SIGKILL resumes exactly."""

import pytest
import torch

from evo.build import build_run
from evo.policies import MLPPolicy
from evo.workers.local import LocalEvaluator, WorkerFactory
from evo.workers.pool import ProcessEvaluator
from experiments.config import resolve
from run_helpers import sigkill_then_resume
from tasks import make_task

TINY = {"task": {"name": "ant_omni", "episode_length": 40}, "policy": {"hidden": [8]},
        "archive": {"type": "grid", "dims": [20, 20]}, "batch_size": 12,
        "budget": {"evaluations": 36}, "log_every": 1, "checkpoint_every": 0}


def run(raw: dict, **workers):
    config = resolve({**raw, "workers": {"backend": "local", "count": 1, **workers}})
    engine = build_run(config, progress=False)
    try:
        summary = engine.run()
    finally:
        engine.algorithm.evaluator.close()
    summary.pop("time_s")
    return summary, engine.algorithm.archive.elites()


def same(a, b):
    return a[0] == b[0] and all(torch.equal(a[1][k], b[1][k]) for k in a[1])


@pytest.mark.parametrize("raw", [
    {**TINY, "algorithm": "map_elites"},
    {**TINY, "algorithm": "deep_ga", "deep_ga": {"genome": "chain", "sigma": 0.05, "truncation": 4}},
    {**TINY, "algorithm": "deep_ga", "deep_ga": {"genome": "flat", "sigma": 0.05, "truncation": 4}},
], ids=["map_elites", "deep_ga_chain", "deep_ga_flat"])
def test_ant_omni_gives_the_same_run_on_every_backend_and_thread_count(raw):
    local = run(raw)
    assert local[0]["evaluations"] >= 36 and local[0]["failed_evaluations"] == 0
    assert same(local, run(raw, threads=2))
    assert same(local, run(raw, backend="process", count=2))
    assert same(local, run(raw, backend="process", count=3, threads=2))


def test_transitions_from_mujoco_workers_match_in_process():
    task = make_task("ant_omni", episode_length=30)
    policy = MLPPolicy(task.obs_dim, task.action_dim, hidden=(8,))
    params = policy.init(6, torch.Generator().manual_seed(0)) * 3  # large weights: some ants fall
    seeds = torch.arange(6)
    local = LocalEvaluator(task, policy, threads=2)(params, seeds, transitions=True)
    pool = ProcessEvaluator(WorkerFactory(task, policy), 2)
    try:
        remote = pool(params, seeds, transitions=True)
    finally:
        pool.close()
    tr = local.transitions
    assert len(tr) == 6 * 30 and tr.obs.shape == (180, task.obs_dim)
    assert tr.action.shape == (180, task.action_dim) and tr.descriptor.shape == (180, 2)
    ended = (tr.terminated | tr.truncated).view(6, 30)
    # every episode ends exactly once, and nothing after its end is a valid transition
    valid = tr.valid.view(6, 30)
    falls = 0
    for g in range(6):
        end = int(ended[g].nonzero()[0, 0])
        assert valid[g, : end + 1].all() and not valid[g, end + 1:].any()
        last = g * 30 + end  # the last real step keeps its true next observation
        assert tr.next_obs[last].abs().sum() > 0 and not tr.obs[last + 1:(g + 1) * 30].any()
        falls += bool(tr.terminated[last])
    assert 0 < falls < 6  # some ants fell (terminated), some ran out of time (truncated)
    assert torch.allclose(tr.reward.view(6, 30).mul(valid).sum(1), local.fitness, atol=1e-3)
    for f in tr.FIELDS:
        assert torch.equal(getattr(tr, f), getattr(remote.transitions, f)), f


def test_me_ant_omni_killed_then_resumed_equals_an_uninterrupted_run(tmp_path):
    sigkill_then_resume(tmp_path, ["me_ant_omni", "--set", "batch_size=16", "--set",
                                   "budget.evaluations=192", "--set", "task.episode_length=60",
                                   "--set", "checkpoint_every=2", "--set", "log_every=1",
                                   "--set", "policy.hidden=[16]"], checkpoints=2)


def test_missing_mujoco_is_a_one_line_error_naming_what_to_install(tmp_path):
    import subprocess
    import sys

    # A sitecustomize that hides mujoco.batch, as on MuJoCo < 4.0.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nsys.modules['mujoco.batch'] = None\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "experiments.cli", "run", "me_ant_omni",
                           "--out", str(tmp_path / "run")], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "task.name: 'ant_omni' needs mujoco >= 4.0" in lines[0], lines


@pytest.mark.slow
@pytest.mark.parametrize("raw", [
    {**TINY, "algorithm": "map_elites"},
    {**TINY, "task": {"name": "hard_maze", "episode_length": 40}, "algorithm": "deep_ga",
     "deep_ga": {"genome": "chain", "sigma": 0.05, "truncation": 4}},
], ids=["ant_omni_map_elites", "hard_maze_deep_ga_chain"])
def test_ray_actors_give_the_same_run_as_in_process(raw):
    assert same(run(raw), run(raw, backend="ray", count=2, threads=2))
