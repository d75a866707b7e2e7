"""QD locomotion tasks on Gymnasium v5's MuJoCo robots, stepped many at a time.

Eight tasks (REFERENCE.md section 6, QDax's definitions on Gymnasium v5's models):

=================  ======  ======  ==========================================================
task               obs     action  descriptor
=================  ======  ======  ==========================================================
ant_omni           27      8       final torso (x, y), clipped to [-30, 30]^2
anttrap_omni       29      8       final torso (x, y), clipped to [0, 30] x [-8, 8]
humanoid_omni      45      17      final torso (x, y), clipped to [-10, 10]^2
ant_uni            27      8       fraction of steps each lower leg touches something (4)
walker2d_uni       17      6       same for foot, foot_left (2)
halfcheetah_uni    17      6       same for bfoot, ffoot (2)
hopper_uni         11      3       same for foot (1)
humanoid_uni       45      17      same for the left and right shin (shin or foot body) (2)
=================  ======  ======  ==========================================================

Physics, observations and reward terms are Gymnasium v5's, bit for bit up to float32 output
(``tests/test_locomotion.py`` checks them against ``gymnasium.make(...)``), with these choices:

* Ant: ``include_cfrc_ext_in_observation=False`` (27-d obs) and ``contact_cost_weight=0``, as
  Brax's ant that QDax used. Humanoid: qpos[2:] and qvel only (45-d obs; Gymnasium's
  ``include_cinert/cvel/qfrc_actuator/cfrc_ext_in_observation=False``) and
  ``contact_cost_weight=0``: the 348-d default is mostly derived quantities that cost time to
  export per step and that a (128, 128) MLP genome would pay for in parameters.
* omni tasks: reward = survival bonus - control cost (QDax's NoForwardRewardWrapper).
  anttrap_omni keeps Ant-v5's full reward (forward + survival - control), as QDax's ``anttrap``
  does: the forward reward is what leads fitness-driven search into the trap. Its observation
  starts with the torso position ``((x - 15) / 15, y / 8)``, as QDax's TrapWrapper.
* uni tasks: reward = Gymnasium v5's (forward + survival - control; HalfCheetah has no survival
  term and never terminates).
* Episodes are 250 steps by default for every task, as in the DCRL-ME / ASCII-ME runs that
  REFERENCE.md section 5 quotes (ant_omni, walker2d_uni, hopper_uni at 250 steps); set
  ``episode_length=1000`` for the PGA-ME-era setting. ``fitness_offset`` follows it:
  ``-(QDax's per-step reward offset) * episode_length`` (the humanoid's offset is 0, as QDax's).
* A foot "touches" in a step when its body's external contact force ``cfrc_ext`` is non-zero
  after that step (QDax: Brax's contact velocity on the foot body). MuJoCo computes
  ``cfrc_ext`` only when a sensor needs it, so the uni models get one extra sensor
  (``framelinacc`` of the torso), which changes no dynamics and costs about 1% of a step.
* The policy acts in [-1, 1]; the env maps actions linearly onto the actuators' ``ctrlrange``
  (+-0.4 for the humanoid) and clips. Control costs are computed on those controls, as
  Gymnasium computes them on the actions it is given.
"""

from __future__ import annotations

import os

import torch

from tasks.base import TaskBase

__all__ = [
    "Locomotion", "AntOmni", "AntTrapOmni", "HumanoidOmni", "AntUni", "Walker2dUni",
    "HalfCheetahUni", "HopperUni", "HumanoidUni", "gymnasium_asset",
]

_ANT_LOWER_LEGS = ("left_ankle_geom", "right_ankle_geom", "third_ankle_geom", "fourth_ankle_geom")

# QDax's trap (Brax capsules, radius 0.5, centred at z = 0.5), as MuJoCo capsules between two
# points: a wall across the ant's path at x = 12 (y in [-2.5, 2.5] with its caps) and two side
# walls at y = +-3 from x = 6.5 to 12.5: a U open towards the ant, which starts at the origin
# facing +x. The geoms belong to the world body (so they never collide with the floor) and
# collide with the robot only (contype 0, conaffinity 1, the floor's convention in ant.xml).
_TRAP_XML = """
    <geom name="trap_front" type="capsule" fromto="12 -2 0.5 12 2 0.5" size="0.5"
          contype="0" conaffinity="1" condim="3" rgba="0.6 0.3 0.3 1"/>
    <geom name="trap_left" type="capsule" fromto="7 3 0.5 12 3 0.5" size="0.5"
          contype="0" conaffinity="1" condim="3" rgba="0.6 0.3 0.3 1"/>
    <geom name="trap_right" type="capsule" fromto="7 -3 0.5 12 -3 0.5" size="0.5"
          contype="0" conaffinity="1" condim="3" rgba="0.6 0.3 0.3 1"/>
"""
# Any sensor of the acceleration stage makes mj_step run mj_rnePostConstraint, which fills
# cfrc_ext (the feet contacts of the uni tasks).
_CFRC_SENSOR_XML = '  <sensor><framelinacc objtype="body" objname="torso"/></sensor>\n'


def gymnasium_asset(xml_file: str) -> str:
    """Path of one of the MuJoCo model files shipped inside the gymnasium package."""
    import gymnasium  # optional dependency: imported where it is used

    return os.path.join(os.path.dirname(gymnasium.__file__), "envs", "mujoco", "assets", xml_file)


def require_physics(task_name: str) -> None:
    """A one-line error naming what to install when MuJoCo (with ``mujoco.batch``) or
    Gymnasium (the model files) cannot be imported."""
    try:
        import gymnasium  # noqa: F401
        import mujoco
        import mujoco.batch  # noqa: F401  (MuJoCo >= 4.0)
    except ImportError as exc:
        raise ValueError(f"task.name: {task_name!r} needs mujoco >= 4.0 (mujoco.batch) and "
                         f"gymnasium >= 1.0 ({exc}); install them with pip install 'mujoco>=4.0' "
                         f"'gymnasium[mujoco]>=1.0', or pick a task without physics: arm, "
                         f"hard_maze, medium_maze, rastrigin, sphere") from None


class Locomotion(TaskBase):
    """A QD locomotion task: one Gymnasium v5 MuJoCo robot, a reward, a descriptor.

    Subclasses are declarations only (class attributes below); :class:`LocomotionEnv`
    (``tasks.locomotion_env``) does the work.

    Parameters
    ----------
    episode_length : int
        Control steps per episode (each ``frame_skip`` physics steps).
    reset_noise_scale : float
        0 (default): every episode starts from the model's reset state. ``> 0``: Gymnasium's
        reset noise of that scale (uniform on qpos; normal or uniform on qvel as the robot's
        Gymnasium env draws it), from ``numpy.random.default_rng(seed)`` with the genome's own
        seed, in Gymnasium's order, so ``reset(seed=s)`` of the Gymnasium env starts from
        the same state and a genome's start never depends on its batch neighbours.

    Class attributes (the task's definition)
    ----------------------------------------
    xml_file : str
        Gymnasium asset. ``frame_skip`` : physics steps per control step.
    obs_qpos_start : int
        qpos entries skipped in the observation (the root's x, y or x).
    obs_qvel_clip : float or None
        Observed qvel clipped to +-this (Hopper, Walker2d).
    obs_xy_normalise : tuple or None
        ``((sub_x, sub_y), (div_x, div_y))``: prepend ``(qpos[:2] - sub) / div`` to the obs.
    forward : str or None
        Source of the forward velocity: ``"qpos"`` (qpos[0], planar robots), ``"torso_xpos"``
        (torso position, Ant), ``"mass_center"`` (Humanoid), None (no forward reward).
    forward_weight, healthy_reward, ctrl_cost_weight : float
    healthy_z : tuple or None
        ``(qpos index, low, high, inclusive)``.
    healthy_angle : tuple or None
        ``(low, high)`` on qpos[2], strict. ``healthy_state`` : ``(low, high)`` on
        ``concat(qpos, qvel)[2:]``, strict.
    qvel_noise : str
        ``"normal"`` or ``"uniform"``: how the robot's Gymnasium env draws qvel noise.
    feet : tuple of tuples of str or None
        For feet-contact descriptors: per descriptor dimension, the bodies (or geoms, for
        Ant's unnamed lower legs) whose contact counts.
    reward_offset : float
        QDax's per-step reward offset (``fitness_offset = -reward_offset * episode_length``).
    """

    xml_file = "ant.xml"
    frame_skip = 5
    obs_qpos_start = 2
    obs_qvel_clip: float | None = None
    obs_xy_normalise: tuple | None = None
    forward: str | None = None
    forward_weight = 1.0
    healthy_reward = 1.0
    ctrl_cost_weight = 0.5
    healthy_z: tuple | None = None
    healthy_angle: tuple | None = None
    healthy_state: tuple | None = None
    qvel_noise = "normal"
    feet: tuple | None = None
    feet_are_geoms = False
    trap = False
    reward_offset = 0.0
    # The env steps its simulations on C threads of its own: evaluators keep torch to one
    # thread during rollouts so that the policy forward does not contend with them.
    physics_threads = True

    action_bounds = (-1.0, 1.0)
    obs_dim = 27
    action_dim = 8

    def __init__(self, episode_length: int = 250, reset_noise_scale: float = 0.0) -> None:
        if int(episode_length) != episode_length or int(episode_length) < 1:
            raise ValueError(f"task.episode_length={episode_length!r} must be a positive integer")
        if not float(reset_noise_scale) >= 0.0:
            raise ValueError(f"task.reset_noise_scale={reset_noise_scale!r} must be >= 0")
        self.episode_length = int(episode_length)
        self.reset_noise_scale = float(reset_noise_scale)
        self.fitness_offset = -self.reward_offset * self.episode_length
        self._model = None  # the compiled MjModel, built once on first use
        require_physics(self.name)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(episode_length={self.episode_length}, "
                f"reset_noise_scale={self.reset_noise_scale})")

    def __getstate__(self) -> dict:
        # Workers receive tasks pickled; they rebuild the model once on their side.
        state = self.__dict__.copy()
        state["_model"] = None
        return state

    # -- the model ------------------------------------------------------------------------------
    def model_xml(self) -> str:
        """The MJCF text this task simulates: Gymnasium's file, plus the trap or the sensor."""
        with open(gymnasium_asset(self.xml_file)) as f:
            xml = f.read()
        if self.trap:
            xml = xml.replace("</worldbody>", _TRAP_XML + "  </worldbody>", 1)
        if self.feet is not None:
            xml = xml.replace("</mujoco>", _CFRC_SENSOR_XML + "</mujoco>", 1)
        return xml

    @property
    def model(self):
        """The compiled ``mujoco.MjModel`` (built once per task object and cached)."""
        if self._model is None:
            import mujoco  # optional dependency: imported where it is used

            self._model = mujoco.MjModel.from_xml_string(self.model_xml())
        return self._model

    def make_env(self, batch_size: int, device: torch.device | str = "cpu",
                 threads: int = 1):
        """``batch_size`` simulations of the task's model, stepped on ``threads`` C threads.

        ``device`` is accepted for the ``ControlTask`` protocol: MuJoCo runs on the CPU and
        the env returns CPU tensors whatever it is.
        """
        from tasks.locomotion_env import LocomotionEnv

        return LocomotionEnv(self, batch_size, threads=threads)


class _Omni(Locomotion):
    descriptor_names = ("final x", "final y")
    forward = None
    forward_weight = 0.0


class AntOmni(_Omni):
    """Ant-v5 with reward = survival - control cost; descriptor = final torso (x, y)."""

    name = "ant_omni"
    healthy_z = (2, 0.2, 1.0, True)
    descriptor_bounds = [(-30.0, 30.0), (-30.0, 30.0)]
    reward_offset = 3.0


class AntTrapOmni(_Omni):
    """Ant-v5 facing QDax's U-shaped trap; Ant-v5's full reward; obs prefixed by (x, y)."""

    name = "anttrap_omni"
    trap = True
    forward = "torso_xpos"
    forward_weight = 1.0
    healthy_z = (2, 0.2, 1.0, True)
    obs_xy_normalise = ((15.0, 0.0), (15.0, 8.0))
    obs_dim = 29
    descriptor_bounds = [(0.0, 30.0), (-8.0, 8.0)]
    reward_offset = 3.38


class HumanoidOmni(_Omni):
    """Humanoid-v5 (45-d obs) with reward = survival - control cost; final torso (x, y)."""

    name = "humanoid_omni"
    xml_file = "humanoid.xml"
    healthy_reward = 5.0
    ctrl_cost_weight = 0.1
    healthy_z = (2, 1.0, 2.0, False)
    qvel_noise = "uniform"
    obs_dim = 45
    action_dim = 17
    descriptor_bounds = [(-10.0, 10.0), (-10.0, 10.0)]
    reward_offset = 0.0


class _Uni(Locomotion):
    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.descriptor_dim = len(cls.feet)
        cls.descriptor_bounds = [(0.0, 1.0)] * cls.descriptor_dim


class AntUni(_Uni):
    """Ant-v5's reward (no contact cost); descriptor = contact fraction of the 4 lower legs."""

    name = "ant_uni"
    forward = "torso_xpos"
    healthy_z = (2, 0.2, 1.0, True)
    feet = tuple((g,) for g in _ANT_LOWER_LEGS)
    feet_are_geoms = True  # Ant's lower-leg bodies are unnamed: found through their geoms
    descriptor_names = ("front left leg", "front right leg", "back leg", "right back leg")
    reward_offset = 3.24


class Walker2dUni(_Uni):
    """Walker2d-v5's reward; descriptor = contact fraction of foot, foot_left."""

    name = "walker2d_uni"
    xml_file = "walker2d_v5.xml"
    frame_skip = 4
    obs_qpos_start = 1
    obs_qvel_clip = 10.0
    forward = "qpos"
    ctrl_cost_weight = 1e-3
    healthy_z = (1, 0.8, 2.0, False)
    healthy_angle = (-1.0, 1.0)
    qvel_noise = "uniform"
    feet = (("foot",), ("foot_left",))
    descriptor_names = ("foot", "foot_left")
    obs_dim = 17
    action_dim = 6
    reward_offset = 1.413


class HalfCheetahUni(_Uni):
    """HalfCheetah-v5's reward (no termination); descriptor = contact fraction of bfoot, ffoot."""

    name = "halfcheetah_uni"
    xml_file = "half_cheetah.xml"
    obs_qpos_start = 1
    forward = "qpos"
    healthy_reward = 0.0
    ctrl_cost_weight = 0.1
    feet = (("bfoot",), ("ffoot",))
    descriptor_names = ("bfoot", "ffoot")
    obs_dim = 17
    action_dim = 6
    reward_offset = 9.231


class HopperUni(_Uni):
    """Hopper-v5's reward; descriptor = contact fraction of the foot."""

    name = "hopper_uni"
    xml_file = "hopper.xml"
    frame_skip = 4
    obs_qpos_start = 1
    obs_qvel_clip = 10.0
    forward = "qpos"
    ctrl_cost_weight = 1e-3
    healthy_z = (1, 0.7, float("inf"), False)
    healthy_angle = (-0.2, 0.2)
    healthy_state = (-100.0, 100.0)
    qvel_noise = "uniform"
    feet = (("foot",),)
    descriptor_names = ("foot",)
    obs_dim = 11
    action_dim = 3
    reward_offset = 0.9


class HumanoidUni(_Uni):
    """Humanoid-v5's reward (45-d obs, no contact cost); contact fraction of the two shins.

    QDax counts Brax's shin bodies, which carry the feet; Gymnasium's humanoid has separate
    foot bodies, so a "shin" here is the shin body or its foot body.
    """

    name = "humanoid_uni"
    xml_file = "humanoid.xml"
    forward = "mass_center"
    forward_weight = 1.25
    healthy_reward = 5.0
    ctrl_cost_weight = 0.1
    healthy_z = (2, 1.0, 2.0, False)
    qvel_noise = "uniform"
    feet = (("left_shin", "left_foot"), ("right_shin", "right_foot"))
    descriptor_names = ("left shin", "right shin")
    obs_dim = 45
    action_dim = 17
    reward_offset = 0.0
