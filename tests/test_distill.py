"""Distillation: `neuroqd distill` turns an archive into one descriptor-conditioned policy that
really reaches the cells it is asked for, `neuroqd eval --distilled` measures it again, and the
policy file round-trips exactly and rejects anything damaged or made for another task."""

import hashlib
import json
import re
import shutil

import pytest
import torch
import yaml

from evo.distill import (PolicyFileError, evaluate_distilled, load_distilled, plain_policy,
                         save_distilled)
from evo.rl.networks import DescriptorConditionedActor, fold_descriptor, normalise_descriptors
from experiments.cli import main

MAZE_RUN = ["run", "ns_hard_maze", "--set", "budget.evaluations=2000", "--set", "batch_size=200",
            "--set", "task.episode_length=100", "--quiet"]
EPOCHS = 30  # the default


@pytest.fixture(scope="module")
def maze(tmp_path_factory):
    """A small novelty-search hard-maze run (~370 elites), distilled: (run_dir, summary)."""
    import io
    from contextlib import redirect_stdout

    run_dir = tmp_path_factory.mktemp("distill") / "maze"
    assert main([*MAZE_RUN, "--out", str(run_dir)]) == 0
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["distill", str(run_dir), "--epochs", str(EPOCHS)]) == 0
    return run_dir, json.loads(buf.getvalue())


def _run_parts(run_dir):
    from evo.build import build_task
    from experiments.config import resolve
    from experiments.plotting import load_run_archive

    config = resolve(yaml.safe_load((run_dir / "config.yaml").read_text()))
    return config, load_run_archive(run_dir), build_task(config)


def test_distilled_maze_policy_reaches_its_targets(maze, capsys):
    run_dir, summary = maze
    out = run_dir / "distilled"
    for name in ("policy.safetensors", "policy.json", "report.json", "heatmap.png"):
        assert (out / name).exists(), name
    report = json.loads((out / "report.json").read_text())
    assert report["distilled"]["qd_score"] == summary["distilled_qd_score"]
    assert report["training"]["epochs"] == EPOCHS and report["distilled"]["failed_evaluations"] == 0
    # The recorded rollouts reproduce the archive (deterministic maze): the labels are right.
    assert summary["elite_descriptor_error"] == 0.0

    capsys.readouterr()
    assert main(["eval", str(run_dir), "--distilled"]) == 0
    result = json.loads(capsys.readouterr().out)
    # Same rollouts as distill's own evaluation (deterministic maze, same seeds).
    assert result["distilled_qd_score"] == summary["distilled_qd_score"]
    assert result["mean_descriptor_error"] == summary["mean_descriptor_error"]
    assert result["targets"] == summary["elites"] and result["kind"] == "distilled"

    # Measured (30 epochs, seeds 0-3): QD score ratio 0.35-0.43, mean descriptor error
    # 0.075-0.086, against 0.23 with shuffled targets and 0.27 for an untrained actor.
    assert result["qd_score_ratio"] > 0.2, result
    config, archive, task = _run_parts(run_dir)
    actor, meta = load_distilled(out)
    targets = archive.elites()["descriptors"]
    perm = torch.randperm(len(targets), generator=torch.Generator().manual_seed(0))
    shuffled = evaluate_distilled(actor, meta, task, config["archive"], targets[perm])
    shuffled_error = float((shuffled["reached"] - targets).norm(dim=1).mean())
    untrained = evaluate_distilled(DescriptorConditionedActor(11, 2, 2, generator=1), meta, task,
                                   config["archive"], targets)
    assert result["mean_descriptor_error"] < 0.6 * shuffled_error, (result, shuffled_error)
    assert result["mean_descriptor_error"] < 0.6 * untrained["mean_descriptor_error"]
    assert result["distilled_qd_score"] > 5 * untrained["qd_score"]


def test_save_load_round_trip_gives_identical_actions(tmp_path):
    actor = DescriptorConditionedActor(11, 2, 2, hidden=(32, 16), activation="relu", generator=4)
    meta = {"kind": "dc_actor", "descriptor_bounds": [(0.0, 1.0), (0.0, 1.0)],
            "task": {"name": "hard_maze", "episode_length": 100}, "training": {"steps": 3}}
    save_distilled(tmp_path / "p", actor, meta)
    loaded, loaded_meta = load_distilled(tmp_path / "p" / "policy.safetensors")
    obs = torch.randn(64, 11, generator=torch.Generator().manual_seed(0))
    desc = torch.rand(64, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        assert torch.equal(actor(obs, desc), loaded(obs, desc))
    assert loaded_meta["training"] == {"steps": 3} and loaded_meta["hidden"] == [32, 16]
    assert loaded_meta["activation"] == "relu" and loaded_meta["kind"] == "dc_actor"
    # Folded genomes run in the plain population policy and act exactly like the actor.
    genomes = fold_descriptor(loaded, desc[:4])
    forward = plain_policy(loaded).bind(genomes)
    with torch.no_grad():
        torch.testing.assert_close(forward(obs[:4]), loaded(obs[:4], desc[:4]))


def _rewrite_json(path, **changes):
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta))


def _truncate(d):
    data = (d / "policy.safetensors").read_bytes()
    (d / "policy.safetensors").write_bytes(data[: len(data) // 2])


def _flip_a_weight_byte(d):
    data = bytearray((d / "policy.safetensors").read_bytes())
    data[-5] ^= 0x40
    (d / "policy.safetensors").write_bytes(bytes(data))


def _truncate_with_matching_checksum(d):
    # Only the safetensors parser can tell: the recorded checksum is made to agree.
    _truncate(d)
    sha = hashlib.sha256((d / "policy.safetensors").read_bytes()).hexdigest()
    _rewrite_json(d / "policy.json", tensors_sha256=sha)


def _another_task(d):
    actor, meta = load_distilled(d)
    save_distilled(d, actor, {**meta, "task": {"name": "medium_maze", "episode_length": 100}})


@pytest.mark.parametrize("damage,file,expected", [
    (_truncate, "policy.safetensors", "do not match the sha256"),
    (_flip_a_weight_byte, "policy.safetensors", "do not match the sha256"),
    (_truncate_with_matching_checksum, "policy.safetensors", "not a safetensors file"),
    (lambda d: (d / "policy.safetensors").unlink(), "policy.safetensors", "file not found"),
    (lambda d: (d / "policy.json").unlink(), "policy.json", "file not found"),
    (lambda d: shutil.rmtree(d), "policy.json", "file not found"),
    (lambda d: (d / "policy.json").write_text("{\"format\": "), "policy.json", "not readable JSON"),
    (lambda d: _rewrite_json(d / "policy.json", obs_dim=12), "policy.safetensors",
     "expects float32 (128, 14)"),
    (lambda d: _rewrite_json(d / "policy.json", hidden=[128, 64]), "policy.safetensors",
     "expects float32 (64, 128)"),
    (lambda d: _rewrite_json(d / "policy.json", hidden=[128]), "policy.safetensors",
     "sizes expect"),
    (lambda d: _rewrite_json(d / "policy.json", descriptor_bounds=[[0, 1]]), "policy.json",
     "descriptor_bounds: expected 2"),
    (_another_task, "policy.json", "the policy is for task 'medium_maze'"),
    (lambda d: _rewrite_json(d / "policy.json", task={"name": "hard_maze", "episode_length": 400}),
     "policy.json", "task.episode_length=400"),
])
def test_damaged_or_foreign_policy_files_exit_2_naming_the_file(maze, tmp_path, capsys, damage,
                                                                 file, expected):
    run_dir = tmp_path / "run"
    shutil.copytree(maze[0], run_dir, ignore=shutil.ignore_patterns("checkpoints", "*.png"))
    damage(run_dir / "distilled")
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--distilled"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert str(run_dir / "distilled" / file) in err and expected in err, err
    with pytest.raises(PolicyFileError, match=re.escape(expected)):
        from evo.distill import check_policy_task

        config, _, task = _run_parts(run_dir)
        _, meta = load_distilled(run_dir / "distilled")
        check_policy_task(meta, config["task"], task, run_dir / "distilled")


@pytest.mark.parametrize("args,expected", [
    (["--epochs", "0"], "--epochs: must be an integer >= 1"),
    (["--hidden", "128,x"], "--hidden: expected comma-separated positive integers"),
    (["--threads", "0"], "--threads: must be >= 1"),
    (["--lr", "-1"], "--lr: must be a number > 0"),
])
def test_bad_distill_arguments_exit_2(maze, capsys, args, expected):
    capsys.readouterr()
    assert main(["distill", str(maze[0]), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


def test_eval_distilled_bad_repeats_and_function_task(maze, tmp_path, capsys):
    capsys.readouterr()
    assert main(["eval", str(maze[0]), "--distilled", "--repeats", "0"]) == 2
    assert "--repeats: must be >= 1" in capsys.readouterr().err
    arm = tmp_path / "arm"
    assert main(["run", "me_arm", "--set", "budget.evaluations=256", "--set", "batch_size=256",
                 "--quiet", "--out", str(arm)]) == 0
    capsys.readouterr()
    assert main(["distill", str(arm)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "DIR: task 'arm'" in err and "not a control" in err


def test_deep_ga_seed_chain_archive_is_decoded_from_its_checkpoint(tmp_path, capsys):
    from evo.build import build_policy
    from evo.workers.local import evaluate_batch
    from experiments.evaluate import elite_parameters

    run_dir = tmp_path / "ga"
    assert main(["run", "ga_hard_maze", "--set", "deep_ga.genome=chain", "--set",
                 "budget.evaluations=600", "--set", "batch_size=200", "--set",
                 "task.episode_length=50", "--quiet", "--out", str(run_dir)]) == 0
    config, archive, task = _run_parts(run_dir)
    assert "genome_id" in archive.extra_fields
    policy = build_policy(config, task)
    params = elite_parameters(run_dir, archive, policy)
    # The decoded elites land exactly where the archive says (the maze is deterministic).
    ev = evaluate_batch(task, params, torch.zeros(len(params), dtype=torch.int64), policy)
    assert torch.equal(ev.descriptors, archive.elites()["descriptors"])
    capsys.readouterr()
    assert main(["distill", str(run_dir), "--epochs", "2", "--hidden", "32"]) == 0
    assert json.loads(capsys.readouterr().out)["elites"] == len(archive)


def test_ant_omni_archive_distils_end_to_end(tmp_path, capsys):
    run_dir = tmp_path / "ant"
    assert main(["run", "me_ant_omni", "--set", "budget.evaluations=32", "--set", "batch_size=16",
                 "--set", "task.episode_length=30", "--set", "workers.threads=1", "--quiet",
                 "--out", str(run_dir)]) == 0
    capsys.readouterr()
    assert main(["distill", str(run_dir), "--epochs", "3", "--hidden", "32,32"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["samples"] > 0 and summary["distilled_qd_score"] >= 0
    for name in ("policy.safetensors", "policy.json", "report.json", "heatmap.png"):
        assert (run_dir / "distilled" / name).exists(), name
    assert main(["eval", str(run_dir), "--distilled", "--repeats", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["repeats"] == 2 and result["targets"] == summary["elites"]
    assert result["failed_evaluations"] == 0 and result["mean_descriptor_error"] >= 0
    actor, meta = load_distilled(run_dir / "distilled")
    assert (meta["obs_dim"], meta["action_dim"], meta["task"]["name"]) == (27, 8, "ant_omni")
    assert torch.isfinite(normalise_descriptors(torch.zeros(1, 2), meta["descriptor_bounds"])).all()
