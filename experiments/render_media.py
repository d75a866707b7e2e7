"""What one rollout looks like: a maze or arm picture, a MuJoCo or Gymnasium video.

The drawing half of ``neuroqd render`` (:mod:`experiments.render` chooses the genome from a run
directory; this module needs no run). Each ``draw_*`` function plays one genome on the run's
evaluation path, :func:`evo.workers.local.evaluate_batch` (``Worker.evaluate`` -> ``rollout``),
with environments wrapped to record what a picture needs after the reset and each step, then
writes one file through a temporary file beside it::

    draw_*(task, policy, params (D,), seed, target (d,) or None, path, kind, heading)
        -> (Evaluation of 1, frames written, seconds spent drawing and writing)

``kind`` is ``"png"``, ``"mp4"`` or ``"gif"``; ``heading`` is the picture's first title line.
MuJoCo states are replayed into one ``MjData`` (``mj_forward`` per frame) for
``mujoco.Renderer``, headless: importing this module sets ``MUJOCO_GL`` (egl where an EGL driver
is installed, else osmesa) unless it is set, and :func:`_headless_gl` covers a process that
imported mujoco first. Everything here may run in several threads at once.
"""

from __future__ import annotations

import copy
import ctypes.util
import importlib
import os
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

__all__ = ["draw_maze_rollout", "draw_arm_pose", "draw_mujoco_rollout", "draw_gym_rollout",
           "fmt_descriptor", "headless_gl_backend", "FRAME_SIZE", "CAMERA"]

FRAME_SIZE = (480, 640)  # (height, width) of MuJoCo mp4 frames and pngs; gifs get half (file size)
# Software OpenGL (Mesa llvmpipe, ant, 640x480, 2 busy cores): 94 ms a frame with MuJoCo's
# default scene, 9 ms without shadows, reflections and 4x multisampling, which videos drop.
_SCENE_OFF = ("mjRND_SHADOW", "mjRND_REFLECTION")
CAMERA = {"distance": 4.0, "azimuth": 90.0, "elevation": -25.0}  # Gymnasium's distance, side view
_EGL_VENDOR_DIRS = ("/usr/share/glvnd/egl_vendor.d", "/etc/glvnd/egl_vendor.d")
_GL_LOCK = threading.Lock()  # one OpenGL context at a time: software drivers use every core


def headless_gl_backend() -> str:
    """``MUJOCO_GL`` to use when none is set: ``"egl"`` where an EGL driver is installed (a GPU's
    or Mesa's software one), else ``"osmesa"`` (Debian: ``libosmesa6``)."""
    vendors = any(any(Path(d).glob("*.json")) for d in _EGL_VENDOR_DIRS if Path(d).is_dir())
    return "egl" if vendors and ctypes.util.find_library("EGL") else "osmesa"


# MuJoCo reads MUJOCO_GL once, when first imported.
if "mujoco" not in sys.modules:
    os.environ.setdefault("MUJOCO_GL", headless_gl_backend())


def _headless_gl() -> None:
    """Make ``mujoco.Renderer`` headless in a process that imported mujoco with MUJOCO_GL unset:
    mujoco then chose GLFW, which needs a display. A backend the user named is kept."""
    from mujoco.rendering.classic import gl_context

    if getattr(gl_context, "_MUJOCO_GL", None) != "":
        return
    backend = os.environ.setdefault("MUJOCO_GL", headless_gl_backend())
    if backend in ("egl", "osmesa"):  # as `import mujoco` would with MUJOCO_GL set (no public way)
        gl_context.GLContext = importlib.import_module(f"mujoco.{backend}").GLContext
        gl_context._MUJOCO_GL = backend


# -- rollouts -------------------------------------------------------------------------------------

class _Recorded:
    """A control task whose environments call ``record(env)`` after the reset and each step."""

    def __init__(self, task, record) -> None:
        self._task, self._record = task, record

    def __getattr__(self, name: str):
        return getattr(self._task, name)

    def make_env(self, batch_size: int, device="cpu", threads: int = 1):
        return _RecordedEnv(self._task.make_env(batch_size, device, threads), self._record)


class _RecordedEnv:
    def __init__(self, env, record) -> None:
        self.env, self._record = env, record

    def reset(self, seeds=None):
        obs = self.env.reset(seeds)
        self._record(self.env)
        return obs

    def step(self, actions):
        out = self.env.step(actions)
        self._record(self.env)
        return out

    def outcome(self):
        return self.env.outcome()


def _rollout(task, policy, params: torch.Tensor, seed: int, record=None):
    """One episode of genome ``params`` (D,) on the run's evaluation path: an Evaluation of 1."""
    from evo.workers.local import evaluate_batch

    if record is not None:
        task = _Recorded(task, record)
    return evaluate_batch(task, params[None].float(), torch.tensor([seed], dtype=torch.int64),
                          policy=policy)


# -- files ----------------------------------------------------------------------------------------

@contextmanager
def _atomic(path: Path):
    """A temporary path beside ``path`` (same suffix, for format detection), renamed onto it
    once the block succeeds: readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}-{threading.get_ident()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class _Frames:
    """Frames (H, W, 3) uint8 written as they come, inside ``with``: a png keeps the last one;
    mp4s go through imageio-ffmpeg's ffmpeg, which encodes in its own process meanwhile."""

    def __init__(self, path: Path, kind: str, fps: float) -> None:
        self.path, self.count, self.last = path, 0, None
        self.writer = None if kind == "png" else _video_writer(path, kind, fps)

    def add(self, frame) -> None:
        self.last = np.asarray(frame, dtype=np.uint8)
        if self.writer is not None:
            self.writer.append_data(self.last)
        self.count += 1

    def __enter__(self) -> "_Frames":
        return self

    def __exit__(self, exc_type, *_) -> None:
        if self.writer is not None:
            self.writer.close()  # also on errors: no ffmpeg process is left behind
        elif exc_type is None:
            from PIL import Image  # matplotlib's own dependency

            Image.fromarray(self.last).save(self.path)
            self.count = 1


def _video_writer(path: Path, kind: str, fps: float):
    try:
        import imageio.v2 as imageio
        if kind == "mp4":
            import imageio_ffmpeg  # noqa: F401  (ships the ffmpeg binary)
    except ImportError:
        needs = "imageio and imageio-ffmpeg" if kind == "mp4" else "imageio"
        raise ValueError(f"--out: writing .{kind} needs {needs}: pip install 'neuroqd[render]' "
                         "(or ask for a .png)") from None
    if kind == "mp4":
        # H.264 in yuv420p plays in browsers; faststart lets them stream it. A tracking camera
        # moves the whole floor every frame: x264's default preset took 2.1 s for 120 frames of
        # the ant at 640x480, "veryfast" 0.8 s (4% larger at imageio's default quality, crf 25).
        return imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264",
                                  pixelformat="yuv420p", macro_block_size=16,
                                  ffmpeg_log_level="error",
                                  output_params=["-preset", "veryfast", "-movflags", "+faststart"])
    return imageio.get_writer(path, mode="I", duration=1000.0 / fps, loop=0)  # pillow: ms


def fmt_descriptor(values) -> str:
    """``"0.113, 0.605"``: a descriptor for titles and labels."""
    return ", ".join(f"{float(v):.3g}" for v in values)


def _picture(path: Path, heading: str, ev, draw, size) -> None:
    # matplotlib's object API, not pyplot: pyplot's global figure state is not thread-safe.
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    draw(ax)
    ax.set_title(f"{heading}\nfitness {float(ev.fitness[0]):.4g}, descriptor "
                 f"({fmt_descriptor(ev.descriptors[0])})", fontsize=9)
    fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=5, fontsize=8,
               frameon=False)
    fig.tight_layout(rect=(0, 0.045, 1, 1))
    fig.savefig(path, dpi=110)


# -- the four media -------------------------------------------------------------------------------

def draw_maze_rollout(task, policy, params, seed, target, path, kind, heading):
    """png: the maze, the trajectory from the start, the reached position and the target."""
    from tasks.maze_plot import draw_maze

    task = copy.copy(task)
    task.record_trajectory = True  # observation only: the dynamics do not change
    ev = _rollout(task, policy, params, seed)
    t = time.perf_counter()
    line = np.concatenate([task.start.numpy()[None], ev.info["trajectory"][0].numpy()])

    def draw(ax):
        ax.plot(line[:, 0], line[:, 1], color="tab:blue", lw=1.2, zorder=2, label="trajectory")
        ax.plot(*line[-1], marker="o", ms=8, color="tab:blue", ls="none", zorder=6, label="reached")
        if target is not None:
            ax.plot(*task.descriptors_to_positions(target).numpy(), marker="X", ms=10,
                    color="tab:purple", ls="none", zorder=6, label="target")
        draw_maze(task, ax)

    with _atomic(path) as tmp:
        _picture(tmp, heading, ev, draw, (6, 6 * task.size[1] / task.size[0] + 0.7))
    return ev, 1, time.perf_counter() - t


def draw_arm_pose(task, policy, params, seed, target, path, kind, heading):
    """png: the arm's links from the base to the end effector (its descriptor), and the target."""
    ev = _rollout(task, policy, params, seed)
    t = time.perf_counter()
    joints = task.joint_positions(params[None])[0].numpy()

    def draw(ax):
        ax.plot(joints[:, 0], joints[:, 1], "-o", color="tab:blue", lw=3, ms=4, zorder=3,
                label=f"{task.solution_dim} links")
        ax.plot(*joints[0], marker="s", ms=10, color="black", ls="none", zorder=4, label="base")
        ax.plot(*ev.descriptors[0].numpy(), marker="*", ms=16, color="tab:red", ls="none",
                zorder=5, label="end effector")
        if target is not None:
            ax.plot(*target.numpy(), marker="X", ms=10, color="tab:purple", ls="none", zorder=6,
                    label="target")
        (xlo, xhi), (ylo, yhi) = task.descriptor_bounds
        ax.set(xlim=(xlo, xhi), ylim=(ylo, yhi), aspect="equal", xlabel=task.descriptor_names[0],
               ylabel=task.descriptor_names[1])
        ax.grid(alpha=0.3)

    with _atomic(path) as tmp:
        _picture(tmp, heading, ev, draw, (5.5, 6.2))
    return ev, 1, time.perf_counter() - t


def draw_mujoco_rollout(task, policy, params, seed, target, path, kind, heading):
    """mp4/gif of a locomotion episode (a png: its last frame), camera tracking the torso."""
    import mujoco

    states: list[np.ndarray] = []  # qpos after the reset and after each control step
    ev = _rollout(task, policy, params, seed, record=lambda env: states.append(env.qpos[0].copy()))
    t = time.perf_counter()
    _headless_gl()
    model = copy.copy(task.model)  # render settings stay off the task's own model
    model.vis.quality.offsamples = 0
    height, width = FRAME_SIZE if kind != "gif" else (FRAME_SIZE[0] // 2, FRAME_SIZE[1] // 2)
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    data = mujoco.MjData(model)
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    camera.trackbodyid = max(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, "torso"), 1)
    for key, value in CAMERA.items():
        setattr(camera, key, value)
    with _GL_LOCK, _atomic(path) as tmp:
        try:
            renderer = mujoco.Renderer(model, height, width)
        except Exception as exc:  # noqa: BLE001 - each backend fails its own way
            reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            raise ValueError(f"DIR: rendering {task.name} needs a headless OpenGL for MuJoCo "
                             f"(MUJOCO_GL={os.environ.get('MUJOCO_GL', '')!r}: {reason}); install "
                             "Mesa's OSMesa (apt-get install libosmesa6) or an EGL driver, or "
                             "set MUJOCO_GL") from None
        try:
            for flag in _SCENE_OFF:
                renderer.scene.flags[getattr(mujoco.mjtRndFlag, flag)] = False
            with _Frames(tmp, kind, 1.0 / (model.opt.timestep * task.frame_skip)) as frames:
                for qpos in states if kind != "png" else states[-1:]:
                    data.qpos[:] = qpos
                    mujoco.mj_forward(model, data)
                    renderer.update_scene(data, camera)
                    frames.add(renderer.render())
        finally:
            renderer.close()
    return ev, frames.count, time.perf_counter() - t


def draw_gym_rollout(task, policy, params, seed, target, path, kind, heading):
    """mp4/gif of a gym task's episode from its env's ``rgb_array`` frames (a png: the last)."""
    import gymnasium

    _headless_gl()  # Gymnasium's MuJoCo envs read MUJOCO_GL when they draw
    probe = gymnasium.make(task.env_id, **task.env_kwargs)
    modes = list(probe.metadata.get("render_modes") or [])
    fps = float(probe.metadata.get("render_fps") or 30)
    probe.close()
    if "rgb_array" not in modes:
        raise ValueError(f"DIR: gym env {task.env_id!r} cannot draw frames (render_modes "
                         f"{modes}); render needs 'rgb_array'")
    shown = copy.copy(task)  # its vector env makes sub-environments that draw frames
    shown.env_kwargs = {**task.env_kwargs, "render_mode": "rgb_array"}
    envs: list = []

    def frame():
        try:
            return envs[0].vec.envs[0].render()
        except (ImportError, gymnasium.error.Error) as exc:
            raise ValueError(f"DIR: gym env {task.env_id!r} cannot render here: "
                             f"{str(exc).strip().splitlines()[0]}") from None

    def record(env):
        envs[:] = [env]
        if kind != "png":  # a png needs the last frame only
            frames.add(frame())

    t = time.perf_counter()  # frames are drawn during the rollout: all of it is drawing
    with _GL_LOCK, _atomic(path) as tmp, _Frames(tmp, kind, fps) as frames:
        try:
            ev = _rollout(shown, policy, params, seed, record=record)
            if kind == "png":
                frames.add(frame())
        finally:
            if envs:
                envs[0].close()
    return ev, frames.count, time.perf_counter() - t
