"""The generational loop: budget in evaluations, metrics, checkpoints, callbacks, progress.

A run directory holds ``metrics.csv`` (one row per logged iteration), ``summary.json``
(final figures) and ``checkpoints/`` (the last two, written atomically). Resuming loads the
newest readable checkpoint, drops metric rows logged after it, and continues exactly as if
the run had never stopped: every random draw comes from state that the checkpoint holds.
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from archives import StateFileError, load_state, save_state
from evo.algorithms.base import Algorithm

BASE_COLUMNS = ["iteration", "evaluations", "qd_score", "coverage", "max_fitness", "time_s"]
KEEP_CHECKPOINTS = 2


class Engine:
    """Runs an :class:`Algorithm` until ``budget`` evaluations are spent.

    Parameters
    ----------
    algorithm : Algorithm
    budget : int
        Evaluations to spend. Whole batches are evaluated, so the last one may go past it.
    run_dir : path or None
        Where metrics, summary and checkpoints go (nothing is written when None).
    log_every, checkpoint_every : int
        In iterations; the final iteration is always logged and checkpointed.
        ``checkpoint_every=0`` writes only the final checkpoint.
    callbacks : list of callables ``f(engine, metrics: dict)``
        Called after every iteration with that iteration's metrics (archive metrics are
        filled in on logged iterations only); a callback may set ``engine.stop = True``.
    progress : bool or None
        A progress bar on stderr; None shows one only when stderr is a terminal.
    log_hooks : list of callables ``f(engine, row: dict)``
        Called after each metrics.csv row is written, with that row (experiment trackers:
        :class:`evo.tracking.Tracker`); only when there is a run_dir.
    """

    def __init__(self, algorithm: Algorithm, budget: int, run_dir: str | Path | None = None,
                 log_every: int = 10, checkpoint_every: int = 50,
                 callbacks: list[Callable[["Engine", dict], Any]] | None = None,
                 progress: bool | None = None,
                 log_hooks: list[Callable[["Engine", dict], Any]] | None = None) -> None:
        if budget < 1:
            raise ValueError(f"budget.evaluations: must be >= 1, got {budget}")
        if log_every < 1:
            raise ValueError(f"log_every: must be >= 1, got {log_every}")
        if checkpoint_every < 0:
            raise ValueError(f"checkpoint_every: must be >= 0, got {checkpoint_every}")
        self.algorithm = algorithm
        self.budget = int(budget)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.log_every = int(log_every)
        self.checkpoint_every = int(checkpoint_every)
        self.callbacks = list(callbacks or [])
        self.log_hooks = list(log_hooks or [])
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.elapsed = 0.0  # seconds spent in earlier sessions of this run
        self.stop = False
        self._restarts_before = 0  # worker replacements in earlier sessions of this run
        self._columns: list[str] | None = None

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> dict:
        """Run to the budget (or until a callback stops it); returns the summary."""
        algo = self.algorithm
        if self.run_dir is not None:
            (self.run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.budget, initial=min(algo.evaluations, self.budget),
                       unit="eval", unit_scale=True, dynamic_ncols=True, file=sys.stderr)
        start = time.perf_counter() - self.elapsed
        row: dict = {}
        try:
            while algo.evaluations < self.budget and not self.stop:
                before = algo.evaluations
                stats = algo.step()
                self.elapsed = time.perf_counter() - start
                final = algo.evaluations >= self.budget
                logged = algo.iteration % self.log_every == 0 or final
                row = {"iteration": algo.iteration, "evaluations": algo.evaluations,
                       "time_s": round(self.elapsed, 4)}
                if logged:
                    row.update(self._archive_metrics(), **self._counters(), **stats)
                    self._log(row)
                for callback in self.callbacks:
                    callback(self, row)
                final = final or self.stop
                if self.run_dir is not None and (
                        final or (self.checkpoint_every and algo.iteration % self.checkpoint_every == 0)):
                    if not logged:  # a checkpoint always sits on a logged row
                        row.update(self._archive_metrics(), **self._counters(), **stats)
                        self._log(row)
                    self.save_checkpoint()
                if bar is not None:
                    bar.update(min(algo.evaluations, self.budget) - min(before, self.budget))
                    if logged:
                        bar.set_postfix(qd=f"{row['qd_score']:.4g}", cov=f"{row['coverage']:.3f}",
                                        best=f"{row['max_fitness']:.4g}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
        summary = self.summary()
        if self.run_dir is not None:
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary

    def _archive_metrics(self) -> dict:
        m = self.algorithm.archive.metrics()
        return {"qd_score": m["qd_score"], "coverage": m["coverage"],
                "max_fitness": m["max_fitness"], "num_elites": m["num_elites"]}

    @property
    def worker_restarts(self) -> int:
        """Evaluation workers replaced (died or hung) over the whole run."""
        return self._restarts_before + int(getattr(self.algorithm.evaluator, "restarts", 0))

    def _counters(self) -> dict:
        return {"failed_evaluations": self.algorithm.failed_evaluations,
                "worker_restarts": self.worker_restarts}

    def summary(self) -> dict:
        algo = self.algorithm
        out = {"evaluations": algo.evaluations, "iterations": algo.iteration,
               **self._archive_metrics(), "time_s": round(self.elapsed, 4), **self._counters()}
        out.update(algo.summary())
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}

    # -- metrics.csv ---------------------------------------------------------------------
    def _log(self, row: dict) -> None:
        if self.run_dir is None:
            return
        path = self.run_dir / "metrics.csv"
        if self._columns is None:
            self._columns = BASE_COLUMNS + [k for k in row if k not in BASE_COLUMNS]
            if not path.exists() or path.stat().st_size == 0:
                with open(path, "w", newline="") as f:
                    csv.writer(f).writerow(self._columns)
        with open(path, "a", newline="") as f:
            csv.writer(f).writerow([_fmt(row.get(c, "")) for c in self._columns])
        for hook in self.log_hooks:
            hook(self, row)

    def _truncate_metrics(self, iteration: int) -> None:
        """Keep the header and the rows up to ``iteration`` (a kill may have left more,
        or half a line)."""
        path = self.run_dir / "metrics.csv"
        if not path.exists():
            return
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        header, kept = rows[0], []
        for r in rows[1:]:
            if len(r) != len(header):
                break
            try:
                if int(r[0]) > iteration:
                    break
            except ValueError:
                break
            kept.append(r)
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(kept)
        tmp.replace(path)
        self._columns = header

    # -- checkpoints ---------------------------------------------------------------------
    def checkpoint_paths(self) -> list[Path]:
        """Existing checkpoints, oldest first."""
        return sorted((self.run_dir / "checkpoints").glob("ckpt_*.npz"))

    def save_checkpoint(self) -> Path:
        directory = self.run_dir / "checkpoints"
        path = directory / f"ckpt_{self.algorithm.iteration:08d}.npz"
        # Algorithms with large incremental state (replay buffers) write it beside the
        # checkpoint first, so a checkpoint never refers to rows that are not on disk.
        checkpoint_state = getattr(self.algorithm, "checkpoint_state", None)
        state = checkpoint_state(directory) if checkpoint_state else self.algorithm.state_dict()
        save_state(path, {"engine": {"elapsed": self.elapsed, "budget": self.budget,
                                     "worker_restarts": self.worker_restarts},
                          "algorithm": state})
        for old in self.checkpoint_paths()[:-KEEP_CHECKPOINTS]:
            old.unlink(missing_ok=True)
        return path

    def restore(self) -> Path | None:
        """Load the newest readable checkpoint; returns its path (None: start afresh).

        A damaged checkpoint is reported with a warning naming it and left in place; the
        one before it is used.
        """
        for path in reversed(self.checkpoint_paths()):
            try:
                state = load_state(path)
            except StateFileError as exc:
                warnings.warn(f"skipping checkpoint {exc}", stacklevel=2)
                continue
            load = getattr(self.algorithm, "load_checkpoint_state", None)
            if load:
                load(state["algorithm"], path.parent)
            else:
                self.algorithm.load_state_dict(state["algorithm"])
            self.elapsed = float(state["engine"]["elapsed"])
            self._restarts_before = int(state["engine"].get("worker_restarts", 0))
            self._truncate_metrics(self.algorithm.iteration)
            return path
        if self.run_dir is not None:  # nothing to resume from: start the run over
            (self.run_dir / "metrics.csv").unlink(missing_ok=True)
        return None


def _fmt(v):
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("nan" if math.isnan(v) else str(v))
    return v
