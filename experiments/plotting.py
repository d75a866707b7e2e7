"""Figures of a run directory: heatmap.png, curves.png, and comparison plots."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

CURVES = ("qd_score", "coverage", "max_fitness")


def read_metrics(run_dir: Path) -> dict[str, np.ndarray]:
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    cols: dict[str, np.ndarray] = {}
    for key in (rows[0].keys() if rows else []):
        try:
            cols[key] = np.array([float(r[key]) if r[key] != "" else np.nan for r in rows])
        except ValueError:
            continue
    return cols


def plot_curves(run_dir: Path, path: Path | None = None) -> Path:
    metrics = read_metrics(run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, key in zip(axes, CURVES):
        if key in metrics:
            ax.plot(metrics["evaluations"], metrics[key])
        ax.set_xlabel("evaluations")
        ax.set_title(key.replace("_", " "))
        ax.grid(alpha=0.3)
    fig.suptitle(f"{config['algorithm']} on {config['task']['name']} (seed {config['seed']})")
    fig.tight_layout()
    path = path or run_dir / "curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def load_run_archive(run_dir: Path):
    """The final archive of a run (``archive.npz``), else the one in its newest checkpoint."""
    from archives import StateFileError, load_archive, load_state, make_archive
    from evo.build import build_task

    if (run_dir / "archive.npz").exists():
        return load_archive(run_dir / "archive.npz")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    for ckpt in sorted((run_dir / "checkpoints").glob("ckpt_*.npz"), reverse=True):
        try:
            state = load_state(ckpt)["algorithm"]["archive"]
        except StateFileError:
            continue
        task = build_task(config)
        dim = np.asarray(state["data.solution"]).shape[1]
        archive = make_archive(config["archive"], dim, task.descriptor_bounds, task.fitness_offset)
        archive.load_state_dict(state)
        return archive
    raise FileNotFoundError(f"{run_dir}: no archive.npz and no readable checkpoint")


def plot_run(run_dir: Path) -> list[Path]:
    """heatmap.png and curves.png (and maze.png for maze tasks) of a run directory."""
    from archives.plot import heatmap_title, plot_heatmap

    run_dir = Path(run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    summary = {}
    if (run_dir / "summary.json").exists():
        summary = json.loads((run_dir / "summary.json").read_text())
    from evo.build import build_task

    archive = load_run_archive(run_dir)
    task = build_task(config)
    out = []
    if archive.descriptor_dim == 2:
        metrics = summary or archive.metrics()
        plot_heatmap(archive, run_dir / "heatmap.png",
                     heatmap_title(config["task"]["name"], config["algorithm"], metrics),
                     descriptor_names=task.descriptor_names, y_down=task.descriptor_y_down)
        out.append(run_dir / "heatmap.png")
    if (run_dir / "metrics.csv").exists():
        out.append(plot_curves(run_dir))
    if config["task"]["name"].endswith("maze"):
        from tasks.maze_plot import plot_maze_positions

        elites = archive.elites()
        plot_maze_positions(task, elites["descriptors"].numpy(), run_dir / "maze.png",
                            title=f"{config['algorithm']}: final positions of the archive")
        out.append(run_dir / "maze.png")
    return out


def compare_runs(run_dirs: list[Path], path: Path) -> Path:
    """Median and interquartile range of each group of runs.

    Runs named ``NAME_sSEED`` (the default run directories, ``runs/me_arm_s3``) are grouped by
    NAME, so configs of one algorithm with different emitters (PGA-ME, DCRL-ME) stay apart;
    other directories by algorithm and task.
    """
    groups: dict[str, list[dict]] = {}
    for d in run_dirs:
        config = yaml.safe_load((Path(d) / "config.yaml").read_text())
        named = re.fullmatch(r"(.+)_s\d+(_\d+)?", Path(d).name)
        label = named.group(1) if named else f"{config['algorithm']} / {config['task']['name']}"
        groups.setdefault(label, []).append(read_metrics(Path(d)))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for label, runs in groups.items():
        top = min(r["evaluations"][-1] for r in runs)
        grid = np.linspace(0, top, 200)
        for ax, key in zip(axes, CURVES):
            ys = np.stack([np.interp(grid, r["evaluations"], r[key]) for r in runs])
            med = np.nanmedian(ys, axis=0)
            lo, hi = np.nanpercentile(ys, [25, 75], axis=0)
            line, = ax.plot(grid, med, label=f"{label} (n={len(runs)})")
            ax.fill_between(grid, lo, hi, color=line.get_color(), alpha=0.25)
    for ax, key in zip(axes, CURVES):
        ax.set_xlabel("evaluations")
        ax.set_title(key.replace("_", " "))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
