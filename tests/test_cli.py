"""The neuroqd command: runs end to end, records the resolved config, rejects bad input
with exit code 2 and one line."""

import json
import subprocess
import sys

import pytest
import yaml

from experiments.cli import main
from run_helpers import sigkill_then_resume

SMALL = ["--set", "budget.evaluations=2048", "--set", "batch_size=256", "--quiet"]


def test_run_writes_the_run_directory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "me_arm", "--out", str(out), "--seed", "3", *SMALL]) == 0
    for name in ("config.yaml", "metrics.csv", "summary.json", "heatmap.png", "curves.png",
                 "archive.npz"):
        assert (out / name).exists(), name
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["seed"] == 3 and config["batch_size"] == 256
    assert config["budget"]["evaluations"] == 2048 and config["task"] == {"name": "arm", "dof": 8}
    assert config["workers"]["backend"] == "local"
    assert json.loads((out / "summary.json").read_text())["evaluations"] == 2048
    capsys.readouterr()
    assert main(["eval", str(out), "--repeats", "2"]) == 0
    result = json.loads(capsys.readouterr().out)
    # the arm is deterministic: re-evaluated elites land where they were stored
    assert result["mean_descriptor_error"] == 0.0 and result["failed_evaluations"] == 0
    assert result["expected_qd_score"] == pytest.approx(result["qd_score"], rel=1e-6)
    assert main(["plot", str(out)]) == 0


def test_list_shows_configs(capsys):
    assert main(["list"]) == 0
    text = capsys.readouterr().out
    assert "me_arm" in text and "cvt_me_arm" in text and "map_elites" in text


@pytest.mark.parametrize("args,expected", [
    (["run", "nope"], "no shipped config or YAML file named 'nope'"),
    (["run", "me_arm", "--set", "algorithm=foo"], "algorithm: unknown algorithm 'foo'"),
    (["run", "me_arm", "--set", "task.name=foo"], "task.name: unknown task 'foo'"),
    (["run", "me_arm", "--set", "bogus=1"], "bogus: unknown key"),
    (["run", "me_arm", "--set", "task.links=3"], "task.links: unknown key; accepted here: dof, name"),
    (["run", "me_arm", "--set", "batch_size=abc"], "batch_size: expected integer"),
    (["run", "me_arm", "--set", "batch_size=0"], "batch_size: must be >= 1"),
    (["run", "me_arm", "--set", "archive.type=hex"], "archive.type: unknown archive 'hex'"),
    (["run", "me_arm", "--set", "archive.dims=[10]"], "archive.dims: expected a list of 2"),
    (["run", "me_arm", "--set", "map_elites.emitters.0.type=cma"], "unknown emitter 'cma'"),
    (["run", "me_arm", "--set", "map_elites.emitters.3.type=x"], "map_elites.emitters.3: index"),
    (["run", "me_arm", "--device", "tpu"], "device: got 'tpu'"),
    (["resume", "/nonexistent"], "is not a run directory"),
    (["run", "me_arm", "--set", "workers.threads=0"], "workers.threads: must be >= 1"),
    (["run", "me_arm", "--set", "workers.timeout_s=-3"], "workers.timeout_s: must be a number"),
    (["run", "me_arm", "--set", "map_elites.emitters.0.iso_sigma=-1"],
     "map_elites.emitters.iso_sigma/line_sigma: must be >= 0"),
    (["run", "me_arm", "--set", "map_elites.emitters.0.sigma=1"],
     "map_elites.emitters: unknown parameter 'sigma' for 'isoline'"),
    (["run", "me_gym_pendulum", "--set", "task.env_id=Pendulm-v1"],
     "task.env_id: 'Pendulm-v1' is not registered in Gymnasium"),
    (["run", "me_gym_pendulum", "--set", "task.descriptor=nowhere.at_all:f"],
     "task.descriptor: cannot import module 'nowhere.at_all'"),
    (["run", "me_gym_pendulum", "--set", "task.descriptor_bounds=[[0, 1]]", "--set",
      "task.descriptor_names=[x]"],
     "task.descriptor: experiments.examples.gym_descriptors:pendulum_upright_and_spin returned shape"),
    (["run", "me_ant_omni", "--set", "task.episode_length=0"], "task.episode_length"),
    (["run", "me_ant_omni", "--set", "workers.address=127.0.0.1:1", "--backend", "ray"],
     "workers.address: nothing answers at 127.0.0.1:1"),
])
def test_bad_input_exits_2_with_one_line(args, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


def test_config_yaml_records_every_emitter_parameter(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "me_arm", "--out", str(out), *SMALL, "--set",
                 "map_elites.emitters=[{type: gaussian, proportion: 0.5}, {type: isoline}]"]) == 0
    emitters = yaml.safe_load((out / "config.yaml").read_text())["map_elites"]["emitters"]
    assert emitters == [{"type": "gaussian", "proportion": 0.5, "sigma": 0.1},
                        {"type": "isoline", "proportion": 1.0, "iso_sigma": 0.005,
                         "line_sigma": 0.05}]


def test_eval_of_a_damaged_archive_is_a_one_line_error(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "me_arm", "--out", str(out), *SMALL]) == 0
    data = (out / "archive.npz").read_bytes()
    (out / "archive.npz").write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    assert main(["eval", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "archive.npz" in err, err


def test_a_programming_error_while_building_keeps_its_traceback(monkeypatch, tmp_path):
    import evo.build

    def broken(*args, **kwargs):
        raise ValueError("too many values to unpack (expected 3)")  # names no key of ours

    monkeypatch.setattr(evo.build, "build_run", broken)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="too many values"):
        main(["run", "me_arm", *SMALL])
    monkeypatch.setattr(evo.build, "build_run", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["run", "me_arm", *SMALL])


def test_bad_input_from_the_console_script_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "experiments.cli", "run", "me_arm", "--set",
                           "seed=-1"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "neuroqd: error: seed: must be >= 0, got -1"


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    sigkill_then_resume(tmp_path, ["me_arm", "--set", "budget.evaluations=163840", "--set",
                                   "batch_size=256", "--set", "checkpoint_every=20", "--set",
                                   "log_every=5"])


def test_compare_plots_median_and_iqr(tmp_path):
    dirs = []
    for seed in (0, 1, 2):
        out = tmp_path / f"r{seed}"
        assert main(["run", "me_arm", "--out", str(out), "--seed", str(seed), *SMALL]) == 0
        dirs.append(str(out))
    assert main(["compare", *dirs, "--out", str(tmp_path / "cmp.png")]) == 0
    assert (tmp_path / "cmp.png").stat().st_size > 10000
