"""Variation, selection and novelty as pure functions on tensors.

Every random draw takes an explicit ``torch.Generator``. Noise is drawn on the generator's
device and moved to the tensors' device, so a CPU generator gives the same offspring on CPU
and CUDA (up to floating-point noise in the arithmetic).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _clip(x: Tensor, bounds: tuple[float, float] | None) -> Tensor:
    return x if bounds is None else x.clamp_(bounds[0], bounds[1])


def _normal(shape, like: Tensor, generator: torch.Generator) -> Tensor:
    noise = torch.randn(shape, generator=generator, dtype=like.dtype, device=generator.device)
    return noise.to(like.device, non_blocking=True)


def gaussian_mutation(x: Tensor, sigma: float, generator: torch.Generator,
                      bounds: tuple[float, float] | None = None) -> Tensor:
    """x' = x + sigma * N(0, I), clipped to ``bounds``.

    Parameters
    ----------
    x : Tensor (B, D) float32
    sigma : float
    bounds : (low, high), optional

    Returns
    -------
    Tensor (B, D) float32, a new tensor.
    """
    return _clip(x + sigma * _normal(x.shape, x, generator), bounds)


def isoline_variation(x: Tensor, y: Tensor, iso_sigma: float, line_sigma: float,
                      generator: torch.Generator,
                      bounds: tuple[float, float] | None = None) -> Tensor:
    """Iso+line variation (Vassiliades & Mouret 2018).

    x' = x + iso_sigma * N(0, I) + line_sigma * N(0, 1) * (y - x), one line coefficient per
    offspring.

    Parameters
    ----------
    x, y : Tensor (B, D) float32
        The two parents of each offspring.

    Returns
    -------
    Tensor (B, D) float32
    """
    iso = _normal(x.shape, x, generator)
    line = _normal((x.shape[0], 1), x, generator)
    return _clip(x + iso_sigma * iso + line_sigma * line * (y - x), bounds)


def uniform_select(num_candidates: int, n: int, generator: torch.Generator,
                   device: torch.device | str = "cpu") -> Tensor:
    """Indices (n,) int64 drawn uniformly with replacement from ``range(num_candidates)``."""
    return torch.randint(num_candidates, (n,), generator=generator,
                         device=generator.device).to(device)


def truncation_select(scores: Tensor, num_parents: int) -> Tensor:
    """Indices (num_parents,) of the highest scores, best first.

    Ties are broken by position (stable), so the result does not depend on the sort backend.
    Non-finite scores rank last.
    """
    s = torch.where(torch.isfinite(scores), scores, torch.full_like(scores, -torch.inf))
    order = torch.sort(s, descending=True, stable=True).indices
    return order[:num_parents]


def knn_distances(query: Tensor, reference: Tensor, k: int, exclude_self: bool = False,
                  chunk_size: int = 4096) -> tuple[Tensor, Tensor]:
    """Distances and indices of the k nearest ``reference`` points of each ``query`` point.

    Parameters
    ----------
    query : Tensor (B, d)
    reference : Tensor (N, d)
    k : int
        Clipped to the number of available neighbours.
    exclude_self : bool
        ``query`` is the first B rows of ``reference``; each point skips itself.

    Returns
    -------
    (Tensor (B, k'), Tensor (B, k')) distances ascending, and indices into ``reference``.
    """
    available = reference.shape[0] - (1 if exclude_self else 0)
    k = max(0, min(k, available))
    dists, idxs = [], []
    for start in range(0, query.shape[0], chunk_size):
        q = query[start:start + chunk_size]
        d = torch.cdist(q, reference)  # exact Euclidean; the matmul form loses precision near 0
        if exclude_self:
            rows = torch.arange(q.shape[0], device=q.device)
            d[rows, rows + start] = torch.inf
        v, i = torch.topk(d, k, dim=1, largest=False, sorted=True)
        dists.append(v)
        idxs.append(i)
    if not dists:
        return query.new_zeros((0, k)), torch.zeros((0, k), dtype=torch.long, device=query.device)
    return torch.cat(dists), torch.cat(idxs)


def novelty(query: Tensor, reference: Tensor, k: int, exclude_self: bool = False) -> Tensor:
    """Novelty (B,): mean distance to the k nearest neighbours in ``reference``.

    With no neighbour available the novelty is +inf (anything is novel in an empty world).
    """
    d, _ = knn_distances(query, reference, k, exclude_self)
    if d.shape[1] == 0:
        return torch.full((query.shape[0],), torch.inf, dtype=query.dtype, device=query.device)
    return d.mean(dim=1)


def local_competition(fitness: Tensor, reference_fitness: Tensor, neighbour_index: Tensor) -> Tensor:
    """Local competition (B,) int64: how many of each point's neighbours it beats.

    ``neighbour_index`` (B, k) indexes ``reference_fitness`` (as returned by
    :func:`knn_distances`).
    """
    return (reference_fitness[neighbour_index] < fitness[:, None]).sum(dim=1)


# Pareto ranking (NSGA-II's non-dominated sort and crowding distance), for NSLC.
def non_dominated_ranks(objectives: Tensor) -> Tensor:
    """Pareto front of each point, all objectives maximised (0 = non-dominated).

    Parameters
    ----------
    objectives : Tensor (B, m)

    Returns
    -------
    Tensor (B,) int64

    Written here rather than taken from a library: pyribs and EvoTorch's sorting works on
    their own population objects, and this is a few lines of dense comparisons (B^2 m).
    """
    o = objectives
    geq = (o[:, None, :] >= o[None, :, :]).all(dim=2)
    gt = (o[:, None, :] > o[None, :, :]).any(dim=2)
    dominates = geq & gt  # [i, j]: i dominates j
    remaining = torch.ones(o.shape[0], dtype=torch.bool, device=o.device)
    ranks = torch.full((o.shape[0],), -1, dtype=torch.int64, device=o.device)
    front = 0
    while bool(remaining.any()):
        dominated = (dominates & remaining[:, None]).any(dim=0)
        current = remaining & ~dominated
        ranks[current] = front
        remaining &= ~current
        front += 1
    return ranks


def crowding_distance(objectives: Tensor, ranks: Tensor) -> Tensor:
    """NSGA-II crowding distance (B,) float64 of each point within its front.

    The extremes of each objective in a front get +inf; the others the sum over objectives of
    the gap between their two neighbours in the front, divided by the front's range.
    """
    o = objectives.to(torch.float64)
    out = torch.zeros(o.shape[0], dtype=torch.float64, device=o.device)
    for front in torch.unique(ranks).tolist():
        members = (ranks == front).nonzero().squeeze(1)
        if len(members) <= 2:
            out[members] = torch.inf
            continue
        for j in range(o.shape[1]):
            values = o[members, j]
            order = torch.sort(values, stable=True).indices
            sorted_values = values[order]
            span = float(sorted_values[-1] - sorted_values[0])
            gaps = torch.zeros(len(members), dtype=torch.float64, device=o.device)
            gaps[0] = gaps[-1] = torch.inf
            if span > 0:
                gaps[1:-1] = (sorted_values[2:] - sorted_values[:-2]) / span
            out[members[order]] += gaps
    return out


def rank_order(ranks: Tensor, tie_break: Tensor) -> Tensor:
    """Indices (B,) best first: by Pareto front ``ranks`` (lower first), then by ``tie_break``
    (higher first). Stable, so equal (front, tie_break) pairs keep their positions."""
    by_tie = torch.sort(tie_break, descending=True, stable=True).indices
    return by_tie[torch.sort(ranks[by_tie], stable=True).indices]
