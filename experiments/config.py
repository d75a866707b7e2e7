"""Configs: shipped names or YAML files, ``--set key=value`` overrides, defaults, validation.

Every user mistake raises :class:`ConfigError` with one line naming the key and what is
accepted; the command line turns it into exit code 2.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from archives import ARCHIVE_KINDS
from evo.algorithms import ALGORITHMS, algorithm_class, algorithm_defaults
from evo.tracking import LOGGING_DEFAULTS, resolve_logging
from tasks import TASKS, task_class, task_defaults

CONFIG_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A bad config value; the message is one line naming the key."""


COMMON_DEFAULTS: dict[str, Any] = {
    "algorithm": "map_elites",
    "task": {"name": "arm"},
    "archive": {"type": "grid"},
    "batch_size": 1024,
    "budget": {"evaluations": 100_000},
    "seed": 0,
    "device": "cpu",
    # threads: physics threads per worker (MuJoCo); timeout_s: a worker busy longer than this
    # with its slice is replaced and the slice evaluated again (null: no limit).
    "workers": {"backend": "local", "count": 1, "threads": 1, "address": None, "timeout_s": None},
    "log_every": 10,
    "checkpoint_every": 50,
    # TensorBoard and MLflow, both off (evo/tracking.py)
    "logging": LOGGING_DEFAULTS,
}

ARCHIVE_DEFAULTS = {
    "grid": {"dims": [100, 100]},
    "cvt": {"cells": 1024, "samples": 50_000, "centroid_seed": 0},
    "proximity": {"k_neighbors": 15, "novelty_threshold": 0.01, "local_competition": False,
                  "threshold_decay_rate": None, "threshold_decay_itrs": 1,
                  "threshold_decay_min": 0.0},
}

POLICY_DEFAULTS = {"hidden": [16], "activation": "tanh", "output_activation": "tanh"}

CHOICES = {
    "device": lambda v: v == "cpu" or v == "cuda" or str(v).startswith("cuda:"),
    "workers.backend": lambda v: v in ("local", "process", "ray"),
}
CHOICE_TEXT = {"device": "cpu, cuda, cuda:N", "workers.backend": "local, process, ray"}
POSITIVE = {"batch_size", "budget.evaluations", "log_every", "workers.count", "workers.threads"}
NON_NEGATIVE = {"checkpoint_every", "seed"}


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_raw(name_or_path: str) -> dict:
    """A shipped config by name, or a YAML file by path."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        if name_or_path not in shipped_configs():
            raise ConfigError(f"config: no shipped config or YAML file named {name_or_path!r}; "
                              f"shipped: {', '.join(shipped_configs())}")
        path = CONFIG_DIR / f"{name_or_path}.yaml"
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config: {path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config: {path} must hold a mapping of keys, got {type(raw).__name__}")
    return raw


def parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"--set: expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        parsed = yaml.safe_load(value) if value != "" else ""
    except yaml.YAMLError:
        parsed = value
    return key.strip(), parsed


def set_dotted(config: dict, key: str, value: Any) -> None:
    node: Any = config
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[_list_index(node, part, parts[: i + 1])]
        else:
            if not isinstance(node.get(part, {}), (dict, list)):
                raise ConfigError(f"{'.'.join(parts[:i + 1])}: is a value, not a section; "
                                  f"cannot set {key}")
            node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, parts)] = value
    else:
        node[last] = value


def _list_index(node: list, part: str, parts: list[str]) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"{'.'.join(parts)}: index must be an integer in 0..{len(node) - 1}")
    return int(part)


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def resolve(raw: dict, overrides: list[str] = (), **flags: Any) -> dict:
    """Fill defaults into a raw config, apply overrides and flags, validate.

    ``flags`` are command-line shortcuts (``seed``, ``device``, ``backend``, ``workers``)
    applied after ``--set``; None means not given.
    """
    raw = copy.deepcopy(raw)
    for text in overrides:
        set_dotted(raw, *parse_override(text))
    shortcuts = {"seed": "seed", "device": "device", "backend": "workers.backend",
                 "workers": "workers.count"}
    for flag, key in shortcuts.items():
        if flags.get(flag) is not None:
            set_dotted(raw, key, flags[flag])

    algorithm = raw.get("algorithm", COMMON_DEFAULTS["algorithm"])
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"algorithm: unknown algorithm {algorithm!r}; accepted: "
                          f"{', '.join(sorted(ALGORITHMS))}")
    task = raw.get("task", {})
    if not isinstance(task, dict) or task.get("name") not in TASKS:
        name = task.get("name") if isinstance(task, dict) else task
        raise ConfigError(f"task.name: unknown task {name!r}; accepted: {', '.join(sorted(TASKS))}")
    archive_type = (raw.get("archive") or {}).get("type", "grid")
    if archive_type not in ARCHIVE_KINDS:
        raise ConfigError(f"archive.type: unknown archive {archive_type!r}; accepted: "
                          f"{', '.join(ARCHIVE_KINDS)}")

    defaults = copy.deepcopy(COMMON_DEFAULTS)
    defaults["algorithm"] = algorithm
    defaults["task"] = {"name": task["name"], **task_defaults(task["name"])}
    defaults["archive"] = {"type": archive_type, **ARCHIVE_DEFAULTS[archive_type]}
    defaults[algorithm] = algorithm_defaults(algorithm)
    if hasattr(task_class(task["name"]), "make_env"):
        defaults["policy"] = dict(POLICY_DEFAULTS)

    _check_keys(raw, defaults, "")
    config = merge(defaults, raw)
    _check_types(config, defaults, "")
    _check_values(config)
    try:
        config["logging"] = resolve_logging(config["logging"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    resolve_section = getattr(algorithm_class(algorithm), "resolve_section", None)
    if resolve_section is not None:
        try:
            config[algorithm] = resolve_section(config[algorithm])
        except ValueError as exc:
            raise ConfigError(str(exc).splitlines()[0]) from None
    return config


def _check_keys(raw: dict, defaults: dict, prefix: str) -> None:
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        if key not in defaults:
            accepted = ", ".join(sorted(defaults)) or "none"
            raise ConfigError(f"{dotted}: unknown key; accepted here: {accepted}")
        if isinstance(value, dict) and isinstance(defaults[key], dict) and defaults[key]:
            _check_keys(value, defaults[key], dotted + ".")


def _type_name(v: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping"}.get(type(v), type(v).__name__)


def _check_types(config: dict, defaults: dict, prefix: str) -> None:
    for key, default in defaults.items():
        value = config.get(key)
        dotted = f"{prefix}{key}"
        if default is None:  # no type to hold it to (e.g. workers.address)
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok:
                config[key] = float(value)
        elif isinstance(default, dict):
            ok = isinstance(value, dict)
            if ok:
                _check_types(value, default, dotted + ".")
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise ConfigError(f"{dotted}: expected {_type_name(default)} (like {default!r}), "
                              f"got {value!r}")


def _get(config: dict, dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        node = node[part]
    return node


def _check_values(config: dict) -> None:
    for key in POSITIVE:
        if _get(config, key) < 1:
            raise ConfigError(f"{key}: must be >= 1, got {_get(config, key)!r}")
    for key in NON_NEGATIVE:
        if _get(config, key) < 0:
            raise ConfigError(f"{key}: must be >= 0, got {_get(config, key)!r}")
    timeout = config["workers"]["timeout_s"]
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or timeout <= 0):
        raise ConfigError(f"workers.timeout_s: must be a number of seconds > 0 or null, "
                          f"got {timeout!r}")
    for key, ok in CHOICES.items():
        if not ok(_get(config, key)):
            raise ConfigError(f"{key}: got {_get(config, key)!r}; accepted: {CHOICE_TEXT[key]}")
