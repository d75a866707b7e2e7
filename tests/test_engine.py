"""Engine behaviour: the archive fills, resume is exact, failures are counted, not stored."""

import json

import pytest
from run_helpers import metric_rows
import torch

from evo.algorithms.map_elites import MapElites
from evo.build import build_run
from evo.engine import Engine
from evo.workers.local import LocalEvaluator
from experiments.config import load_raw, resolve
from tasks import Evaluation, make_task


def arm_config(**sets):
    overrides = [f"{k}={v}" for k, v in {"budget.evaluations": 20 * 256, "batch_size": 256,
                                          "log_every": 2, "checkpoint_every": 5, **sets}.items()]
    return resolve(load_raw("me_arm"), overrides)


def rows(run_dir):
    return metric_rows(run_dir / "metrics.csv")


def test_me_arm_fills_the_archive_and_qd_score_grows(tmp_path):
    engine = build_run(arm_config(), tmp_path, progress=False)
    summary = engine.run()
    r = rows(tmp_path)
    qd = [float(x["qd_score"]) for x in r]
    assert all(b >= a for a, b in zip(qd, qd[1:]))
    assert summary["coverage"] > 0.2 and summary["evaluations"] == 20 * 256
    for key in ("evaluations", "qd_score", "coverage", "max_fitness", "time_s", "failed_evaluations"):
        assert key in json.loads((tmp_path / "summary.json").read_text())
    assert list(r[0])[:5] == ["iteration", "evaluations", "qd_score", "coverage", "max_fitness"]
    assert len(list((tmp_path / "checkpoints").glob("*.npz"))) == 2  # only the last two kept


def test_resume_equals_uninterrupted_run(tmp_path):
    full = build_run(arm_config(), tmp_path / "full", progress=False)
    full.run()
    # the same run stopped after 12 iterations (its last checkpoint: iteration 10)...
    part = build_run(arm_config(), tmp_path / "part", progress=False)
    part.callbacks.append(lambda eng, row: setattr(eng, "stop", eng.algorithm.iteration == 12))
    part.run()
    (tmp_path / "part" / "checkpoints" / "ckpt_00000012.npz").unlink()  # as if killed at 12
    # ...then resumed by fresh objects
    resumed = build_run(arm_config(), tmp_path / "part", progress=False)
    assert resumed.restore().name == "ckpt_00000010.npz"
    resumed.run()
    assert rows(tmp_path / "full") == rows(tmp_path / "part")
    a, b = full.algorithm.archive.elites(), resumed.algorithm.archive.elites()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_damaged_checkpoint_is_named_and_the_previous_one_is_used(tmp_path):
    engine = build_run(arm_config(), tmp_path, progress=False)
    engine.run()
    newest = sorted((tmp_path / "checkpoints").glob("*.npz"))[-1]
    newest.write_bytes(newest.read_bytes()[:1000])
    resumed = build_run(arm_config(), tmp_path, progress=False)
    with pytest.warns(UserWarning, match=newest.name):
        used = resumed.restore()
    assert used.name == "ckpt_00000015.npz" and newest.exists()
    assert resumed.algorithm.iteration == 15
    resumed.run()
    assert rows(tmp_path)[-1]["qd_score"] == str(engine.summary()["qd_score"])


class NaNArm:
    """The arm, except that genomes with g[0] > 0.8 give NaN fitness and g[1] > 0.9 inf descriptors."""

    def __init__(self):
        self.arm = make_task("arm", dof=4)
        for k in ("name", "solution_dim", "solution_bounds", "descriptor_dim",
                  "descriptor_bounds", "fitness_offset"):
            setattr(self, k, getattr(self.arm, k))

    def evaluate(self, genomes, seeds):
        ev = self.arm.evaluate(genomes, seeds)
        fit = torch.where(genomes[:, 0] > 0.8, torch.nan, ev.fitness)
        desc = torch.where((genomes[:, 1] > 0.9)[:, None], torch.inf, ev.descriptors)
        return Evaluation(fit, desc)


def test_non_finite_evaluations_are_counted_and_never_inserted():
    task = NaNArm()
    from archives import make_archive

    archive = make_archive({"type": "grid", "dims": [20, 20]}, 4, task.descriptor_bounds, -1.0)
    init = lambda n, g: torch.rand((n, 4), generator=g)  # noqa: E731
    algo = MapElites(task, LocalEvaluator(task), archive, 128, init, (0.0, 1.0),
                     [{"type": "gaussian", "sigma": 0.2}])
    summary = Engine(algo, 128 * 10, progress=False).run()
    assert summary["failed_evaluations"] > 100
    genomes = archive.elites()["genomes"]
    assert len(genomes) > 20 and (genomes[:, 0] <= 0.8).all() and (genomes[:, 1] <= 0.9).all()


def test_nan_genome_is_a_failed_evaluation():
    task = make_task("arm", dof=3)
    ev = LocalEvaluator(task)(torch.tensor([[0.1, torch.nan, 0.2], [0.1, 0.2, 0.3]]),
                              torch.arange(2))
    assert ev.failed.tolist() == [True, False]
