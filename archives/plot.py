"""Archive heatmaps through ``ribs.visualize``, titled with what produced them."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
from ribs.visualize import (cvt_archive_heatmap, grid_archive_heatmap,  # noqa: E402
                            proximity_archive_plot)

from archives.base import Archive  # noqa: E402


def heatmap_title(task: str, algorithm: str, metrics: dict) -> str:
    parts = [f"{algorithm} on {task}"]
    if "evaluations" in metrics:
        parts.append(f"{int(metrics['evaluations']):,} evals")
    line2 = []
    if "qd_score" in metrics:
        line2.append(f"QD score {metrics['qd_score']:.4g}")
    if metrics.get("coverage") == metrics.get("coverage") and "coverage" in metrics:  # not NaN
        line2.append(f"coverage {100 * metrics['coverage']:.1f}%")
    if "max_fitness" in metrics:
        line2.append(f"max fitness {metrics['max_fitness']:.4g}")
    return ", ".join(parts) + "\n" + ", ".join(line2)


def plot_heatmap(archive: Archive, path: str | os.PathLike, title: str = "",
                 descriptor_names: tuple[str, str] = ("descriptor 1", "descriptor 2"),
                 vmin: float | None = None, vmax: float | None = None,
                 y_down: bool = False) -> None:
    """Draw a 2-D archive's elites coloured by fitness and save the figure to ``path``.

    ``y_down`` draws the second descriptor growing downwards (maze coordinates).
    """
    if archive.descriptor_dim != 2:
        raise ValueError(f"heatmaps need 2 descriptor dimensions, archive has {archive.descriptor_dim}")
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    if archive.kind == "grid":
        grid_archive_heatmap(archive.ribs, ax=ax, vmin=vmin, vmax=vmax)
    elif archive.kind == "cvt":
        cvt_archive_heatmap(archive.ribs, ax=ax, vmin=vmin, vmax=vmax, lw=0.1)
    else:
        if len(archive):
            proximity_archive_plot(archive.ribs, ax=ax, vmin=vmin, vmax=vmax)
        ranges = archive.spec["ranges"]
        ax.set_xlim(*ranges[0])
        ax.set_ylim(*ranges[1])
    if y_down:
        ax.invert_yaxis()
    ax.set_xlabel(descriptor_names[0])
    ax.set_ylabel(descriptor_names[1])
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
