"""The single-policy file: a descriptor-conditioned actor pi(s | d') as ``policy.safetensors``
(tensors only) beside ``policy.json`` (everything needed to rebuild and use it).

Written by ``neuroqd distill`` (``kind: distilled``) and by DCG-ME / DCRL-ME runs for their DC
actor (``kind: dc_actor``); read by ``neuroqd eval --distilled``. Loading never runs code from
the files (safetensors and JSON only) and checks everything: a missing, damaged or mismatched
file raises :class:`PolicyFileError` (a ``ValueError``) with one line naming the file.

``policy.json`` keys
--------------------
format, version         ``"neuroqd.dc_policy"``, 1
kind                    ``"distilled"`` (from an archive) or ``"dc_actor"`` (a DCG/DCRL run's actor)
obs_dim, action_dim, descriptor_dim, hidden, activation, output_activation (always ``"tanh"``)
descriptor_bounds       [[low, high], ...] (descriptor_dim pairs): the task's bounds
descriptor_normalisation ``"2 (d - lo) / (hi - lo) - 1"``: the actor's input is
                        ``[obs, normalised d']``, observations raw
task                    ``{"name": ..., **parameters}`` as the run's ``config.yaml`` has it
tensors_sha256          sha256 of ``policy.safetensors``, so any edit or damage is caught
anything else           how it was made (``source``, ``training``): recorded, not checked

``policy.safetensors`` holds ``layers.{i}.weight`` ``(out, in)`` and ``layers.{i}.bias`` ``(out,)``
float32 for each linear layer ``i`` in order (the first takes ``obs_dim + descriptor_dim``
inputs), i.e. ``nn.Linear``'s own layout.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import torch

from archives import StateFileError, write_atomic
from evo.policies import MLPPolicy
from evo.rl.networks import DescriptorConditionedActor

POLICY_WEIGHTS = "policy.safetensors"
POLICY_JSON = "policy.json"
FORMAT = "neuroqd.dc_policy"
VERSION = 1
KINDS = ("distilled", "dc_actor")
NORMALISATION = "2 (d - lo) / (hi - lo) - 1"
_HIDDEN_ACTIVATIONS = ("tanh", "relu", "none", "identity")


class PolicyFileError(StateFileError, ValueError):
    """A policy file is missing, damaged or does not fit: one line naming the file.

    A ``ValueError`` for Python callers, and a :class:`archives.StateFileError` so that the
    command line reports it like any other damaged run file (one line, exit code 2).
    """


def policy_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """``(policy.json, policy.safetensors)`` of a directory, or of either file of a pair.

    A file named ``NAME.json`` or ``NAME.safetensors`` pairs with the other suffix.
    """
    path = Path(path)
    if path.suffix in (".json", ".safetensors"):
        return path.with_suffix(".json"), path.with_suffix(".safetensors")
    return path / POLICY_JSON, path / POLICY_WEIGHTS


def _layer_sizes(meta: dict) -> list[int]:
    return [meta["obs_dim"] + meta["descriptor_dim"], *meta["hidden"], meta["action_dim"]]


def _tensors(actor: DescriptorConditionedActor) -> dict[str, torch.Tensor]:
    linears = [m for m in actor.net if isinstance(m, torch.nn.Linear)]
    out = {}
    for i, layer in enumerate(linears):
        out[f"layers.{i}.weight"] = layer.weight.detach().float().cpu().contiguous()
        out[f"layers.{i}.bias"] = layer.bias.detach().float().cpu().contiguous()
    return out


def save_distilled(directory: str | os.PathLike, actor: DescriptorConditionedActor,
                   meta: dict[str, Any]) -> Path:
    """Write ``directory/policy.safetensors`` and ``directory/policy.json`` (atomically each).

    Parameters
    ----------
    directory : path (created if missing)
    actor : DescriptorConditionedActor
        Taking raw observations and descriptors normalised as ``NORMALISATION`` says.
    meta : dict
        Must hold ``kind`` (one of ``KINDS``), ``descriptor_bounds`` (d pairs) and ``task``
        (``{"name": ..., **parameters}``); may hold any JSON-ready record of how the policy
        was made (``source``, ``training``). The sizes, activations, format and checksum are
        filled in from the actor.

    Returns
    -------
    Path of ``policy.json``.
    """
    if meta.get("kind") not in KINDS:
        raise ValueError(f"meta.kind: expected one of {', '.join(KINDS)}, got {meta.get('kind')!r}")
    if not isinstance(meta.get("task"), dict) or "name" not in meta["task"]:
        raise ValueError("meta.task: expected {'name': ..., **parameters}")
    bounds = [[float(lo), float(hi)] for lo, hi in meta.get("descriptor_bounds", [])]
    if len(bounds) != actor.descriptor_dim:
        raise ValueError(f"meta.descriptor_bounds: expected {actor.descriptor_dim} (low, high) "
                         f"pairs, got {len(bounds)}")
    from safetensors.torch import save

    weights = save(_tensors(actor))
    full = {**meta, "format": FORMAT, "version": VERSION,
            "obs_dim": actor.obs_dim, "action_dim": actor.action_dim,
            "descriptor_dim": actor.descriptor_dim, "hidden": list(actor.hidden),
            "activation": actor.activation, "output_activation": "tanh",
            "descriptor_bounds": bounds, "descriptor_normalisation": NORMALISATION,
            "tensors_sha256": hashlib.sha256(weights).hexdigest()}
    text = json.dumps(full, indent=1, allow_nan=False)
    json_path, weights_path = policy_paths(directory)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    # Weights first: a crash between the two writes leaves a checksum mismatch, never a pair
    # that loads with the wrong weights.
    write_atomic(weights_path, weights)
    write_atomic(json_path, text.encode())
    return json_path


def _read_meta(json_path: Path) -> dict:
    def bad(what: str) -> PolicyFileError:
        return PolicyFileError(f"{json_path}: {what}")

    try:
        meta = json.loads(json_path.read_text())
    except FileNotFoundError:
        raise bad("file not found; expected the policy written by `neuroqd distill` "
                  "(or by a DCG-ME/DCRL-ME run)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad(f"not readable JSON ({type(exc).__name__}: {exc})".splitlines()[0]) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise bad(f"not a policy file (expected format {FORMAT!r})")
    if meta.get("version") != VERSION:
        raise bad(f"version {meta.get('version')!r} is not supported; expected {VERSION}")
    if meta.get("kind") not in KINDS:
        raise bad(f"kind: expected one of {', '.join(KINDS)}, got {meta.get('kind')!r}")
    for key in ("obs_dim", "action_dim", "descriptor_dim"):
        v = meta.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise bad(f"{key}: expected a positive integer, got {v!r}")
    hidden = meta.get("hidden")
    if (not isinstance(hidden, list)
            or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden)):
        raise bad(f"hidden: expected a list of positive integers, got {hidden!r}")
    if meta.get("activation") not in _HIDDEN_ACTIVATIONS:
        raise bad(f"activation: expected one of {', '.join(_HIDDEN_ACTIVATIONS)}, "
                  f"got {meta.get('activation')!r}")
    if meta.get("output_activation") != "tanh":
        raise bad(f"output_activation: expected 'tanh', got {meta.get('output_activation')!r}")
    if meta.get("descriptor_normalisation") != NORMALISATION:
        raise bad(f"descriptor_normalisation: expected {NORMALISATION!r}")
    bounds = meta.get("descriptor_bounds")
    d = meta["descriptor_dim"]
    ok = (isinstance(bounds, list) and len(bounds) == d
          and all(isinstance(b, list) and len(b) == 2
                  and all(isinstance(v, (int, float)) and math.isfinite(v) for v in b)
                  and b[0] < b[1] for b in bounds))
    if not ok:
        raise bad(f"descriptor_bounds: expected {d} finite [low, high] pairs with low < high, "
                  f"got {bounds!r}")
    task = meta.get("task")
    if not isinstance(task, dict) or not isinstance(task.get("name"), str):
        raise bad(f"task: expected {{'name': ..., **parameters}}, got {task!r}")
    if not isinstance(meta.get("tensors_sha256"), str):
        raise bad("tensors_sha256: missing")
    return meta


def load_distilled(path: str | os.PathLike,
                   device: str | torch.device = "cpu") -> tuple[DescriptorConditionedActor, dict]:
    """Read a policy written by :func:`save_distilled`, checking both files.

    Parameters
    ----------
    path : a directory holding ``policy.json`` and ``policy.safetensors``, or either file
    device : where the actor goes

    Returns
    -------
    (DescriptorConditionedActor in eval mode, meta dict as stored)

    Raises
    ------
    PolicyFileError
        One line naming the file: missing, not JSON, missing or ill-typed keys, weights that do
        not match the recorded checksum, or tensors whose names/shapes/dtypes do not fit the
        sizes in ``policy.json``.
    """
    from safetensors.torch import load

    json_path, weights_path = policy_paths(path)
    meta = _read_meta(json_path)
    try:
        blob = weights_path.read_bytes()
    except FileNotFoundError:
        raise PolicyFileError(f"{weights_path}: file not found; expected the weights that "
                              f"{json_path.name} describes") from None
    except OSError as exc:
        raise PolicyFileError(f"{weights_path}: not readable ({exc})") from None
    if hashlib.sha256(blob).hexdigest() != meta["tensors_sha256"]:
        raise PolicyFileError(f"{weights_path}: contents do not match the sha256 recorded in "
                              f"{json_path.name} (file edited, truncated or damaged)")
    try:
        tensors = load(blob)
    except Exception as exc:  # noqa: BLE001 - the parser's errors have no common public type
        raise PolicyFileError(f"{weights_path}: not a safetensors file "
                              f"({type(exc).__name__}: {exc})".splitlines()[0]) from None
    sizes = _layer_sizes(meta)
    expected = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        expected[f"layers.{i}.weight"] = (fan_out, fan_in)
        expected[f"layers.{i}.bias"] = (fan_out,)
    if set(tensors) != set(expected):
        raise PolicyFileError(f"{weights_path}: holds tensors {sorted(tensors)}; {json_path.name}'s "
                              f"sizes expect {sorted(expected)}")
    for name, shape in expected.items():
        t = tensors[name]
        if tuple(t.shape) != shape or t.dtype != torch.float32:
            raise PolicyFileError(
                f"{weights_path}: {name} is {t.dtype} {tuple(t.shape)}; {json_path.name} "
                f"(obs_dim {meta['obs_dim']}, descriptor_dim {meta['descriptor_dim']}, hidden "
                f"{meta['hidden']}, action_dim {meta['action_dim']}) expects float32 {shape}")
        if not bool(torch.isfinite(t).all()):
            raise PolicyFileError(f"{weights_path}: {name} holds non-finite values")
    # The initial draw is overwritten: every value comes from the file.
    actor = DescriptorConditionedActor(meta["obs_dim"], meta["action_dim"], meta["descriptor_dim"],
                                       tuple(meta["hidden"]), meta["activation"])
    linears = [m for m in actor.net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for i, layer in enumerate(linears):
            layer.weight.copy_(tensors[f"layers.{i}.weight"])
            layer.bias.copy_(tensors[f"layers.{i}.bias"])
    return actor.to(device).eval(), meta


def check_policy_task(meta: dict, task_config: dict, task, path: str | os.PathLike) -> None:
    """Check that a loaded policy was made for this run's task.

    Parameters
    ----------
    meta : the policy's metadata (:func:`load_distilled`)
    task_config : the run's ``task`` config section (``{"name": ..., **parameters}``)
    task : the task built from it
    path : the policy file or directory, named in the error

    Raises
    ------
    PolicyFileError
        When the task name, a parameter both record, a size or the descriptor bounds differ.
    """
    json_path = policy_paths(path)[0]
    theirs, ours = meta["task"], task_config
    if theirs["name"] != ours["name"]:
        raise PolicyFileError(f"{json_path}: the policy is for task {theirs['name']!r}, "
                              f"this run's task is {ours['name']!r}")
    for key in sorted(set(theirs) & set(ours) - {"name"}):
        if theirs[key] != ours[key]:
            raise PolicyFileError(f"{json_path}: the policy was made with task.{key}="
                                  f"{theirs[key]!r}, this run has {ours[key]!r}")
    for key, value in (("obs_dim", task.obs_dim), ("action_dim", task.action_dim),
                       ("descriptor_dim", task.descriptor_dim)):
        if meta[key] != value:
            raise PolicyFileError(f"{json_path}: {key}={meta[key]} but task {ours['name']!r} "
                                  f"has {value}")
    bounds = [[float(lo), float(hi)] for lo, hi in task.descriptor_bounds]
    if [[float(v) for v in b] for b in meta["descriptor_bounds"]] != bounds:
        raise PolicyFileError(f"{json_path}: descriptor_bounds {meta['descriptor_bounds']} differ "
                              f"from task {ours['name']!r}'s {bounds}")


def plain_policy(actor: DescriptorConditionedActor) -> MLPPolicy:
    """The population policy whose genomes :func:`~evo.rl.networks.fold_descriptor` returns."""
    return MLPPolicy(actor.obs_dim, actor.action_dim, actor.hidden, actor.activation, "tanh")
