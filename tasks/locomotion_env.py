"""B simulations of one locomotion task, stepped together on C threads (``tasks.locomotion``).

One ``mujoco.MjModel`` (the task's, built once) and one ``mujoco.batch.Batch(model, B, threads,
persistent=True)``: each control step writes all B controls into the batch's bound ``ctrl``
array, steps the simulations that are still running (``frame_skip`` physics steps each, on the
batch's threads, GIL released), and reads observations, rewards, terminations and contacts from
the bound ``qpos``/``qvel``/``xpos``/``xipos``/``cfrc_ext`` arrays with a few numpy passes over
the whole batch. No Python loop runs over simulations in a step, so the per-step overhead is a
few tens of microseconds next to milliseconds of physics. ``persistent=True`` keeps one MjData
per simulation, so the derived fields each step reads (the torso's ``xpos`` before and after a
step, for the forward reward) are that simulation's own, exactly as in Gymnasium's env.

Failures: MuJoCo answers unstable physics (NaN/Inf/huge qpos, qvel, qacc or ctrl) with a
warning and a silent reset of that simulation; ``Batch.warning`` counts warnings per
simulation, so a rise in the count (or a non-finite state, or a ``SimulationError`` raised for
that simulation) marks the genome failed and ends its episode. The other simulations never
notice: the batch steps them independently, bit-identically at any thread count.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from tasks.base import Evaluation

__all__ = ["LocomotionEnv"]


class LocomotionEnv:
    """B episodes of a :class:`tasks.locomotion.Locomotion` task (implements ``BatchedEnv``).

    Parameters
    ----------
    task : Locomotion
    batch_size : int
    threads : int
        C threads of the ``mujoco.batch.Batch`` (results do not depend on it).

    Attributes
    ----------
    batch : mujoco.batch.Batch
        The simulations (for tests, rendering with ``batch.get_data(i)``, perturbations).
    t : int
        Control steps since the last reset.
    reward_terms : dict[str, numpy.ndarray]
        The last step's reward terms, (B,) float64 each, named as Gymnasium's info:
        ``reward_forward``, ``reward_survive``, ``reward_ctrl`` (minus the control cost); zero
        for rows that were not running.
    """

    def __init__(self, task, batch_size: int, threads: int = 1) -> None:
        import mujoco
        from mujoco import batch as mjbatch

        if int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
        if int(threads) < 1:
            raise ValueError(f"threads={threads!r} must be a positive integer")
        self.task = task
        self.batch_size = B = int(batch_size)
        self.threads = int(threads)
        self.episode_length = task.episode_length
        self.device = torch.device("cpu")
        self._mujoco, self._SimulationError = mujoco, mjbatch.SimulationError
        model = self.model = task.model
        if not model.actuator_ctrllimited.all():
            raise ValueError(f"{task.name}: every actuator needs a ctrlrange to map [-1, 1] onto")
        self.batch = b = mjbatch.Batch(model, B, self.threads, persistent=True)
        self._qpos, self._qvel, self._ctrl = b.bind("qpos"), b.bind("qvel"), b.bind("ctrl")
        self._warnings = b.warning  # live (B, mjNWARNING, 2) int32: [last info, count]
        self._dt = model.opt.timestep * task.frame_skip
        low, high = model.actuator_ctrlrange.T.copy()
        self._ctrl_mid, self._ctrl_half = (high + low) / 2, (high - low) / 2

        # Forward-velocity source, read before and after each step.
        self._forward_src = None
        if task.forward == "torso_xpos":
            self._xpos = b.bind("xpos")
            self._torso = model.body("torso").id
        elif task.forward == "mass_center":
            self._xipos = b.bind("xipos")
            self._mass = model.body_mass / model.body_mass.sum()
        elif task.forward not in (None, "qpos"):
            raise ValueError(f"unknown forward velocity source {task.forward!r}")

        # Feet contacts: per descriptor dimension, a group of bodies (cfrc_ext rows).
        self._feet = None
        if task.feet is not None:
            self._cfrc = b.bind("cfrc_ext")
            bodies, starts = [], []
            for group in task.feet:
                starts.append(len(bodies))
                for name in group:
                    bodies.append(int(model.geom_bodyid[model.geom(name).id])
                                  if task.feet_are_geoms else model.body(name).id)
            self._feet = (np.array(bodies), np.array(starts))

        z = np.zeros
        self._action = z((B, model.nu))  # the controls of the last step, float64
        self._return = z(B)  # float64 sums of rewards
        self._steps = z(B, dtype=np.int64)
        self._contacts = z((B, len(task.feet or ())), dtype=np.int64)
        self._live = z(B, dtype=bool)
        self._failed = z(B, dtype=bool)
        self._terminated = z(B, dtype=bool)
        self._truncated = z(B, dtype=bool)
        self._warn_base = z(B, dtype=np.int64)
        self._step_ids = np.zeros(0, np.int32)  # None = all simulations
        self.reward_terms = {k: z(B) for k in ("reward_forward", "reward_survive", "reward_ctrl")}
        self.t = 0

    # -- BatchedEnv -----------------------------------------------------------------------------
    def reset(self, seeds: Tensor | None = None) -> Tensor:
        """Start all B episodes; returns obs (B, obs_dim) float32.

        ``seeds`` (B,) int64 seed each genome's reset noise when ``task.reset_noise_scale > 0``
        (``numpy.random.default_rng(seed)``, drawn as Gymnasium's ``reset(seed=seed)`` draws:
        qpos uniform, then qvel); they are ignored otherwise.
        """
        B, noise = self.batch_size, self.task.reset_noise_scale
        if seeds is not None and len(seeds) != B:
            raise ValueError(f"seeds must have {B} entries, got {len(seeds)}")
        if noise > 0:
            if seeds is None:
                raise ValueError("reset_noise_scale > 0 needs one seed per genome")
            m = self.model
            self.batch.reset(stage=self._mujoco.mjtStage.mjSTAGE_NONE.value)
            # One generator per genome (a Python loop, but at reset only): a genome's start
            # depends on its own seed, never on its neighbours or the batch size.
            for i, seed in enumerate(torch.as_tensor(seeds).tolist()):
                rng = np.random.default_rng(int(seed) % (1 << 64))
                self._qpos[i] = m.qpos0 + rng.uniform(-noise, noise, m.nq)
                if self.task.qvel_noise == "normal":
                    self._qvel[i] = noise * rng.standard_normal(m.nv)
                else:
                    self._qvel[i] = rng.uniform(-noise, noise, m.nv)
            self.batch.forward()  # mj_forward, as Gymnasium's set_state
        else:
            self.batch.reset()
        self._warn_base[:] = self._warnings[:, :, 1].sum(axis=1)
        self._return[:] = 0.0
        self._steps[:] = 0
        self._contacts[:] = 0
        self._live[:] = True
        self._failed[:] = False
        self._terminated[:] = False
        self._truncated[:] = False
        self._step_ids = None
        for v in self.reward_terms.values():
            v[:] = 0.0
        self.t = 0
        return self._observe()

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Advance the running episodes by one control step (``frame_skip`` physics steps).

        Parameters
        ----------
        actions : Tensor (B, action_dim)
            In [-1, 1] (clipped), mapped linearly onto the actuators' ctrlrange; any device.
            Rows whose episode has ended are ignored.

        Returns
        -------
        obs : Tensor (B, obs_dim) float32
            A fresh tensor. Zero for failed rows.
        reward : Tensor (B,) float32
            This step's reward; 0 for rows that were not running.
        terminated : Tensor (B,) bool
            The episode ended in a terminal state: unhealthy, or failed (unstable physics).
        truncated : Tensor (B,) bool
            The episode reached ``episode_length`` without terminating (exclusive with
            ``terminated``).

        Ended rows are frozen: they are not simulated again until ``reset``, their reward is
        0 and their flags stay set.
        """
        live = self._live.copy()
        if not live.any():
            self.reward_terms = {k: np.zeros_like(v) for k, v in self.reward_terms.items()}
            return self._observe(), torch.zeros(self.batch_size), *self._flags()
        task = self.task
        a = self._action
        # Ended rows get controls too (one vectorised write); they are not stepped.
        np.clip(actions.detach().cpu().numpy(), -1.0, 1.0, out=a)
        a *= self._ctrl_half
        a += self._ctrl_mid
        self._ctrl[:] = a
        before = self._forward_position()

        failed = np.zeros(self.batch_size, dtype=bool)
        try:
            self.batch.step(self._step_ids, task.frame_skip)
        except self._SimulationError as error:  # those simulations kept their previous state
            failed[error.ids] = True
        failed |= self._warnings[:, :, 1].sum(axis=1) != self._warn_base
        # Any NaN or Inf in a row makes its sum non-finite (one pass instead of two isfinite).
        failed |= ~np.isfinite(self._qpos.sum(axis=1) + self._qvel.sum(axis=1))
        failed &= live
        ok = live & ~failed

        terms = self.reward_terms = {}
        if before is None:
            terms["reward_forward"] = np.zeros(self.batch_size)
        else:
            velocity = (self._forward_position() - before) / self._dt
            terms["reward_forward"] = task.forward_weight * velocity
        healthy = self._healthy()
        terms["reward_survive"] = task.healthy_reward * healthy
        terms["reward_ctrl"] = -task.ctrl_cost_weight * np.einsum("ij,ij->i", a, a)
        for v in terms.values():
            v[~ok] = 0.0
        reward = terms["reward_forward"] + terms["reward_survive"] + terms["reward_ctrl"]
        self._return += reward
        self._steps += ok
        if self._feet is not None:
            bodies, starts = self._feet
            touching = (self._cfrc[:, bodies] != 0.0).any(axis=2)  # (B, bodies)
            touching = np.logical_or.reduceat(touching, starts, axis=1)  # (B, groups)
            self._contacts += touching & ok[:, None]

        self.t += 1
        unhealthy = ok & ~healthy if self._terminates() else np.zeros_like(ok)
        ended = unhealthy | failed
        truncated = ok & ~unhealthy & (self.t >= self.episode_length)
        self._failed |= failed
        self._terminated |= ended
        self._truncated |= truncated
        self._live &= ~(ended | truncated)
        if (ended | truncated).any():
            self._step_ids = (None if self._live.all()
                              else np.flatnonzero(self._live).astype(np.int32))
        return self._observe(), torch.from_numpy(reward.astype(np.float32)), *self._flags()

    def outcome(self) -> Evaluation:
        """Fitness (sum of rewards), descriptors and failures of the episodes so far.

        Descriptors: final torso (x, y) (omni tasks) or the fraction of the episode's steps in
        which each foot touched something (uni tasks), clipped into the task's bounds.
        ``info``: ``episode_steps`` (B,) int64, steps each episode ran.
        """
        if self._feet is not None:
            descriptors = self._contacts / np.maximum(self._steps, 1)[:, None]
        else:
            descriptors = self._qpos[:, :2]
        descriptors = torch.from_numpy(np.asarray(descriptors, dtype=np.float32))
        return Evaluation(
            fitness=torch.from_numpy(self._return.astype(np.float32)),
            descriptors=self.task.clip_descriptors(descriptors),
            failed=torch.from_numpy(self._failed.copy()),
            info={"episode_steps": torch.from_numpy(self._steps.copy())},
        )

    # -- state ----------------------------------------------------------------------------------
    @property
    def qpos(self) -> np.ndarray:
        """Live (B, nq) float64 view of the simulations' positions (write only between steps)."""
        return self._qpos

    @property
    def qvel(self) -> np.ndarray:
        """Live (B, nv) float64 view of the simulations' velocities."""
        return self._qvel

    @property
    def live(self) -> np.ndarray:
        """(B,) bool copy: rows whose episode is still running."""
        return self._live.copy()

    def actions_to_controls(self, actions: np.ndarray) -> np.ndarray:
        """What the actuators receive for policy actions (..., action_dim): float64 controls,
        the same computation ``step`` makes (so tests can drive Gymnasium's env alike)."""
        a = np.clip(np.asarray(actions), -1.0, 1.0).astype(np.float64)
        a *= self._ctrl_half
        a += self._ctrl_mid
        return a

    # -- pieces ---------------------------------------------------------------------------------
    def _flags(self) -> tuple[Tensor, Tensor]:
        return torch.from_numpy(self._terminated.copy()), torch.from_numpy(self._truncated.copy())

    def _forward_position(self) -> np.ndarray | None:
        """(B,) x coordinate the forward velocity differentiates, as Gymnasium's env reads it."""
        src = self.task.forward
        if src is None:
            return None
        if src == "qpos":
            return self._qpos[:, 0].copy()
        if src == "torso_xpos":  # derived field: one substep behind qpos, as in Gymnasium
            return self._xpos[:, self._torso, 0].copy()
        return self._xipos[:, :, 0] @ self._mass  # mass centre, from xipos (derived)

    def _terminates(self) -> bool:
        t = self.task
        return t.healthy_z is not None or t.healthy_angle is not None or t.healthy_state is not None

    def _healthy(self) -> np.ndarray:
        """(B,) bool: Gymnasium's ``is_healthy`` for every row, at the current state."""
        t, qpos = self.task, self._qpos
        healthy = np.ones(self.batch_size, dtype=bool)
        if t.healthy_z is not None:
            index, low, high, inclusive = t.healthy_z
            z = qpos[:, index]
            healthy &= ((low <= z) & (z <= high)) if inclusive else ((low < z) & (z < high))
        if t.healthy_angle is not None:
            low, high = t.healthy_angle
            healthy &= (low < qpos[:, 2]) & (qpos[:, 2] < high)
        if t.healthy_state is not None:
            low, high = t.healthy_state
            state = np.concatenate([qpos[:, 2:], self._qvel], axis=1)
            healthy &= ((low < state) & (state < high)).all(axis=1)
        return healthy

    def _observe(self) -> Tensor:
        """Observations (B, obs_dim) float32 (fresh) from the current state."""
        t, qpos, qvel = self.task, self._qpos, self._qvel
        obs = np.empty((self.batch_size, t.obs_dim), dtype=np.float32)
        k = 0
        if t.obs_xy_normalise is not None:
            sub, div = t.obs_xy_normalise
            obs[:, :2] = (qpos[:, :2] - sub) / div
            k = 2
        n = qpos.shape[1] - t.obs_qpos_start
        obs[:, k:k + n] = qpos[:, t.obs_qpos_start:]
        if t.obs_qvel_clip is not None:
            obs[:, k + n:] = np.clip(qvel, -t.obs_qvel_clip, t.obs_qvel_clip)
        else:
            obs[:, k + n:] = qvel
        obs[self._failed] = 0.0
        return torch.from_numpy(obs)
