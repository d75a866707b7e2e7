"""Novelty search (Lehman & Stanley 2011) as the Deep GA paper's GA-NS (Such et al. 2017),
and novelty search with local competition (NSLC, Lehman & Stanley 2011b).

One generation of GA-NS, read top to bottom:

1. the population (``batch_size`` genomes, the previous generation's offspring) is ranked by
   novelty: the mean descriptor distance to its ``k_neighbors`` nearest neighbours among the
   novelty archive and the rest of the population (an individual never counts itself);
2. the top ``truncation`` (T) become parents; ``elitism`` of them are copied unchanged and every
   other offspring is ``theta + sigma * eps`` of a parent drawn uniformly (no crossover);
3. the offspring are evaluated, scored, and some of their descriptors enter the novelty
   archive, either each with probability ``archive_probability`` (GA-NS) or when their novelty
   reaches a dynamic threshold (the original maze experiments, see :class:`NoveltyThreshold`).

The novelty archive holds descriptors only, as one ``(M, d)`` tensor (it lives in the state
dict, so a resumed run continues exactly). Independently, the result archive ``self.archive``
(a grid by default) receives every evaluated genome, so coverage and QD score are reported as
for every other algorithm; fitness never drives GA-NS, it is only tracked (``best_fitness``).

NSLC replaces step 1's ranking by a Pareto ranking of two objectives, novelty and local
competition (how many of the same k nearest neighbours an individual beats on fitness), and
keeps its archive in ``ribs.archives.ProximityArchive`` with local competition turned on: a
candidate novel enough w.r.t. the archive is added, one that is not replaces its nearest
archive entry when fitter. See :class:`NSLC`.

Failed evaluations (NaN genome, NaN action, ...) get novelty -inf, are never parents while a
valid individual exists, never enter any archive and never serve as someone's neighbour.

Settings measured on the hard maze with the 11-16-2 tanh MLP, 50k evaluations, population 200,
T = 20 (seeds solved): sigma 0.1 with the dynamic threshold 10/12, sigma 0.05 4/6, sigma 0.2
2/6; insertion probability 0.01 (GA-NS's value) 4/6, 0.05 5/6, 0.1 4/6 (a population of 200
adds only 2 descriptors a generation at 0.01); population 100 3/6, 500 2/6. NSLC: ties by
novelty 9/12, by crowding distance 5/10. Runs that fail end in the cul-de-sac below the goal.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from evo.algorithms.base import Algorithm, keyword_defaults
from evo.operators import (crowding_distance, gaussian_mutation, knn_distances,
                           local_competition, non_dominated_ranks, rank_order,
                           truncation_select, uniform_select)
from tasks import Evaluation

ARCHIVE_MODES = ("probability", "threshold")
TIE_BREAKS = ("crowding", "novelty")


# -- the dynamic novelty threshold ----------------------------------------------------------------
class NoveltyThreshold:
    """Lehman & Stanley's dynamic archive threshold, in descriptor units.

    Their maze experiments start at 6.0 maze units with a floor of 0.25; the maze descriptors
    here are positions scaled by the maze's bounding box (about 200 units), hence the defaults
    0.03 and 0.00125. After every generation: when nothing was added for ``stale_generations``
    generations in a row the threshold is multiplied by ``decay`` (never below ``min``); when
    more than ``max_additions`` were added in one generation it is multiplied by ``growth``.

    Parameters
    ----------
    initial, min, decay, stale_generations, growth, max_additions : see above.
    """

    def __init__(self, initial: float = 0.03, min: float = 0.00125, decay: float = 0.95,
                 stale_generations: int = 10, growth: float = 1.2, max_additions: int = 4) -> None:
        prefix = "novelty_search.threshold"
        if not initial > 0:
            raise ValueError(f"{prefix}.initial: must be > 0, got {initial!r}")
        if not 0 <= min <= initial:
            raise ValueError(f"{prefix}.min: must be in [0, initial={initial}], got {min!r}")
        if not 0 < decay <= 1:
            raise ValueError(f"{prefix}.decay: must be in (0, 1], got {decay!r}")
        if not growth >= 1:
            raise ValueError(f"{prefix}.growth: must be >= 1, got {growth!r}")
        if int(stale_generations) < 1:
            raise ValueError(f"{prefix}.stale_generations: must be >= 1, got {stale_generations!r}")
        if int(max_additions) < 0:
            raise ValueError(f"{prefix}.max_additions: must be >= 0, got {max_additions!r}")
        self.value = float(initial)
        self.min, self.decay, self.growth = float(min), float(decay), float(growth)
        self.stale_generations, self.max_additions = int(stale_generations), int(max_additions)
        self.stale = 0  # generations in a row without an addition

    def update(self, added: int) -> None:
        """Adjust after a generation that added ``added`` descriptors to the archive."""
        if added == 0:
            self.stale += 1
            if self.stale >= self.stale_generations:
                self.value = max(self.min, self.value * self.decay)
                self.stale = 0
            return
        self.stale = 0
        if added > self.max_additions:
            self.value *= self.growth

    def state_dict(self) -> dict:
        return {"value": self.value, "stale": self.stale}

    def load_state_dict(self, state: dict) -> None:
        self.value, self.stale = float(state["value"]), int(state["stale"])


# -- GA-NS ----------------------------------------------------------------------------------------
class NoveltySearch(Algorithm):
    """GA-NS: truncation selection on novelty, Gaussian mutation, a novelty archive.

    Parameters
    ----------
    task, evaluator, archive, batch_size, seed, device : see :class:`Algorithm`
        ``archive`` is the result archive (every evaluation goes in); ``batch_size`` is the
        population size N.
    init : callable (n, generator) -> Tensor (n, D)
        Draws the first population.
    bounds : (low, high) or None
        Genome bounds that mutation clips to.
    truncation : int
        T, the number of parents.
    sigma : float
        Mutation standard deviation.
    k_neighbors : int
        k of the novelty (15 in Lehman & Stanley's mazes).
    elitism : int
        Parents copied unchanged into the next population (re-evaluated with it). 0 by
        default: a novelty elite's novelty only decays once its descriptor is known.
    archive_mode : "probability" or "threshold"
    archive_probability : float
        Chance that each offspring's descriptor enters the archive (probability mode).
    threshold : dict
        :class:`NoveltyThreshold` parameters (threshold mode).
    """

    name = "novelty_search"
    # GA-NS (Such et al. 2017) inserts with probability 0.01 by default (scale-free); the maze
    # configs use Lehman & Stanley's dynamic threshold. sigma 0.1: measured for the 11-16-2
    # maze MLP (module docstring).
    CONFIG_DEFAULTS = {"threshold": keyword_defaults(NoveltyThreshold.__init__)}

    def __init__(self, task: Any, evaluator, archive, batch_size: int, init, bounds=None, *,
                 truncation: int = 20, sigma: float = 0.1, k_neighbors: int = 15,
                 elitism: int = 0, archive_mode: str = "probability",
                 archive_probability: float = 0.01, threshold: dict | None = None,
                 seed: int = 0, device="cpu") -> None:
        super().__init__(task, evaluator, archive, batch_size, seed, device)
        p = self.name
        if not isinstance(truncation, int) or not 1 <= truncation <= self.batch_size:
            raise ValueError(f"{p}.truncation: must be an integer in 1..batch_size "
                             f"({self.batch_size}), got {truncation!r}")
        if not sigma >= 0:
            raise ValueError(f"{p}.sigma: must be >= 0, got {sigma!r}")
        if not isinstance(k_neighbors, int) or k_neighbors < 1:
            raise ValueError(f"{p}.k_neighbors: must be a positive integer, got {k_neighbors!r}")
        if not isinstance(elitism, int) or not 0 <= elitism <= truncation:
            raise ValueError(f"{p}.elitism: must be an integer in 0..truncation ({truncation}), "
                             f"got {elitism!r}")
        if elitism >= self.batch_size:
            raise ValueError(f"{p}.elitism: must be < batch_size ({self.batch_size}), got {elitism}")
        if archive_mode not in ARCHIVE_MODES:
            raise ValueError(f"{p}.archive_mode: got {archive_mode!r}; accepted: "
                             f"{', '.join(ARCHIVE_MODES)}")
        if not 0 <= archive_probability <= 1:
            raise ValueError(f"{p}.archive_probability: must be in [0, 1], got {archive_probability!r}")
        self.init, self.bounds = init, bounds
        self.truncation, self.sigma = truncation, float(sigma)
        self.k_neighbors, self.elitism = k_neighbors, elitism
        self.archive_mode, self.archive_probability = archive_mode, float(archive_probability)
        try:
            self.threshold = NoveltyThreshold(**(threshold or {}))
        except TypeError:
            raise ValueError(f"{p}.threshold: unknown keys {sorted(threshold)}; accepted: initial, "
                             "min, decay, stale_generations, growth, max_additions") from None
        d = len(task.descriptor_bounds)
        self.novelty_archive = torch.zeros((0, d), dtype=torch.float32, device=self.device)
        # The last evaluated generation, ranked best first in ``order``.
        self.population: Tensor | None = None
        self.descriptors: Tensor | None = None
        self.fitness: Tensor | None = None
        self.failed: Tensor | None = None
        self.order: Tensor | None = None
        self.best_fitness = -math.inf

    @classmethod
    def from_config(cls, config: dict, task: Any, policy: Any = None) -> "NoveltySearch":
        from evo.build import build_evaluator, default_archive, genome_space

        dim, init, bounds = genome_space(task, policy)
        return cls(task, build_evaluator(config, task, policy), default_archive(config, task, dim),
                   config["batch_size"], init, bounds, seed=config["seed"],
                   device=config["device"], **config[cls.name])

    # -- the generation ------------------------------------------------------------------
    def ask(self) -> Tensor:
        valid = 0 if self.failed is None else int((~self.failed).sum())
        if valid == 0:  # first generation, or nothing survived: start from scratch
            return self.init(self.batch_size, self.generator).to(self.device)
        parents = self.population[self.order[:min(self.truncation, valid)]]
        n_elite = min(self.elitism, len(parents))
        pick = uniform_select(len(parents), self.batch_size - n_elite, self.generator, self.device)
        children = gaussian_mutation(parents[pick], self.sigma, self.generator, self.bounds)
        return torch.cat([parents[:n_elite], children])

    def tell(self, genomes: Tensor, evaluation: Evaluation) -> dict[str, float]:
        genomes = genomes.to(self.device)
        descriptors = evaluation.descriptors.to(self.device, torch.float32)
        fitness = evaluation.fitness.to(self.device, torch.float32)
        failed = evaluation.failed.to(self.device)
        self.archive.add(genomes, fitness, descriptors, failed)
        ok = ~failed
        if bool(ok.any()):
            self.best_fitness = max(self.best_fitness, float(fitness[ok].max()))

        scores, extra = self._rank(genomes, descriptors, fitness, failed)
        added = self._update_novelty_archive(genomes, descriptors, fitness, failed, scores)
        self.population, self.descriptors, self.fitness, self.failed = (
            genomes, descriptors, fitness, failed)

        valid = scores[ok]
        stats = {
            "novelty_mean": float(valid.mean()) if len(valid) else math.nan,
            "novelty_max": float(valid.max()) if len(valid) else math.nan,
            "novelty_archive_size": self.novelty_archive_size,
            "archive_added": added,
            **extra,
            "best_fitness": self.best_fitness,
        }
        if self._reports_threshold():
            stats["novelty_threshold"] = self.current_threshold
        return stats

    def _rank(self, genomes: Tensor, descriptors: Tensor, fitness: Tensor,
              failed: Tensor) -> tuple[Tensor, dict]:
        """Score the population, set ``self.order`` (best first); returns (novelty, extra stats)."""
        scores = population_novelty(descriptors, self.novelty_archive, self.k_neighbors, failed)
        # A lone valid member has novelty +inf (no neighbour); truncation_select ranks every
        # non-finite score last, so +inf is passed as the largest float.
        finite = torch.where(scores == torch.inf, torch.finfo(scores.dtype).max, scores)
        self.order = truncation_select(finite, len(scores))
        return scores, {}

    def _update_novelty_archive(self, genomes, descriptors, fitness, failed, novelty) -> int:
        # Always draw B numbers, so the random stream does not depend on how many failed.
        u = torch.rand(len(descriptors), generator=self.generator).to(self.device)
        if self.archive_mode == "probability":
            add = (u < self.archive_probability) & ~failed
        else:
            add = (novelty >= self.threshold.value) & ~failed
        self.novelty_archive = torch.cat([self.novelty_archive, descriptors[add]])
        added = int(add.sum())
        if self.archive_mode == "threshold":
            self.threshold.update(added)
        return added

    def _reports_threshold(self) -> bool:
        return self.archive_mode == "threshold"

    @property
    def current_threshold(self) -> float:
        return self.threshold.value

    @property
    def novelty_archive_size(self) -> int:
        return int(self.novelty_archive.shape[0])

    def novelty_archive_descriptors(self) -> Tensor:
        """Descriptors (M, d) in the novelty archive, in insertion order."""
        return self.novelty_archive

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = super().state_dict()
        state["novelty"] = {
            "archive": self.novelty_archive.cpu(),
            "threshold": self.threshold.state_dict(),
            "best_fitness": self.best_fitness,
            "has_population": self.population is not None,
        }
        if self.population is not None:
            state["novelty"].update(population=self.population.cpu(),
                                    descriptors=self.descriptors.cpu(),
                                    fitness=self.fitness.cpu(), failed=self.failed.cpu(),
                                    order=self.order.cpu())
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        s = state["novelty"]
        self.novelty_archive = torch.as_tensor(np.asarray(s["archive"]), dtype=torch.float32
                                               ).reshape(-1, self.novelty_archive.shape[1]
                                                         ).to(self.device)
        self.threshold.load_state_dict(s["threshold"])
        self.best_fitness = float(s["best_fitness"])
        if s["has_population"]:
            t = lambda k, dt=None: torch.as_tensor(np.asarray(s[k]), dtype=dt).to(self.device)
            self.population = t("population", torch.float32)
            self.descriptors = t("descriptors", torch.float32)
            self.fitness = t("fitness", torch.float32)
            self.failed = t("failed", torch.bool)
            self.order = t("order", torch.int64)
        else:
            self.population = self.descriptors = self.fitness = self.failed = self.order = None

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out["best_fitness"] = self.best_fitness if math.isfinite(self.best_fitness) else None
        out["novelty_archive_size"] = self.novelty_archive_size
        return out


def population_novelty(descriptors: Tensor, archive: Tensor, k: int,
                       failed: Tensor | None = None) -> Tensor:
    """Novelty (B,) of each population member among the archive and the rest of the population.

    Parameters
    ----------
    descriptors : Tensor (B, d)
    archive : Tensor (M, d)
    k : int
    failed : Tensor (B,) bool, optional
        Failed members get -inf and are nobody's neighbour.

    Returns
    -------
    Tensor (B,) float32: the mean distance to the k nearest neighbours (fewer when fewer
    exist; +inf when there is no other point at all).
    """
    return _novelty_and_neighbours(descriptors, archive, k, failed)[0]


def _novelty_and_neighbours(descriptors: Tensor, archive: Tensor, k: int,
                            failed: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """(novelty (B,), neighbour indices (B_ok, k') into cat(valid population, archive),
    index (B_ok,) of the valid members)."""
    B = descriptors.shape[0]
    ok = torch.ones(B, dtype=torch.bool, device=descriptors.device) if failed is None else ~failed
    idx = ok.nonzero().squeeze(1)
    query = descriptors[idx]
    reference = torch.cat([query, archive.to(query)])
    dist, nbrs = knn_distances(query, reference, k, exclude_self=True)
    scores = torch.full((B,), -torch.inf, dtype=torch.float32, device=descriptors.device)
    if dist.shape[1] == 0:
        scores[idx] = torch.inf
    else:
        scores[idx] = dist.mean(dim=1).to(torch.float32)
    return scores, nbrs, idx


# -- NSLC -----------------------------------------------------------------------------------------
class NSLC(NoveltySearch):
    """Novelty search with local competition (Lehman & Stanley 2011b).

    The population is ranked by non-dominated sorting of (novelty, local competition), both
    computed against the same k nearest neighbours among the novelty archive and the rest of
    the population (the paper's definition; pyribs' ``compute_novelty`` would use the archive
    alone, which in the first generation gives everyone the same score). Within a front, ties
    are broken by NSGA-II's crowding distance (``tie_break: crowding``) or by novelty
    (``tie_break: novelty``). Parents are the top T in that order, offspring as in GA-NS.

    The novelty archive is a ``ribs.archives.ProximityArchive`` with local competition (built
    by ``make_archive`` type ``proximity``): an offspring whose novelty against the archive
    reaches the threshold is added; otherwise it replaces its nearest archive entry if it is
    fitter. The threshold decays by ``threshold_decay_rate`` after ``threshold_decay_itrs``
    generations without a novel addition (pyribs' rule; pyribs has no growth rule).

    Parameters
    ----------
    novelty_archive : Archive
        A proximity archive with ``local_competition=True``.
    tie_break : "crowding" or "novelty"
    Others as in :class:`NoveltySearch` (no ``archive_mode``: the archive decides).
    """

    name = "nslc"
    # The proximity archive's parameters (``from_config`` builds it); tie_break novelty solved
    # the hard maze in 9/12 seeds vs 5/10 with NSGA-II crowding.
    CONFIG_DEFAULTS = {"novelty_threshold": 0.03, "threshold_decay_rate": 0.95,
                       "threshold_decay_itrs": 10, "threshold_decay_min": 0.00125}

    def __init__(self, task: Any, evaluator, archive, batch_size: int, init, bounds=None, *,
                 novelty_archive, truncation: int = 20, sigma: float = 0.1,
                 k_neighbors: int = 15, elitism: int = 0, tie_break: str = "novelty",
                 seed: int = 0, device="cpu") -> None:
        super().__init__(task, evaluator, archive, batch_size, init, bounds,
                         truncation=truncation, sigma=sigma, k_neighbors=k_neighbors,
                         elitism=elitism, seed=seed, device=device)
        if tie_break not in TIE_BREAKS:
            raise ValueError(f"nslc.tie_break: got {tie_break!r}; accepted: {', '.join(TIE_BREAKS)}")
        if novelty_archive.kind != "proximity" or not novelty_archive.ribs.local_competition:
            raise ValueError("nslc: novelty_archive must be a proximity archive with "
                             "local_competition=True")
        self.tie_break = tie_break
        self.archive_mode = "proximity"
        self.proximity = novelty_archive

    @classmethod
    def from_config(cls, config: dict, task: Any, policy: Any = None) -> "NSLC":
        from archives import make_archive
        from evo.build import build_evaluator, default_archive, genome_space

        dim, init, bounds = genome_space(task, policy)
        section = dict(config[cls.name])
        spec = {"type": "proximity", "k_neighbors": section["k_neighbors"],
                "local_competition": True}
        for key in ("novelty_threshold", "threshold_decay_rate", "threshold_decay_itrs",
                    "threshold_decay_min"):
            spec[key] = section.pop(key)
        novelty_archive = make_archive(spec, dim, task.descriptor_bounds, task.fitness_offset,
                                       seed=int(config["seed"]))
        return cls(task, build_evaluator(config, task, policy), default_archive(config, task, dim),
                   config["batch_size"], init, bounds, novelty_archive=novelty_archive,
                   seed=config["seed"], device=config["device"], **section)

    def _archive_points(self) -> tuple[Tensor, Tensor]:
        data = self.proximity.ribs.data()
        d = torch.from_numpy(np.ascontiguousarray(data["measures"], dtype=np.float32))
        f = torch.from_numpy(np.ascontiguousarray(data["objective"], dtype=np.float32))
        return d.to(self.device), f.to(self.device)

    def _rank(self, genomes, descriptors, fitness, failed):
        arch_d, arch_f = self._archive_points()
        novelty, nbrs, idx = _novelty_and_neighbours(descriptors, arch_d, self.k_neighbors, failed)
        lc = torch.full((len(descriptors),), -1, dtype=torch.int64, device=self.device)
        if nbrs.shape[1] > 0:
            reference_fitness = torch.cat([fitness[idx], arch_f])
            lc[idx] = local_competition(fitness[idx], reference_fitness, nbrs)
        else:
            lc[idx] = 0
        objectives = torch.stack([novelty.to(torch.float64), lc.to(torch.float64)], dim=1)
        # A lone member's +inf novelty would turn crowding gaps into inf / inf.
        objectives = torch.nan_to_num(objectives, posinf=torch.finfo(torch.float64).max)
        # Failed members sit behind every valid one whatever their objectives.
        objectives[failed] = -torch.inf
        ranks = non_dominated_ranks(objectives)
        if self.tie_break == "crowding":
            tie = crowding_distance(objectives, ranks)
        else:
            tie = novelty.to(torch.float64)
        tie[failed] = -torch.inf
        self.order = rank_order(ranks, tie)
        first_front = int((ranks[~failed] == 0).sum())
        valid_lc = lc[idx].to(torch.float32)
        return novelty, {"local_competition_mean": float(valid_lc.mean()) if len(idx) else math.nan,
                         "first_front_size": first_front}

    def _update_novelty_archive(self, genomes, descriptors, fitness, failed, novelty) -> int:
        status = self.proximity.add(genomes, fitness, descriptors, failed)
        return int((status == 2).sum())

    def _reports_threshold(self) -> bool:
        return True

    @property
    def current_threshold(self) -> float:
        return float(self.proximity.ribs.novelty_threshold)

    @property
    def novelty_archive_size(self) -> int:
        return len(self.proximity)

    def novelty_archive_descriptors(self) -> Tensor:
        return self._archive_points()[0]

    def state_dict(self) -> dict:
        state = super().state_dict()
        state["proximity"] = self.proximity.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.proximity.load_state_dict(state["proximity"])
