"""One module per algorithm. ``ALGORITHMS`` maps config names to classes and the defaults of
their config section (the section is named after the algorithm)."""

from __future__ import annotations

import importlib

# name -> ("module:Class", defaults of the algorithm's config section)
ALGORITHMS: dict[str, tuple[str, dict]] = {
    "map_elites": ("evo.algorithms.map_elites:MapElites", {
        "emitters": [{"type": "isoline", "proportion": 1.0, "iso_sigma": 0.005,
                      "line_sigma": 0.05}],
    }),
    # sigma 0.1 measured best for the 11-16-2 maze MLP (hard maze coverage 0.19 vs 0.12 at
    # 0.01); Such et al. used 0.002-0.005 on networks with millions of weights.
    # elite_reevaluations 0: deterministic tasks (mazes, arm, functions).
    "deep_ga": ("evo.algorithms.deep_ga:DeepGA", {
        "truncation": 20, "sigma": 0.1, "genome": "flat", "elite_candidates": 10,
        "elite_reevaluations": 0,
    }),
    # GA-NS (Such et al. 2017): insertion probability 0.01 by default (scale-free); the maze
    # configs use Lehman & Stanley's dynamic threshold, in descriptor units (maze descriptor =
    # position / ~200 maze units: 6.0 units ~ 0.03, floor 0.25 ~ 0.00125). sigma 0.1: measured
    # for the 11-16-2 maze MLP (evo/algorithms/novelty_search.py has the figures).
    "novelty_search": ("evo.algorithms.novelty_search:NoveltySearch", {
        "truncation": 20, "sigma": 0.1, "k_neighbors": 15, "elitism": 0,
        "archive_mode": "probability", "archive_probability": 0.01,
        "threshold": {"initial": 0.03, "min": 0.00125, "decay": 0.95, "stale_generations": 10,
                      "growth": 1.2, "max_additions": 4},
    }),
    # tie_break novelty: on the hard maze it solved 9/12 seeds vs 5/10 with NSGA-II crowding.
    "nslc": ("evo.algorithms.novelty_search:NSLC", {
        "truncation": 20, "sigma": 0.1, "k_neighbors": 15, "elitism": 0, "tie_break": "novelty",
        "novelty_threshold": 0.03, "threshold_decay_rate": 0.95, "threshold_decay_itrs": 10,
        "threshold_decay_min": 0.00125,
    }),
}


def algorithm_class(name: str) -> type:
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm: unknown algorithm {name!r}; accepted: "
                         f"{', '.join(sorted(ALGORITHMS))}")
    module, cls = ALGORITHMS[name][0].split(":")
    return getattr(importlib.import_module(module), cls)


def algorithm_defaults(name: str) -> dict:
    algorithm_class(name)  # validates the name
    import copy
    return copy.deepcopy(ALGORITHMS[name][1])
