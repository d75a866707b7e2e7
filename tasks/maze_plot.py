"""Pictures of a maze: walls, start, goal, final positions and trajectories (matplotlib, Agg).

Drawn in maze units with the y axis pointing down, as in the simulator, so a picture matches
the coordinates in ``tasks.maze``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

__all__ = ["draw_maze", "plot_maze_positions", "to_maze_units"]


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float32).numpy()
    return np.asarray(x, dtype=np.float32)


def to_maze_units(task, positions, units: str = "auto") -> np.ndarray:
    """Positions (..., 2) as a numpy array in maze units.

    Parameters
    ----------
    task : tasks.maze.Maze
    positions : Tensor or array (..., 2)
        Maze units, or descriptors in ``[0, 1]^2``.
    units : {"auto", "maze", "descriptor"}
        ``"auto"`` reads values all inside ``[0, 1]`` as descriptors: no maze position can be
        there, since every wall lies at least a few units from the origin and the robot at least
        its radius from every wall.
    """
    xy = _numpy(positions)
    if units not in ("auto", "maze", "descriptor"):
        raise ValueError(f"units={units!r}; accepted: auto, maze, descriptor")
    if units == "auto":
        finite = xy[np.isfinite(xy)]
        units = "descriptor" if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0 else "maze"
    if units == "descriptor":
        xy = xy * np.asarray(task.size, dtype=np.float32) + np.asarray(task.origin, dtype=np.float32)
    return xy


def draw_maze(task, ax) -> None:
    """Draw the walls, the start (triangle) and the goal (circle of radius ``goal_radius``)."""
    walls = _numpy(task.walls)
    for x1, y1, x2, y2 in walls:
        ax.plot([x1, x2], [y1, y2], color="black", linewidth=2, solid_capstyle="round", zorder=3)
    start = _numpy(task.start)
    goal = _numpy(task.goal)
    ax.plot(start[0], start[1], marker="^", color="tab:green", markersize=9, zorder=5,
            linestyle="none", label="start")
    ax.add_patch(plt.Circle((goal[0], goal[1]), task.goal_radius, color="tab:red", alpha=0.6,
                            zorder=5, label="goal"))
    x0, y0 = task.origin
    w, h = task.size
    pad = 0.03 * max(w, h)
    ax.set_xlim(x0 - pad, x0 + w + pad)
    ax.set_ylim(y0 + h + pad, y0 - pad)  # y axis points down, as in the simulator
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_maze_positions(task, positions, path, trajectories=None, title: str | None = None,
                        values=None, units: str = "auto", max_trajectories: int = 200) -> Path:
    """Save a picture of final positions (and optionally trajectories) in the maze.

    Parameters
    ----------
    task : tasks.maze.Maze
    positions : Tensor or array (N, 2)
        Final positions in maze units, or descriptors in ``[0, 1]^2`` (see ``units``).
    path : str or Path
        Output image file (parent folders are created).
    trajectories : Tensor or array (M, T, 2), optional
        Paths in maze units (``info["trajectory"]``); at most ``max_trajectories`` are drawn.
    title : str, optional
    values : Tensor or array (N,), optional
        Colours for the positions (e.g. fitness), with a colour bar.
    units : {"auto", "maze", "descriptor"}
        How to read ``positions`` (see :func:`to_maze_units`).

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    xy = to_maze_units(task, positions, units).reshape(-1, 2)
    fig, ax = plt.subplots(figsize=(6, 6 * task.size[1] / task.size[0] + 0.6))
    try:
        if trajectories is not None:
            paths = _numpy(trajectories)[:max_trajectories]
            start = _numpy(task.start)
            for line in paths:
                line = np.concatenate([start[None], line], axis=0)
                ax.plot(line[:, 0], line[:, 1], color="tab:blue", alpha=0.25, linewidth=0.8, zorder=1)
        if values is None:
            ax.scatter(xy[:, 0], xy[:, 1], s=6, color="tab:blue", alpha=0.7, zorder=4)
        else:
            points = ax.scatter(xy[:, 0], xy[:, 1], s=6, c=_numpy(values).reshape(-1),
                                cmap="viridis", zorder=4)
            fig.colorbar(points, ax=ax, shrink=0.8)
        draw_maze(task, ax)
        ax.set_title(title if title is not None else f"{task.name}: {len(xy)} final positions")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path
