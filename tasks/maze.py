"""Lehman & Stanley's deceptive mazes (``hard_maze``, ``medium_maze``), batched in torch.

A robot (circle of radius 8) drives in a 2-D maze made of line-segment walls; the y axis points
down and angles grow from +x towards +y (clockwise on screen), for the heading and for every
sensor alike. Each step, for all B robots at once:

1. the action ``a`` in ``[-1, 1]^2`` is clamped, ``speed = 3 * a[0]`` maze units per step and
   ``turn = 3 * a[1]`` degrees per step (REFERENCE.md section 3: both clamped to +-3);
2. the robot moves ``speed`` along the heading it had at the start of the step (velocity
   first, then the heading update, the order we understand the original simulator to use). If
   the robot's circle at the new position would touch any wall (point-segment distance <
   radius), the move is cancelled and the robot stays where it was;
3. the heading turns by ``turn`` in every case, even when the move was cancelled, so a robot
   pinned against a wall can still turn away from it;
4. the sensors are read at the new state.

Observation (11,): bias 1.0; 6 rangefinders at -90, -45, 0, 45, 90, 180 degrees from the heading,
each ``min(distance to the nearest wall along the ray, 100) / 100`` (1.0 when nothing is within
range); 4 pie-slice goal radars covering [315, 45), [45, 135), [135, 225), [225, 315) degrees
from the heading, 1.0 for the slice that contains the direction to the goal.

Fitness is minus the final distance to the goal (``fitness_offset = -300`` bounds it from below:
no point inside either maze is 300 units from its goal). The per-step reward (for policy-gradient
methods) is the decrease of the distance to the goal in that step: over an episode the rewards
sum to the fitness minus its constant starting value. The descriptor is the final position
scaled by the walls' bounding box to ``[0, 1]^2`` and clipped there.

How it is computed: all robots x 4 sensor lines x W walls at once, as a few elementwise passes
over ``(4, W, B)`` tensors (ray-segment intersection by cross products), reduced over walls. The
rangefinders at 90 and 180 degrees are the backward halves of the lines at -90 and 0 degrees, so
4 lines serve 6 sensors. Collisions are one point-to-segment distance per robot and wall. No
Python loop runs over robots, sensors or walls; per-step cost is linear in B.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tasks.base import Evaluation, TaskBase

__all__ = ["Maze", "HardMaze", "MediumMaze", "MazeEnv"]

# Lines through the robot carrying the rangefinders: forward ray = sensors -90, -45, 0, 45 deg;
# the backward rays of lines 0 and 2 are the sensors at 90 and 180 deg.
_LINE_OFFSETS_DEG = (-90.0, -45.0, 0.0, 45.0)
_MASK = 2.0 ** -64  # see MazeEnv._observe
SENSOR_ANGLES_DEG = (-90.0, -45.0, 0.0, 45.0, 90.0, 180.0)
RADAR_SLICES_DEG = ((315.0, 45.0), (45.0, 135.0), (135.0, 225.0), (225.0, 315.0))


class Maze(TaskBase):
    """A deceptive maze task (geometry in maze units, y axis down).

    Parameters
    ----------
    episode_length : int
        Steps per episode (400 in Lehman & Stanley).
    goal_radius : float
        ``info["solved"]`` is ``final distance <= goal_radius``.
    record_trajectory : bool
        Whether ``outcome().info`` carries ``"trajectory"`` (B, T, 2) float32 positions after
        each step, in maze units.

    Attributes
    ----------
    walls : Tensor (W, 4) float32
        Wall segments ``x1, y1, x2, y2``.
    start : Tensor (2,) float32
    start_heading : float
        Degrees, measured from +x towards +y.
    goal : Tensor (2,) float32
    origin : tuple[float, float]
        Top-left corner of the walls' bounding box.
    size : tuple[float, float]
        ``(width, height)`` of the walls' bounding box; descriptors are ``(xy - origin) / size``.
    """

    WALLS: tuple[tuple[float, float, float, float], ...] = ()
    START: tuple[float, float] = (0.0, 0.0)
    START_HEADING: float = 0.0
    GOAL: tuple[float, float] = (0.0, 0.0)

    obs_dim = 11
    action_dim = 2
    action_bounds = (-1.0, 1.0)
    descriptor_dim = 2
    descriptor_bounds = [(0.0, 1.0), (0.0, 1.0)]
    fitness_offset = -300.0
    # The per-step reward (decrease of the distance to the goal) lies in [-3, 3]: adding 3
    # makes it non-negative for policy-gradient critics (REFERENCE.md section 5).
    reward_offset = 3.0
    has_goal = True

    robot_radius = 8.0
    sensor_range = 100.0
    max_speed = 3.0  # maze units per step
    max_turn = 3.0  # degrees per step

    descriptor_names = ("final x", "final y")
    descriptor_y_down = True  # maze coordinates: y points down, as in the original maze files

    def __init__(self, episode_length: int = 400, goal_radius: float = 5.0,
                 record_trajectory: bool = False) -> None:
        if int(episode_length) < 1:
            raise ValueError(f"task.episode_length={episode_length!r} must be a positive integer")
        if not float(goal_radius) > 0:
            raise ValueError(f"task.goal_radius={goal_radius!r} must be positive")
        self.episode_length = int(episode_length)
        self.goal_radius = float(goal_radius)
        self.record_trajectory = bool(record_trajectory)
        self.walls = torch.tensor(self.WALLS, dtype=torch.float32)
        self.start = torch.tensor(self.START, dtype=torch.float32)
        self.start_heading = float(self.START_HEADING)
        self.goal = torch.tensor(self.GOAL, dtype=torch.float32)
        xs = self.walls[:, [0, 2]]
        ys = self.walls[:, [1, 3]]
        self.origin = (float(xs.min()), float(ys.min()))
        self.size = (float(xs.max()) - self.origin[0], float(ys.max()) - self.origin[1])

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(episode_length={self.episode_length}, "
                f"goal_radius={self.goal_radius}, record_trajectory={self.record_trajectory})")

    def make_env(self, batch_size: int, device: torch.device | str = "cpu",
                 threads: int = 1) -> "MazeEnv":
        """``batch_size`` robots stepped together on ``device``."""
        return MazeEnv(self, batch_size, device)

    def positions_to_descriptors(self, xy: Tensor) -> Tensor:
        """Maze-unit positions (..., 2) -> descriptors in ``[0, 1]^2`` (clipped)."""
        origin = torch.tensor(self.origin, dtype=xy.dtype, device=xy.device)
        size = torch.tensor(self.size, dtype=xy.dtype, device=xy.device)
        scaled = (xy - origin) / size
        return self.clip_descriptors(scaled.reshape(-1, 2)).reshape(scaled.shape)

    def descriptors_to_positions(self, descriptors: Tensor) -> Tensor:
        """Inverse of :meth:`positions_to_descriptors` (up to the clipping)."""
        origin = torch.tensor(self.origin, dtype=descriptors.dtype, device=descriptors.device)
        size = torch.tensor(self.size, dtype=descriptors.dtype, device=descriptors.device)
        return descriptors * size + origin


class HardMaze(Maze):
    """Lehman & Stanley's hard maze: start bottom left, goal top left behind a deceptive wall."""

    name = "hard_maze"
    WALLS = (
        (41, 5, 3, 8), (3, 8, 4, 49), (4, 49, 7, 202), (7, 202, 195, 198), (195, 198, 186, 8),
        (186, 8, 39, 5), (4, 49, 57, 53), (56, 54, 56, 157), (57, 106, 158, 162),
        (77, 201, 108, 164), (6, 80, 33, 121), (192, 146, 87, 91), (56, 55, 133, 30),
    )
    START = (36.0, 184.0)
    START_HEADING = 0.0
    GOAL = (31.0, 20.0)


class MediumMaze(Maze):
    """Lehman & Stanley's medium maze: start top left, goal on the right."""

    name = "medium_maze"
    WALLS = (
        (293, 7, 289, 130), (289, 130, 6, 134), (6, 134, 8, 5), (8, 5, 292, 7),
        (241, 130, 58, 65), (114, 7, 73, 42), (130, 91, 107, 46), (196, 8, 139, 51),
        (219, 122, 182, 63), (267, 9, 214, 63), (271, 129, 237, 88),
    )
    START = (30.0, 22.0)
    START_HEADING = 0.0
    GOAL = (270.0, 100.0)


class MazeEnv:
    """B robots in one maze, stepped together (implements ``tasks.base.BatchedEnv``).

    Every per-step quantity is a handful of elementwise passes over ``(lines, walls, B)`` or
    ``(walls, B)`` tensors with B innermost: contiguous, vectorised across robots, and the
    minimum over walls is a reduction over a leading dimension. Measured on the 2-core CPU at
    B = 4096: an earlier version that got all intersection terms from one GEMM against a
    constant matrix (K = 6 is far too thin for BLAS) stepped in ~1.9 ms, this one in ~0.55 ms;
    ``torch.where``/``masked_fill`` over a bool mask cost ~20x a float multiply, so masks
    below are float.

    Parameters
    ----------
    task : Maze
    batch_size : int
    device : torch.device or str

    Attributes
    ----------
    t : int
        Steps taken since the last reset. Once ``t == task.episode_length`` every row is done and
        further steps change nothing.
    """

    def __init__(self, task: Maze, batch_size: int, device: torch.device | str = "cpu") -> None:
        self.task = task
        self.batch_size = B = int(batch_size)
        self.device = torch.device(device)
        self.episode_length = task.episode_length
        f32 = dict(dtype=torch.float32, device=self.device)
        walls = task.walls.to(**f32)
        W = self._num_walls = walls.shape[0]
        # Wall constants as (W, 1) columns that broadcast against (W, B) per-robot rows.
        self._p1x, self._p1y = walls[:, 0:1].clone(), walls[:, 1:2].clone()
        self._ex, self._ey = walls[:, 2:3] - self._p1x, walls[:, 3:4] - self._p1y
        self._inv_length2 = 1.0 / (self._ex * self._ex + self._ey * self._ey)
        # Unit vectors of the 4 sensor lines in the robot frame, (4, 1).
        offsets = torch.tensor(_LINE_OFFSETS_DEG, dtype=torch.float64) * (math.pi / 180)
        self._line_cos = torch.cos(offsets)[:, None].to(**f32)
        self._line_sin = torch.sin(offsets)[:, None].to(**f32)
        self._start = task.start.to(**f32)[:, None]
        self._goal = task.goal.to(**f32)[:, None]
        self._radius2 = task.robot_radius ** 2
        self._turn_rad = task.max_turn * math.pi / 180

        # State, feature-major: rows x, y of the position; heading in radians (not wrapped).
        self._pos = torch.zeros(2, B, **f32)
        self._heading = torch.zeros(B, **f32)
        self._cos_sin = torch.zeros(2, B, **f32)
        # Scratch, allocated once.
        self._step = torch.empty(2, B, **f32)
        self._proposed = torch.empty(2, B, **f32)
        self._rel = torch.empty(2, W, B, **f32)
        self._seg = torch.empty(W, B, **f32)
        self._gap = torch.empty(2, W, B, **f32)
        self._clear = torch.empty(B, **f32)
        self._dir = torch.empty(2, 4, B, **f32)
        self._tnum = torch.empty(W, B, **f32)
        self._denom = torch.empty(4, W, B, **f32)
        self._unum = torch.empty(4, W, B, **f32)
        self._uv = torch.empty(4, W, B, **f32)
        self._ranges = torch.empty(6, B, **f32)
        self._goal_frame = torch.empty(2, B, **f32)
        self._quadrant = torch.empty(5, B, **f32)
        self._obs_t = torch.zeros(task.obs_dim, B, **f32)  # observations, transposed
        self._obs_t[0] = 1.0
        self._distance = torch.empty(B, **f32)
        self._min_distance = torch.empty(B, **f32)
        self._trajectory = (torch.empty(self.episode_length, 2, B, **f32)
                            if task.record_trajectory else None)
        # Views into the buffers, made once: a view costs about a microsecond of Python each
        # time it is taken, which adds up at small B.
        self._x, self._y = self._pos
        self._c, self._s = self._cos_sin
        self._prop_x, self._prop_y = self._proposed
        self._rel_x, self._rel_y = self._rel
        self._gap_x, self._gap_y = self._gap
        self._dir_x, self._dir_y = self._dir
        self._dir_x_lines, self._dir_y_lines = self._dir_x[:, None], self._dir_y[:, None]  # (4, 1, B)
        self._inv_t_backward = self._denom[0::2]  # the lines whose backward rays are sensors
        self._ahead, self._behind = self._ranges[0:4], self._ranges[4:6]
        self._rangefinders, self._radar = self._obs_t[1:7], self._obs_t[7:11]
        self._rangefinders_behind = self._obs_t[5:7]
        self._goal_x, self._goal_y = self._goal_frame
        q = self._quadrant
        self._q_pair, self._q_pair_neg, self._q_last = q[0:2], q[2:4], q[4]
        self._q_a, self._q_b = q[0:4], q[1:5]
        self.t = 0

    # -- BatchedEnv -----------------------------------------------------------------------------
    @property
    def positions(self) -> Tensor:
        """Current positions (B, 2) float32 in maze units (a copy)."""
        return self._pos.t().clone()

    @property
    def headings(self) -> Tensor:
        """Current headings (B,) float32 in degrees, not wrapped (a copy)."""
        return self._heading * (180 / math.pi)

    @torch.no_grad()
    def reset(self, seeds: Tensor | None = None) -> Tensor:
        """Put every robot at the start; returns obs (B, 11) float32.

        ``seeds`` (B,) is accepted for the ``BatchedEnv`` protocol; the maze is deterministic.
        """
        if seeds is not None and len(seeds) != self.batch_size:
            raise ValueError(f"seeds must have {self.batch_size} entries, got {len(seeds)}")
        self._pos.copy_(self._start.expand(2, self.batch_size))
        self._heading.fill_(self.task.start_heading * math.pi / 180)
        return self._restart()

    @torch.no_grad()
    def set_state(self, positions: Tensor, headings_deg: Tensor) -> Tensor:
        """Place robots anywhere (tests, demos): positions (B, 2), headings (B,) in degrees.

        Acts as a reset from that state (step count, closest approach and trajectory restart
        there). No collision check is made. Returns the observations (B, 11) float32.
        """
        self._pos.copy_(positions.to(self._pos).t())
        self._heading.copy_(headings_deg.to(self._heading) * (math.pi / 180))
        return self._restart()

    def _restart(self) -> Tensor:
        self.t = 0
        self._observe()
        self._min_distance.copy_(self._distance)
        if self._trajectory is not None:
            self._trajectory.copy_(self._pos.expand_as(self._trajectory))
        return self._obs_t.t().contiguous()

    @torch.no_grad()
    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Advance every robot one step.

        Parameters
        ----------
        actions : Tensor (B, 2) float32
            In ``[-1, 1]`` (clamped): forward speed ``3 * a[:, 0]`` maze units, turn
            ``3 * a[:, 1]`` degrees. Non-finite actions are the caller's job
            (``evo.workers.rollout`` zeroes them).

        Returns
        -------
        obs : Tensor (B, 11) float32
            A fresh tensor (safe to keep, e.g. in a replay buffer).
        reward : Tensor (B,) float32
            The decrease of the distance to the goal during this step, so that the rewards of
            an episode sum to ``final fitness - initial fitness`` (the fitness up to the
            constant start distance). 0 once the episode is over.
        terminated : Tensor (B,) bool
            Always False: the maze has no terminal state (reaching the goal does not stop the
            robot, as in Lehman & Stanley).
        truncated : Tensor (B,) bool
            False until ``episode_length`` steps have been taken, then True for every row.
        """
        B = self.batch_size
        terminated = torch.zeros(B, dtype=torch.bool, device=self.device)
        if self.t >= self.episode_length:  # frozen: the episode is over for every row
            return (self._obs_t.t().contiguous(), torch.zeros(B, device=self.device), terminated,
                    torch.ones(B, dtype=torch.bool, device=self.device))
        a = actions.to(self._pos).clamp(-1.0, 1.0)
        before = self._distance.clone()
        step = torch.mul(self._cos_sin, a[:, 0], out=self._step).mul_(self.task.max_speed)
        proposed = torch.add(self._pos, step, out=self._proposed)
        self._collision_free(proposed, out=self._clear)
        self._pos.addcmul_(step, self._clear)  # a move into a wall is cancelled
        self._heading.add_(a[:, 1], alpha=self._turn_rad)
        self._observe()
        torch.minimum(self._min_distance, self._distance, out=self._min_distance)
        if self._trajectory is not None:
            self._trajectory[self.t] = self._pos
        self.t += 1
        truncated = torch.full((B,), self.t >= self.episode_length, dtype=torch.bool,
                               device=self.device)
        return self._obs_t.t().contiguous(), before.sub_(self._distance), terminated, truncated

    @torch.no_grad()
    def outcome(self) -> Evaluation:
        """Fitness (-distance to goal), descriptors (scaled position) and info, as of now.

        ``info``: ``solved`` (B,) bool (distance <= goal radius), ``min_distance`` (B,) float32
        (closest approach so far, start included), and ``trajectory`` (B, T, 2) float32 when the
        task records it (positions after each step; rows after the last step repeat the
        current position).
        """
        pos = self._pos.t()
        distance = self._distance.clone()
        info = {
            "solved": distance <= self.task.goal_radius,
            "min_distance": self._min_distance.clone(),
        }
        if self._trajectory is not None:
            trajectory = self._trajectory.permute(2, 0, 1).contiguous()  # (T, 2, B) -> (B, T, 2)
            trajectory[:, self.t:] = pos[:, None]
            info["trajectory"] = trajectory
        return Evaluation(
            fitness=-distance,
            descriptors=self.task.positions_to_descriptors(pos),
            failed=torch.zeros(self.batch_size, dtype=torch.bool, device=self.device),
            info=info,
        )

    # -- geometry -------------------------------------------------------------------------------
    def _collision_free(self, positions: Tensor, out: Tensor) -> Tensor:
        """1.0 where a robot centred at ``positions`` (2, B) touches no wall, else 0.0; (B,)."""
        # Offset from each wall start, its projection onto the wall clamped to the segment,
        # and the squared distance to that nearest point.
        rel_x = torch.sub(positions[0], self._p1x, out=self._rel_x)  # (W, B)
        rel_y = torch.sub(positions[1], self._p1y, out=self._rel_y)
        seg = torch.mul(rel_x, self._ex, out=self._seg).addcmul_(rel_y, self._ey)
        seg.mul_(self._inv_length2).clamp_(0.0, 1.0)
        gap_x = torch.addcmul(rel_x, seg, self._ex, value=-1.0, out=self._gap_x)
        gap_y = torch.addcmul(rel_y, seg, self._ey, value=-1.0, out=self._gap_y)
        gap2 = gap_x.mul_(gap_x).addcmul_(gap_y, gap_y)
        return torch.ge(gap2.amin(dim=0), self._radius2, out=out)

    def _observe(self) -> None:
        """Recompute the observations and the distance to the goal from positions and headings."""
        c, s = self._c, self._s
        torch.cos(self._heading, out=c)
        torch.sin(self._heading, out=s)
        # Directions of the 4 sensor lines, (4, B) each.
        torch.mul(self._line_cos, c, out=self._dir_x).addcmul_(self._line_sin, s, value=-1.0)
        torch.mul(self._line_cos, s, out=self._dir_y).addcmul_(self._line_sin, c)
        dir_x, dir_y = self._dir_x_lines, self._dir_y_lines
        # Line pos + t d meets wall p1 + u e where, with r = p1 - pos:
        #   t = (r x e) / (d x e) = tnum / denom,   u = (r x d) / (d x e) = unum / denom.
        # The hit is on the segment iff 0 < u < 1, i.e. unum * (denom - unum) > 0.
        rel_x = torch.sub(self._p1x, self._x, out=self._rel_x)  # (W, B)
        rel_y = torch.sub(self._p1y, self._y, out=self._rel_y)
        tnum = torch.mul(rel_x, self._ey, out=self._tnum).addcmul_(rel_y, self._ex, value=-1.0)
        # The robot centre on a wall's line gives tnum == 0; the tiny shift keeps 0/0 out of the
        # maxima below (such a hit is never on the segment, so its mask is 0 anyway).
        tnum.add_(1e-30)
        denom = torch.mul(dir_x, self._ey, out=self._denom).addcmul_(dir_y, self._ex, value=-1.0)
        unum = torch.mul(rel_x, dir_y, out=self._unum).addcmul_(rel_y, dir_x, value=-1.0)
        # Float mask: 2^-64 on the segment, 0 off it (uv values on the segment are >> 2^-64);
        # the power of two is undone exactly after the extrema. A bool mask with torch.where
        # costs about 20x more here.
        mask = torch.sub(denom, unum, out=self._uv).mul_(unum).clamp_(0.0, _MASK)
        inv_t = denom.div_(tnum).mul_(mask)  # 2^-64 / signed distance, 0 off the segment
        torch.amax(inv_t, dim=1, out=self._ahead)  # sensors -90, -45, 0, 45: nearest ahead
        torch.amin(self._inv_t_backward, dim=1, out=self._behind)  # 90, 180: nearest behind (< 0)
        # distance / range capped at 1 == 1 / max(range / distance, 1); no hit gives 1.
        rangefinders = torch.mul(self._ranges, self.task.sensor_range / _MASK, out=self._rangefinders)
        self._rangefinders_behind.neg_()
        rangefinders.clamp_(min=1.0).reciprocal_()

        # Goal relative to the robot, then in its frame: fwd along the heading, side towards +90.
        goal_x = torch.sub(self._goal[0], self._x, out=self._goal_x)
        goal_y = torch.sub(self._goal[1], self._y, out=self._goal_y)
        torch.hypot(goal_x, goal_y, out=self._distance)
        fwd = goal_x * c + goal_y * s
        side = goal_y * c - goal_x * s
        # Slice k holds relative angles [90k - 45, 90k + 45): rotated by 45 - 90k degrees, the
        # goal direction (a, b) is in the quadrant a > 0, b >= 0. Rows of q: a0, b0, -a0, -b0, a0,
        # so (a_k, b_k) = (q[k], q[k + 1]).
        pair = self._q_pair
        torch.sub(fwd, side, out=pair[0])
        torch.add(fwd, side, out=pair[1])
        torch.neg(pair, out=self._q_pair_neg)
        self._q_last.copy_(pair[0])
        torch.logical_and(self._q_a > 0.0, self._q_b >= 0.0, out=self._radar)
