"""Compact seed-chain genomes: the Deep GA encoding (Such et al. 2017).

A genome is the list of seeds that made it. With ``D`` parameters:

    theta_0 = init(s_0)                            (e.g. MLPPolicy.init driven by s_0)
    theta_k = theta_{k-1} + sigma_k * eps(s_k)     eps(s) ~ N(0, I_D), float32

``eps(s)`` is drawn by ``torch.randn(D)`` from a CPU ``torch.Generator`` seeded with ``s``, so a
chain decodes to bit-identical parameters on every run and machine with the same torch build.
Decoding always happens on CPU, then the result moves to the requested device.

The reference code reads eps from a shared table of 250M normals indexed by a 28-bit seed; a
generator per seed costs a little more per draw but needs no 1 GB table per worker and no
shared memory, and any 63-bit seed is valid.

Bit-exactness: every path (from scratch, or from a cached parent) applies the steps in chain
order with the same two float32 operations (``eps *= sigma`` then ``theta += eps``; no fused
multiply-add, whose rounding could differ between kernels), so a cached parent plus one step is
the very same float32 computation as the full replay.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "SeedChain",
    "ChainDecoder",
    "noise",
    "new_seeds",
    "chains_to_arrays",
    "chains_from_arrays",
    "compression_ratio",
]

MAX_SEED = 2**63 - 1  # seeds are stored as int64 in archives and checkpoints


def _f32(x: float) -> float:
    """Round to the nearest float32 so a chain compares equal after an array round trip."""
    return float(np.float32(x))


def _check_seed(seed) -> int:
    s = int(seed)
    if not 0 <= s <= MAX_SEED:
        raise ValueError(f"seed {seed} outside [0, 2**63 - 1]")
    return s


class SeedChain(tuple):
    """An immutable, hashable seed chain: a tuple of ``(seed, sigma)`` pairs.

    Element 0 is ``(s_0, 0.0)``: the initialisation seed (its sigma is unused and kept at 0).
    Elements 1..n are mutation steps. Sigmas are rounded to float32 on construction, the
    precision they are applied and stored in. Being a tuple, a chain hashes and compares by
    value, and ``chain[:k]`` (a plain tuple) is the key of its ``k``-step prefix.

    Examples
    --------
    >>> c = SeedChain.root(7).child(11, 0.002).child(5, 0.002)
    >>> len(c), c.seeds, c.generations
    (3, (7, 11, 5), 2)
    """

    __slots__ = ()

    def __new__(cls, steps: Iterable[tuple[int, float]]):
        steps = tuple((_check_seed(s), _f32(sig)) for s, sig in steps)
        if not steps:
            raise ValueError("a seed chain needs at least its initialisation seed")
        if steps[0][1] != 0.0:
            raise ValueError(f"the initialisation step has no sigma (got {steps[0][1]}); use 0.0")
        return super().__new__(cls, steps)

    @classmethod
    def root(cls, seed: int) -> "SeedChain":
        """The chain of a freshly initialised genome: ``theta = init(seed)``."""
        return cls(((seed, 0.0),))

    def child(self, seed: int, sigma: float) -> "SeedChain":
        """This chain plus one mutation ``theta + sigma * eps(seed)``.

        Only the new step is checked: this chain is valid already, and re-checking it would
        make every child cost O(generations).
        """
        return tuple.__new__(SeedChain, (*self, (_check_seed(seed), _f32(sigma))))

    @property
    def parent(self) -> "SeedChain | None":
        """The chain without its last mutation (``None`` for a root)."""
        return SeedChain(self[:-1]) if len(self) > 1 else None

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(s for s, _ in self)

    @property
    def sigmas(self) -> tuple[float, ...]:
        """Sigmas of the mutation steps 1..n (the root has none)."""
        return tuple(sig for _, sig in self[1:])

    @property
    def generations(self) -> int:
        """Number of mutations applied since initialisation."""
        return len(self) - 1

    @property
    def nbytes(self) -> int:
        """Compact size in bytes: 8 per seed (int64) plus the sigmas.

        Sigmas cost 4 bytes (float32) per mutation step, or 4 bytes once when every step used
        the same sigma (the usual Deep GA setting), since then one number describes them all.
        """
        sig = self.sigmas
        n_sigma = 0 if not sig else (1 if all(s == sig[0] for s in sig) else len(sig))
        return 8 * len(self) + 4 * n_sigma

    def __repr__(self) -> str:
        return f"SeedChain(seeds={list(self.seeds)}, sigmas={list(self.sigmas)})"

    def __reduce__(self):
        # tuple subclasses with a custom __new__ need this to copy/pickle correctly
        return (SeedChain, (tuple(self),))


def noise(seed: int, num_params: int) -> Tensor:
    """``eps(seed)``: ``(num_params,)`` float32 standard normals on CPU, a pure function of seed."""
    g = torch.Generator(device="cpu")
    g.manual_seed(_check_seed(seed))
    return torch.randn(num_params, generator=g, dtype=torch.float32)


def new_seeds(n: int, generator: torch.Generator) -> list[int]:
    """``n`` fresh seeds in ``[0, 2**63 - 1)`` drawn from ``generator`` (for roots and children)."""
    return torch.randint(0, MAX_SEED, (n,), generator=generator, dtype=torch.int64).tolist()


class _SeededInit:
    """``init_fn(seed)``: row 0 of ``init(1, generator seeded with seed)`` (picklable)."""

    def __init__(self, init) -> None:
        self.init = init

    def __call__(self, seed: int) -> Tensor:
        g = torch.Generator(device="cpu")
        g.manual_seed(_check_seed(seed))
        return self.init(1, g)[0]


class ChainDecoder:
    """Rebuilds parameter vectors from seed chains, with an LRU cache of decoded chains.

    Every decoded chain is cached under its full key. Decoding a chain first looks for its
    longest cached prefix (the parent first, the common case in a GA where the parents were
    decoded when they were evaluated), so a child of a cached parent costs one noise draw.

    Parameters
    ----------
    num_params : int
        ``D``, the length of a decoded vector.
    init_fn : callable
        ``init_fn(seed) -> Tensor (D,)`` float32: ``theta_0``. Use :meth:`for_policy` for a
        network genome (``policy.init`` driven by a generator seeded with ``s_0``).
    cache_size : int, optional
        Most cached vectors (``cache_size * D * 4`` bytes). Default: as many as fit in 256 MiB,
        at least 1. Make it at least the number of parents per generation (truncation size T).

    Attributes
    ----------
    noise_draws : int
        Noise vectors drawn so far (the cost measure; one per uncached mutation step).
    init_calls : int
        Calls to ``init_fn`` so far.
    hits, misses : int
        Decodes whose longest useful prefix was / was not found in the cache.
    """

    def __init__(
        self,
        num_params: int,
        init_fn: Callable[[int], Tensor],
        cache_size: int | None = None,
    ) -> None:
        self.num_params = int(num_params)
        self.init_fn = init_fn
        if cache_size is None:
            cache_size = max(1, (256 * 2**20) // (4 * self.num_params))
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[tuple, Tensor] = OrderedDict()
        self.noise_draws = 0
        self.init_calls = 0
        self.hits = 0
        self.misses = 0

    @classmethod
    def for_policy(cls, policy, cache_size: int | None = None) -> "ChainDecoder":
        """Decoder whose ``theta_0 = policy.init(1, Generator().manual_seed(s_0))[0]``."""
        return cls.for_init(policy.num_params, policy.init, cache_size)

    @classmethod
    def for_init(cls, num_params: int, init, cache_size: int | None = None) -> "ChainDecoder":
        """Decoder whose ``theta_0 = init(1, Generator().manual_seed(s_0))[0]``, for any
        ``init(n, generator) -> Tensor (n, D)`` (a policy's, or uniform genomes)."""
        return cls(num_params, _SeededInit(init), cache_size=cache_size)

    def __getstate__(self) -> dict:
        # Sent to worker processes: the cache (up to 256 MiB) and counters stay here.
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()
        return state

    # -- the one arithmetic path -------------------------------------------------------------

    def _initial(self, seed: int) -> Tensor:
        self.init_calls += 1
        theta = self.init_fn(seed)
        theta = theta.detach().to(device="cpu", dtype=torch.float32).reshape(-1).clone()
        if theta.numel() != self.num_params:
            raise ValueError(f"init_fn returned {theta.numel()} values, expected {self.num_params}")
        return theta

    def _mutate_(self, theta: Tensor, seed: int, sigma: float) -> Tensor:
        eps = noise(seed, self.num_params)
        self.noise_draws += 1
        eps.mul_(sigma)  # float32 product, rounded once ...
        return theta.add_(eps)  # ... then a float32 sum: same bits on every path

    # -- cache -----------------------------------------------------------------------------

    def _lookup(self, key: tuple) -> Tensor | None:
        t = self._cache.get(key)
        if t is not None:
            self._cache.move_to_end(key)
        return t

    def _store(self, key: tuple, theta: Tensor) -> None:
        if self.cache_size == 0:
            return
        self._cache[key] = theta
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def clear_cache(self) -> None:
        self._cache.clear()

    def __len__(self) -> int:
        """Number of cached vectors."""
        return len(self._cache)

    # -- decoding --------------------------------------------------------------------------

    def replay(self, chain: SeedChain) -> Tensor:
        """Decode from scratch, ignoring and not touching the cache. ``(D,)`` float32 on CPU."""
        theta = self._initial(chain[0][0])
        for seed, sigma in chain[1:]:
            self._mutate_(theta, seed, sigma)
        return theta

    def _decode_cached(self, chain: SeedChain, held: dict | None = None) -> Tensor:
        """The decoded vector, owned by the cache (callers must not modify it).

        ``held`` maps keys to vectors that stay usable even if the LRU evicts them meanwhile
        (``decode_batch`` uses it so siblings never lose their parent mid-batch).
        """
        key = tuple(chain)

        def find(k: tuple) -> Tensor | None:
            t = self._lookup(k)
            if t is None and held is not None:
                t = held.get(k)
            return t

        hit = find(key)
        if hit is not None:
            self.hits += 1
            return hit
        # longest available proper prefix, parent first
        start, theta = 0, None
        for k in range(len(key) - 1, 0, -1):
            t = find(key[:k])
            if t is not None:
                start, theta = k, t.clone()
                break
        if theta is None:
            self.misses += 1
            theta = self._initial(key[0][0])
            start = 1
        else:
            self.hits += 1
        for seed, sigma in key[start:]:
            self._mutate_(theta, seed, sigma)
        self._store(key, theta)
        return theta

    def put(self, chain: SeedChain, theta: Tensor) -> None:
        """Cache a vector already known to be ``chain``'s decoding (trusted, not checked).

        A GA that evaluated a batch holds its parameters anyway; after selection it can put the
        T parents here, so the next generation's children cost one draw each whatever the
        cache size. ``theta`` must come from this decoding scheme, or bit-exactness is lost.
        """
        theta = theta.detach().to(device="cpu", dtype=torch.float32).reshape(-1).clone()
        if theta.numel() != self.num_params:
            raise ValueError(f"theta has {theta.numel()} values, expected {self.num_params}")
        self._store(tuple(chain), theta)

    def decode(self, chain: SeedChain, device: str | torch.device = "cpu") -> Tensor:
        """Parameters of ``chain``: ``(D,)`` float32 on ``device`` (a fresh tensor)."""
        theta = self._decode_cached(chain)
        return theta.to(device, copy=True)

    def decode_batch(self, chains: Sequence[SeedChain], device: str | torch.device = "cpu") -> Tensor:
        """Parameters of each chain stacked in order: ``(B, D)`` float32 on ``device``.

        Every prefix of a batch chain that is cached when the call starts stays usable for the
        whole batch, and each decoded chain is usable by later chains of the batch, even when
        the batch is larger than the cache: a generation of children of cached parents costs one
        noise draw per child with ``cache_size`` as small as the number of parents.
        """
        if len(chains) == 0:
            return torch.empty(0, self.num_params, dtype=torch.float32, device=device)
        held: dict[tuple, Tensor] = {}
        for chain in chains:  # pin the cached parents before the children start evicting
            key = tuple(chain)
            for k in range(len(key), 0, -1):
                t = self._cache.get(key[:k])
                if t is not None:
                    held[key[:k]] = t
                    break
        out = torch.empty(len(chains), self.num_params, dtype=torch.float32)
        for i, chain in enumerate(chains):
            out[i] = self._decode_cached(chain, held)
            held[tuple(chain)] = out[i]  # a view of the output: no extra copy
        return out.to(device)


# -- array (de)serialisation, no pickle -----------------------------------------------------


def chains_to_arrays(chains: Sequence[SeedChain]) -> dict[str, np.ndarray]:
    """Flatten chains into numpy arrays (for ``np.savez``, checkpoints, archive side data).

    Returns
    -------
    dict
        ``seeds`` int64 ``(S,)``: all seeds back to back; ``sigmas`` float32 ``(S,)``: the sigma
        of each seed (0 for roots); ``offsets`` int64 ``(B + 1,)``: chain ``i`` is
        ``seeds[offsets[i]:offsets[i + 1]]``.
    """
    lengths = np.fromiter((len(c) for c in chains), dtype=np.int64, count=len(chains))
    offsets = np.zeros(len(chains) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    seeds = np.fromiter((s for c in chains for s, _ in c), dtype=np.int64, count=int(offsets[-1]))
    sigmas = np.fromiter((g for c in chains for _, g in c), dtype=np.float32, count=int(offsets[-1]))
    return {"seeds": seeds, "sigmas": sigmas, "offsets": offsets}


def chains_from_arrays(d) -> list[SeedChain]:
    """Inverse of :func:`chains_to_arrays` (accepts the dict or an ``np.load`` result)."""
    for key in ("seeds", "sigmas", "offsets"):
        if key not in d:
            raise ValueError(f"missing array {key!r}; expected seeds, sigmas, offsets")
    seeds = np.asarray(d["seeds"], dtype=np.int64).tolist()
    sigmas = np.asarray(d["sigmas"], dtype=np.float32).tolist()
    offsets = np.asarray(d["offsets"], dtype=np.int64).tolist()
    if len(seeds) != len(sigmas) or not offsets or offsets[0] != 0 or offsets[-1] != len(seeds):
        raise ValueError("inconsistent seed-chain arrays (seeds/sigmas/offsets lengths)")
    return [
        SeedChain(zip(seeds[a:b], sigmas[a:b])) for a, b in zip(offsets[:-1], offsets[1:])
    ]


def compression_ratio(chain: SeedChain, num_params: int) -> float:
    """Bytes of the float32 vector over bytes of the chain: ``num_params * 4 / chain.nbytes``."""
    return num_params * 4 / chain.nbytes
