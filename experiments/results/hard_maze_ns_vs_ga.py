"""Novelty search vs the fitness-driven Deep GA on Lehman & Stanley's hard maze.

Both runs use their shipped configs (``ns_hard_maze``, ``ga_hard_maze``): the same 11-16-2
tanh MLP, the same budget in evaluations and the same 50x50 result grid over the final (x, y).
Novelty search selects on novelty alone; the GA on fitness (minus the final distance to the
goal), which leads it into the deceptive cul-de-sac below the goal.

Writes ``hard_maze_ns_vs_ga.md`` (per-seed table) and ``hard_maze_ns_vs_ga.png`` (the final
positions in each run's result archive, drawn in the maze) next to this file::

    python experiments/results/hard_maze_ns_vs_ga.py --seeds 10 --jobs 2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time
from pathlib import Path


HERE = Path(__file__).parent
CONFIGS = {"ns": "ns_hard_maze", "ga": "ga_hard_maze"}
LABELS = {"ns": "novelty search (GA-NS)", "ga": "Deep GA (fitness)"}


def run_one(algorithm: str, seed: int, overrides: tuple[str, ...] = ()) -> dict:
    """One full run of ``CONFIGS[algorithm]``; returns its figures and final positions."""
    import torch

    torch.set_num_threads(1)  # one run per core
    from evo.build import build_run
    from experiments.config import load_raw, resolve

    config = resolve(load_raw(CONFIGS[algorithm]), [*overrides, f"seed={seed}"])
    engine = build_run(config, None, progress=False)
    start = time.perf_counter()
    summary = engine.run()
    elites = engine.algorithm.archive.elites()
    best = int(torch.argmax(elites["fitness"]))
    return {
        "algorithm": algorithm, "seed": seed, "solved": bool(summary["solved"]),
        "evaluations_to_solve": summary["evaluations_to_solve"],
        "evaluations": summary["evaluations"],
        # the grid keeps the best of every cell, so its max is the best of the whole run
        "final_distance": -float(summary["max_fitness"]),
        "coverage": float(summary["coverage"]),
        "time_s": time.perf_counter() - start,
        "descriptors": elites["descriptors"].numpy(),
        "best_descriptor": elites["descriptors"][best].numpy(),
    }


def _run_job(job):
    return run_one(*job)


def run_pair(seed: int, overrides: tuple[str, ...] = ()) -> dict:
    """Novelty search and the GA on one seed (sequentially)."""
    return {a: run_one(a, seed, overrides) for a in CONFIGS}


def run_all(seeds: int, jobs: int, overrides: tuple[str, ...] = ()) -> list[dict]:
    work = [(a, s, overrides) for s in range(seeds) for a in CONFIGS]
    if jobs <= 1:
        return [run_one(*w) for w in work]
    with mp.get_context("spawn").Pool(jobs) as pool:
        return pool.map(_run_job, work, chunksize=1)


def write_markdown(results: list[dict], path: Path, budget_note: str, elapsed: float) -> None:
    lines = [
        "# Hard maze: novelty search vs the fitness-driven Deep GA",
        "",
        "Produced by `experiments/results/hard_maze_ns_vs_ga.py` "
        f"({budget_note}; {elapsed / 60:.1f} min wall clock on this machine).",
        "Both use the shipped configs `ns_hard_maze` and `ga_hard_maze`: the same 11-16-2 tanh "
        "MLP, the same budget and the same 50x50 result grid over the final (x, y). "
        "*Solved*: some evaluated genome ended within 5 maze units of the goal. "
        "*Final distance*: the closest any evaluated genome ended to the goal (maze units). "
        "*Coverage*: fraction of the 50x50 grid cells reached.",
        "",
    ]
    for a in CONFIGS:
        rs = [r for r in results if r["algorithm"] == a]
        solved = [r["evaluations_to_solve"] for r in rs if r["solved"]]
        med = f", median evaluations to solve {statistics.median(solved):,.0f}" if solved else ""
        lines.append(f"- **{LABELS[a]}**: solved {len(solved)}/{len(rs)} seeds{med}; median final "
                     f"distance {statistics.median(r['final_distance'] for r in rs):.1f}; median "
                     f"coverage {statistics.median(r['coverage'] for r in rs):.3f}")
    lines += ["", "| algorithm | seed | solved | evaluations to solve | final distance | coverage |",
              "|---|---:|:---:|---:|---:|---:|"]
    for r in sorted(results, key=lambda r: (list(CONFIGS).index(r["algorithm"]), r["seed"])):
        ets = f"{r['evaluations_to_solve']:,}" if r["solved"] else "-"
        lines.append(f"| {LABELS[r['algorithm']]} | {r['seed']} | {'yes' if r['solved'] else 'no'} "
                     f"| {ets} | {r['final_distance']:.1f} | {r['coverage']:.3f} |")
    lines += ["", f"![final positions]({path.with_suffix('.png').name})", "",
              "The picture shows, for every seed, the final positions held in the result archive "
              "(one per reached grid cell; all seeds overlaid, one colour per seed) and, as stars, "
              "each seed's closest approach to the goal (red disc).", ""]
    path.write_text("\n".join(lines))


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tasks import make_task
    from tasks.maze_plot import draw_maze, to_maze_units

    task = make_task("hard_maze")
    fig, axes = plt.subplots(1, 2, figsize=(11, 5.8))
    cmap = plt.get_cmap("tab10")
    for ax, a in zip(axes, CONFIGS):
        rs = sorted((r for r in results if r["algorithm"] == a), key=lambda r: r["seed"])
        for i, r in enumerate(rs):
            xy = to_maze_units(task, r["descriptors"], units="descriptor")
            ax.scatter(xy[:, 0], xy[:, 1], s=3, color=cmap(i % 10), alpha=0.35, zorder=2)
        for i, r in enumerate(rs):
            best = to_maze_units(task, r["best_descriptor"][None], units="descriptor")[0]
            ax.plot(best[0], best[1], marker="*", markersize=13, color=cmap(i % 10),
                    markeredgecolor="black", zorder=6, linestyle="none")
        draw_maze(task, ax)
        solved = sum(r["solved"] for r in rs)
        ax.set_title(f"{LABELS[a]}: solved {solved}/{len(rs)} seeds\n"
                     f"final positions in the result archive, {rs[0]['evaluations']:,} evaluations")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel (one core each)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override applied to both configs, e.g. budget.evaluations=20000")
    p.add_argument("--out", default=str(HERE / "hard_maze_ns_vs_ga.md"))
    args = p.parse_args(argv)
    start = time.perf_counter()
    results = run_all(args.seeds, args.jobs, tuple(args.set))
    elapsed = time.perf_counter() - start
    out = Path(args.out)
    # Whole generations are evaluated, so a run may end a little past the budget.
    spent = ", ".join(f"{a} {max(r['evaluations'] for r in results if r['algorithm'] == a):,}"
                      for a in CONFIGS)
    note = f"{args.seeds} seeds, evaluations per run: {spent}" + (
        f"; overrides {' '.join(args.set)}" if args.set else "")
    write_markdown(results, out, note, elapsed)
    plot(results, out.with_suffix(".png"))
    for r in results:
        print(f"{r['algorithm']} seed {r['seed']}: solved={r['solved']} "
              f"evaluations_to_solve={r['evaluations_to_solve']} "
              f"final_distance={r['final_distance']:.1f} coverage={r['coverage']:.3f} "
              f"({r['time_s']:.0f} s)")
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
