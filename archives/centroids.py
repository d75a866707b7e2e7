"""CVT centroids, computed once per parameter set and cached on disk."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from ribs.archives import k_means_centroids


def cache_dir() -> Path:
    """``$NEUROQD_CACHE`` or ``~/.cache/neuroqd``."""
    return Path(os.environ.get("NEUROQD_CACHE", Path.home() / ".cache" / "neuroqd"))


def cached_centroids(cells: int, ranges: list[tuple[float, float]], samples: int = 50_000,
                     seed: int = 0) -> np.ndarray:
    """(cells, d) float64 centroids from k-means on ``samples`` uniform points.

    The result depends only on the arguments, so it is stored under a hash of them; a run
    with the same CVT archive loads it instead of re-running k-means.
    """
    key = json.dumps({"cells": cells, "ranges": [list(map(float, r)) for r in ranges],
                      "samples": samples, "seed": seed}, sort_keys=True)
    path = cache_dir() / "centroids" / (hashlib.sha1(key.encode()).hexdigest()[:16] + ".npy")
    if path.exists():
        try:
            centroids = np.load(path, allow_pickle=False)
            if centroids.shape == (cells, len(ranges)):
                return centroids
        except (OSError, ValueError):
            pass  # a damaged cache file is recomputed below
    centroids, _ = k_means_centroids(centroids=cells, ranges=ranges, samples=samples, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, centroids)
    os.replace(tmp, path)
    return centroids
