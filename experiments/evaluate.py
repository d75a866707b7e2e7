"""``neuroqd eval DIR``: re-evaluate a run's elites to measure how reproducible they are;
``neuroqd distill DIR`` and ``neuroqd eval DIR --distilled``: distil a run's archive into one
descriptor-conditioned policy (``evo.distill``) and measure how well it reaches each cell."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import yaml

from experiments.plotting import load_run_archive


def evaluate_run(run_dir: Path, repeats: int = 1) -> dict:
    """Re-evaluate every elite ``repeats`` times with fresh seeds.

    Returns the archive's stored metrics beside the "expected" ones: the QD score and max
    fitness of an archive rebuilt from the mean re-evaluated fitness and descriptor of each
    elite, and the mean distance between stored and re-evaluated descriptors.
    """
    from archives import make_archive
    from evo.build import build_evaluator, build_policy, build_task
    from experiments.config import resolve

    if repeats < 1:
        raise ValueError(f"--repeats: must be >= 1, got {repeats}")
    config = resolve(yaml.safe_load((Path(run_dir) / "config.yaml").read_text()))
    archive = load_run_archive(Path(run_dir))
    if archive.extra_fields:
        raise ValueError(f"DIR: {run_dir} stores genome ids ({archive.extra_fields}), "
                         "not parameters; re-evaluation of seed-chain archives is not supported")
    task = build_task(config)
    policy = build_policy(config, task)
    evaluator = build_evaluator(config, task, policy)
    elites = archive.elites()
    n = len(elites["genomes"])
    fitness = torch.zeros(n, dtype=torch.float64)
    descriptors = torch.zeros_like(elites["descriptors"], dtype=torch.float64)
    failed = torch.zeros(n, dtype=torch.bool)
    for r in range(repeats):
        # seeds far from those the run used
        seeds = torch.arange(n, dtype=torch.int64) + (2**40 + r * n)
        ev = evaluator(elites["genomes"], seeds)
        fitness += ev.fitness.double() / repeats
        descriptors += ev.descriptors.double() / repeats
        failed |= ev.failed
    getattr(evaluator, "close", lambda: None)()
    rebuilt = make_archive(config["archive"], archive.solution_dim, task.descriptor_bounds,
                           task.fitness_offset)
    rebuilt.add(elites["genomes"], fitness.float(), descriptors.float(), failed)
    stored, expected = archive.metrics(), rebuilt.metrics()
    return {
        "elites": n, "repeats": repeats,
        "qd_score": stored["qd_score"], "expected_qd_score": expected["qd_score"],
        "max_fitness": stored["max_fitness"], "expected_max_fitness": expected["max_fitness"],
        "coverage": stored["coverage"], "expected_coverage": expected["coverage"],
        "mean_descriptor_error": float((descriptors - elites["descriptors"].double())
                                       .norm(dim=1).mean()) if n else 0.0,
        "failed_evaluations": int(failed.sum()),
    }


# -- the distilled policy: `neuroqd distill DIR`, `neuroqd eval DIR --distilled` --------------

DISTILLED = "distilled"  # DIR/distilled/: policy.safetensors, policy.json, report.json, heatmap.png


def load_run(run_dir: Path):
    """(resolved config, archive, task, policy) of a run directory; policy is None for direct
    tasks (the arm)."""
    from evo.build import build_policy, build_task
    from experiments.config import resolve

    config = resolve(yaml.safe_load((run_dir / "config.yaml").read_text()))
    archive = load_run_archive(run_dir)
    task = build_task(config)
    return config, archive, task, build_policy(config, task)


def _load_run(run_dir: Path):
    """:func:`load_run` of a run whose archive holds policies (distillation)."""
    config, archive, task, policy = load_run(run_dir)
    if policy is None:
        raise ValueError(f"DIR: task {config['task']['name']!r} of {run_dir} is not a control "
                         "task; only archives of policies can be distilled")
    return config, archive, task, policy


def elite_parameters(run_dir: Path, archive, policy) -> torch.Tensor:
    """Parameter vectors (n, D) float32 of the archive's elites, in ``archive.elites()`` order.

    A Deep GA seed-chain archive stores genome ids (extra field ``genome_id``); their chains
    come from the run's newest readable checkpoint and are decoded as the run's workers did.
    """
    from archives import StateFileError, load_state
    from evo.genomes import ChainDecoder, chains_from_arrays

    elites = archive.elites()
    if "genome_id" not in archive.extra_fields:
        return elites["genomes"].float()
    ids = elites["genome_id"].tolist()
    for ckpt in sorted((run_dir / "checkpoints").glob("ckpt_*.npz"), reverse=True):
        try:
            ga = load_state(ckpt)["algorithm"].get("deep_ga", {})
        except StateFileError:
            continue
        if "table_ids" not in ga:
            continue
        table = dict(zip(np.asarray(ga["table_ids"]).tolist(), chains_from_arrays(ga["table"])))
        missing = [i for i in ids if i not in table]
        if missing:
            raise ValueError(f"DIR: {ckpt} lacks the seed chains of {len(missing)} archive elites "
                             f"(e.g. genome id {missing[0]}); the archive and checkpoint differ")
        return ChainDecoder.for_policy(policy).decode_batch([table[i] for i in ids])
    raise ValueError(f"DIR: {run_dir} stores seed-chain genome ids but no readable checkpoint "
                     "holds their chain table")


def _parse_hidden(hidden) -> tuple[int, ...]:
    given = hidden
    if isinstance(hidden, str):
        try:
            hidden = tuple(int(h) for h in hidden.split(","))
        except ValueError:
            hidden = None
    if not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
        raise ValueError(f"--hidden: expected comma-separated positive integers such as 128,128, "
                         f"got {given!r}")
    return tuple(hidden)


def _threads(config: dict, threads: int | None) -> int:
    threads = int(config["workers"].get("threads", 1)) if threads is None else threads
    if threads < 1:
        raise ValueError(f"--threads: must be >= 1, got {threads}")
    return threads


def _metrics(archive) -> dict:
    m = archive.metrics()
    return {k: m[k] for k in ("qd_score", "coverage", "max_fitness", "num_elites")}


def plot_distilled_heatmaps(archive, distilled, task, path: Path, titles: tuple[str, str]) -> Path:
    """The run's archive and the distilled policy's archive side by side, one colour scale.

    Drawn through ``ribs.visualize`` like :func:`archives.plot.plot_heatmap` (which draws one
    archive per figure, so it cannot share a colour bar across two panels).
    """
    import matplotlib.pyplot as plt
    from ribs.visualize import cvt_archive_heatmap, grid_archive_heatmap, proximity_archive_plot

    objectives = [np.asarray(a.ribs.data("objective")) for a in (archive, distilled)]
    values = np.concatenate(objectives)
    vmin, vmax = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2))
    for ax, a, title in zip(axes, (archive, distilled), titles):
        if a.kind == "grid":
            grid_archive_heatmap(a.ribs, ax=ax, vmin=vmin, vmax=vmax)
        elif a.kind == "cvt":
            cvt_archive_heatmap(a.ribs, ax=ax, vmin=vmin, vmax=vmax, lw=0.1)
        elif len(a):
            proximity_archive_plot(a.ribs, ax=ax, vmin=vmin, vmax=vmax)
        (xlo, xhi), (ylo, yhi) = task.descriptor_bounds
        ax.set_xlim(xlo, xhi)
        ax.set_ylim((yhi, ylo) if task.descriptor_y_down else (ylo, yhi))
        ax.set_xlabel(task.descriptor_names[0])
        ax.set_ylabel(task.descriptor_names[1])
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def distill_run(run_dir: Path, epochs: int = 30, hidden="128,128", threads: int | None = None,
                batch_size: int = 256, lr: float = 1e-3, seed: int | None = None,
                device: str = "cpu") -> dict:
    """Distil a run's archive into DIR/distilled/ and evaluate it on every filled cell.

    Writes ``policy.safetensors``, ``policy.json``, ``report.json`` and (2-D descriptors)
    ``heatmap.png``; returns the one-line summary that ``neuroqd distill`` prints.
    """
    from evo.distill import distill_archive, evaluate_distilled, save_distilled

    run_dir = Path(run_dir)
    hidden = _parse_hidden(hidden)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device: {device!r} requested but CUDA is not available; accepted: cpu")
    config, archive, task, policy = _load_run(run_dir)
    threads = _threads(config, threads)
    seed = int(config["seed"]) if seed is None else int(seed)
    elites = {"genomes": elite_parameters(run_dir, archive, policy),
              "descriptors": archive.elites()["descriptors"]}
    actor, stats = distill_archive(elites, task, policy, hidden=hidden, epochs=epochs,
                                   batch_size=batch_size, lr=lr, generator=seed,
                                   threads=threads, device=device)
    out = run_dir / DISTILLED
    meta = {"kind": "distilled", "descriptor_bounds": task.descriptor_bounds,
            "task": config["task"],
            "source": {"algorithm": config["algorithm"], "run_seed": int(config["seed"]),
                       "archive": config["archive"], "policy": config["policy"],
                       "elites": len(archive)},
            "training": {**stats, "seed": seed, "hidden": list(hidden), "device": device}}
    save_distilled(out, actor, meta)
    result = evaluate_distilled(actor, meta, task, config["archive"], elites["descriptors"],
                                threads=threads, seed=int(config["seed"]), device=device)
    stored, distilled = _metrics(archive), _metrics(result["archive"])
    scores = {k: v for k, v in result.items() if k not in ("archive", "reached", "fitness")}
    ratio = distilled["qd_score"] / stored["qd_score"] if stored["qd_score"] else float("nan")
    report = {"policy": str(out / "policy.json"), "archive": stored, "distilled": scores,
              "qd_score_ratio": ratio, "training": meta["training"],
              "evaluations": stats["evaluations"] + scores["evaluations"]}
    (out / "report.json").write_text(json.dumps(report, indent=1))
    if archive.descriptor_dim == 2:
        plot_distilled_heatmaps(
            archive, result["archive"], task, out / "heatmap.png",
            (f"archive ({config['algorithm']}): QD score {stored['qd_score']:.4g}, "
             f"coverage {100 * stored['coverage']:.1f}%",
             f"distilled policy on {scores['targets']} cells: QD score {distilled['qd_score']:.4g},\n"
             f"coverage {100 * distilled['coverage']:.1f}%, mean descriptor error "
             f"{scores['mean_descriptor_error']:.3g}"))
    return {"dir": str(out), "elites": stats["elites"], "samples": stats["samples"],
            "final_loss": stats["final_loss"], "qd_score": stored["qd_score"],
            "distilled_qd_score": distilled["qd_score"], "qd_score_ratio": ratio,
            "coverage": stored["coverage"], "distilled_coverage": distilled["coverage"],
            "mean_descriptor_error": scores["mean_descriptor_error"],
            "median_descriptor_error": scores["median_descriptor_error"],
            "elite_descriptor_error": stats["elite_descriptor_error"], "time_s": stats["time_s"]}


def evaluate_distilled_run(run_dir: Path, repeats: int = 1, threads: int | None = None) -> dict:
    """Roll out DIR/distilled/'s policy conditioned on every filled cell's descriptor.

    The policy may come from ``neuroqd distill`` or from a DCG-ME/DCRL-ME run (same files); a
    missing, damaged or mismatched file raises :class:`evo.distill.PolicyFileError`.
    """
    from evo.distill import check_policy_task, evaluate_distilled, load_distilled

    run_dir = Path(run_dir)
    if repeats < 1:
        raise ValueError(f"--repeats: must be >= 1, got {repeats}")
    config, archive, task, _ = _load_run(run_dir)
    path = run_dir / DISTILLED
    actor, meta = load_distilled(path)
    check_policy_task(meta, config["task"], task, path)
    elites = archive.elites()
    result = evaluate_distilled(actor, meta, task, config["archive"], elites["descriptors"],
                                repeats=repeats, threads=_threads(config, threads),
                                seed=int(config["seed"]))  # as distill_run: same rollouts
    stored, distilled = _metrics(archive), _metrics(result["archive"])
    return {"policy": str(path / "policy.json"), "kind": meta["kind"],
            "targets": result["targets"], "repeats": repeats,
            "qd_score": stored["qd_score"], "distilled_qd_score": distilled["qd_score"],
            "qd_score_ratio": (distilled["qd_score"] / stored["qd_score"]
                               if stored["qd_score"] else float("nan")),
            "coverage": stored["coverage"], "distilled_coverage": distilled["coverage"],
            "max_fitness": stored["max_fitness"], "distilled_max_fitness": distilled["max_fitness"],
            "mean_descriptor_error": result["mean_descriptor_error"],
            "median_descriptor_error": result["median_descriptor_error"],
            "failed_evaluations": result["failed_evaluations"]}
