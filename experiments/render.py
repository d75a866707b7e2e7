"""``neuroqd render DIR``: what an elite (or the distilled policy) does, as a picture or a video.

Mazes: png of the walls, start, goal, trajectory and reached position (and the target asked
for). Arm: png of its pose, links from the base to the end effector (the descriptor). MuJoCo
locomotion: mp4 (default) or gif of the episode from a camera tracking the torso, or png of its
last frame. Gym tasks: the same, from the environment's own ``render_mode="rgb_array"`` frames.

This module picks the genome (an elite of the run's archive, or the distilled policy folded on a
target descriptor) and names the output; :mod:`experiments.render_media` plays it on the run's
own evaluation path with the run's seed, so the reached descriptor and fitness are the archive's
(exactly on deterministic tasks; tasks with reset noise start from the run seed's state), and
draws it.

For Python callers such as the browser explorer (both safe to call from several threads)::

    info = render_run(run_dir, cell=17, out=cache / "cell_17.mp4")  # writes that file only
    view = load_run_view(run_dir)  # config, task, policy, archive, elites: cached per run dir
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from experiments import render_media  # importing it sets MUJOCO_GL before mujoco is imported
from experiments.render_media import fmt_descriptor

__all__ = ["RunView", "file_stamp", "load_run_view", "render_run"]

KINDS = (".png", ".mp4", ".gif")
RENDERS = "renders"  # default output folder inside the run directory
_VIEWS_LOCK = threading.Lock()
_VIEWS: OrderedDict[Path, tuple[tuple, "RunView"]] = OrderedDict()
_VIEWS_KEPT = 8


# -- the run, loaded once -------------------------------------------------------------------------

class RunView:
    """What rendering needs from a run directory (get one with :func:`load_run_view`).

    Attributes
    ----------
    run_dir : Path (absolute)
    config : dict, the resolved ``config.yaml``
    task, policy : the run's task and policy (None for direct tasks such as the arm)
    archive : archives.Archive
    elites : dict of Tensor, ``archive.elites()`` (sorted by cell): ``genomes`` (n, D),
        ``fitness`` (n,), ``descriptors`` (n, d), ``index`` (n,) cells, and ``genome_id`` (n,)
        for seed-chain archives
    seed : int, the run's seed; every rollout of a render uses it
    """

    def __init__(self, run_dir: Path) -> None:
        from experiments.evaluate import load_run

        if not (run_dir / "config.yaml").exists():
            raise ValueError(f"DIR: {run_dir} is not a run directory (no config.yaml)")
        self.run_dir = run_dir
        self.config, self.archive, self.task, self.policy = load_run(run_dir)
        self.elites = self.archive.elites()
        self.seed = int(self.config["seed"])
        self._lock = threading.Lock()
        self._params: torch.Tensor | None = None
        self._distilled: tuple | None = None

    @property
    def default_suffix(self) -> str:
        """``".png"`` for mazes and the arm (the only kind they render), ``".mp4"`` otherwise;
        a ``ValueError`` for tasks render cannot draw (sphere, rastrigin)."""
        return ".png" if _medium(self.task) in ("maze", "arm") else ".mp4"

    def parameters(self, i: int) -> torch.Tensor:
        """Genome (D,) float32 of elite ``i`` (``elites`` order); seed chains decoded once."""
        from experiments.evaluate import elite_parameters

        with self._lock:
            if self._params is None:
                if self.policy is None and "genome_id" in self.elites:
                    raise ValueError(f"DIR: {self.run_dir} stores seed chains of a direct task; "
                                     "render decodes seed chains of policies only")
                self._params = (self.elites["genomes"].float() if self.policy is None
                                else elite_parameters(self.run_dir, self.archive, self.policy))
            return self._params[i]

    def distilled(self) -> tuple[Any, dict]:
        """``(actor, meta)`` of DIR/distilled/, checked against the run's task; read again when
        the file changes (DCG-ME and DCRL-ME runs rewrite it at every checkpoint)."""
        from evo.distill import POLICY_JSON, check_policy_task, load_distilled
        from experiments.evaluate import DISTILLED

        if self.policy is None:
            raise ValueError(f"--distilled: task {self.task.name!r} is not a control task; only "
                             "runs of policies have a distilled policy")
        path = self.run_dir / DISTILLED
        stamp = file_stamp(path / POLICY_JSON)
        if stamp is None:
            raise ValueError(f"--distilled: {path / POLICY_JSON} missing; run `neuroqd distill "
                             f"{self.run_dir}` first")
        with self._lock:
            if self._distilled is None or self._distilled[0] != stamp:
                actor, meta = load_distilled(path)
                check_policy_task(meta, self.config["task"], self.task, path)
                self._distilled = (stamp, actor, meta)
            return self._distilled[1], self._distilled[2]


def file_stamp(path: Path) -> str | None:
    """``"MTIME.SIZE"`` (hex) of ``path``, None if it does not exist: changes with the file."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return f"{st.st_mtime_ns:x}.{st.st_size:x}"


def load_run_view(run_dir: str | os.PathLike) -> RunView:
    """The :class:`RunView` of a run directory, loaded once and reused until config.yaml,
    archive.npz or the newest checkpoint change (a live run); the 8 last used are kept."""
    run_dir = Path(run_dir).resolve()
    ckpts = sorted((run_dir / "checkpoints").glob("ckpt_*.npz"))
    stamp = (file_stamp(run_dir / "config.yaml"), file_stamp(run_dir / "archive.npz"),
             ckpts[-1].name if ckpts else None, file_stamp(ckpts[-1]) if ckpts else None)
    with _VIEWS_LOCK:  # loading under the lock: concurrent callers never load one run twice
        hit = _VIEWS.get(run_dir)
        if hit is not None and hit[0] == stamp:
            _VIEWS.move_to_end(run_dir)
            return hit[1]
        view = RunView(run_dir)
        _VIEWS[run_dir] = (stamp, view)
        while len(_VIEWS) > _VIEWS_KEPT:
            _VIEWS.popitem(last=False)
        return view


# -- choosing what to render ----------------------------------------------------------------------

def _parse_descriptor(text, task) -> torch.Tensor:
    """``"X,Y"`` (or a sequence of d floats) -> (d,) float32 inside the task's bounds."""
    try:
        values = [float(v) for v in (text.split(",") if isinstance(text, str) else text)]
    except (TypeError, ValueError):
        values = []
    d = task.descriptor_dim
    if len(values) != d or not all(math.isfinite(v) for v in values):
        raise ValueError(f"--descriptor: expected {d} comma-separated numbers, got {text!r}")
    bounds = [list(b) for b in task.descriptor_bounds]
    if any(not lo <= v <= hi for v, (lo, hi) in zip(values, bounds)):
        raise ValueError(f"--descriptor: {text!r} lies outside the descriptor bounds {bounds}")
    return torch.tensor(values, dtype=torch.float32)


def _select(view: RunView, best: bool, cell: int | None, target: torch.Tensor | None) -> int:
    """Position in ``view.elites`` of the best elite, of cell ``cell``'s, or of the one nearest
    ``target`` (each dimension scaled by its bounds' width: gym descriptors mix scales)."""
    fitness, cells = view.elites["fitness"], view.elites["index"]
    n = len(fitness)
    if n == 0:
        raise ValueError(f"DIR: the archive of {view.run_dir} is empty; nothing to render")
    if best:
        return int(torch.argmax(fitness))
    if cell is not None:
        if not 0 <= cell < view.archive.cells:
            raise ValueError(f"--cell: the archive's cells are 0 to {view.archive.cells - 1}, "
                             f"got {cell}")
        hit = (cells == cell).nonzero()
        if len(hit) == 0:
            shown = ", ".join(str(int(c)) for c in cells[:8]) + (", ..." if n > 8 else "")
            raise ValueError(f"--cell: archive cell {cell} is empty; filled cells: {shown} "
                             f"({n} in all)")
        return int(hit[0, 0])
    width = torch.tensor([hi - lo for lo, hi in view.task.descriptor_bounds])
    return int((((view.elites["descriptors"] - target) / width) ** 2).sum(1).argmin())


def _medium(task) -> str:
    from tasks.functions import Arm
    from tasks.gym_task import GymTask
    from tasks.locomotion import Locomotion
    from tasks.maze import Maze

    for cls, medium in ((Maze, "maze"), (Arm, "arm"), (Locomotion, "mujoco"), (GymTask, "gym")):
        if isinstance(task, cls):
            return medium
    raise ValueError(f"DIR: task {task.name!r} has no picture; render draws mazes, the arm, "
                     "MuJoCo locomotion and gym tasks")


# -- the entry point ------------------------------------------------------------------------------

def render_run(run_dir: str | os.PathLike, best: bool = False, cell: int | None = None,
               descriptor=None, distilled: bool = False,
               out: str | os.PathLike | None = None) -> dict:
    """Render an elite of a run, or its distilled policy, into a png, mp4 or gif.

    Parameters
    ----------
    run_dir : a run directory
    best, cell, descriptor : exactly one. The archive's best elite; the elite of archive cell
        ``cell`` (ribs index, grid or CVT); the elite nearest ``descriptor`` (``"X,Y"`` or d
        floats), or with ``distilled`` the descriptor the policy is conditioned on.
    distilled : roll out DIR/distilled/'s policy conditioned on that descriptor (for ``best``
        and ``cell``: the elite's) instead of the elite.
    out : ``.png``, ``.mp4`` or ``.gif`` file; default ``DIR/renders/NAME.png`` for mazes and the
        arm, ``.mp4`` otherwise. Nothing else is written but a temporary file beside it, renamed
        onto it once complete.

    Returns
    -------
    dict, JSON-ready: ``path``; ``kind`` (png/mp4/gif); ``fitness`` and ``descriptor`` (d,)
    reached; ``target`` (the descriptor asked for, or None); the chosen elite's ``cell``,
    ``index`` (position in ``RunView.elites``), ``genome_id`` (seed-chain archives),
    ``archive_fitness`` and ``archive_descriptor`` (None for ``distilled`` with ``descriptor``;
    ``cell`` is then the target's cell); ``failed``; ``frames``; ``time_s`` (``load``,
    ``rollout``, ``render``).

    Raises
    ------
    ValueError
        One line starting with the argument at fault: ``--cell:``, ``--descriptor:``,
        ``--distilled:``, ``--out:``, ``--best:`` or ``DIR:``.
    """
    from evo.distill import plain_policy
    from evo.rl.networks import fold_descriptor, normalise_descriptors

    t0 = time.perf_counter()
    if bool(best) + (cell is not None) + (descriptor is not None) != 1:
        raise ValueError("--best: give exactly one of --best, --cell I or --descriptor X,Y")
    suffix = None if out is None else Path(out).suffix.lower()
    if suffix is not None and suffix not in KINDS:
        raise ValueError(f"--out: expected .png, .mp4 or .gif, got {suffix or repr(str(out))}")
    view = load_run_view(run_dir)
    medium = _medium(view.task)
    if suffix is None:
        suffix = view.default_suffix
    elif view.default_suffix == ".png" and suffix != ".png":
        raise ValueError(f"--out: task {view.task.name!r} renders a still picture (.png), "
                         f"got {suffix}")
    target = None if descriptor is None else _parse_descriptor(descriptor, view.task)
    index = None if distilled and target is not None else _select(view, best, cell, target)
    elite = dict.fromkeys(("cell", "index", "genome_id", "archive_fitness", "archive_descriptor"))
    if index is not None:
        e = view.elites
        elite = {"cell": int(e["index"][index]), "index": index,
                 "genome_id": int(e["genome_id"][index]) if "genome_id" in e else None,
                 "archive_fitness": float(e["fitness"][index]),
                 "archive_descriptor": e["descriptors"][index].tolist()}
    name = ("best" if best else f"cell_{cell}" if cell is not None
            else "descriptor_" + "_".join(f"{float(v):g}" for v in target))
    if distilled:
        actor, meta = view.distilled()
        if target is None:
            target = view.elites["descriptors"][index].float()
        name = "distilled_" + name.removeprefix("descriptor_")
        with torch.no_grad():  # the genome of the plain policy that acts as actor(., target)
            cond = normalise_descriptors(target[None], meta["descriptor_bounds"])
            params, policy = fold_descriptor(actor, cond)[0].cpu(), plain_policy(actor)
        label = f"distilled policy, target ({fmt_descriptor(target)})"
        if elite["cell"] is None and view.archive.kind in ("grid", "cvt"):
            elite["cell"] = int(view.archive.ribs.index_of(target[None].numpy())[0])
    else:
        params, policy = view.parameters(index), view.policy
        label = ("best elite" if best else "elite" if cell is not None
                 else f"elite nearest ({fmt_descriptor(target)})") + f", cell {elite['cell']}"
    path = Path(out) if out is not None else view.run_dir / RENDERS / f"{name}{suffix}"
    loaded = time.perf_counter()
    draw = {"maze": render_media.draw_maze_rollout, "arm": render_media.draw_arm_pose,
            "mujoco": render_media.draw_mujoco_rollout, "gym": render_media.draw_gym_rollout}
    ev, frames, render_s = draw[medium](view.task, policy, params, view.seed, target, path,
                                        suffix[1:], f"{view.config['algorithm']} on "
                                        f"{view.task.name}: {label}")
    return {"path": str(path), "kind": suffix[1:], "fitness": float(ev.fitness[0]),
            "descriptor": ev.descriptors[0].tolist(),
            "target": None if target is None else target.tolist(), **elite,
            "failed": bool(ev.failed[0]), "frames": frames,
            "time_s": {"load": round(loaded - t0, 4),
                       "rollout": round(time.perf_counter() - loaded - render_s, 4),
                       "render": round(render_s, 4)}}
