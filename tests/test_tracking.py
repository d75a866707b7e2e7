"""TensorBoard and MLflow tracking: every metrics.csv column at the same steps (evaluations),
heatmaps, the resolved config as params, final artifacts, resumed runs continuing the same
logs, and one-line errors for a missing package or a bad value."""

import csv
import subprocess
import sys

import pytest
import yaml

from evo.build import build_run
from experiments.cli import main
from experiments.config import load_raw, resolve

PNG = b"\x89PNG\r\n\x1a\n"
SMALL = ["budget.evaluations=4096", "batch_size=256", "log_every=2", "checkpoint_every=5"]


def metrics_columns(run_dir) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv as column -> [(evaluations, value)], as a tracker logs it."""
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [(int(r["evaluations"]), float(r[k])) for r in rows] for k in rows[0]}


def tensorboard_logs(run_dir):
    """(tag -> [(step, value)], heatmap images as [(step, png bytes)]), read as TensorBoard
    reads them: its plugin EventAccumulator (the legacy one ignores purges of tensor summaries,
    which double-precision scalars are)."""
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    acc = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"tensors": 0})
    acc.Reload()
    scalars = {tag: [(e.step, tensor_util.make_ndarray(e.tensor_proto).item())
                     for e in acc.Tensors(tag)] for tag in acc.PluginTagToContent("scalars")}
    images = [(e.step, tensor_util.make_ndarray(e.tensor_proto)[2])  # width, height, png
              for e in acc.Tensors("heatmap")] if "heatmap" in acc.Tags()["tensors"] else []
    return scalars, images


def mlflow_history(client, run_id, keys):
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k))
            for k in keys}


@pytest.fixture
def file_store(tmp_path, monkeypatch):
    """A local MLflow file store (MLflow >= 3.7 opens one only when asked to)."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return tmp_path / "mlruns"


def without_time(columns: dict) -> dict:
    return {k: v for k, v in columns.items() if k != "time_s"}


def test_tensorboard_holds_every_metrics_column_and_heatmaps(tmp_path):
    config = resolve(load_raw("me_arm"), SMALL + ["logging.tensorboard=true",
                                                  "logging.heatmap_every=4"])
    engine = build_run(config, tmp_path, progress=False)
    engine.run()
    engine.log_hooks[0].finish(tmp_path)
    scalars, images = tensorboard_logs(tmp_path)
    expected = metrics_columns(tmp_path)
    # logged every 2 iterations and at each checkpoint (5, 15)
    assert len(expected) >= 8 and len(expected["qd_score"]) == 10
    assert scalars == expected  # double precision: the very values metrics.csv holds
    # heatmaps on logged iterations that are multiples of 4 (4, 8, 12, 16), the final one too
    assert [step for step, _ in images] == [256 * i for i in (4, 8, 12, 16)]
    assert all(png.startswith(PNG) for _, png in images)


def test_a_resumed_run_continues_the_same_logs_without_repeating_steps(tmp_path, file_store):
    """Stopped at iteration 12 with its newest checkpoint at 10 (as if killed), then resumed:
    TensorBoard hides what came after the checkpoint, MLflow is not sent it twice."""
    sets = SMALL + ["logging.tensorboard=true", "logging.heatmap_every=0",
                    f"logging.mlflow.tracking_uri={file_store.as_uri()}"]
    part = build_run(resolve(load_raw("me_arm"), sets), tmp_path, progress=False)
    part.callbacks.append(lambda eng, row: setattr(eng, "stop", eng.algorithm.iteration == 12))
    part.run()
    (tmp_path / "checkpoints" / "ckpt_00000012.npz").unlink()
    run_id = (tmp_path / "mlflow_run_id").read_text().strip()

    resumed = build_run(resolve(load_raw("me_arm"), sets), tmp_path, progress=False)
    assert resumed.restore().name == "ckpt_00000010.npz"
    resumed.run()
    resumed.log_hooks[0].finish(tmp_path)
    expected = metrics_columns(tmp_path)
    assert [v for _, v in expected["iteration"]] == [2, 4, 5, 6, 8, 10, 12, 14, 15, 16]

    scalars, _ = tensorboard_logs(tmp_path)
    assert len(list((tmp_path / "tensorboard").iterdir())) == 2  # one event file per session
    assert without_time(scalars) == without_time(expected)
    assert [s for s, _ in scalars["time_s"]] == [s for s, _ in expected["time_s"]]

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=file_store.as_uri())
    assert (tmp_path / "mlflow_run_id").read_text().strip() == run_id
    assert len(client.search_runs([client.get_run(run_id).info.experiment_id])) == 1
    history = mlflow_history(client, run_id, expected)
    assert without_time(history) == without_time(expected)
    # iteration 12 was logged before the stop and not again: its time_s is the first session's
    assert [s for s, _ in history["time_s"]] == [s for s, _ in expected["time_s"]]


def test_mlflow_gets_the_config_metrics_and_artifacts_and_resume_continues_its_run(
        tmp_path, file_store, capsys):
    run_dir = tmp_path / "run"
    args = ["run", "me_arm", "--out", str(run_dir), "--quiet", "--set",
            f"logging.mlflow={{tracking_uri: {file_store}, experiment: arm}}"]
    assert main(args + [f"--set={s}" for s in SMALL[1:]] + ["--set=budget.evaluations=1024"]) == 0
    run_id = (run_dir / "mlflow_run_id").read_text().strip()
    # more budget, then `neuroqd resume`: the same MLflow run goes on
    first = yaml.safe_load((run_dir / "config.yaml").read_text())
    (run_dir / "config.yaml").write_text(yaml.safe_dump(
        dict(first, budget={"evaluations": 2048}), sort_keys=False))
    with pytest.warns(UserWarning, match="keeps the first values of budget.evaluations"):
        assert main(["resume", str(run_dir), "--quiet"]) == 0

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=str(file_store))
    assert (run_dir / "mlflow_run_id").read_text().strip() == run_id
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "arm"
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert len(client.search_runs([run.info.experiment_id])) == 1

    def flat(node, prefix=""):  # what the params should hold, written out independently
        for key, value in node.items():
            if isinstance(value, dict) and value:
                yield from flat(value, f"{prefix}{key}.")
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                yield from flat(dict(enumerate(value)), f"{prefix}{key}.")
            else:
                yield f"{prefix}{key}", value

    params = run.data.params
    assert set(params) == {k for k, _ in flat(first)}
    assert params["budget.evaluations"] == "1024"  # MLflow params never change
    assert params["map_elites.emitters.0.type"] == "isoline"
    assert params["archive.dims"] == "[100, 100]" and params["logging.mlflow.experiment"] == "arm"

    expected = metrics_columns(run_dir)
    assert expected["evaluations"][-1] == (2048, 2048.0)
    assert mlflow_history(client, run_id, expected) == expected
    stored = {f.path for f in client.list_artifacts(run_id)}
    assert stored == {"config.yaml", "summary.json", "heatmap.png", "curves.png"}
    local = client.download_artifacts(run_id, "heatmap.png", str(tmp_path))
    assert open(local, "rb").read(8) == PNG


@pytest.mark.parametrize("key,package", [("tensorboard", "tensorboard"), ("mlflow", "mlflow")])
def test_a_missing_package_is_one_line_and_exit_2(key, package, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, package, None)  # `import package` now fails
    value = "true" if key == "tensorboard" else "{}"
    assert main(["run", "me_arm", "--out", str(tmp_path / "r"), "--quiet",
                 "--set", f"logging.{key}={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f"neuroqd: error: logging.{key}: needs the {package} package; "
                                f"pip install {package} (or pip install 'neuroqd[track]')"]


@pytest.mark.parametrize("setting,expected", [
    ("logging.mlflow=3", "logging.mlflow: expected a mapping with keys experiment, tracking_uri"),
    ("logging.mlflow.uri=x", "logging.mlflow.uri: unknown key; accepted here: experiment, "
                             "tracking_uri"),
    ("logging.mlflow.experiment=''", "logging.mlflow.experiment: expected a name"),
    ("logging.mlflow.tracking_uri=[1]", "logging.mlflow.tracking_uri: expected a URI"),
    ("logging.tensorboard=maybe", "logging.tensorboard: expected boolean"),
    ("logging.heatmap_every=-1", "logging.heatmap_every: must be >= 0"),
    ("logging.wandb=true", "logging.wandb: unknown key; accepted here: heatmap_every, mlflow, "
                           "tensorboard"),
])
def test_bad_logging_values_are_one_line_and_exit_2(setting, expected, tmp_path, capsys):
    assert main(["run", "me_arm", "--out", str(tmp_path / "r"), "--set", setting]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err


def test_a_file_store_mlflow_refuses_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    assert main(["run", "me_arm", "--out", str(tmp_path / "r"), "--quiet", "--set",
                 f"logging.mlflow.tracking_uri={tmp_path / 'mlruns'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "MLFLOW_ALLOW_FILE_STORE=true" in err
    assert err.startswith(f"neuroqd: error: logging.mlflow.tracking_uri: '{tmp_path / 'mlruns'}'")


def test_the_engine_imports_neither_package():
    code = ("import sys; from experiments.config import load_raw, resolve; "
            "from evo.build import build_run; import experiments.cli, evo.tracking; "
            "build_run(resolve(load_raw('me_arm'), ['budget.evaluations=256', 'batch_size=256']),"
            " None, progress=False).run(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'tensorboard')"
            " or m == 'torch.utils.tensorboard'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
