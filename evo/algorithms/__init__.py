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
