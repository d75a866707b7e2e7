"""Renders of elites (and of the distilled policy) for the explorer, made on demand.

A click on the page asks for a render; it is made by :func:`experiments.render.render_run` in a
background thread (a MuJoCo video takes seconds) while the page polls the same request until
the file is there. Files go to ``DIR/explore_cache/`` under a name that holds the archive's
stamp (and the distilled policy's), so a render made before the archive or policy changed is
never served for the new one; a JSON file beside each keeps render_run's answer, so a later
session serves the cached file without re-rendering.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import threading
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor

from archives import write_atomic
from experiments.explore.runs import ExploredRun
# Imported in the main thread (see runs.py).
from experiments.render import file_stamp, load_run_view, render_run

KEPT = 200  # renders kept per run; the oldest go first
MEDIA_TYPES = {".png": "image/png", ".mp4": "video/mp4", ".gif": "image/gif"}


class RenderRequestError(ValueError):
    """A render the request cannot have (empty cell, no distilled policy, bad descriptor)."""


def _short(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def render_key(run: ExploredRun, cell: int | None, descriptor: list[float] | None,
               distilled: bool) -> str:
    """The cache file name (without suffix) of one render of ``run`` as its files are now."""
    parts = [_short(run.archive_stamp() or "")]
    if distilled:
        stamp = file_stamp(run.run_dir / "distilled" / "policy.json")
        if stamp is None:
            raise RenderRequestError(f"distilled: {run.shown} has no distilled policy "
                                     "(run `neuroqd distill DIR` first)")
        parts.append("distilled" + _short(stamp))
    if cell is not None:
        parts.append(f"cell{cell}")
    else:
        parts.append("at_" + "_".join(f"{v:.6g}" for v in descriptor))
    return "_".join(parts)


class RenderQueue:
    """One render at a time (the machine also runs experiments), answered from the cache.

    ``request`` returns ``(state, info)``: ``"done"`` with render_run's answer (the file as a
    ``media`` name under the run's cache instead of a path), ``"pending"`` while it renders, or
    ``"error"`` with a message (``bad`` True when the request itself was at fault).
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="neuroqd-render")
        self._jobs: dict[tuple[int, str], tuple[float, Future]] = {}
        self._lock = threading.Lock()

    def request(self, run: ExploredRun, cell: int | None = None,
                descriptor: list[float] | None = None, distilled: bool = False) -> tuple[str, dict]:
        if descriptor is not None and len(descriptor) != run.task.descriptor_dim:
            raise RenderRequestError(f"descriptor: expected {run.task.descriptor_dim} "
                                     f"comma-separated numbers, got {len(descriptor)}")
        if descriptor is not None and not all(math.isfinite(v) for v in descriptor):
            raise RenderRequestError("descriptor: expected finite numbers")
        key = render_key(run, cell, descriptor, distilled)
        sidecar = run.cache_dir / f"{key}.json"
        if sidecar.exists():
            try:
                info = json.loads(sidecar.read_text())
                if (run.cache_dir / info["media"]).exists():
                    return "done", info
            except (OSError, ValueError, KeyError, TypeError):
                pass  # damaged: render again
        with self._lock:
            job = self._jobs.get((run.index, key))
            if job is None:
                view = load_run_view(run.run_dir)  # cached; raises ValueError for e.g. sphere
                if cell is not None and not bool((view.elites["index"] == cell).any()):
                    raise RenderRequestError(f"cell: cell {cell} of run {run.index} is empty "
                                             f"({len(view.elites['index'])} filled cells of "
                                             f"{view.archive.cells})")
                out = run.cache_dir / f"{key}{view.default_suffix}"
                job = (time.monotonic(), self._pool.submit(
                    self._render, run, out, sidecar, cell, descriptor, distilled))
                self._jobs[(run.index, key)] = job
        started, future = job
        if not future.done():
            return "pending", {"elapsed_s": round(time.monotonic() - started, 1)}
        exc = future.exception()
        if exc is None:
            with self._lock:  # the sidecar answers from now on
                self._jobs.pop((run.index, key), None)
            return "done", future.result()
        # A failed render stays failed for these files (the same files fail the same way).
        return "error", {"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                         "bad": isinstance(exc, ValueError)}

    @staticmethod
    def _render(run: ExploredRun, out, sidecar, cell, descriptor, distilled) -> dict:
        run.cache_dir.mkdir(exist_ok=True)
        try:
            info = render_run(run.run_dir, cell=cell, distilled=distilled, out=out,
                              descriptor=None if descriptor is None
                              else ",".join(f"{v:.6g}" for v in descriptor))
        except Exception as exc:  # a bug (not bad input): traceback to the terminal, not the page
            if not isinstance(exc, ValueError):
                traceback.print_exc(file=sys.stderr)
            raise
        info = {k: v for k, v in info.items() if k != "path"}  # the page never sees paths
        info["media"] = out.name
        write_atomic(sidecar, json.dumps(info).encode())
        _prune(run.cache_dir)
        return info

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _prune(cache_dir) -> None:
    """Keep the ``KEPT`` newest renders of a run (files and their JSON)."""
    sidecars = sorted(cache_dir.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    for old in sidecars[:-KEPT]:
        for path in [old, *(old.with_suffix(s) for s in MEDIA_TYPES)]:
            path.unlink(missing_ok=True)
