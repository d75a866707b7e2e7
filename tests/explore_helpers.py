"""Run directories and a server for the explorer's tests (HTTP and browser)."""

import contextlib
import csv
import json
import threading
import urllib.error
import urllib.request

import numpy as np
import torch
import yaml

from experiments.cli import main

QUIET = ["--quiet"]
# The cheapest runs that still fill a few cells (as tests/test_render.py's); log_every=1 gives
# the curves more than one point.
MAZE = ["me_hard_maze", "--set", "budget.evaluations=512", "--set", "task.episode_length=100",
        "--set", "log_every=1"]
ANT_CVT = ["me_ant_omni", "--set", "task.episode_length=50", "--set", "policy.hidden=[8]",
           "--set", "batch_size=12", "--set", "budget.evaluations=36", "--set",
           "archive={type: cvt, cells: 64, samples: 2000}", "--set", "workers.threads=1",
           "--set", "checkpoint_every=0", "--set", "log_every=1"]


def neuroqd_run(args, out) -> None:
    assert main(["run", *args, *QUIET, "--out", str(out)]) == 0


def synthetic_run(out, name: str = "me_arm", sets=(), rows: int = 10) -> None:
    """A run directory without running anything: ``name``'s resolved config (with ``sets``),
    a grid or CVT archive with every cell filled (at its centre or centroid) and ``rows``
    metrics rows.

    The genomes are random numbers: the page can draw the archive, but not render its elites.
    """
    from archives import make_archive, save_archive
    from evo.build import build_task
    from experiments.config import load_raw, resolve

    out.mkdir(parents=True)
    config = resolve(load_raw(name), list(sets))
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    task = build_task(config)
    archive = make_archive(config["archive"], 4, task.descriptor_bounds, task.fitness_offset)
    if archive.kind == "cvt":
        centres = np.asarray(archive.ribs.centroids)
    else:
        dims = config["archive"]["dims"]
        axes = [lo + (np.arange(n) + 0.5) * (hi - lo) / n
                for n, (lo, hi) in zip(dims, task.descriptor_bounds)]
        centres = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(dims))
    descriptors = torch.tensor(centres, dtype=torch.float32)
    fitness = -(descriptors - descriptors.mean(0)).norm(dim=1)  # a smooth hill
    archive.add(torch.rand(len(centres), 4, generator=torch.Generator().manual_seed(0)),
                fitness, descriptors)
    save_archive(archive, out / "archive.npz")
    with open(out / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["iteration", "evaluations", "qd_score", "coverage", "max_fitness",
                         "time_s", "num_elites"])
        for i in range(rows):
            frac = (i + 1) / rows
            writer.writerow([i, 100 * (i + 1), f"{1000 * frac ** 0.5:.4f}", f"{frac:.4f}",
                             f"{-1 + frac:.4f}", f"{0.01 * i:.3f}", int(frac * len(centres))])
    (out / "summary.json").write_text(json.dumps({**archive.metrics(), "evaluations": 100 * rows}))


@contextlib.contextmanager
def explorer(dirs):
    """``make_server`` on a free port, serving in a thread; yields the server."""
    from experiments.explore import make_server

    server = make_server(list(dirs), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def get(url: str, headers: dict | None = None, method: str = "GET"):
    """``(status, headers, body bytes)``; 4xx and 5xx answers are returned, not raised."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def get_json(url: str, **kwargs):
    status, _, body = get(url, **kwargs)
    return status, json.loads(body)
