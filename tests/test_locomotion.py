"""Locomotion tasks (tasks.locomotion): Gymnasium v5 parity, batching, freezing, failures, trap."""

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco")
gymnasium = pytest.importorskip("gymnasium")

from tasks import TASKS, make_task  # noqa: E402
from tasks.base import is_control_task  # noqa: E402

LOCOMOTION = ["ant_omni", "anttrap_omni", "humanoid_omni", "ant_uni", "walker2d_uni",
              "halfcheetah_uni", "hopper_uni", "humanoid_uni"]
_ANT = dict(include_cfrc_ext_in_observation=False, contact_cost_weight=0.0)
_HUMANOID = dict(include_cinert_in_observation=False, include_cvel_in_observation=False,
                 include_qfrc_actuator_in_observation=False,
                 include_cfrc_ext_in_observation=False, contact_cost_weight=0.0)
# Gymnasium env id and kwargs that define the same robot, observation and reward terms.
GYMNASIUM = {
    "ant_omni": ("Ant-v5", _ANT), "anttrap_omni": ("Ant-v5", _ANT), "ant_uni": ("Ant-v5", _ANT),
    "humanoid_omni": ("Humanoid-v5", _HUMANOID), "humanoid_uni": ("Humanoid-v5", _HUMANOID),
    "walker2d_uni": ("Walker2d-v5", {}), "halfcheetah_uni": ("HalfCheetah-v5", {}),
    "hopper_uni": ("Hopper-v5", {}),
}
OFFSETS = {"ant_omni": 3.0, "anttrap_omni": 3.38, "humanoid_omni": 0.0, "ant_uni": 3.24,
           "walker2d_uni": 1.413, "halfcheetah_uni": 9.231, "hopper_uni": 0.9, "humanoid_uni": 0.0}


def _actions(task, steps, batch, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(
        (scale * rng.uniform(-1, 1, (steps, batch, task.action_dim))).astype(np.float32))


def _run(task, actions, seeds, threads=1):
    """Roll the env over actions (T, B, A); returns the outcome, the env and the stacked obs."""
    env = task.make_env(actions.shape[1], threads=threads)
    obs = [env.reset(seeds)]
    for a in actions:
        obs.append(env.step(a)[0])
    return env.outcome(), env, torch.stack(obs)


def _within_bounds(task, descriptors):
    low = torch.tensor([b[0] for b in task.descriptor_bounds])
    high = torch.tensor([b[1] for b in task.descriptor_bounds])
    return bool(((descriptors >= low) & (descriptors <= high)).all())


@pytest.mark.parametrize("name", LOCOMOTION)
def test_declarations(name):
    task = make_task(name)
    assert TASKS[name].startswith("tasks.locomotion:") and is_control_task(task)
    assert task.episode_length == 250 and task.reset_noise_scale == 0.0
    assert task.fitness_offset == pytest.approx(-OFFSETS[name] * 250)
    assert task.action_bounds == (-1.0, 1.0)
    assert task.action_dim == task.model.nu
    assert task.model is task.model  # compiled once, cached
    assert len(task.descriptor_bounds) == task.descriptor_dim == len(task.descriptor_names)
    env = task.make_env(2)
    obs = env.reset(torch.tensor([0, 1]))
    assert obs.shape == (2, task.obs_dim) and obs.dtype == torch.float32
    obs, reward, terminated, truncated = env.step(torch.zeros(2, task.action_dim))
    assert obs.shape == (2, task.obs_dim) and obs.dtype == torch.float32
    assert reward.shape == (2,) and reward.dtype == torch.float32
    assert terminated.dtype == truncated.dtype == torch.bool
    assert make_task(name, episode_length=1000).fitness_offset == pytest.approx(
        -OFFSETS[name] * 1000)


@pytest.mark.parametrize("noise", [0.0, 0.05])
@pytest.mark.parametrize("name", LOCOMOTION)
def test_matches_gymnasium(name, noise, tmp_path):
    """Same actions -> same observations, reward terms and terminations as Gymnasium's env."""
    steps = 300
    task = make_task(name, episode_length=steps, reset_noise_scale=noise)
    env_id, kwargs = GYMNASIUM[name]
    kwargs = dict(kwargs, reset_noise_scale=noise)
    if task.trap:  # Gymnasium's Ant on our trap model
        path = tmp_path / "anttrap.xml"
        path.write_text(task.model_xml())
        kwargs["xml_file"] = str(path)
    gym_env = gymnasium.make(env_id, **kwargs).unwrapped
    # Small actions keep the ant and the cheetah going for all 300 steps; the humanoid, walker
    # and hopper fall after 20-50 steps.
    actions = _actions(task, steps, 3, seed=1, scale=0.4)
    env = task.make_env(3, threads=2)
    obs = env.reset(torch.tensor([11, 12, 13]))
    gym_obs, _ = gym_env.reset(seed=12)  # row 1 of our batch
    skip = 2 if task.obs_xy_normalise else 0  # anttrap's (x, y) prefix is ours
    np.testing.assert_allclose(obs[1, skip:].numpy(), gym_obs, rtol=1e-6, atol=1e-6)
    total = 0.0
    for t in range(steps):
        obs, reward, terminated, truncated = env.step(actions[t])
        gym_obs, gym_reward, gym_terminated, _, info = gym_env.step(
            env.actions_to_controls(actions[t, 1].numpy()))
        np.testing.assert_allclose(obs[1, skip:].numpy(), gym_obs, rtol=1e-6, atol=1e-6)
        # The physics itself is the same computation: the float64 states agree to rounding.
        np.testing.assert_allclose(env.qpos[1], gym_env.data.qpos, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(env.qvel[1], gym_env.data.qvel, rtol=1e-12, atol=1e-12)
        if skip:
            np.testing.assert_allclose(
                obs[1, :2].numpy(), [(gym_env.data.qpos[0] - 15) / 15, gym_env.data.qpos[1] / 8],
                rtol=1e-6, atol=1e-6)
        for term in ("reward_forward", "reward_survive", "reward_ctrl"):
            if term == "reward_forward" and task.forward is None:
                assert env.reward_terms[term][1] == 0.0  # omni tasks drop the forward term
            else:
                assert env.reward_terms[term][1] == pytest.approx(info.get(term, 0.0), abs=1e-6)
        want = gym_reward if task.forward else info["reward_survive"] + info["reward_ctrl"]
        assert float(reward[1]) == pytest.approx(want, rel=1e-6, abs=1e-6)
        total += want
        assert bool(terminated[1]) == gym_terminated
        if gym_terminated:
            break
    assert t > 10  # enough of a comparison
    assert bool(truncated[1]) == (t == steps - 1 and not gym_terminated)
    out = env.outcome()
    assert float(out.fitness[1]) == pytest.approx(total, rel=1e-5, abs=1e-4)
    assert int(out.info["episode_steps"][1]) == t + 1
    assert not out.failed.any() and _within_bounds(task, out.descriptors)
    if task.feet is None:  # final torso (x, y)
        np.testing.assert_allclose(out.descriptors[1].numpy(),
                                   np.clip(gym_env.data.qpos[:2], *np.array(task.descriptor_bounds).T),
                                   rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["ant_uni", "hopper_uni", "anttrap_omni"])
def test_independent_of_batch_and_threads(name):
    """A genome's outcome is bit-identical alone, among 5, and on 1 or 2 threads."""
    task = make_task(name, episode_length=60, reset_noise_scale=0.1)
    actions = _actions(task, 60, 5, seed=3, scale=0.8)
    seeds = torch.tensor([5, 6, 7, 8, 9])
    full, _, obs = _run(task, actions, seeds, threads=1)
    for other in (_run(task, actions, seeds, threads=2), _run(task, actions, seeds, threads=2)):
        assert torch.equal(other[0].fitness, full.fitness)
        assert torch.equal(other[0].descriptors, full.descriptors)
        assert torch.equal(other[2], obs)
    for i in (0, 3):
        alone, _, alone_obs = _run(task, actions[:, i:i + 1], seeds[i:i + 1], threads=2)
        assert torch.equal(alone.fitness, full.fitness[i:i + 1])
        assert torch.equal(alone.descriptors, full.descriptors[i:i + 1])
        assert torch.equal(alone_obs[:, 0], obs[:, i])
    assert _within_bounds(task, full.descriptors)


def test_reset_noise_is_seeded_per_genome():
    task = make_task("ant_omni", reset_noise_scale=0.1)
    env = task.make_env(4)
    obs = env.reset(torch.tensor([1, 2, 1, 3]))
    assert torch.equal(obs[0], obs[2])
    assert not torch.equal(obs[0], obs[1]) and not torch.equal(obs[1], obs[3])
    again = task.make_env(2).reset(torch.tensor([3, 1]))
    assert torch.equal(again[0], obs[3]) and torch.equal(again[1], obs[0])
    quiet = make_task("ant_omni").make_env(3).reset(torch.tensor([1, 2, 3]))
    assert torch.equal(quiet[0], quiet[1]) and torch.equal(quiet[1], quiet[2])
    with pytest.raises(ValueError):
        env.reset(None)


def test_ended_rows_are_frozen():
    """Terminated and truncated rows stop: no physics, no reward, unchanged outcome."""
    task = make_task("hopper_uni", episode_length=40)
    actions = _actions(task, 60, 4, seed=0)
    actions[:, 3] = 0.0  # a hopper standing still lasts the whole episode
    env = task.make_env(4)
    env.reset(torch.arange(4))
    time = env.batch.bind("time")
    done_at = {}
    for t in range(60):
        before = (env.qpos.copy(), time.copy(), env.outcome())
        obs, reward, terminated, truncated = env.step(actions[t])
        ended = terminated | truncated
        for i in done_at:  # rows that had ended before this step
            assert np.array_equal(env.qpos[i], before[0][i]) and time[i] == before[1][i]
            assert reward[i] == 0.0 and ended[i]
            assert env.outcome().fitness[i] == before[2].fitness[i]
            assert torch.equal(env.outcome().descriptors[i], before[2].descriptors[i])
        for i in ended.nonzero().flatten().tolist():
            done_at.setdefault(i, t)
    assert done_at[3] == 39 and bool(truncated[3]) and not terminated[3]  # cut at its length
    assert any(t < 39 for t in done_at.values())  # some fell earlier
    assert not (terminated & truncated).any()
    steps = env.outcome().info["episode_steps"]
    assert steps.tolist() == [done_at[i] + 1 for i in range(4)]


def test_unstable_genome_fails_alone():
    """NaN injected into one simulation's qvel fails that genome; its neighbours go on intact."""
    task = make_task("ant_uni", episode_length=30)
    actions = _actions(task, 30, 3, seed=2, scale=0.3)
    clean, _, clean_obs = _run(task, actions, torch.arange(3))
    env = task.make_env(3, threads=2)
    env.reset(torch.arange(3))
    for t in range(30):
        if t == 10:
            env.qvel[1, 4] = np.nan  # the test hook: the state is a live view
        obs, reward, terminated, truncated = env.step(actions[t])
        if t == 10:
            assert bool(terminated[1]) and not terminated[[0, 2]].any()
            assert torch.equal(obs[1], torch.zeros(task.obs_dim))
    out = env.outcome()
    assert out.failed.tolist() == [False, True, False]
    assert int(out.info["episode_steps"][1]) == 10
    for i in (0, 2):
        assert out.fitness[i] == clean.fitness[i]
        assert torch.equal(out.descriptors[i], clean.descriptors[i])
        assert torch.equal(obs[i], clean_obs[-1, i])


def test_action_mapping_onto_ctrlrange():
    task = make_task("humanoid_omni")
    env = task.make_env(1)
    controls = env.actions_to_controls(np.array([[-2.0] + [-1.0] * 7 + [0.0, 0.5] + [1.0] * 7]))
    assert controls[0, 0] == controls[0, 1] == -0.4 and controls[0, -1] == 0.4
    assert controls[0, 8] == 0.0 and controls[0, 9] == pytest.approx(0.2)
    env.reset(torch.zeros(1, dtype=torch.int64))
    env.step(torch.ones(1, 17))
    assert env.reward_terms["reward_ctrl"][0] == pytest.approx(-0.1 * 17 * 0.16)


def test_anttrap_blocks_an_ant_pushed_forward():
    """An ant pushed along +x (a force on its torso) stops at the trap's wall; without the
    trap the same push carries it far."""
    final = {}
    for name in ("anttrap_omni", "ant_omni"):
        task = make_task(name, episode_length=250)
        env = task.make_env(1)
        env.reset(torch.zeros(1, dtype=torch.int64))
        push = env.batch.bind("xfrc_applied")
        push[0, 1, 0], push[0, 1, 2] = 15.0, -30.0  # forward, and down to keep it on its feet
        max_x = 0.0
        for _ in range(250):
            _, _, terminated, truncated = env.step(torch.zeros(1, 8))
            max_x = max(max_x, float(env.qpos[0, 0]))
        assert bool(truncated[0]) and not terminated[0]
        final[name] = (max_x, env.outcome().descriptors[0])
    max_x, descriptor = final["anttrap_omni"]
    assert 9.0 < max_x < 11.6  # the front wall's inner face is at x = 11.5
    assert 9.0 < descriptor[0] < 11.6 and abs(descriptor[1]) < 1.0
    assert final["ant_omni"][0] > 20.0
