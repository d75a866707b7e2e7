"""Saving and loading without pickle: nested state dicts as one ``.npz`` with JSON metadata.

Arrays (numpy or torch) become npz members; everything else (numbers, strings, lists, None)
goes into a JSON document stored beside them in the same file. Writes are atomic (temporary
file, fsync, rename), so a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from archives.base import Archive, make_archive

_META = "__meta__"


class StateFileError(Exception):
    """A state file is missing, truncated or corrupted; the message names the file."""


def _flatten(tree, prefix: str, arrays: dict, path: str):
    if isinstance(tree, dict):
        # Keys keep their type (optimiser states are keyed by int), so a dict is stored as
        # [key, value] pairs rather than as a JSON object, whose keys would all become strings.
        items = []
        for k, v in tree.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"{path}: only str and int dict keys can be saved, got {k!r}")
            items.append([k, _flatten(v, f"{prefix}{k}/", arrays, path)])
        return {"items": items}
    if isinstance(tree, torch.Tensor):
        arrays[prefix] = tree.detach().cpu().numpy()
        return {"tensor": prefix}
    if isinstance(tree, np.ndarray):
        if tree.dtype == object:
            raise TypeError(f"{path}: object arrays cannot be saved without pickle ({prefix})")
        arrays[prefix] = tree
        return {"array": prefix}
    if isinstance(tree, (np.generic,)):
        return {"value": tree.item()}
    if isinstance(tree, tuple):
        return {"tuple": [_flatten(v, f"{prefix}{i}/", arrays, path) for i, v in enumerate(tree)]}
    if isinstance(tree, list) and any(isinstance(v, (dict, tuple, np.ndarray, torch.Tensor))
                                      for v in tree):
        return {"list": [_flatten(v, f"{prefix}{i}/", arrays, path) for i, v in enumerate(tree)]}
    json.dumps(tree)  # raises TypeError for anything JSON cannot hold
    return {"value": tree}


def _unflatten(node, arrays):
    if "items" in node:
        return {k: _unflatten(v, arrays) for k, v in node["items"]}
    if "dict" in node:  # files written before keys kept their type
        return {k: _unflatten(v, arrays) for k, v in node["dict"].items()}
    if "tuple" in node:
        return tuple(_unflatten(v, arrays) for v in node["tuple"])
    if "list" in node:
        return [_unflatten(v, arrays) for v in node["list"]]
    if "tensor" in node:
        return torch.from_numpy(np.array(arrays[node["tensor"]]))
    if "array" in node:
        return np.array(arrays[node["array"]])
    return node["value"]


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it, flushed to disk and then
    renamed onto it: a reader or a killed run never sees half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_state(path: str | os.PathLike, state: dict) -> None:
    """Write a nested dict of arrays/tensors/JSON values to ``path`` (an ``.npz``) atomically."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    meta = _flatten(state, "", arrays, str(path))
    arrays[_META] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_state(path: str | os.PathLike) -> dict:
    """Read a file written by :func:`save_state`; damage raises :class:`StateFileError`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            # Reading every member checks each one's CRC, so truncation and bit flips surface here.
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(arrays.pop(_META).tobytes().decode())
        return _unflatten(meta, arrays)
    except FileNotFoundError:
        raise StateFileError(f"{path}: file not found") from None
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError,
            json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StateFileError(f"{path}: truncated or corrupted ({type(exc).__name__}: {exc})") from None


def save_archive(archive: Archive, path: str | os.PathLike) -> None:
    """Save an archive (its spec, offset and contents) to one ``.npz`` file."""
    save_state(path, {"kind": archive.kind, "spec": archive.spec,
                      "fitness_offset": archive.fitness_offset,
                      "contents": archive.state_dict()})


def load_archive(path: str | os.PathLike) -> Archive:
    """Rebuild an archive saved by :func:`save_archive`."""
    state = load_state(path)
    spec = dict(state["spec"])
    extra = {k: (tuple(shape), np.dtype(dt))
             for k, (shape, dt) in spec.get("extra_fields", {}).items()}
    archive = make_archive(spec, spec["solution_dim"], [tuple(r) for r in spec["ranges"]],
                           state["fitness_offset"], extra_fields=extra or None)
    archive.load_state_dict(state["contents"])
    return archive
