"""Bring your own environment: any Gymnasium environment with a user descriptor function.

A config such as ::

    task: {name: gym, env_id: Pendulum-v1, episode_length: 200,
           descriptor: "experiments.examples.gym_descriptors:pendulum_upright_and_spin",
           descriptor_bounds: [[-1, 1], [-8, 8]]}

runs MAP-Elites (or any algorithm) on ``Pendulum-v1``. Fitness is the undiscounted sum of the
environment's rewards until its episode ends (termination, the environment's own TimeLimit, or
``episode_length`` steps, whichever comes first). The descriptor is computed by a user function
from the episode's observations:

``f(observations, lengths) -> array-like (B, d)``

* ``observations``: ``np.ndarray (B, T + 1, obs_dim) float32``, the reset observation then one
  per step; after a row's episode ended it is padded with that row's last observation.
  ``T`` is the number of steps the batch was stepped (at most ``episode_length``).
* ``lengths``: ``np.ndarray (B,) int64``, the steps each episode really took (row ``i``'s real
  observations are ``observations[i, :lengths[i] + 1]``).
* The result is clipped into ``descriptor_bounds`` (non-finite values fail the genome).

Environments are stepped through Gymnasium's synchronous vector API (``gymnasium.make_vec``), one
sub-environment per genome, each reset with its genome's seed, so a genome's result does not
depend on its batch neighbours. Observation spaces must be 1-D ``Box``; action spaces ``Box``.
The policy acts in ``[-1, 1]`` and actions are rescaled linearly to the ``Box`` bounds.
"""

from __future__ import annotations

import difflib
import importlib
import math
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from tasks.base import Evaluation, TaskBase

__all__ = ["GymTask", "GymBatchedEnv", "load_descriptor"]

# Gymnasium's seeding accepts any non-negative int, but some environments hand the seed on to
# numpy's legacy RandomState, which needs it below 2**32.
_SEED_MODULUS = 2 ** 32


def load_descriptor(spec: str | Callable) -> Callable:
    """Resolve ``"module:function"`` (or pass a callable through); one-line ``ValueError``s."""
    if callable(spec):
        return spec
    if not isinstance(spec, str) or spec.count(":") != 1 or not all(spec.split(":")):
        raise ValueError(f"task.descriptor: expected 'module:function' (e.g. "
                         f"'experiments.examples.gym_descriptors:pendulum_upright_and_spin'), "
                         f"got {spec!r}")
    module_name, attr = spec.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import failure is a user error in the config
        raise ValueError(f"task.descriptor: cannot import module {module_name!r} "
                         f"({type(exc).__name__}: {_first_line(exc)})") from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise ValueError(f"task.descriptor: module {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise ValueError(f"task.descriptor: {spec!r} is a {type(fn).__name__}, not a function")
    return fn


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _spec_name(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


class GymTask(TaskBase):
    """A Gymnasium environment as a control task, with a user descriptor function.

    Parameters
    ----------
    env_id : str
        A registered Gymnasium id (``"Pendulum-v1"``, ``"HalfCheetah-v5"``), or
        ``"module:EnvId"`` to import a module that registers it first. Required.
    descriptor : str or callable
        ``"module:function"`` naming the descriptor function (contract in the module
        docstring). Required.
    descriptor_bounds : list of [low, high]
        One finite ``low < high`` pair per descriptor dimension. Required.
    episode_length : int
        Most steps per episode; the environment's own TimeLimit also applies (pass
        ``env_kwargs: {max_episode_steps: N}`` to change that one).
    env_kwargs : dict
        Keyword arguments for ``gymnasium.make`` (environment parameters, ``max_episode_steps``).
    fitness_offset : float
        A lower bound on fitness, for the QD score.
    descriptor_names : list of str or None
        Axis labels; None gives ``"descriptor 1"``, ...

    Attributes
    ----------
    obs_dim, action_dim : int
    action_bounds : tuple[float, float]
        ``(-1.0, 1.0)``: what the policy outputs; the environment rescales.
    episode_length : int
        ``min(episode_length, the env's max_episode_steps)``: the rollout's step count.
    descriptor_dim : int
    descriptor_bounds : list[tuple[float, float]]
    """

    name = "gym"
    action_bounds = (-1.0, 1.0)
    has_goal = False
    descriptor_y_down = False

    def __init__(self, env_id: str | None = None, descriptor: str | None = None,
                 descriptor_bounds: list | None = None, episode_length: int = 1000,
                 env_kwargs: dict = {},  # noqa: B006 - never mutated; {} lets configs type-check
                 fitness_offset: float = 0.0, descriptor_names: list | None = None) -> None:
        import gymnasium

        self.env_id = self._check_env_id(env_id, gymnasium)
        if not isinstance(env_kwargs, dict):
            raise ValueError(f"task.env_kwargs: expected a mapping of keyword arguments for "
                             f"gymnasium.make, got {env_kwargs!r}")
        self.env_kwargs = dict(env_kwargs)
        if isinstance(episode_length, bool) or not isinstance(episode_length, int) \
                or episode_length < 1:
            raise ValueError(f"task.episode_length: must be a positive integer, "
                             f"got {episode_length!r}")
        if not isinstance(fitness_offset, (int, float)) or isinstance(fitness_offset, bool) \
                or not math.isfinite(fitness_offset):
            raise ValueError(f"task.fitness_offset: must be a finite number, got {fitness_offset!r}")
        self.fitness_offset = float(fitness_offset)
        self.descriptor_bounds = self._check_bounds(descriptor_bounds)
        self.descriptor_dim = len(self.descriptor_bounds)
        self.descriptor_names = self._check_names(descriptor_names, self.descriptor_dim)
        if descriptor is None:
            raise ValueError("task.descriptor: required; name a descriptor function as "
                             "'module:function'")
        self._descriptor_fn = load_descriptor(descriptor)
        self.descriptor = descriptor if isinstance(descriptor, str) else _spec_name(descriptor)

        # One environment, only to read its spaces and time limit.
        try:
            env = gymnasium.make(self.env_id, **self.env_kwargs)
        except Exception as exc:
            key = "task.env_kwargs" if self.env_kwargs and isinstance(exc, TypeError) else "task.env_id"
            raise ValueError(f"{key}: cannot make {self.env_id!r} with env_kwargs "
                             f"{self.env_kwargs!r} ({type(exc).__name__}: {_first_line(exc)})") from None
        try:
            obs_space, act_space = env.observation_space, env.action_space
            limit = env.spec.max_episode_steps if env.spec is not None else None
        finally:
            env.close()
        box = gymnasium.spaces.Box
        if not isinstance(obs_space, box) or len(obs_space.shape) != 1:
            raise ValueError(f"task.env_id: {self.env_id!r} has observation space {obs_space}; "
                             f"accepted: a 1-D Box")
        if not isinstance(act_space, box) or len(act_space.shape) != 1:
            raise ValueError(f"task.env_id: {self.env_id!r} has action space {act_space}; "
                             f"accepted: a 1-D Box")
        self.obs_dim = int(obs_space.shape[0])
        self.action_dim = int(act_space.shape[0])
        self.action_low = np.asarray(act_space.low, dtype=np.float64)
        self.action_high = np.asarray(act_space.high, dtype=np.float64)
        self.action_dtype = act_space.dtype
        self.requested_episode_length = int(episode_length)
        self.episode_length = int(min(episode_length, limit)) if limit else int(episode_length)
        self._check_descriptor_output()

    # -- validation -----------------------------------------------------------------------------
    @staticmethod
    def _check_env_id(env_id: Any, gymnasium: Any) -> str:
        if env_id is None:
            raise ValueError("task.env_id: required; give a registered Gymnasium id such as "
                             "'Pendulum-v1'")
        if not isinstance(env_id, str) or not env_id:
            raise ValueError(f"task.env_id: expected a Gymnasium id string, got {env_id!r}")
        name = env_id
        if ":" in env_id:  # Gymnasium's "module:EnvId": the module registers the id on import
            module_name, name = env_id.split(":", 1)
            try:
                importlib.import_module(module_name)
            except Exception as exc:
                raise ValueError(f"task.env_id: cannot import module {module_name!r} "
                                 f"({type(exc).__name__}: {_first_line(exc)})") from None
        if name not in gymnasium.registry:
            close = difflib.get_close_matches(name, list(gymnasium.registry), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else \
                "; see gymnasium.pprint_registry() for the registered ids"
            raise ValueError(f"task.env_id: {name!r} is not registered in Gymnasium{hint}")
        return env_id

    @staticmethod
    def _check_bounds(bounds: Any) -> list[tuple[float, float]]:
        what = "expected a non-empty list of [low, high] pairs with finite low < high"
        if bounds is None:
            raise ValueError(f"task.descriptor_bounds: required; {what}, e.g. [[-1, 1], [0, 10]]")
        if not isinstance(bounds, (list, tuple)) or not bounds:
            raise ValueError(f"task.descriptor_bounds: {what}, got {bounds!r}")
        out = []
        for pair in bounds:
            ok = (isinstance(pair, (list, tuple)) and len(pair) == 2
                  and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in pair)
                  and all(math.isfinite(v) for v in pair) and pair[0] < pair[1])
            if not ok:
                raise ValueError(f"task.descriptor_bounds: {what}, got {bounds!r}")
            out.append((float(pair[0]), float(pair[1])))
        return out

    @staticmethod
    def _check_names(names: Any, dim: int) -> tuple[str, ...]:
        if names is None:
            return tuple(f"descriptor {i + 1}" for i in range(dim))
        if not isinstance(names, (list, tuple)) or len(names) != dim \
                or not all(isinstance(n, str) for n in names):
            raise ValueError(f"task.descriptor_names: expected a list of {dim} strings (one per "
                             f"descriptor_bounds entry), got {names!r}")
        return tuple(names)

    def _check_descriptor_output(self) -> None:
        """Call the descriptor function once on a zero trajectory (1, 2, obs_dim): a wrong
        function fails now, with one line, instead of deep inside a run."""
        observations = np.zeros((1, 2, self.obs_dim), dtype=np.float32)
        lengths = np.ones(1, dtype=np.int64)
        try:
            out = np.asarray(self._descriptor_fn(observations, lengths), dtype=np.float64)
        except Exception as exc:
            raise ValueError(f"task.descriptor: {self.descriptor} raised {type(exc).__name__} on a "
                             f"zero trajectory of shape (1, 2, {self.obs_dim}): "
                             f"{_first_line(exc)}") from None
        if out.shape != (1, self.descriptor_dim):
            raise ValueError(f"task.descriptor: {self.descriptor} returned shape {out.shape} for "
                             f"1 episode; expected (1, {self.descriptor_dim}), one value per "
                             f"descriptor_bounds entry")

    # -- evaluation -----------------------------------------------------------------------------
    def descriptors_from_observations(self, observations: np.ndarray,
                                      lengths: np.ndarray) -> Tensor:
        """The user function's descriptors, (B, d) float32, clipped into the bounds."""
        out = np.asarray(self._descriptor_fn(observations, lengths), dtype=np.float64)
        if out.shape != (observations.shape[0], self.descriptor_dim):
            raise ValueError(f"task.descriptor: {self.descriptor} returned shape {out.shape}; "
                             f"expected ({observations.shape[0]}, {self.descriptor_dim})")
        # NaN survives the clip (torch.minimum/maximum propagate it), so Evaluation flags it.
        return self.clip_descriptors(torch.as_tensor(out, dtype=torch.float32))

    def make_env(self, batch_size: int, device: torch.device | str = "cpu",
                 threads: int = 1) -> "GymBatchedEnv":
        """``batch_size`` sub-environments in one synchronous Gymnasium vector.

        ``device`` is where returned tensors live (the simulators run on the CPU); ``threads``
        is ignored (a sync vector steps its sub-environments one after another).
        """
        return GymBatchedEnv(self, batch_size, device)

    def __repr__(self) -> str:
        return (f"GymTask(env_id={self.env_id!r}, descriptor={self.descriptor!r}, "
                f"descriptor_bounds={self.descriptor_bounds}, "
                f"episode_length={self.episode_length})")

    # The function is re-imported on unpickling: workers in other processes get it by name,
    # which also works for functions pickle cannot reach by reference (lambdas in a module).
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if isinstance(self.descriptor, str) and ":" in self.descriptor:
            state["_descriptor_fn"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self._descriptor_fn is None:
            self._descriptor_fn = load_descriptor(self.descriptor)


class GymBatchedEnv:
    """B Gymnasium sub-environments stepped together (implements ``tasks.base.BatchedEnv``).

    Gymnasium's vector env auto-resets a sub-environment on the step after its episode ended
    (``AutoresetMode.NEXT_STEP``). Rows are frozen here instead: once a row is done its
    observation, fitness and flags are kept, whatever its sub-environment does next. The sync
    vector keeps simulating ended sub-environments (their results are discarded); the rollout
    stops as soon as every row is done.

    Parameters
    ----------
    task : GymTask
    batch_size : int
    device : torch.device or str
        Where ``reset``/``step`` return their tensors.

    Attributes
    ----------
    t : int
        Steps taken since the last reset (at most ``task.episode_length``).
    """

    def __init__(self, task: GymTask, batch_size: int, device: torch.device | str = "cpu") -> None:
        import gymnasium
        from gymnasium.vector import AutoresetMode

        self.task = task
        self.batch_size = B = int(batch_size)
        self.device = torch.device(device)
        self.episode_length = task.episode_length
        self.vec = gymnasium.make_vec(
            task.env_id, num_envs=B, vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": AutoresetMode.NEXT_STEP}, **task.env_kwargs)
        # Rescaling [-1, 1] -> [low, high] per dimension; unbounded dimensions pass unscaled.
        low, high = task.action_low, task.action_high
        finite = np.isfinite(low) & np.isfinite(high)
        self._scale = np.where(finite, (high - low) / 2, 1.0)
        self._shift = np.where(finite, (high + low) / 2, 0.0)
        self._observations = np.zeros((B, self.episode_length + 1, task.obs_dim), np.float32)
        self._return = np.zeros(B, np.float64)
        self._length = np.zeros(B, np.int64)
        self._terminated = np.zeros(B, bool)
        self._truncated = np.zeros(B, bool)
        self._failed = np.zeros(B, bool)
        self.t = 0

    @property
    def done(self) -> np.ndarray:
        """(B,) bool: rows whose episode has ended (a copy)."""
        return self._terminated | self._truncated

    def reset(self, seeds: Tensor | None = None) -> Tensor:
        """Reset every sub-environment, sub-environment ``i`` with ``seeds[i]`` (mod 2**32).

        Returns obs (B, obs_dim) float32. Without seeds, Gymnasium picks random ones.
        """
        B = self.batch_size
        if seeds is None:
            seed_list = None
        else:
            if len(seeds) != B:
                raise ValueError(f"seeds must have {B} entries, got {len(seeds)}")
            seed_list = [int(s) % _SEED_MODULUS for s in torch.as_tensor(seeds).tolist()]
        obs, _ = self.vec.reset(seed=seed_list)
        obs = np.asarray(obs, dtype=np.float32).reshape(B, -1)
        self._return[:] = 0.0
        self._length[:] = 0
        self._terminated[:] = False
        self._truncated[:] = False
        self._failed[:] = False
        self.t = 0
        self._record(obs, np.ones(B, bool))
        return self._to_torch(self._observations[:, 0])

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Apply actions (B, action_dim) in ``[-1, 1]`` (clipped), rescaled to the Box bounds.

        Returns ``(obs (B, obs_dim) float32, reward (B,) float32, terminated (B,) bool,
        truncated (B,) bool)``. Rows that ended report their last observation, reward 0 and
        their final flags. A non-finite action fails its row (it is replaced by 0 and the row
        runs on); a non-finite observation or reward fails its row and ends it (reported as
        terminated, so nothing bootstraps from it). Reaching ``episode_length`` truncates.
        """
        B = self.batch_size
        done = self.done
        if self.t >= self.episode_length or done.all():
            return (self._to_torch(self._observations[:, self.t]),
                    torch.zeros(B, dtype=torch.float32, device=self.device),
                    torch.as_tensor(self._terminated, device=self.device),
                    torch.as_tensor(self._truncated, device=self.device))
        a = actions.detach().to("cpu", torch.float64).numpy().reshape(B, self.task.action_dim)
        bad_action = ~np.isfinite(a).all(axis=1)
        self._failed |= bad_action & ~done
        a = np.clip(np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)
        env_actions = (a * self._scale + self._shift).astype(self.task.action_dtype)
        obs, reward, terminated, truncated, _ = self.vec.step(env_actions)
        obs = np.asarray(obs, dtype=np.float32).reshape(B, -1)
        reward = np.asarray(reward, dtype=np.float64).reshape(B)

        active = ~done
        broken = active & ~(np.isfinite(obs).all(axis=1) & np.isfinite(reward))
        live = active & ~broken
        self._return[live] += reward[live]
        self._length[active] += 1
        self.t += 1
        self._failed |= broken
        self._terminated |= live & np.asarray(terminated, bool) | broken
        self._truncated |= live & np.asarray(truncated, bool)
        if self.t >= self.episode_length:
            self._truncated |= ~(self._terminated | self._truncated)
        self._record(obs, live)
        step_reward = np.where(live, reward, 0.0).astype(np.float32)
        return (self._to_torch(self._observations[:, self.t]),
                torch.as_tensor(step_reward, device=self.device),
                torch.as_tensor(self._terminated.copy(), device=self.device),
                torch.as_tensor(self._truncated.copy(), device=self.device))

    def outcome(self) -> Evaluation:
        """Fitness (sum of rewards), descriptors (the user function) and info, as of now.

        ``info``: ``length`` (B,) int64 steps taken, ``terminated`` (B,) bool (ended in a
        terminal state rather than cut).
        """
        observations = self._observations[:, : self.t + 1]
        descriptors = self.task.descriptors_from_observations(observations, self._length.copy())
        return Evaluation(
            fitness=torch.as_tensor(self._return, dtype=torch.float32),
            descriptors=descriptors,
            failed=torch.as_tensor(self._failed.copy()),
            info={"length": torch.as_tensor(self._length.copy()),
                  "terminated": torch.as_tensor(self._terminated & ~self._failed)},
        ).to(self.device)

    def close(self) -> None:
        self.vec.close()

    def _record(self, obs: np.ndarray, fresh: np.ndarray) -> None:
        """Write step ``t``'s observations: new ones where ``fresh``, else the row's last one
        (the padding the descriptor contract promises)."""
        row = self._observations[:, self.t]
        if self.t > 0:
            row[:] = self._observations[:, self.t - 1]
        row[fresh] = obs[fresh]

    def _to_torch(self, array: np.ndarray) -> Tensor:
        return torch.from_numpy(array.copy()).to(self.device)
