"""One module per algorithm. ``ALGORITHMS`` maps config names to classes; the defaults of an
algorithm's config section (named after the algorithm) are read from its constructor, the one
place they are written."""

from __future__ import annotations

import copy
import importlib

ALGORITHMS: dict[str, str] = {
    "map_elites": "evo.algorithms.map_elites:MapElites",
    "deep_ga": "evo.algorithms.deep_ga:DeepGA",
    "novelty_search": "evo.algorithms.novelty_search:NoveltySearch",
    "nslc": "evo.algorithms.novelty_search:NSLC",
}

# Constructor parameters that the config layer or ``from_config`` supplies, not the section.
_WIRING = {"self", "task", "evaluator", "archive", "batch_size", "init", "bounds", "seed",
           "device", "num_params", "decoder", "novelty_archive", "policy"}


def import_entry(registry: dict[str, str], name: str, key: str, what: str) -> type:
    """The class that ``registry[name]`` ("module:Class") names, imported on first use; an
    unknown name is a one-line error naming the config ``key``, the ``what`` it should be and
    the accepted names."""
    if name not in registry:
        raise ValueError(f"{key}: unknown {what} {name!r}; accepted: "
                         f"{', '.join(sorted(registry))}")
    module, cls = registry[name].split(":")
    return getattr(importlib.import_module(module), cls)


def algorithm_class(name: str) -> type:
    return import_entry(ALGORITHMS, name, "algorithm", "algorithm")


def algorithm_defaults(name: str) -> dict:
    """The algorithm's config section with every default: its constructor's keyword defaults,
    plus what the class declares in ``CONFIG_DEFAULTS`` (keys whose constructor default is
    None but that expand to a mapping or list, and keys ``from_config`` consumes itself)."""
    from evo.algorithms.base import keyword_defaults

    cls = algorithm_class(name)
    out = keyword_defaults(cls.__init__, _WIRING)
    out.update(getattr(cls, "CONFIG_DEFAULTS", {}))
    return copy.deepcopy(out)
