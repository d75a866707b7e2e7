"""``neuroqd eval DIR``: re-evaluate a run's elites to measure how reproducible they are."""

from __future__ import annotations

from pathlib import Path

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
