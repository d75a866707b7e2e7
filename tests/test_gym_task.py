"""The ``gym`` task: any Gymnasium environment with a user descriptor function."""

from __future__ import annotations

import pickle

import gymnasium
import numpy as np
import pytest
import torch

from experiments.examples import gym_descriptors
from tasks import TASKS, make_task
from tasks.gym_task import GymTask

EXAMPLES = "experiments.examples.gym_descriptors"
PENDULUM = dict(env_id="Pendulum-v1", descriptor=f"{EXAMPLES}:pendulum_upright_and_spin",
                descriptor_bounds=[[-1.0, 1.0], [-8.0, 8.0]])
INVERTED = dict(env_id="InvertedPendulum-v5", descriptor=f"{EXAMPLES}:inverted_pendulum_cart",
                descriptor_bounds=[[-1.0, 1.0], [-0.2, 0.2]])


# -- a tiny registered environment to provoke non-finite values and check action scaling ------
class ProbeEnv(gymnasium.Env):
    """Observation = (action received, step count); action in [0, 10]. An action in
    (7.4, 7.6) makes the next observation NaN, one below 0.5 makes the reward +inf."""

    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gymnasium.spaces.Box(0.0, 10.0, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([self.np_random.uniform(), 0.0]), {}

    def step(self, action):
        self.t += 1
        a = float(action[0])
        obs = np.array([np.nan if 7.4 < a < 7.6 else a, self.t])
        reward = np.inf if a < 0.5 else 1.0
        return obs, reward, False, False, {}


gymnasium.register("NeuroqdProbe-v0", entry_point=f"{__name__}:ProbeEnv", max_episode_steps=8)


def first_obs(observations, lengths):
    return observations[:, 0, :2]


def wrong_shape(observations, lengths):
    return np.zeros((len(observations), 3))


def raises(observations, lengths):
    raise RuntimeError("boom")


PROBE = dict(env_id="NeuroqdProbe-v0", descriptor=f"{__name__}:first_obs",
             descriptor_bounds=[[-100.0, 100.0], [-100.0, 100.0]])


def test_registered_with_defaults():
    assert TASKS["gym"] == "tasks.gym_task:GymTask"
    task = make_task("gym", **PENDULUM, episode_length=200)
    assert (task.obs_dim, task.action_dim, task.action_bounds) == (3, 1, (-1.0, 1.0))
    assert task.descriptor_dim == 2 and task.descriptor_bounds == [(-1.0, 1.0), (-8.0, 8.0)]
    assert task.descriptor_names == ("descriptor 1", "descriptor 2")
    assert task.episode_length == 200 and task.fitness_offset == 0.0
    # The env's TimeLimit (200 for Pendulum) caps a longer episode_length.
    assert make_task("gym", **PENDULUM, episode_length=500).episode_length == 200
    clone = pickle.loads(pickle.dumps(task))
    assert clone.descriptor == task.descriptor and clone._descriptor_fn is task._descriptor_fn


def by_hand(env_id, seed, actions, low, high, episode_length):
    """One Gymnasium env stepped by hand: (return, length, terminated, observations)."""
    env = gymnasium.make(env_id)
    obs, _ = env.reset(seed=seed % 2 ** 32)
    observations, total, terminated = [obs], 0.0, False
    for a in actions:
        scaled = low + (np.clip(a, -1, 1) + 1) / 2 * (high - low)
        obs, reward, terminated, truncated, _ = env.step(scaled.astype(np.float32))
        observations.append(obs)
        total += float(reward)
        if terminated or truncated or len(observations) - 1 == episode_length:
            break
    env.close()
    return total, len(observations) - 1, terminated, np.asarray(observations, np.float32)


@pytest.mark.parametrize("params, steps", [(PENDULUM, 60), (INVERTED, 40)])
def test_batched_env_matches_single_envs_by_hand(params, steps):
    task = GymTask(**params, episode_length=steps)
    seeds = torch.tensor([5, -7, 2 ** 40 + 3], dtype=torch.int64)
    rng = np.random.default_rng(0)
    # Large actions make InvertedPendulum fall early and at different steps per row.
    actions = rng.uniform(-1.5, 1.5, size=(steps, 3, task.action_dim))
    env = task.make_env(3)
    env.reset(seeds)
    for t in range(steps):
        env.step(torch.as_tensor(actions[t], dtype=torch.float32))
    out = env.outcome()
    T = env.t
    for i, seed in enumerate(seeds.tolist()):
        total, length, terminated, obs = by_hand(params["env_id"], seed, actions[:, i],
                                                 task.action_low, task.action_high, steps)
        assert out.fitness[i].item() == pytest.approx(total, rel=1e-5, abs=1e-4)
        assert out.info["length"][i].item() == length
        assert bool(out.info["terminated"][i]) == terminated
        padded = np.concatenate([obs, np.repeat(obs[-1:], T + 1 - len(obs), axis=0)])
        np.testing.assert_allclose(env._observations[i, : T + 1], padded, rtol=1e-6)
        expected = task._descriptor_fn(padded[None], np.array([length]))
        np.testing.assert_allclose(out.descriptors[i].numpy(),
                                   np.clip(expected[0], *np.array(task.descriptor_bounds).T),
                                   rtol=1e-5, atol=1e-6)
    assert not out.failed.any()
    if params is INVERTED:
        assert out.info["terminated"].any() and (out.info["length"] < steps).any()


def test_rows_are_frozen_after_they_end():
    task = GymTask(**INVERTED, episode_length=20)
    env = task.make_env(4)
    env.reset(torch.arange(4))
    pushes = torch.tensor([[1.0], [-1.0], [0.0], [1.0]])
    ended_at = {}
    for t in range(20):
        obs, reward, terminated, truncated = env.step(pushes)
        for i in range(4):
            if i in ended_at:  # already ended: nothing may change
                before = ended_at[i]
                assert bool(terminated[i] | truncated[i]) and reward[i].item() == 0.0
                assert torch.equal(obs[i], before["obs"])
                assert env.outcome().fitness[i] == before["fitness"]
            elif terminated[i] or truncated[i]:
                ended_at[i] = {"obs": obs[i].clone(), "fitness": env.outcome().fitness[i],
                               "step": t + 1}
    final = env.outcome()
    # The pushed carts fell early; the idle one is cut at episode_length.
    assert {i: e["step"] for i, e in ended_at.items()} == {i: int(n) for i, n in
                                                        enumerate(final.info["length"])}
    assert (final.info["length"][[0, 1, 3]] < 20).all() and final.info["length"][2] == 20
    assert final.info["terminated"].tolist() == [True, True, False, True]
    # Stepping past episode_length keeps every row done and nothing changes.
    obs, reward, terminated, truncated = env.step(pushes)
    assert (terminated | truncated).all() and (reward == 0).all()
    assert torch.equal(env.outcome().fitness, final.fitness)
    assert torch.equal(env.outcome().descriptors, final.descriptors)


def test_result_does_not_depend_on_batch_neighbours():
    task = GymTask(**PENDULUM, episode_length=30)
    policy = lambda obs: torch.tanh(obs @ torch.tensor([[0.5], [-1.0], [0.3]]))  # noqa: E731

    def run(seeds):
        env = task.make_env(len(seeds))
        obs = env.reset(torch.tensor(seeds))
        for _ in range(30):
            obs = env.step(policy(obs))[0]
        return env.outcome()

    alone, mixed = run([11]), run([3, 11, 4])
    assert alone.fitness[0] == mixed.fitness[1]
    assert torch.equal(alone.descriptors[0], mixed.descriptors[1])


def test_actions_are_rescaled_to_the_box():
    task = GymTask(**PROBE, episode_length=3)
    env = task.make_env(3)
    env.reset(torch.arange(3))
    obs = env.step(torch.tensor([[-0.8], [0.0], [5.0]]))[0]  # 5.0 is clipped to 1
    np.testing.assert_allclose(obs[:, 0].numpy(), [1.0, 5.0, 10.0], rtol=1e-6)


@pytest.mark.parametrize("bad", ["nan_action", "nan_obs", "inf_reward"])
def test_non_finite_values_fail_only_that_genome(bad):
    task = GymTask(**PROBE, episode_length=6)
    env = task.make_env(3)
    env.reset(torch.arange(3))
    for t in range(6):
        actions = torch.zeros(3, 1)  # rescaled to 5.0: reward 1 per step
        if t == 2:
            actions[1] = {"nan_action": float("nan"), "nan_obs": 0.5, "inf_reward": -1.0}[bad]
        obs, reward, terminated, truncated = env.step(actions)
        assert torch.isfinite(obs).all() and torch.isfinite(reward).all()
    out = env.outcome()
    assert out.failed.tolist() == [False, True, False]
    assert out.fitness[[0, 2]].tolist() == [6.0, 6.0]
    assert out.info["length"][[0, 2]].tolist() == [6, 6]
    if bad != "nan_action":  # a broken observation or reward also ends that row
        assert out.info["length"][1] == 3 and terminated[1]


@pytest.mark.parametrize("params, steps", [
    (PENDULUM, 200),
    (INVERTED, 100),
    (dict(env_id="HalfCheetah-v5", descriptor=f"{EXAMPLES}:half_cheetah_speed_and_pitch",
          descriptor_bounds=[[-5.0, 10.0], [-1.5, 1.5]]), 20),
])
def test_example_descriptors_are_in_bounds(params, steps):
    task = GymTask(**params, episode_length=steps)
    env = task.make_env(8)
    env.reset(torch.arange(8))
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        env.step(torch.rand(8, task.action_dim, generator=gen) * 2 - 1)
    out = env.outcome()
    assert out.descriptors.shape == (8, 2) and out.descriptors.dtype == torch.float32
    low, high = torch.tensor(task.descriptor_bounds).T
    assert ((out.descriptors >= low) & (out.descriptors <= high)).all()
    assert not out.failed.any() and out.descriptors.std(dim=0).min() > 0


def test_episode_mean_ignores_padding_and_reset():
    obs = np.zeros((2, 4, 1), np.float32)
    obs[0, :, 0] = [100, 1, 2, 3]
    obs[1, :, 0] = [100, 5, 5, 5]  # ended after 1 step, padded with its last observation
    obs[1, 1, 0] = 4
    obs[1, 2:, 0] = 4
    np.testing.assert_allclose(gym_descriptors.episode_mean(obs, np.array([3, 1]))[:, 0], [2, 4])
    np.testing.assert_allclose(gym_descriptors.episode_mean(obs, np.array([0, 0]))[:, 0],
                               [100, 100])


@pytest.mark.parametrize("override, key, words", [
    (dict(env_id=None), "task.env_id", "required"),
    (dict(env_id="Pendulm-v1"), "task.env_id", "Pendulum-v1"),
    (dict(env_id="no_such_module_xyz:Foo-v0"), "task.env_id", "no_such_module_xyz"),
    (dict(env_id="CartPole-v1"), "task.env_id", "action space"),
    (dict(env_id="FrozenLake-v1"), "task.env_id", "observation space"),
    (dict(descriptor=None), "task.descriptor", "required"),
    (dict(descriptor="gym_descriptors.pendulum"), "task.descriptor", "module:function"),
    (dict(descriptor="no_such_module_xyz:f"), "task.descriptor", "no_such_module_xyz"),
    (dict(descriptor=f"{EXAMPLES}:nope"), "task.descriptor", "nope"),
    (dict(descriptor=f"{__name__}:wrong_shape"), "task.descriptor", "(1, 3)"),
    (dict(descriptor=f"{__name__}:raises"), "task.descriptor", "boom"),
    (dict(descriptor_bounds=None), "task.descriptor_bounds", "required"),
    (dict(descriptor_bounds=[[1.0, 0.0], [0, 1]]), "task.descriptor_bounds", "low < high"),
    (dict(descriptor_bounds=[[0, 1, 2]]), "task.descriptor_bounds", "pairs"),
    (dict(descriptor_bounds="[0, 1]"), "task.descriptor_bounds", "pairs"),
    (dict(descriptor_names=["a"]), "task.descriptor_names", "2 strings"),
    (dict(env_kwargs=[1]), "task.env_kwargs", "mapping"),
    (dict(env_kwargs={"no_such_kwarg": 1}), "task.env_kwargs", "no_such_kwarg"),
    (dict(episode_length=0), "task.episode_length", "positive"),
])
def test_validation_errors_are_one_line_naming_the_key(override, key, words):
    with pytest.raises(ValueError) as info:
        make_task("gym", **{**PENDULUM, **override})
    message = str(info.value)
    assert message.startswith(key + ":") and "\n" not in message and words in message


def test_shipped_config_resolves_and_builds():
    from experiments.config import load_raw, resolve

    config = resolve(load_raw("me_gym_pendulum"))
    params = {k: v for k, v in config["task"].items() if k != "name"}
    task = make_task("gym", **params)
    assert task.descriptor_names == ("mean cos(theta)", "mean angular velocity")
    assert config["archive"]["dims"] == [20, 20] and config["budget"]["evaluations"] <= 4000


def test_evaluate_batch_end_to_end():
    from evo.policies import MLPPolicy
    from evo.workers.local import evaluate_batch

    task = GymTask(**PENDULUM, episode_length=50)
    policy = MLPPolicy(task.obs_dim, task.action_dim, hidden=(8,))
    genomes = torch.randn(5, policy.num_params, generator=torch.Generator().manual_seed(0))
    genomes[3] = float("nan")
    seeds = torch.arange(5)
    out = evaluate_batch(task, genomes, seeds, policy)
    assert out.failed.tolist() == [False, False, False, True, False]
    assert out.descriptors.shape == (5, 2) and (out.fitness[~out.failed] < 0).all()
    again = evaluate_batch(task, genomes[[4, 0]], seeds[[4, 0]], policy)
    assert torch.equal(again.fitness, out.fitness[[4, 0]])
