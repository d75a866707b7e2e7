"""Mazes (tasks.maze), their pictures (tasks.maze_plot) and the batched rollout (evo.workers.rollout).

Geometry is checked against hand-computed readings and against a plain-Python ray caster that
shares no code with the vectorised one.
"""

from __future__ import annotations

import math

import pytest
import torch

from evo.policies import MLPPolicy
from evo.workers.rollout import rollout
from tasks import ControlTask, make_task
from tasks.maze import HardMaze, MediumMaze

MAZES = [HardMaze, MediumMaze]


# -- references and controllers ----------------------------------------------------------------
def reference_rangefinders(task, pos, heading_deg):
    """Plain-Python ray casting: 6 readings, distance / 100 capped at 1."""
    readings = []
    for offset in (-90, -45, 0, 45, 90, 180):
        a = math.radians(heading_deg + offset)
        dx, dy = math.cos(a), math.sin(a)
        best = 100.0
        for x1, y1, x2, y2 in task.walls.tolist():
            ex, ey = x2 - x1, y2 - y1
            den = dx * ey - dy * ex
            if abs(den) < 1e-12:
                continue
            rx, ry = x1 - pos[0], y1 - pos[1]
            t = (rx * ey - ry * ex) / den
            u = (rx * dy - ry * dx) / den
            if t >= 0 and 0 <= u <= 1:
                best = min(best, t)
        readings.append(best / 100.0)
    return readings


def wall_clearance(task, positions):
    """(B,) distance from each position to the nearest wall segment (float64)."""
    p = positions.double()[:, None, :]
    w = task.walls.double()
    p1, e = w[:, :2], w[:, 2:] - w[:, :2]
    s = (((p - p1) * e).sum(-1) / (e * e).sum(-1)).clamp(0, 1)
    return (p - p1 - s[..., None] * e).norm(dim=-1).min(dim=1).values


def greedy_goal_seeker(obs):
    """Drive forward when the goal radar says 'ahead', otherwise turn towards it."""
    radar = obs[:, 7:11]
    return torch.stack([radar[:, 0], radar[:, 1] + radar[:, 2] - radar[:, 3]], dim=1)


def straight_driver(obs):
    return torch.tensor([[1.0, 0.0]]).expand(obs.shape[0], 2)


# Hand-placed waypoints through each maze (found by reading the wall list).
WAYPOINTS = {
    "hard_maze": [(60, 176), (95, 160), (114, 152), (135, 168), (172, 176), (170, 150), (120, 125),
                  (75, 102), (72, 75), (120, 60), (160, 48), (162, 20), (133, 19), (100, 18), (31, 20)],
    "medium_maze": [(45, 45), (66, 54), (85, 55), (99, 36), (122, 25), (128, 62), (135, 70),
                    (165, 55), (198, 50), (210, 80), (240, 75), (270, 80), (270, 100)],
}


def follow_waypoints(task, waypoints):
    """Steer one robot along waypoints using its true state; returns the outcome."""
    env = task.make_env(1)
    env.reset(torch.zeros(1, dtype=torch.int64))
    targets = torch.tensor(waypoints, dtype=torch.float32)
    k = 0
    for _ in range(task.episode_length):
        pos = env.positions[0]
        while k < len(targets) - 1 and (targets[k] - pos).norm() < 6:
            k += 1
        d = targets[k] - pos
        err = (math.atan2(d[1], d[0]) - math.radians(env.headings[0].item()) + math.pi) % (2 * math.pi) - math.pi
        turn = max(-1.0, min(1.0, math.degrees(err) / 3))
        speed = max(0.0, math.cos(err)) ** 16 * min(1.0, d.norm().item() / 3)
        env.step(torch.tensor([[speed, turn]]))
    return env.outcome()


# -- declarations --------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", MAZES)
def test_declarations_and_registry(cls):
    task = make_task(cls.name, episode_length=50)
    assert isinstance(task, cls) and isinstance(task, ControlTask)
    assert (task.obs_dim, task.action_dim, task.descriptor_dim) == (11, 2, 2)
    assert task.episode_length == 50 and task.has_goal and task.fitness_offset == -300.0
    assert task.walls.shape[1] == 4 and task.walls.dtype == torch.float32
    # The walls' bounding box, and every goal distance within it is above the fitness offset.
    x0, y0 = task.origin
    w, h = task.size
    assert x0 == float(task.walls[:, [0, 2]].min()) and x0 + w == float(task.walls[:, [0, 2]].max())
    assert y0 == float(task.walls[:, [1, 3]].min()) and y0 + h == float(task.walls[:, [1, 3]].max())
    corners = torch.tensor([[x0, y0], [x0 + w, y0], [x0, y0 + h], [x0 + w, y0 + h]])
    assert float((corners - task.goal).norm(dim=1).max()) < -task.fitness_offset  # fitness > offset


def test_start_observation_hard_maze():
    task = HardMaze()
    obs = task.make_env(3).reset(torch.arange(3))
    assert obs.shape == (3, 11) and obs.dtype == torch.float32
    assert torch.equal(obs[0], obs[2])
    assert obs[0, 0] == 1.0
    assert obs[0, 1] == 1.0  # -90 deg (up): nearest wall is 133 units away, beyond range
    # Goal (31, 20) is straight up from (36, 184) heading east: relative angle ~ 272 deg.
    assert obs[0, 7:].tolist() == [0.0, 0.0, 0.0, 1.0]


# -- sensors ---------------------------------------------------------------------------------------
def test_rangefinders_hand_checked():
    # Robot at (100, 190) heading east in the hard maze, just right of the short wall
    # (77,201)-(108,164). Distances computed by hand: up (-90) and west (180) hit the short wall
    # (at y = 173.55 and x = 86.22), up-right (-45) the diagonal (57,106)-(158,162), east (0)
    # the right wall (195,198)-(186,8), down-right (45) and down (90) the floor (7,202)-(195,198).
    task = HardMaze()
    env = task.make_env(1)
    obs = env.set_state(torch.tensor([[100.0, 190.0]]), torch.tensor([0.0]))
    expected = [16.45 / 100, 54.73 / 100, 94.62 / 100, 13.88 / 100, 10.02 / 100, 13.78 / 100]
    assert obs[0, 1:7].tolist() == pytest.approx(expected, abs=2e-4)


@pytest.mark.parametrize("cls", MAZES)
def test_rangefinders_match_reference(cls):
    task = cls()
    g = torch.Generator().manual_seed(0)
    n = 200
    pos = torch.rand(n, 2, generator=g) * torch.tensor(task.size) + torch.tensor(task.origin)
    heading = torch.rand(n, generator=g) * 720 - 360
    obs = task.make_env(n).set_state(pos, heading)
    ref = torch.tensor([reference_rangefinders(task, p.tolist(), h.item()) for p, h in zip(pos, heading)])
    assert torch.allclose(obs[:, 1:7], ref, atol=1e-4)
    assert ((obs[:, 1:7] >= 0) & (obs[:, 1:7] <= 1)).all()


@pytest.mark.parametrize("heading, slice_on", [
    (0.0, 3), (90.0, 2), (-90.0, 0), (180.0, 1), (-134.0, 0), (-136.0, 1), (-44.0, 3), (-46.0, 0),
])
def test_radar_slices(heading, slice_on):
    # Goal (31, 20) straight up from (31, 120): its direction is -90 deg; relative angle is
    # -90 - heading. Slices: 0 = [315, 45), 1 = [45, 135), 2 = [135, 225), 3 = [225, 315).
    task = HardMaze()
    obs = task.make_env(1).set_state(torch.tensor([[31.0, 120.0]]), torch.tensor([heading]))
    radar = [0.0] * 4
    radar[slice_on] = 1.0
    assert obs[0, 7:].tolist() == radar


def test_radar_matches_angles_everywhere():
    task = MediumMaze()
    g = torch.Generator().manual_seed(1)
    pos = torch.rand(500, 2, generator=g) * torch.tensor(task.size) + torch.tensor(task.origin)
    heading = torch.rand(500, generator=g) * 360
    obs = task.make_env(500).set_state(pos, heading)
    to_goal = task.goal - pos
    relative = (torch.rad2deg(torch.atan2(to_goal[:, 1], to_goal[:, 0])) - heading) % 360
    expected = ((relative + 45) % 360 // 90).long()
    assert torch.equal(obs[:, 7:].argmax(dim=1), expected)
    assert torch.equal(obs[:, 7:].sum(dim=1), torch.ones(500))


# -- motion and collisions -------------------------------------------------------------------------
def test_collision_cancels_move_but_not_turn():
    task = HardMaze()
    env = task.make_env(2)
    # Facing the floor (heading 90 = +y): row 0 is 9 units away (a 3-unit move would leave 6 < 8),
    # row 1 is 12 units away (9 >= 8 is allowed).
    floor_y = 202 - 93 * 4 / 188
    start = torch.tensor([[100.0, floor_y - 9], [100.0, floor_y - 12]])
    env.set_state(start, torch.tensor([90.0, 90.0]))
    env.step(torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
    pos = env.positions
    assert torch.allclose(pos[0], start[0])
    assert torch.allclose(pos[1], start[1] + torch.tensor([0.0, 3.0]), atol=1e-4)
    assert env.headings.tolist() == pytest.approx([93.0, 93.0], abs=1e-4)


def test_speed_and_turn_are_clamped():
    task = MediumMaze()
    env = task.make_env(1)
    env.set_state(torch.tensor([[200.0, 30.0]]), torch.tensor([0.0]))  # open space
    env.step(torch.tensor([[5.0, -7.0]]))
    assert env.positions[0].tolist() == pytest.approx([203.0, 30.0], abs=1e-4)
    assert env.headings[0].item() == pytest.approx(-3.0, abs=1e-4)


def test_driving_into_a_wall_stops_at_the_wall():
    task = HardMaze()
    env = task.make_env(1)
    env.set_state(task.start[None], torch.tensor([90.0]))  # straight down to the floor
    for _ in range(50):
        env.step(torch.tensor([[1.0, 0.0]]))
    gap = float(wall_clearance(task, env.positions)[0])
    assert task.robot_radius <= gap < task.robot_radius + task.max_speed
    # Heading east it stops before the short wall (77,201)-(108,164) and never crosses it.
    evaluation = rollout(straight_driver, task.make_env(1), 400, torch.zeros(1))
    x, y = task.descriptors_to_positions(evaluation.descriptors)[0].tolist()
    wall_x_at_y = 77 + 31 * (201 - y) / 37
    assert x < wall_x_at_y and float(wall_clearance(task, torch.tensor([[x, y]]))[0]) >= 8


@pytest.mark.parametrize("cls", MAZES)
def test_random_robots_never_touch_walls_and_descriptors_in_bounds(cls):
    task = cls(episode_length=150, record_trajectory=True)
    n = 64
    env = task.make_env(n)
    g = torch.Generator().manual_seed(2)
    drift = torch.rand(n, 2, generator=g) * 2 - 1  # persistent wandering, not jitter
    env.reset(torch.arange(n))
    for _ in range(task.episode_length):
        drift = (0.9 * drift + 0.3 * torch.randn(n, 2, generator=g)).clamp(-1, 1)
        env.step(drift)
    evaluation = env.outcome()
    traj = evaluation.info["trajectory"]
    assert traj.shape == (n, task.episode_length, 2) and traj.dtype == torch.float32
    assert float(wall_clearance(task, traj.reshape(-1, 2)).min()) >= task.robot_radius - 1e-3
    d = evaluation.descriptors
    assert d.shape == (n, 2) and ((d >= 0) & (d <= 1)).all()
    assert torch.allclose(task.descriptors_to_positions(d), traj[:, -1], atol=1e-4)
    assert not evaluation.failed.any()
    # Out-of-box positions are clipped into [0, 1]^2.
    outside = task.positions_to_descriptors(torch.tensor([[-50.0, 500.0]]))
    assert outside.tolist() == [[0.0, 1.0]]


def test_batched_equals_one_by_one():
    task = HardMaze()
    n, steps = 8, 120
    g = torch.Generator().manual_seed(3)
    actions = (torch.rand(steps, n, 2, generator=g) * 2 - 1).cumsum(0).div(3).clamp(-1, 1)
    env = task.make_env(n)
    obs_batched = [env.reset(torch.arange(n))]
    for k in range(steps):
        obs_batched.append(env.step(actions[k])[0])
    batched = env.outcome()
    for i in range(n):
        single = task.make_env(1)
        obs = single.reset(torch.tensor([i]))
        assert torch.allclose(obs[0], obs_batched[0][i], atol=1e-5)
        for k in range(steps):
            obs = single.step(actions[k, i:i + 1])[0]
            assert torch.allclose(obs[0], obs_batched[k + 1][i], atol=1e-5)
        outcome = single.outcome()
        assert torch.allclose(outcome.fitness, batched.fitness[i:i + 1], atol=1e-4)
        assert torch.allclose(outcome.descriptors, batched.descriptors[i:i + 1], atol=1e-5)


def test_rewards_sum_to_the_fitness_gain_and_ended_rows_freeze():
    task = MediumMaze(episode_length=5)
    env = task.make_env(2)
    env.reset(torch.arange(2))
    start_fitness = env.outcome().fitness
    total = torch.zeros(2)
    for k in range(5):
        _, reward, terminated, truncated = env.step(torch.tensor([[1.0, 0.5], [0.5, -1.0]]))
        assert truncated.dtype == torch.bool and truncated.tolist() == [k == 4] * 2
        assert not terminated.any()  # the maze has no terminal state
        total += reward
    assert torch.allclose(total, env.outcome().fitness - start_fitness, atol=1e-4)
    assert (total > 0).all()  # both robots got closer to the goal
    frozen = env.positions
    obs, reward, terminated, truncated = env.step(torch.ones(2, 2))
    assert truncated.all() and torch.equal(env.positions, frozen) and not reward.any()


def test_rollout_records_transitions_only_when_asked():
    task = MediumMaze(episode_length=7)
    policy = MLPPolicy(task.obs_dim, task.action_dim)
    params = policy.init(3, torch.Generator().manual_seed(0))
    plain = rollout(policy.bind(params), task.make_env(3), 7, torch.zeros(3))
    assert plain.transitions is None
    ev = rollout(policy.bind(params), task.make_env(3), 7, torch.zeros(3), transitions=True)
    tr = ev.transitions
    assert torch.equal(ev.fitness, plain.fitness)
    assert len(tr) == 3 * 7 and tr.valid.all() and tr.obs.dtype == torch.float32
    assert tr.genome.tolist() == [g for g in range(3) for _ in range(7)]
    # genome-major rows: next_obs of a step is the obs of the next step
    assert torch.equal(tr.next_obs[0:6], tr.obs[1:7])
    assert tr.truncated.view(3, 7)[:, -1].all() and not tr.truncated.view(3, 7)[:, :-1].any()
    assert torch.equal(tr.descriptor, ev.descriptors.repeat_interleave(7, dim=0))
    # the recorded actions are the policy's own, and rewards sum to the fitness gain
    assert torch.allclose(policy.bind(params[:1].expand(7, -1))(tr.obs[:7]), tr.action[:7])
    start = task.make_env(3)
    start.reset(torch.zeros(3))
    gain = ev.fitness - start.outcome().fitness
    assert torch.allclose(tr.reward.view(3, 7).sum(1), gain, atol=1e-4)


# -- goal and the deceptive trap -----------------------------------------------------------------
def test_solved_flag_and_min_distance():
    task = HardMaze()
    env = task.make_env(3)
    goal = task.goal
    env.set_state(torch.stack([goal, goal + torch.tensor([4.0, 0.0]), goal + torch.tensor([6.0, 0.0])]),
                  torch.zeros(3))
    evaluation = env.outcome()
    assert evaluation.info["solved"].tolist() == [True, True, False]
    assert evaluation.fitness.tolist() == pytest.approx([0.0, -4.0, -6.0], abs=1e-3)
    # Driving away keeps the closest approach.
    for _ in range(10):
        env.step(torch.tensor([[1.0, 0.0]] * 3))
    after = env.outcome()
    assert after.info["min_distance"].tolist() == pytest.approx([0.0, 4.0, 6.0], abs=1e-3)
    assert (after.fitness < -20).all() and not after.info["solved"].any()


@pytest.mark.parametrize("controller", [straight_driver, greedy_goal_seeker])
def test_hard_maze_deceives_trivial_controllers(controller):
    task = HardMaze()
    evaluation = rollout(controller, task.make_env(1), task.episode_length, torch.zeros(1))
    assert not evaluation.info["solved"].any()
    assert float(evaluation.info["min_distance"][0]) > 100  # never gets near the goal


@pytest.mark.parametrize("cls", MAZES)
def test_mazes_are_solvable_in_one_episode(cls):
    task = cls()
    evaluation = follow_waypoints(task, WAYPOINTS[task.name])
    assert evaluation.info["solved"].all()
    assert float(evaluation.fitness[0]) > -task.goal_radius


# -- rollout ------------------------------------------------------------------------------------------
def test_rollout_with_mlp_policy_is_deterministic():
    task = MediumMaze(episode_length=60, record_trajectory=True)
    policy = MLPPolicy(task.obs_dim, task.action_dim, hidden=(16,))
    params = policy.init(32, torch.Generator().manual_seed(0))
    seeds = torch.arange(32)
    first = rollout(policy.bind(params), task.make_env(32), task.episode_length, seeds)
    again = rollout(policy.bind(params), task.make_env(32), task.episode_length, seeds)
    assert first.fitness.shape == (32,) and first.descriptors.shape == (32, 2)
    assert torch.equal(first.fitness, again.fitness) and torch.equal(first.descriptors, again.descriptors)
    assert first.info["trajectory"].shape == (32, 60, 2)
    assert first.info["solved"].dtype == torch.bool and not first.failed.any()
    assert len(set(first.descriptors[:, 0].tolist())) > 10  # different genomes go different places


def test_rollout_flags_non_finite_actions_per_row():
    task = HardMaze(episode_length=40)
    policy = MLPPolicy(task.obs_dim, task.action_dim, hidden=(16,))
    params = policy.init(6, torch.Generator().manual_seed(1))
    forward = policy.bind(params)
    calls = {"n": 0}

    def broken(obs):
        actions = forward(obs).clone()
        calls["n"] += 1
        if calls["n"] == 10:
            actions[2, 0] = float("nan")
        if calls["n"] == 20:
            actions[4, 1] = float("inf")
        return actions

    clean = rollout(policy.bind(params), task.make_env(6), task.episode_length, torch.arange(6))
    faulty = rollout(broken, task.make_env(6), task.episode_length, torch.arange(6))
    assert faulty.failed.tolist() == [False, False, True, False, True, False]
    keep = torch.tensor([0, 1, 3, 5])
    assert torch.equal(faulty.fitness[keep], clean.fitness[keep])  # others untouched
    assert torch.isfinite(faulty.fitness).all()  # bad actions were zeroed, not propagated


def test_rollout_stops_when_all_done():
    task = MediumMaze(episode_length=7)
    env = task.make_env(4)
    steps = {"n": 0}

    def counting(obs):
        steps["n"] += 1
        return torch.zeros(obs.shape[0], 2)

    rollout(counting, env, 100, torch.arange(4))
    assert steps["n"] == 7 and env.t == 7


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    task = HardMaze(episode_length=100)
    policy = MLPPolicy(task.obs_dim, task.action_dim, hidden=(16,))
    params = policy.init(64, torch.Generator().manual_seed(0))
    cpu = rollout(policy.bind(params), task.make_env(64), 100, torch.arange(64))
    gpu = rollout(policy.bind(params.cuda()), task.make_env(64, "cuda"), 100, torch.arange(64).cuda()).to("cpu")
    close = (cpu.descriptors - gpu.descriptors).abs().max(dim=1).values < 1e-3
    assert close.float().mean() > 0.9  # rare collision-boundary flips may diverge


# -- pictures ----------------------------------------------------------------------------------------
def test_plot_positions_and_trajectories(tmp_path):
    from tasks.maze_plot import plot_maze_positions, to_maze_units

    task = HardMaze(episode_length=30, record_trajectory=True)
    policy = MLPPolicy(task.obs_dim, task.action_dim)
    params = policy.init(16, torch.Generator().manual_seed(0))
    evaluation = rollout(policy.bind(params), task.make_env(16), 30, torch.arange(16))
    xy = to_maze_units(task, evaluation.descriptors)
    assert xy == pytest.approx(evaluation.info["trajectory"][:, -1].numpy(), abs=1e-3)
    out = plot_maze_positions(task, evaluation.descriptors, tmp_path / "sub" / "maze.png",
                              trajectories=evaluation.info["trajectory"], values=evaluation.fitness)
    assert out.exists() and out.read_bytes()[:4] == b"\x89PNG"
