"""Experiment tracking: each metrics.csv row, and the archive heatmap, sent on to TensorBoard
and MLflow.

A run asks for them in its config::

    logging:
      tensorboard: true                  # event files in DIR/tensorboard/
      mlflow: {tracking_uri: ..., experiment: neuroqd}

Both packages are optional (``pip install 'neuroqd[track]'``) and imported only when a run
asks for them, so the engine and everything else import neither. The engine calls a
:class:`Tracker` as a log hook after it writes each metrics.csv row; every value is logged
against ``evaluations``, the x-axis of every curve (DESIGN: evaluations are the budget unit).

A resumed run keeps logging into the same places: TensorBoard's directory (events past the
checkpoint that an earlier session logged are hidden with ``purge_step``) and the same MLflow
run, whose id is kept in ``DIR/mlflow_run_id`` (values an earlier session already logged are
not sent again: a resumed run repeats them exactly, only ``time_s`` differs).
"""

from __future__ import annotations

import io
import time
import warnings
from pathlib import Path

from archives import write_atomic
from evo.algorithms.base import keyword_defaults

TENSORBOARD_DIR = "tensorboard"
MLFLOW_RUN_ID = "mlflow_run_id"
# The files a finished run sends to MLflow, those that exist (maze.png: maze tasks only).
ARTIFACTS = ("config.yaml", "summary.json", "heatmap.png", "curves.png", "maze.png")
INSTALL = "pip install 'neuroqd[track]'"


def _needs(key: str, package: str) -> ValueError:
    return ValueError(f"{key}: needs the {package} package; pip install {package} "
                      f"(or {INSTALL})")


def numeric_items(row: dict) -> dict[str, float]:
    """The values of a metrics row that are numbers (booleans as 0/1); empty cells left out."""
    out = {}
    for key, value in row.items():
        if value is None or isinstance(value, str):
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def dotted_items(node: dict, prefix: str = "") -> dict:
    """Nested mappings as dotted keys, as ``--set`` takes them (``map_elites.emitters.0.type``)
    -> values. Lists of mappings are numbered like ``--set``'s list items; other lists and
    empty mappings are values."""
    out: dict = {}
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(dotted_items(value, dotted + "."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            out.update(dotted_items({str(i): v for i, v in enumerate(value)}, dotted + "."))
        else:
            out[dotted] = value
    return out


def flatten_config(config: dict) -> dict[str, str]:
    """:func:`dotted_items` with every value as text: lists and scalars as JSON (``[100, 100]``,
    ``null``, ``true``), strings as they are."""
    import json

    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in dotted_items(config).items()}


def _store_error(tracking_uri: str | None, exc: Exception) -> ValueError:
    """One line for a tracking URI that MLflow will not open (its own messages run long)."""
    uri = (repr(tracking_uri) if tracking_uri is not None
           else "MLflow's default ($MLFLOW_TRACKING_URI)")
    text = str(exc)
    if "MLFLOW_ALLOW_FILE_STORE" in text:
        why = ("is a directory (MLflow's file store), which MLflow >= 3.7 opens only with "
               "MLFLOW_ALLOW_FILE_STORE=true; or use a tracking server (http://...)")
    elif str(tracking_uri).split(":")[0].split("+")[0] in ("sqlite", "postgresql", "mysql",
                                                          "mssql"):
        why = "is a database store, which needs the full mlflow package (pip install mlflow)"
    else:
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        why = f"cannot be used: {first}"
    return ValueError(f"logging.mlflow.tracking_uri: {uri} {why}")


class TensorBoardLog:
    """Scalars and images in ``log_dir`` through ``torch.utils.tensorboard.SummaryWriter``.

    The writer opens at the first value logged, with ``purge_step`` at that step: each session
    starts with a SessionLog.START event, and TensorBoard hides what earlier sessions logged
    from a later START's step on (it takes the first START as the run's start, not a restart,
    so a fresh run needs one too).
    """

    def __init__(self, log_dir: str | Path) -> None:
        try:
            import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise _needs("logging.tensorboard", "tensorboard") from None
        self._writer_class = SummaryWriter
        self.log_dir = Path(log_dir)
        self._writer = None

    def _open(self, step: int):
        if self._writer is None:
            self._writer = self._writer_class(str(self.log_dir), purge_step=step)
        return self._writer

    def log(self, values: dict[str, float], step: int) -> None:
        writer = self._open(step)
        for key, value in values.items():
            # double precision: evaluations and QD scores keep every digit metrics.csv has
            writer.add_scalar(key, value, step, new_style=True, double_precision=True)
        writer.flush()  # a run killed later loses nothing logged up to here

    def log_image(self, tag: str, image, step: int) -> None:
        """``image``: (H, W, C) floats in [0, 1] or uint8, C = 3 or 4."""
        writer = self._open(step)
        writer.add_image(tag, image, step, dataformats="HWC")
        writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class MlflowLog:
    """Parameters, metrics and artifacts of one run in one MLflow run.

    Parameters
    ----------
    run_dir : path
        The run directory; ``run_dir/mlflow_run_id`` names the MLflow run to continue.
    params : dict of str -> str
        Logged once, when the MLflow run is created (MLflow's params cannot change later).
    tracking_uri : str or None
        A tracking server (``http://...``), a directory or ``file:`` URI (MLflow's file store,
        which MLflow >= 3.7 opens only with ``MLFLOW_ALLOW_FILE_STORE=true``), ``sqlite:///...``
        (needs the full ``mlflow`` package), or None: MLflow's default
        (``$MLFLOW_TRACKING_URI``).
    experiment : str
        The MLflow experiment, created when missing.
    """

    def __init__(self, run_dir: str | Path, params: dict[str, str],
                 tracking_uri: str | None = None, experiment: str = "neuroqd") -> None:
        try:
            from mlflow import MlflowClient
            from mlflow.entities import Metric, Param, RunStatus
            from mlflow.exceptions import MlflowException
        except ImportError:
            raise _needs("logging.mlflow", "mlflow") from None
        self._metric, self._status = Metric, RunStatus
        self.run_dir = Path(run_dir)
        try:
            self.client = MlflowClient(tracking_uri=tracking_uri)
            experiment_id = self._experiment_id(experiment)
            self.run_id = (self._continue_run(params, Param)
                           or self._new_run(experiment_id, params, Param))
        except (MlflowException, ImportError) as exc:  # ImportError: sqlite without sqlalchemy
            raise _store_error(tracking_uri, exc) from None

    def _experiment_id(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        return found.experiment_id if found is not None else self.client.create_experiment(name)

    def _continue_run(self, params: dict[str, str], param_class) -> str | None:
        """The run ``run_dir/mlflow_run_id`` names, marked running again, with the last step
        each metric already has (None when there is none to continue).

        Params it lacks are added; params whose value changed (a budget raised in config.yaml
        before ``neuroqd resume``) keep their first value, as MLflow allows no other, with a
        warning: the final config.yaml artifact holds the values used."""
        self._last_step: dict[str, int] = {}
        path = self.run_dir / MLFLOW_RUN_ID
        if not path.exists():
            return None
        from mlflow.exceptions import MlflowException

        run_id = path.read_text().strip()
        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:  # another tracking URI, or the run was deleted
            warnings.warn(f"logging.mlflow: cannot continue MLflow run {run_id} "
                          f"({str(exc).splitlines()[0] if str(exc) else exc!r}); "
                          f"starting a new one", stacklevel=3)
            return None
        new = [param_class(k, v) for k, v in params.items() if k not in run.data.params]
        self._log_params(run_id, new)
        changed = sorted(k for k, v in params.items() if run.data.params.get(k, v) != v)
        if changed:
            warnings.warn(f"logging.mlflow: MLflow run {run_id} keeps the first values of "
                          f"{', '.join(changed)} (params cannot change); config.yaml has the "
                          f"values used", stacklevel=3)
        for key in run.data.metrics:
            self._last_step[key] = max(m.step for m in self.client.get_metric_history(run_id, key))
        self.client.update_run(run_id, status="RUNNING")
        return run_id

    def _new_run(self, experiment_id: str, params: dict[str, str], param_class) -> str:
        run = self.client.create_run(experiment_id, run_name=self.run_dir.name,
                                     tags={"neuroqd.run_dir": str(self.run_dir.resolve())})
        self._log_params(run.info.run_id, [param_class(k, v) for k, v in params.items()])
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.run_dir / MLFLOW_RUN_ID, (run.info.run_id + "\n").encode())
        return run.info.run_id

    def _log_params(self, run_id: str, params: list) -> None:
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=params[i:i + 100])

    def log(self, values: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        metrics = [self._metric(k, v, now, step) for k, v in values.items()
                   if step > self._last_step.get(k, -1)]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def finish(self, run_dir: str | Path) -> None:
        """Send the run's final files as artifacts and mark the MLflow run finished."""
        for name in ARTIFACTS:
            if (Path(run_dir) / name).exists():
                self.client.log_artifact(self.run_id, str(Path(run_dir) / name))
        self.client.set_terminated(self.run_id, self._status.to_string(self._status.FINISHED))


def resolve_logging(section: dict) -> dict:
    """The ``logging`` section with ``mlflow``'s defaults filled in; a bad value raises a
    one-line ValueError naming its key."""
    if section.get("heatmap_every", 0) < 0:
        raise ValueError(f"logging.heatmap_every: must be >= 0 (0: no heatmaps), "
                         f"got {section['heatmap_every']!r}")
    mlflow = section.get("mlflow")
    if mlflow is None:
        return section
    accepted = ", ".join(sorted(MLFLOW_DEFAULTS))
    if not isinstance(mlflow, dict):
        raise ValueError(f"logging.mlflow: expected a mapping with keys {accepted} "
                         f"(or null: off), got {mlflow!r}")
    for key, value in mlflow.items():
        if key not in MLFLOW_DEFAULTS:
            raise ValueError(f"logging.mlflow.{key}: unknown key; accepted here: {accepted}")
    mlflow = {**MLFLOW_DEFAULTS, **mlflow}
    if mlflow["tracking_uri"] is not None and not isinstance(mlflow["tracking_uri"], str):
        raise ValueError(f"logging.mlflow.tracking_uri: expected a URI or directory (string) "
                         f"or null, got {mlflow['tracking_uri']!r}")
    if not isinstance(mlflow["experiment"], str) or not mlflow["experiment"]:
        raise ValueError(f"logging.mlflow.experiment: expected a name (string), "
                         f"got {mlflow['experiment']!r}")
    return {**section, "mlflow": mlflow}


class Tracker:
    """The engine's log hook: each metrics.csv row to TensorBoard and MLflow, and the archive
    heatmap to TensorBoard.

    Parameters
    ----------
    tensorboard : TensorBoardLog or None
    mlflow : MlflowLog or None
    heatmap : dict or None
        ``plot_heatmap``'s labels (``task``, ``algorithm``, ``descriptor_names``, ``y_down``);
        None draws no heatmaps.
    heatmap_every : int
        Iterations between heatmaps, drawn on logged iterations only, the final one always;
        0 draws none. Each costs about 0.3 s of matplotlib, as much as 10 iterations of the
        arm task, hence a knob apart from ``log_every``.
    """

    def __init__(self, tensorboard: TensorBoardLog | None = None, mlflow: MlflowLog | None = None,
                 heatmap: dict | None = None, heatmap_every: int = 1) -> None:
        self.tensorboard, self.mlflow, self.heatmap = tensorboard, mlflow, heatmap
        self.heatmap_every = int(heatmap_every)

    def __call__(self, engine, row: dict) -> None:
        step = int(row["evaluations"])
        self.log(row, step)
        final = engine.stop or engine.algorithm.evaluations >= engine.budget
        if self.heatmap_every and (row["iteration"] % self.heatmap_every == 0 or final):
            self.log_heatmap(engine.algorithm.archive, step, row)

    def log(self, row: dict, step: int) -> None:
        values = numeric_items(row)
        for sink in (self.tensorboard, self.mlflow):
            if sink is not None:
                sink.log(values, step)

    def log_heatmap(self, archive, step: int, metrics: dict | None = None) -> None:
        """The archive drawn as ``neuroqd plot`` draws heatmap.png, as TensorBoard image
        ``heatmap`` (2-D archives only)."""
        if self.tensorboard is None or self.heatmap is None or archive.descriptor_dim != 2:
            return
        import matplotlib.pyplot as plt

        from archives.plot import heatmap_title, plot_heatmap

        h = self.heatmap
        buffer = io.BytesIO()  # savefig writes to a file object as well as to a path
        plot_heatmap(archive, buffer, heatmap_title(h["task"], h["algorithm"], metrics or {}),
                     descriptor_names=h["descriptor_names"], y_down=h["y_down"])
        buffer.seek(0)
        self.tensorboard.log_image("heatmap", plt.imread(buffer, format="png"), step)

    def finish(self, run_dir: str | Path) -> None:
        """After the run's final files are written: MLflow artifacts, writers closed."""
        if self.mlflow is not None:
            self.mlflow.finish(run_dir)
        if self.tensorboard is not None:
            self.tensorboard.close()


MLFLOW_DEFAULTS = keyword_defaults(MlflowLog.__init__, {"run_dir", "params"})
# The config's ``logging`` section (both off); mlflow: null, or a mapping of MLFLOW_DEFAULTS.
LOGGING_DEFAULTS = {"tensorboard": False,
                    "heatmap_every": keyword_defaults(Tracker.__init__)["heatmap_every"],
                    "mlflow": None}


def make_tracker(config: dict, run_dir: str | Path | None, task) -> Tracker | None:
    """The tracker ``config['logging']`` asks for (None: nothing to track, or no run_dir,
    since a run without a directory writes nothing). A missing package raises a one-line
    ValueError naming the key and what to install."""
    section = config.get("logging") or {}
    if run_dir is None or not (section.get("tensorboard") or section.get("mlflow") is not None):
        return None
    run_dir = Path(run_dir)
    tensorboard = mlflow = None
    if section.get("tensorboard"):
        tensorboard = TensorBoardLog(run_dir / TENSORBOARD_DIR)
    if section.get("mlflow") is not None:
        options = resolve_logging(section)["mlflow"]
        mlflow = MlflowLog(run_dir, flatten_config(config), **options)
    heatmap = {"task": config["task"]["name"], "algorithm": config["algorithm"],
               "descriptor_names": task.descriptor_names, "y_down": task.descriptor_y_down}
    every = section.get("heatmap_every", LOGGING_DEFAULTS["heatmap_every"])
    return Tracker(tensorboard, mlflow, heatmap, every)
