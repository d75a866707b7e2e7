"""Torch-facing wrappers over ``ribs.archives``: grid, CVT and proximity (novelty) archives.

ribs does the cell bookkeeping and the insertion rules; this layer converts tensors, samples
parents with an explicit ``torch.Generator`` (ribs samples with its own numpy RNG, which a
resumed run could not reproduce), computes metrics with the task's fitness offset, and
exports/imports its state as plain arrays so that checkpoints need no pickle.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from ribs.archives import ArchiveBase, CVTArchive, GridArchive, ProximityArchive

from archives.centroids import cached_centroids


class Archive:
    """A ribs archive with torch tensors in and out.

    Parameters
    ----------
    ribs_archive : ribs.archives.ArchiveBase
        The archive doing the work (reachable as ``.ribs``, e.g. for ``ribs.visualize``).
    kind : str
        ``"grid"``, ``"cvt"`` or ``"proximity"``.
    spec : dict
        The parameters it was built from (recorded in saved files).
    fitness_offset : float
        ``qd_score = sum(fitness - fitness_offset)`` over the elites.
    """

    def __init__(self, ribs_archive: ArchiveBase, kind: str, spec: dict,
                 fitness_offset: float = 0.0) -> None:
        self.ribs = ribs_archive
        self.kind = kind
        self.spec = dict(spec)
        self.fitness_offset = float(fitness_offset)
        # ribs' own fields ("threshold" serves CMA-MAE) are not ours to fill
        self.extra_fields = [f for f in ribs_archive.field_list
                             if f not in ("solution", "objective", "measures", "index", "threshold")]

    # -- sizes ---------------------------------------------------------------------------
    @property
    def solution_dim(self) -> int:
        return int(self.ribs.solution_dim)

    @property
    def descriptor_dim(self) -> int:
        return int(self.ribs.measure_dim)

    @property
    def cells(self) -> int:
        """Number of cells (for a proximity archive: its current capacity)."""
        return int(self.ribs.cells)

    def __len__(self) -> int:
        return len(self.ribs)

    # -- writing -------------------------------------------------------------------------
    def add(self, genomes: Tensor, fitness: Tensor, descriptors: Tensor,
            failed: Tensor | None = None, **fields: Tensor) -> Tensor:
        """Insert a batch; failed evaluations are never inserted.

        Parameters
        ----------
        genomes : Tensor (B, solution_dim) float32
        fitness : Tensor (B,) float32
        descriptors : Tensor (B, descriptor_dim) float32
        failed : Tensor (B,) bool, optional
        **fields : Tensor (B, ...)
            Values of the archive's extra fields.

        Returns
        -------
        Tensor (B,) int8
            ribs' add status per genome: 0 not inserted, 1 improved an elite, 2 new cell
            (for a proximity archive: 1 replaced a neighbour (local competition), 2 novel).
        """
        status = torch.zeros(len(fitness), dtype=torch.int8)
        keep = slice(None)  # everything, without a copy, in the common case of no failure
        if failed is not None and bool(failed.any()):
            keep = (~failed.cpu()).nonzero().squeeze(1)
            if len(keep) == 0:
                return status

        def kept(t: Tensor) -> np.ndarray:
            return t.detach().cpu()[keep].numpy()

        info = self.ribs.add(kept(genomes), kept(fitness), kept(descriptors),
                             **{k: kept(v) for k, v in fields.items()})
        status[keep] = torch.from_numpy(np.asarray(info["status"], dtype=np.int8))
        return status

    # -- reading -------------------------------------------------------------------------
    def occupied_indices(self) -> np.ndarray:
        """Cell indices of the elites in ribs' insertion order (a read-only view).

        Sampling depends on this order, so :meth:`load_state_dict` restores it exactly.
        """
        return self.ribs._store.occupied_list

    def sample_indices(self, n: int, generator: torch.Generator) -> np.ndarray:
        """Cell indices of ``n`` elites drawn uniformly with replacement."""
        occupied = self.occupied_indices()
        if len(occupied) == 0:
            raise RuntimeError("cannot sample from an empty archive")
        pick = torch.randint(len(occupied), (n,), generator=generator).numpy()
        return occupied[pick]

    def retrieve(self, indices: np.ndarray, field: str = "solution") -> Tensor:
        """Values of ``field`` for the elites in cells ``indices`` (all must be occupied)."""
        # ArrayStore.retrieve reads by cell index; the public ArchiveBase.retrieve reads by
        # descriptor, which would re-run the cell lookup.
        _, values = self.ribs._store.retrieve(indices, field)
        return torch.from_numpy(np.ascontiguousarray(values))

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """Genomes of ``n`` elites drawn uniformly with replacement: (n, solution_dim)."""
        return self.retrieve(self.sample_indices(n, generator))

    def elites(self) -> dict[str, Tensor]:
        """All elites sorted by cell: ``genomes``, ``fitness``, ``descriptors``, ``index``
        and any extra fields, as tensors with a leading elite dimension."""
        data = self.ribs.data()
        order = np.argsort(data["index"], kind="stable")
        out = {"genomes": data["solution"], "fitness": data["objective"],
               "descriptors": data["measures"], "index": data["index"]}
        out.update({k: data[k] for k in self.extra_fields})
        return {k: torch.from_numpy(np.ascontiguousarray(np.asarray(v)[order]))
                for k, v in out.items()}

    def metrics(self) -> dict[str, float]:
        """``qd_score`` (with the fitness offset), ``coverage`` (fraction of cells),
        ``max_fitness`` (NaN when empty) and ``num_elites``."""
        objective = np.asarray(self.ribs.data("objective"), dtype=np.float64)
        n = len(objective)
        return {
            "qd_score": float((objective - self.fitness_offset).sum()),
            "coverage": n / self.cells if self.kind != "proximity" else float("nan"),
            "max_fitness": float(objective.max()) if n else float("nan"),
            "num_elites": n,
        }

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Plain arrays + scalars describing the archive contents exactly."""
        data = self.ribs.data()  # in ribs' occupied order, which restoring preserves
        state = {f"data.{k}": np.asarray(v) for k, v in data.items()}
        if self.kind == "proximity":
            state["novelty_threshold"] = float(self.ribs._novelty_threshold)
            state["itrs_without_novel"] = int(self.ribs._itrs_without_novel or 0)
        return state

    def load_state_dict(self, state: dict) -> None:
        self.ribs.clear()
        data = {k[len("data."):]: np.asarray(v) for k, v in state.items() if k.startswith("data.")}
        index = data.pop("index")
        if len(index) == 0:
            pass
        elif self.kind == "proximity":
            _restore_proximity(self.ribs, index, data, state)
        else:
            fields = {k: data[k] for k in self.extra_fields}
            # One elite per cell, so ribs' own add re-inserts every one and keeps its stats right.
            self.ribs.add(data["solution"], data["objective"], data["measures"], **fields)
            if len(self.ribs) != len(index):
                raise ValueError("archive state does not match the archive's cells")
            # ribs appends each batch's new cells in sorted order; put back the saved order,
            # which parent sampling reads.
            self.ribs._store._props["occupied_list"][:len(index)] = index


def _restore_proximity(archive: ProximityArchive, index: np.ndarray, data: dict,
                       state: dict) -> None:
    # ProximityArchive.add would re-judge novelty and decay the threshold, so the saved
    # entries go straight into its store (ribs offers no public restore).
    from scipy.spatial import KDTree

    archive._maybe_resize(int(index.max()) + 1)
    archive._store.add(index, data)
    archive._cur_kd_tree = KDTree(archive._store.data("measures"), **archive._kdtree_kwargs)
    archive._novelty_threshold = np.asarray(state["novelty_threshold"],
                                            dtype=archive.dtypes["measures"])
    if archive._threshold_decay_rate is not None:
        archive._itrs_without_novel = int(state["itrs_without_novel"])
    archive._stats_reset()
    objective = archive._store.data("objective")
    archive._stats_update(objective.sum(), int(np.argmax(objective)))


ARCHIVE_KINDS = ("grid", "cvt", "proximity")


def make_archive(spec: dict, solution_dim: int, descriptor_bounds: list[tuple[float, float]],
                 fitness_offset: float = 0.0, extra_fields: dict | None = None,
                 seed: int = 0) -> Archive:
    """Build an archive from a config section.

    ``spec["type"]`` is one of ``grid`` (``dims``: cells per descriptor dimension),
    ``cvt`` (``cells``, ``samples``, ``centroid_seed``) or ``proximity`` (``k_neighbors``,
    ``novelty_threshold``, ``local_competition``, ``threshold_decay_rate``,
    ``threshold_decay_itrs``, ``threshold_decay_min``). Bad values raise a one-line
    ``ValueError`` naming the key.
    """
    spec = dict(spec)
    kind = spec.get("type", "grid")
    if extra_fields:
        # Recorded in the spec (as JSON-friendly lists) so that a saved archive can be rebuilt.
        spec["extra_fields"] = {k: [list(np.atleast_1d(shape).tolist()) if shape != () else [],
                                    np.dtype(dt).str] for k, (shape, dt) in extra_fields.items()}
    ranges = [tuple(map(float, b)) for b in descriptor_bounds]
    common = dict(solution_dim=solution_dim, dtype=np.float32, extra_fields=extra_fields,
                  qd_score_offset=fitness_offset, seed=seed)
    if kind == "grid":
        dims = spec.get("dims")
        if (not isinstance(dims, (list, tuple)) or len(dims) != len(ranges)
                or not all(isinstance(d, int) and d > 0 for d in dims)):
            raise ValueError(f"archive.dims: expected a list of {len(ranges)} positive integers "
                             f"(one per descriptor dimension), got {dims!r}")
        ribs_archive = GridArchive(dims=list(dims), ranges=ranges, **common)
    elif kind == "cvt":
        cells = spec.get("cells")
        samples = spec.get("samples", 50_000)
        if not isinstance(cells, int) or cells < 1:
            raise ValueError(f"archive.cells: expected a positive integer, got {cells!r}")
        if not isinstance(samples, int) or samples < cells:
            raise ValueError(f"archive.samples: expected an integer >= archive.cells "
                             f"({cells}), got {samples!r}")
        centroids = cached_centroids(cells, ranges, samples, int(spec.get("centroid_seed", 0)))
        ribs_archive = CVTArchive(centroids=centroids, ranges=ranges, **common)
    elif kind == "proximity":
        k = spec.get("k_neighbors", 15)
        threshold = spec.get("novelty_threshold", 0.01)
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"archive.k_neighbors: expected a positive integer, got {k!r}")
        if not isinstance(threshold, (int, float)) or threshold < 0:
            raise ValueError(f"archive.novelty_threshold: expected a number >= 0, got {threshold!r}")
        ribs_archive = ProximityArchive(
            measure_dim=len(ranges), k_neighbors=k, novelty_threshold=float(threshold),
            local_competition=bool(spec.get("local_competition", False)),
            threshold_decay_rate=spec.get("threshold_decay_rate"),
            threshold_decay_itrs=int(spec.get("threshold_decay_itrs", 1)),
            threshold_decay_min=float(spec.get("threshold_decay_min", 0.0)), **common)
    else:
        raise ValueError(f"archive.type: unknown archive {kind!r}; accepted: {', '.join(ARCHIVE_KINDS)}")
    return Archive(ribs_archive, kind, dict(spec, type=kind, ranges=[list(r) for r in ranges],
                                           solution_dim=solution_dim), fitness_offset)
