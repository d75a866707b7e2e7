"""A ring replay buffer of transitions for TD3, with achieved and intended descriptors.

Rows are kept as float32 tensors on one device. Row number ``k`` ever added (counting from 0)
lives at ring position ``k % capacity``; that single rule gives the sampling range, the
checkpoint state and the incremental deltas, so a buffer rebuilt from a full state or from a
base state plus deltas is identical to the original, also after the ring has wrapped.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tasks.base import Transitions

__all__ = ["ReplayBuffer"]


class ReplayBuffer:
    """Fixed-capacity ring of transitions.

    Parameters
    ----------
    capacity : int
        Rows kept; the oldest are overwritten first (PGA-ME/DCRL-ME: 1e6).
    obs_dim, action_dim, descriptor_dim : int
    device : str or torch.device
        Where the rows live (the device TD3 trains on).

    Attributes
    ----------
    FIELDS : tuple of str
        ``obs (obs_dim), action (action_dim), reward (), next_obs (obs_dim), terminated (),
        truncated () (both 0/1 floats), desc (descriptor_dim, the achieved episode descriptor),
        desc_prime (descriptor_dim, the intended one)``; all float32, one row per transition.
    total_added : int
        Rows ever added (the ring position is ``total_added % capacity``).
    """

    FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated", "desc", "desc_prime")

    def __init__(
        self,
        capacity: int,
        obs_dim: int,
        action_dim: int,
        descriptor_dim: int,
        device: str | torch.device = "cpu",
    ) -> None:
        if capacity <= 0:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self.capacity = int(capacity)
        self.obs_dim, self.action_dim, self.descriptor_dim = int(obs_dim), int(action_dim), int(descriptor_dim)
        self.device = torch.device(device)
        self._widths = {
            "obs": self.obs_dim, "action": self.action_dim, "reward": None,
            "next_obs": self.obs_dim, "terminated": None, "truncated": None,
            "desc": self.descriptor_dim, "desc_prime": self.descriptor_dim,
        }
        self._data = {f: self._empty(f, self.capacity) for f in self.FIELDS}
        self.total_added = 0

    def _empty(self, field: str, n: int) -> Tensor:
        w = self._widths[field]
        shape = (n,) if w is None else (n, w)
        return torch.zeros(shape, dtype=torch.float32, device=self.device)

    def __len__(self) -> int:
        return min(self.total_added, self.capacity)

    @property
    def position(self) -> int:
        """Ring index the next row goes to."""
        return self.total_added % self.capacity

    def __repr__(self) -> str:
        return (f"ReplayBuffer(capacity={self.capacity}, size={len(self)}, obs_dim={self.obs_dim}, "
                f"action_dim={self.action_dim}, descriptor_dim={self.descriptor_dim}, device={self.device})")

    def _write(self, rows: dict[str, Tensor], first: int) -> None:
        """Write ``n`` rows that are rows ``first .. first + n - 1`` ever added (n <= capacity)."""
        n = rows["reward"].shape[0]
        if n == 0:
            return
        idx = (first + torch.arange(n, device=self.device)) % self.capacity
        for f in self.FIELDS:
            self._data[f].index_copy_(0, idx, rows[f].to(self.device, torch.float32))

    def add(self, transitions: Transitions, desc_prime: Tensor | None = None) -> int:
        """Append the ``valid`` rows of ``transitions``.

        Parameters
        ----------
        transitions : Transitions
            N flat rows (any device); rows with ``valid == False`` are padding and skipped.
        desc_prime : Tensor (N, descriptor_dim), optional
            The intended descriptor of each row (DCG-ME's d'), aligned with ``transitions``'
            rows. Default: the achieved descriptor (similarity S = 1). From one descriptor per
            evaluated genome ``dp (B, d)``, pass ``dp[transitions.genome]``.

        Returns
        -------
        int
            Rows added. When more than ``capacity`` valid rows come at once, only the last
            ``capacity`` are kept (the others would be overwritten anyway), but all are counted
            in ``total_added``.
        """
        n_rows = len(transitions)
        if desc_prime is not None and desc_prime.shape != (n_rows, self.descriptor_dim):
            raise ValueError(
                f"desc_prime must have shape ({n_rows}, {self.descriptor_dim}), got {tuple(desc_prime.shape)}"
            )
        keep = transitions.valid.nonzero().squeeze(1)
        n = int(keep.shape[0])
        if n == 0:
            return 0
        rows = {
            "obs": transitions.obs, "action": transitions.action, "reward": transitions.reward,
            "next_obs": transitions.next_obs, "terminated": transitions.terminated,
            "truncated": transitions.truncated, "desc": transitions.descriptor,
            "desc_prime": transitions.descriptor if desc_prime is None else desc_prime,
        }
        skip = max(0, n - self.capacity)
        keep = keep[skip:]
        rows = {f: v.index_select(0, keep.to(v.device)) for f, v in rows.items()}
        self._write(rows, self.total_added + skip)
        self.total_added += n
        return n

    def sample(
        self, batch_size: int, generator: torch.Generator, fields: tuple[str, ...] | None = None
    ) -> dict[str, Tensor]:
        """Draw ``batch_size`` rows uniformly with replacement.

        Indices are drawn on the CPU from ``generator`` (a CPU generator), then moved, so a
        buffer on CUDA gives the same samples as one on CPU.

        Parameters
        ----------
        batch_size : int
        generator : torch.Generator
        fields : tuple of str, optional
            Only gather these fields (the PG variation needs ``obs`` alone); the indices drawn
            are the same whatever is gathered.

        Returns
        -------
        dict of Tensor
            One entry per :attr:`FIELDS` name (or per ``fields``), ``(batch_size, ...)`` float32
            on the buffer's device.
        """
        size = len(self)
        if size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = torch.randint(0, size, (batch_size,), generator=generator).to(self.device)
        return {f: self._data[f].index_select(0, idx) for f in (fields or self.FIELDS)}

    # ------------------------------------------------------------------ checkpoints

    def _config(self) -> dict:
        return {"capacity": self.capacity, "obs_dim": self.obs_dim, "action_dim": self.action_dim,
                "descriptor_dim": self.descriptor_dim}

    def _check_config(self, state: dict) -> None:
        for key, value in self._config().items():
            if int(state[key]) != value:
                raise ValueError(f"replay state has {key}={int(state[key])}, this buffer has {value}")

    def state_dict(self) -> dict:
        """Everything needed to rebuild this buffer exactly.

        Holds the config ints, ``total_added`` (ring position and size follow from it) and the
        first ``len(self)`` rows of each field (the rest of the ring is unused), on the CPU.
        """
        size = len(self)
        state = {**self._config(), "total_added": self.total_added, "size": size,
                 "position": self.position}
        for f in self.FIELDS:
            state[f] = self._data[f][:size].cpu().clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        """Replace this buffer's content by ``state`` (from :meth:`state_dict`)."""
        self._check_config(state)
        total = int(state["total_added"])
        size = min(total, self.capacity)
        self._data = {f: self._empty(f, self.capacity) for f in self.FIELDS}
        for f in self.FIELDS:
            if state[f].shape[0] != size:
                raise ValueError(f"replay state field {f} has {state[f].shape[0]} rows, expected {size}")
            self._data[f][:size] = state[f].to(self.device, torch.float32)
        self.total_added = total

    def state_since(self, total_added_then: int) -> dict:
        """The rows added since the buffer had ``total_added_then`` rows, for an incremental save.

        ``apply_delta`` on a buffer in the state it had then (same ``total_added``) makes it
        identical to this one. When more than ``capacity`` rows came since, only the last
        ``capacity`` are still here and they are all the delta needs.

        Returns
        -------
        dict
            ``since``, ``first`` (the number of the first row held), ``total_added``, the config
            ints, and ``total_added - first`` rows of each field, on the CPU.
        """
        then = int(total_added_then)
        if not 0 <= then <= self.total_added:
            raise ValueError(f"total_added_then={then} must lie in [0, {self.total_added}]")
        first = max(then, self.total_added - self.capacity)
        idx = (torch.arange(first, self.total_added, device=self.device)) % self.capacity
        state = {**self._config(), "since": then, "first": first, "total_added": self.total_added}
        for f in self.FIELDS:
            state[f] = self._data[f].index_select(0, idx).cpu()
        return state

    def apply_delta(self, state: dict) -> None:
        """Bring this buffer forward by a delta from :meth:`state_since`.

        The buffer must hold exactly the rows it had when the delta was taken
        (``total_added == state["since"]``), otherwise the result would silently differ.
        """
        self._check_config(state)
        if int(state["since"]) != self.total_added:
            raise ValueError(
                f"replay delta starts at total_added={int(state['since'])}, this buffer is at {self.total_added}"
            )
        self._write({f: state[f] for f in self.FIELDS}, int(state["first"]))
        self.total_added = int(state["total_added"])
