"""MAP-Elites vs PGA-ME vs DCG-ME vs DCRL-ME on one task, at equal evaluations.

Each algorithm runs its shipped config for the task (``me_TASK``, ``pga_me_TASK``,
``dcg_me_TASK``, ``dcrl_me_TASK``: the same policy network, batch, grid and budget; TASK is
``hard_maze`` or ``ant_omni``) on the same seeds, with the same ``--set`` overrides. Writes,
next to this file:

- ``pg_me_TASK.md``: median QD score and coverage with interquartile ranges, one-sided
  Mann-Whitney U tests of the expected ordering with Holm's correction, per-seed figures, and
  one policy per archive conditioned on every filled cell's descriptor (DCG-ME / DCRL-ME: the
  run's descriptor-conditioned actor; MAP-Elites: its archive distilled by ``neuroqd
  distill``): its QD score as a fraction of its archive's, and the mean distance between
  reached and target descriptors;
- ``pg_me_TASK.png``: QD score curves, median and IQR per algorithm (``neuroqd compare``).

Run directories go to ``runs/pg_me_TASK/`` (an interrupted script continues where it stopped)::

    python experiments/results/pg_me.py --task hard_maze --seeds 3 --jobs 2
    python experiments/results/pg_me.py --task ant_omni --seeds 3 --jobs 1 --set batch_size=64
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).parent
ALGORITHMS = ("me", "pga_me", "dcg_me", "dcrl_me")  # config NAME_TASK
TASKS = {"hard_maze": "the hard maze", "ant_omni": "ant_omni"}
LABELS = {"me": "MAP-Elites (iso+line)", "pga_me": "PGA-ME", "dcg_me": "DCG-ME",
          "dcrl_me": "DCRL-ME"}
DISTILL_EPOCHS = 100
# The ordering the papers report, tested pairwise (one-sided: the first is better).
ORDER = [("dcrl_me", "pga_me"), ("dcg_me", "pga_me"), ("pga_me", "me")]


def neuroqd(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "experiments.cli", *args], capture_output=True,
                          text=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    if proc.returncode != 0:
        raise RuntimeError(f"neuroqd {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def run_one(algorithm: str, seed: int, task: str, out: Path, overrides: list[str]) -> dict:
    run_dir = out / f"{algorithm}_s{seed}"
    start = time.perf_counter()
    if not (run_dir / "summary.json").exists():
        if run_dir.exists():  # an earlier attempt that stopped: continue it
            neuroqd("resume", str(run_dir), "--quiet")
        else:
            sets = [a for o in overrides for a in ("--set", o)]
            neuroqd("run", f"{algorithm}_{task}", "--seed", str(seed), "--out", str(run_dir),
                    "--quiet", *sets)
    result = {"algorithm": algorithm, "seed": seed, "dir": str(run_dir),
              "time_s": time.perf_counter() - start,
              **json.loads((run_dir / "summary.json").read_text())}
    if algorithm == "me" and not (run_dir / "distilled" / "policy.json").exists():
        # MAP-Elites has no actor of its own: distil its archive (supervised, `neuroqd distill`)
        neuroqd("distill", str(run_dir), "--epochs", str(DISTILL_EPOCHS))
    if (run_dir / "distilled" / "policy.json").exists():
        result["distilled"] = json.loads(neuroqd("eval", str(run_dir), "--distilled"))
    return result


def solved(runs: list[dict]) -> str:
    """How many runs reached the goal, for tasks that have one."""
    if not any("solved" in r for r in runs):
        return "-"
    return f"{sum(bool(r.get('solved')) for r in runs)}/{len(runs)}"


def iqr(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values * 3
    return statistics.median(values), q[0], q[-1]


def holm(pvalues: list[float]) -> list[float]:
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def report(results: list[dict], task: str, overrides: list[str], seeds: int) -> str:
    from scipy.stats import mannwhitneyu

    by = {a: [r for r in results if r["algorithm"] == a] for a in ALGORITHMS}
    qd = {a: [r["qd_score"] for r in rs] for a, rs in by.items()}
    lines = [
        f"# MAP-Elites, PGA-ME, DCG-ME and DCRL-ME on {TASKS[task]}",
        "",
        f"`python experiments/results/pg_me.py --task {task} --seeds {seeds}"
        + "".join(f" --set {o}" for o in overrides) + "`: shipped configs "
        + ", ".join(f"`{a}_{task}`" for a in ALGORITHMS) + f", seeds 0-{seeds - 1}, "
        f"{results[0]['evaluations']} evaluations each (DCG-ME's actor rollouts included). "
        "Critic and PG steps are the configs' reduced ones (300 critic steps, 50 PG steps per "
        "generation; the papers: 3000 and 150), so that every run takes minutes on 2 cores.",
        "",
        "| algorithm | median QD score [IQR] | median coverage [IQR] | median max fitness | solved | median time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for a, rs in by.items():
        m, lo, hi = iqr(qd[a])
        cm, clo, chi = iqr([r["coverage"] for r in rs])
        lines.append(f"| {LABELS[a]} | {m:.0f} [{lo:.0f}, {hi:.0f}] | {cm:.3f} [{clo:.3f}, {chi:.3f}] "
                     f"| {statistics.median(r['max_fitness'] for r in rs):.1f} "
                     f"| {solved(rs)} "
                     f"| {statistics.median(r['time_s'] for r in rs):.0f} |")
    tests = [mannwhitneyu(qd[a], qd[b], alternative="greater").pvalue for a, b in ORDER]
    lines += ["", "One-sided Mann-Whitney U on the final QD score (Holm-corrected over the "
              f"{len(ORDER)} comparisons; with {seeds} seeds per group the smallest possible "
              f"p-value is {1 / _comb(2 * seeds, seeds):.3f}):", "",
              "| hypothesis | U | p | p (Holm) |", "|---|---|---|---|"]
    for (a, b), p, ph in zip(ORDER, tests, holm(tests)):
        u = mannwhitneyu(qd[a], qd[b], alternative="greater").statistic
        lines.append(f"| {LABELS[a]} > {LABELS[b]} | {u:.0f} | {p:.3f} | {ph:.3f} |")
    distilled = [r for r in results if "distilled" in r]
    if distilled:
        lines += ["", "One policy for the whole archive (`neuroqd eval DIR --distilled`: conditioned "
                  "on every filled cell's descriptor): for DCG-ME and DCRL-ME the run's own "
                  "descriptor-conditioned actor, for MAP-Elites its archive distilled by "
                  f"`neuroqd distill DIR --epochs {DISTILL_EPOCHS}`:", "",
                  "| run | archive QD score | single-policy QD score | ratio | mean / median descriptor error |",
                  "|---|---|---|---|---|"]
        for r in distilled:
            d = r["distilled"]
            lines.append(f"| {LABELS[r['algorithm']]} seed {r['seed']} | {d['qd_score']:.0f} | "
                         f"{d['distilled_qd_score']:.0f} | {d['qd_score_ratio']:.2f} | "
                         f"{d['mean_descriptor_error']:.3f} / {d['median_descriptor_error']:.3f} |")
    lines += ["", "Per seed:", "", "| algorithm | seed | QD score | coverage | max fitness |",
              "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {LABELS[r['algorithm']]} | {r['seed']} | {r['qd_score']:.0f} | "
                     f"{r['coverage']:.3f} | {r['max_fitness']:.1f} |")
    lines += ["", f"![QD score curves](pg_me_{task}.png)", ""]
    return "\n".join(lines)


def _comb(n: int, k: int) -> int:
    import math

    return math.comb(n, k)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=sorted(TASKS), default="hard_maze")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one core each)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override for every run, e.g. budget.evaluations=3200")
    p.add_argument("--out", help="run directories (default: runs/pg_me_TASK)")
    args = p.parse_args()
    out = Path(args.out or f"runs/pg_me_{args.task}")
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(a, s) for s in range(args.seeds) for a in ALGORITHMS]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda j: run_one(*j, args.task, out, args.set), jobs))
    md, png = HERE / f"pg_me_{args.task}.md", HERE / f"pg_me_{args.task}.png"
    md.write_text(report(results, args.task, args.set, args.seeds))
    neuroqd("compare", *[r["dir"] for r in results], "--out", str(png))
    print(md.read_text())


if __name__ == "__main__":
    main()
