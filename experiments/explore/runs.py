"""What the explorer page shows of one run directory, as compact JSON.

Each payload is built from the run's files on request and kept until the file it came from
changes (its modification time and size: the "stamp"), so the page's poll every 2 s costs one
``stat`` per file while nothing changes, and a run still writing checkpoints is shown live.

Arrays go out as one JSON list per quantity (not one object per cell) with 7 significant
digits: a 10,000-cell grid archive is 0.3 MB (a CVT one 1.5 MB with its polygons) and parses in
a few milliseconds in the browser.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import matplotlib
import numpy as np
import shapely
import yaml
# The heatmaps' own colour limits (ribs.visualize's helper; ribs is pinned below 0.13).
from ribs.visualize._utils import compute_vmin_vmax
from scipy.spatial import Voronoi

# Imported here, in the main thread, never first inside a request: threads importing the same
# modules at once can get a partially initialised one (CPython breaks the import deadlock that
# way; seen with matplotlib.pyplot, which experiments.plotting sets up on import).
from evo.build import build_task
from experiments.plotting import read_metrics
from experiments.render import file_stamp, load_run_view

ARCHIVE_FILE = "archive.npz"
CACHE = "explore_cache"  # DIR/explore_cache/: the only place the explorer writes
# The heatmaps' colour scale: archives.plot.plot_heatmap leaves ribs' default colormap, magma.
COLORMAP = "magma"
PALETTE = "tab10"  # one colour per run in the overlaid curves, as matplotlib's default cycle


def json_floats(values) -> list:
    """Floats rounded to 7 significant digits (float32 holds ~7; shorter JSON), non-finite as None."""
    return [float(f"{v:.7g}") if np.isfinite(v) else None
            for v in np.asarray(values, dtype=np.float64).ravel().tolist()]


def colours(name: str, n: int | None = None) -> list[str]:
    """``"#rrggbb"`` colours of a matplotlib colormap: 256 samples of a continuous one, or the
    ``n`` entries of a qualitative one (the browser draws with the same colours as our PNGs)."""
    cmap = matplotlib.colormaps[name]
    rgb = cmap(np.linspace(0, 1, 256) if n is None else np.arange(n))[:, :3]
    return ["#%02x%02x%02x" % tuple(int(round(255 * c)) for c in row) for row in rgb]


def cvt_polygons(centroids: np.ndarray, bounds) -> tuple[list, list]:
    """Voronoi cells of 2-D CVT centroids clipped to the descriptor bounds, as ribs'
    ``cvt_archive_heatmap`` draws them (four faraway points close the border cells).

    Returns
    -------
    xy : list of float, the vertices of every cell one after another (x0, y0, x1, y1, ...)
    start : list of int (cells + 1,), cell ``i``'s vertices are ``xy[2 * start[i]:2 * start[i+1]]``
    """
    lo, hi = np.array(bounds, dtype=np.float64).T
    span = hi - lo
    far = [hi + span * 1000, hi + span * [-1, 1] * 1000, lo - span * 1000, lo + span * [1, -1] * 1000]
    vor = Voronoi(np.vstack([centroids, far]))
    regions = [vor.vertices[vor.regions[r]] for r in vor.point_region[:len(centroids)]]
    clipped = shapely.intersection([shapely.Polygon(r) for r in regions],
                                   shapely.box(lo[0], lo[1], hi[0], hi[1]))
    xy, start = [], [0]
    for poly in clipped:
        ring = np.asarray(poly.exterior.coords)[:-1] if not poly.is_empty else np.zeros((0, 2))
        xy.append(ring.ravel())
        start.append(start[-1] + len(ring))
    # Vertices to 1e-5 of the descriptor range, far below a pixel: shorter JSON than 7 digits.
    decimals = int(np.ceil(-np.log10(span.max() * 1e-5)))
    return np.round(np.concatenate(xy), decimals).tolist(), start


class ExploredRun:
    """One run directory given to ``neuroqd explore``, named on the page by its position.

    Parameters
    ----------
    index : int, the run's number in URLs (``/api/runs/INDEX/...``)
    run_dir : Path, a directory holding config.yaml
    """

    def __init__(self, index: int, run_dir: Path) -> None:
        self.index = index
        self.shown = str(run_dir)  # as the user typed it: the page never sees resolved paths
        self.run_dir = Path(run_dir).resolve()
        self.cache_dir = self.run_dir / CACHE
        try:
            self.config = yaml.safe_load((self.run_dir / "config.yaml").read_text())
            self.task = build_task(self.config)
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            raise ValueError(f"DIR: {run_dir}: unreadable config.yaml ({exc})") from None
        self._lock = threading.Lock()
        self._payloads: dict[str, tuple[str | None, bytes]] = {}
        self._polygons: tuple | None = None

    # -- what changed -------------------------------------------------------------------------
    def archive_source(self) -> Path | None:
        """archive.npz once the run has ended, else its newest checkpoint (None before any)."""
        if (self.run_dir / ARCHIVE_FILE).exists():
            return self.run_dir / ARCHIVE_FILE
        ckpts = sorted((self.run_dir / "checkpoints").glob("ckpt_*.npz"))
        return ckpts[-1] if ckpts else None

    def archive_stamp(self) -> str | None:
        source = self.archive_source()
        return None if source is None else f"{source.name}:{file_stamp(source)}"

    def stamps(self) -> dict:
        """One string per file the page shows; the page refetches what changed."""
        return {"archive": self.archive_stamp(),
                "metrics": file_stamp(self.run_dir / "metrics.csv"),
                "summary": file_stamp(self.run_dir / "summary.json"),
                "config": file_stamp(self.run_dir / "config.yaml"),
                "distilled": file_stamp(self.run_dir / "distilled" / "policy.json")}

    def describe(self) -> dict:
        """Name, algorithm, task and descriptor space: what the run switch lists."""
        task = self.task
        return {"index": self.index, "name": self.run_dir.name, "dir": self.shown,
                "algorithm": self.config.get("algorithm"),
                "task": (self.config.get("task") or {}).get("name"),
                "archive": (self.config.get("archive") or {}).get("type", "grid"),
                "descriptor_dim": int(task.descriptor_dim),
                "descriptor_names": [str(n) for n in task.descriptor_names],
                "descriptor_bounds": [[float(lo), float(hi)] for lo, hi in task.descriptor_bounds],
                "descriptor_y_down": bool(task.descriptor_y_down),
                "stamps": self.stamps()}

    def _cached(self, key: str, stamp: str | None, build) -> bytes:
        with self._lock:  # one build per change, however many browser tabs poll
            hit = self._payloads.get(key)
            if hit is None or hit[0] != stamp:
                hit = (stamp, json.dumps(build(), separators=(",", ":")).encode())
                self._payloads[key] = hit
            return hit[1]

    # -- payloads -----------------------------------------------------------------------------
    def archive_json(self) -> bytes:
        stamp = self.archive_stamp()  # taken before loading: a newer file is refetched later
        return self._cached("archive", stamp, lambda: self._archive(stamp))

    def _archive(self, stamp: str | None) -> dict:
        d = int(self.task.descriptor_dim)
        out = {"stamp": stamp, "source": None if stamp is None else stamp.split(":")[0],
               "kind": (self.config.get("archive") or {}).get("type", "grid"),
               "descriptor_dim": d, "cells": 0, "index": [], "fitness": [],
               "descriptors": [[] for _ in range(d)], "genome_id": None,
               "vmin": 0.0, "vmax": 1.0, "note": ""}
        if stamp is None:
            out["note"] = "no archive yet: it appears with the run's first checkpoint"
            return out
        try:
            view = load_run_view(self.run_dir)  # shared with the renders: loaded once per change
        except FileNotFoundError:  # every checkpoint unreadable: wait for the next one
            out["note"] = "no readable archive yet"
            return out
        archive, elites = view.archive, view.elites
        fitness = elites["fitness"].double().numpy()
        out["kind"], out["cells"] = archive.kind, int(archive.cells)
        out["index"] = elites["index"].tolist()
        out["fitness"] = json_floats(fitness)
        out["descriptors"] = [json_floats(col) for col in elites["descriptors"].double().numpy().T]
        if "genome_id" in elites:  # Deep GA seed-chain archives
            out["genome_id"] = elites["genome_id"].tolist()
        out["vmin"], out["vmax"] = (float(v) for v in compute_vmin_vmax(None, None, fitness))
        if archive.kind == "grid" and d == 2:
            out["view"], out["dims"] = "grid", [int(n) for n in archive.spec["dims"]]
        elif archive.kind == "cvt" and d == 2:
            out["view"] = "cvt"
            if self._polygons is None:  # centroids never change during a run
                centroids = np.asarray(archive.ribs.centroids)
                self._polygons = (json_floats(centroids), *cvt_polygons(centroids,
                                                                       self.task.descriptor_bounds))
            out["centroids"], out["polygon_xy"], out["polygon_start"] = self._polygons
        else:
            out["view"] = "scatter"
            if d == 1:
                out["note"] = "1-D descriptor: x is the descriptor, y the fitness; one dot per elite"
            elif d > 2:
                out["note"] = (f"{d}-D descriptor: showing its first two dimensions, one dot per "
                               "elite (the fitter on top); hover or click a dot for all of them")
            else:
                out["note"] = "unstructured archive: one dot per elite"
        return out

    def metrics_json(self) -> bytes:
        path = self.run_dir / "metrics.csv"
        return self._cached("metrics", file_stamp(path), self._metrics)

    def _metrics(self) -> dict:
        if not (self.run_dir / "metrics.csv").exists():
            return {"stamp": None, "columns": [], "rows": 0, "data": {}}
        stamp = file_stamp(self.run_dir / "metrics.csv")
        cols = read_metrics(self.run_dir)
        rows = min((len(v) for v in cols.values()), default=0)  # a row being written is cut
        return {"stamp": stamp, "columns": list(cols), "rows": rows,
                "data": {k: json_floats(v[:rows]) for k, v in cols.items()}}

    def files_json(self) -> bytes:
        stamps = self.stamps()
        return self._cached("files", (stamps["config"], stamps["summary"]), self._files)

    def _files(self) -> dict:
        stamps = self.stamps()  # before reading: a file changed meanwhile is fetched again
        config = (self.run_dir / "config.yaml").read_text()
        summary, note = None, "no summary.json: the run is still going (or was stopped)"
        path = self.run_dir / "summary.json"
        if path.exists():
            try:
                # NaN (an empty archive's max fitness) is not JSON the browser can parse
                summary, note = json.loads(path.read_text(), parse_constant=lambda _: None), ""
            except (OSError, ValueError) as exc:
                note = f"summary.json unreadable: {exc}"
        return {"stamp": [stamps["config"], stamps["summary"]], "config": config,
                "summary": summary, "summary_note": note}
