"""The Deep GA (Such et al. 2017, "Deep Neuroevolution"): truncation selection, Gaussian
mutation, one elite, no crossover.

One generation with population N (= ``batch_size``) and truncation T:

1. the previous generation's top T are the parents; each of the N - 1 offspring picks one
   uniformly and mutates it, theta' = theta + sigma * eps;
2. the offspring are evaluated (N - 1 evaluations; the first generation evaluates N random
   genomes) and every one of them goes to the result archive;
3. the population is the elite of the previous generation (copied unchanged, not
   re-evaluated) plus the offspring; its top T become the next parents and its best the
   next elite.

On stochastic tasks (``elite_reevaluations > 0``) the elite is chosen as in the paper: the
previous elite and the top ``elite_candidates - 1`` offspring are each re-evaluated on
``elite_reevaluations`` extra episodes (counted against the budget) and the best mean over
those extra episodes becomes the elite. The candidates' scores for truncation are then their
means (the single first episode of a top candidate is biased upwards by the selection itself).
Re-evaluations only choose the elite; they are not inserted into the archive.
With ``elite_reevaluations: 0`` (deterministic tasks: mazes, arm, functions) the elite is the
best of the population; the previous elite wins ties, so on a deterministic task the elite's
fitness never decreases.

Genomes are either ``flat`` (a ``(N, D)`` float32 tensor; direct tasks clip mutations to the
genome bounds) or ``chain``: compact seed chains (``evo.genomes``), which workers decode with a
parent cache. Chain mode stores no parameter vectors in the archive: each entry holds an int64
``genome_id`` (ribs extra field, ``solution_dim`` 0) and the algorithm keeps the table
``genome_id -> SeedChain``, pruned every generation to the chains that the archive or the
population still references. :meth:`DeepGA.chains` and :meth:`DeepGA.decode` turn archive ids
back into chains and parameters. Chains are never clipped (a chain is a pure sum of noise
steps), so on a direct task a chain genome can leave the bounds; the arm clamps its genome when
it evaluates it, other direct tasks may not: use ``flat`` there.

A chain costs 8 bytes per generation (plus 4 for a shared sigma), so it beats the float32
vector only for large networks: Such et al.'s 4M-parameter policies (16 MB) against a few
kilobytes of seeds, but the 226-parameter maze MLP (904 bytes) is smaller than its chain
after about 110 generations. The ``chain_compression`` metric reports the ratio
(parameter bytes / chain bytes) for each generation's offspring.

Metrics per generation: ``best_fitness`` and ``mean_fitness`` of the offspring just evaluated
(failed evaluations left out; NaN when all failed), ``elite_fitness`` (the elite's fitness, or
its re-evaluated mean), and ``chain_compression`` for chain genomes.

Mutation strength: Such et al. used sigma 0.002-0.005 on networks with millions of weights.
Small networks need more: on the hard maze with the 11-16-2 MLP (weights ~ N(0, 1/fan_in)),
sigma 0.1 covered the most cells (see ``experiments/configs/ga_hard_maze.yaml``); on the arm
(genome in [0, 1]^8) 0.05.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from evo.algorithms.base import Algorithm
from evo.genomes import SeedChain, chains_from_arrays, chains_to_arrays, new_seeds
from evo.operators import gaussian_mutation, truncation_select, uniform_select
from tasks import Evaluation

GENOMES = ("flat", "chain")


class DeepGA(Algorithm):
    """Deep GA: truncation selection, Gaussian mutation, elitism (Such et al. 2017).

    Parameters
    ----------
    task, evaluator, archive, batch_size, seed, device
        As for :class:`~evo.algorithms.base.Algorithm`. ``batch_size`` is the population N.
    init : callable (n, generator) -> Tensor (n, D)
        Random genomes of the first generation (flat genomes only; chains start from
        ``SeedChain.root`` seeds that the decoder initialises).
    bounds : (low, high) or None
        Genome bounds that flat mutations are clipped to (direct tasks).
    truncation : int
        T, the number of parents (>= 1; capped at N).
    sigma : float
        Mutation strength: theta' = theta + sigma * N(0, I). 0.1 measured best for the 11-16-2
        maze MLP (hard maze coverage 0.19 vs 0.12 at 0.01); Such et al. used 0.002-0.005 on
        networks with millions of weights.
    genome : {"flat", "chain"}
    elite_candidates : int
        Candidates re-evaluated for the elite: the previous elite and the top
        ``elite_candidates - 1`` offspring (at least one).
    elite_reevaluations : int
        Extra episodes per candidate; 0 (the default, for deterministic tasks: mazes, arm,
        functions, locomotion without reset noise) picks the best of the population without
        re-evaluation.
    num_params : int or None
        D, used to report the chain compression ratio (chain genomes).
    decoder : evo.genomes.ChainDecoder or None
        The in-process decoder (chain genomes with the local backend), whose cache is kept
        warm for the parents; worker processes have their own.
    """

    name = "deep_ga"

    def __init__(self, task: Any, evaluator, archive, batch_size: int, init=None, bounds=None,
                 truncation: int = 20, sigma: float = 0.1, genome: str = "flat",
                 elite_candidates: int = 10, elite_reevaluations: int = 0,
                 num_params: int | None = None, decoder=None, seed: int = 0,
                 device="cpu") -> None:
        super().__init__(task, evaluator, archive, batch_size, seed, device)
        if self.batch_size < 2:
            raise ValueError(f"batch_size: the Deep GA needs a population of at least 2 "
                             f"(one elite plus offspring), got {self.batch_size}")
        if not isinstance(truncation, int) or truncation < 1:
            raise ValueError(f"deep_ga.truncation: expected an integer >= 1, got {truncation!r}")
        if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"deep_ga.sigma: expected a number > 0, got {sigma!r}")
        if genome not in GENOMES:
            raise ValueError(f"deep_ga.genome: got {genome!r}; accepted: {', '.join(GENOMES)}")
        if not isinstance(elite_candidates, int) or elite_candidates < 1:
            raise ValueError(f"deep_ga.elite_candidates: expected an integer >= 1, "
                             f"got {elite_candidates!r}")
        if not isinstance(elite_reevaluations, int) or elite_reevaluations < 0:
            raise ValueError(f"deep_ga.elite_reevaluations: expected an integer >= 0, "
                             f"got {elite_reevaluations!r}")
        if genome == "flat" and init is None:
            raise ValueError("deep_ga: flat genomes need an init function")
        if genome == "chain" and archive.solution_dim != 0 and "genome_id" not in archive.extra_fields:
            raise ValueError("deep_ga.genome: chain genomes need an archive with solution_dim 0 "
                             "and an int64 'genome_id' extra field (see DeepGA.from_config)")
        self.init, self.bounds = init, bounds
        # Capped at N, so that a config scales down with --set batch_size=... alone.
        self.truncation = min(truncation, self.batch_size)
        self.sigma = float(sigma)
        self.genome = genome
        self.elite_candidates = elite_candidates
        self.elite_reevaluations = elite_reevaluations
        self.num_params = num_params
        self.decoder = decoder
        # The population carried from one generation to the next: parents best first, and
        # the elite (flat: tensors on self.device; chain: ids into self.chain_table).
        self.parents: Tensor | list[int] | None = None
        self.elite: Tensor | int | None = None
        self.elite_fitness = -math.inf
        self.chain_table: dict[int, SeedChain] = {}
        self.next_id = 0
        self._last_compression = math.nan

    @classmethod
    def from_config(cls, config: dict, task: Any, policy: Any = None) -> "DeepGA":
        from evo.build import build_decoder, build_evaluator, default_archive, genome_space

        section = config["deep_ga"]
        dim, init, bounds = genome_space(task, policy)
        if section["genome"] == "chain":
            decoder = build_decoder(config, task, policy)
            archive = default_archive(config, task, 0, extra_fields={"genome_id": ((), np.int64)})
        else:
            decoder = None
            archive = default_archive(config, task, dim)
        return cls(task, build_evaluator(config, task, policy, decoder), archive,
                   config["batch_size"], init, bounds, num_params=dim, decoder=decoder,
                   seed=config["seed"], device=config["device"], **section)

    # -- the generation ------------------------------------------------------------------
    def ask(self) -> Tensor | list[SeedChain]:
        """N random genomes in the first generation, then N - 1 mutated parents."""
        n = self.batch_size
        if self.elite is None:
            if self.genome == "chain":
                return [SeedChain.root(s) for s in new_seeds(n, self.generator)]
            return self.init(n, self.generator).to(self.device)
        pick = uniform_select(len(self.parents), n - 1, self.generator)
        if self.genome == "chain":
            seeds = new_seeds(n - 1, self.generator)
            return [self.chain_table[self.parents[i]].child(s, self.sigma)
                    for i, s in zip(pick.tolist(), seeds)]
        return gaussian_mutation(self.parents[pick.to(self.parents.device)], self.sigma,
                                 self.generator, self.bounds)

    def tell(self, genomes: Tensor | Sequence[SeedChain],
             evaluation: Evaluation) -> dict[str, float]:
        """Archive the offspring, pick the elite (re-evaluating candidates if asked) and the
        parents. May spend ``elite_candidates * elite_reevaluations`` extra evaluations."""
        n = len(genomes)
        fitness = evaluation.fitness.detach().cpu().float()
        failed = evaluation.failed.detach().cpu()
        score = torch.where(failed, torch.full_like(fitness, -math.inf), fitness)

        if self.genome == "chain":
            ids = list(range(self.next_id, self.next_id + n))
            self.next_id += n
            self.chain_table.update(zip(ids, genomes))
            self.archive.add(torch.zeros(n, 0), fitness, evaluation.descriptors, failed,
                             genome_id=torch.tensor(ids, dtype=torch.int64))
            self._last_compression = self._compression([self.chain_table[i] for i in ids])
            members: Tensor | list[int] = ids
        else:
            self.archive.add(genomes, fitness, evaluation.descriptors, failed)
            members = genomes

        # The population: the previous elite (position 0, so it wins ties) and the offspring.
        first = self.elite is None
        if first:
            pop_scores = score.clone()
        else:
            pop_scores = torch.cat([torch.tensor([self.elite_fitness]), score])
            members = ([self.elite] + members if self.genome == "chain"
                       else torch.cat([self.elite[None], members]))

        elite_index = int(truncation_select(pop_scores, 1)[0])
        if self.elite_reevaluations > 0:
            # the previous elite and the top C - 1 offspring (at least one, or no newcomer
            # could ever become the elite)
            offspring_top = truncation_select(
                score, self.elite_candidates if first else max(1, self.elite_candidates - 1))
            candidates = offspring_top + (0 if first else 1)
            if not first:
                candidates = torch.cat([torch.tensor([0]), candidates])
            candidates = candidates[torch.isfinite(pop_scores[candidates])]
            if len(candidates):
                means = self._reevaluate(self._take(members, candidates))
                pop_scores[candidates] = means
                # the best mean among the candidates, the previous elite winning ties
                elite_index = int(candidates[truncation_select(means, 1)[0]])
        num_parents = min(self.truncation, max(1, int(torch.isfinite(pop_scores).sum())))
        parent_index = truncation_select(pop_scores, num_parents)

        self.elite = self._take(members, torch.tensor([elite_index]))[0]
        self.elite_fitness = float(pop_scores[elite_index])
        self.parents = self._take(members, parent_index)
        if self.genome == "chain":
            self._prune_chain_table()
            self._warm_decoder()

        ok = ~failed
        return {
            "best_fitness": float(fitness[ok].max()) if bool(ok.any()) else math.nan,
            "mean_fitness": float(fitness[ok].mean()) if bool(ok.any()) else math.nan,
            "elite_fitness": self.elite_fitness,
            **({"chain_compression": self._last_compression} if self.genome == "chain" else {}),
        }

    # -- helpers -------------------------------------------------------------------------
    @staticmethod
    def _take(members: Tensor | list[int], index: Tensor):
        if isinstance(members, Tensor):
            return members[index.to(members.device)]
        return [members[i] for i in index.tolist()]

    def _reevaluate(self, candidates: Tensor | list[int]) -> Tensor:
        """Mean fitness of each candidate over ``elite_reevaluations`` fresh episodes
        (-inf when any episode failed)."""
        r = self.elite_reevaluations
        if isinstance(candidates, Tensor):
            batch = candidates.repeat_interleave(r, dim=0)
        else:
            batch = [self.chain_table[i] for i in candidates for _ in range(r)]
        ev = self.evaluate(batch)
        fit = ev.fitness.detach().cpu().float().view(-1, r)
        bad = ev.failed.detach().cpu().view(-1, r).any(dim=1)
        return torch.where(bad, torch.full_like(fit[:, 0], -math.inf), fit.mean(dim=1))

    def _compression(self, chains: Sequence[SeedChain]) -> float:
        """Bytes of the float32 parameter vectors over bytes of their seed chains."""
        if not chains or not self.num_params:
            return math.nan
        return len(chains) * self.num_params * 4 / sum(c.nbytes for c in chains)

    def _prune_chain_table(self) -> None:
        keep = set(np.asarray(self.archive.ribs.data("genome_id")).tolist())
        keep.update(self.parents)
        keep.add(self.elite)
        self.chain_table = {i: c for i, c in self.chain_table.items() if i in keep}

    def _warm_decoder(self) -> None:
        # Touch the parents so a bounded LRU cache still holds them when their children are
        # decoded (each child then costs one noise draw); with the default 256 MiB cache and
        # small networks this is a no-op in effect.
        # Only the decoder the (local) evaluator uses; worker processes keep their own caches.
        if self.decoder is not None and getattr(self.evaluator, "decoder", None) is self.decoder:
            for i in self.parents:
                self.decoder.decode(self.chain_table[i])

    # -- access to chain genomes -----------------------------------------------------------
    def chains(self, ids: Sequence[int] | Tensor | np.ndarray) -> list[SeedChain]:
        """The seed chains of archive/population genome ids (chain genomes only)."""
        if self.genome != "chain":
            raise ValueError("deep_ga: chains() needs genome: chain")
        return [self.chain_table[int(i)] for i in np.asarray(ids).reshape(-1)]

    def decode(self, ids: Sequence[int] | Tensor | np.ndarray) -> Tensor:
        """Parameters (n, D) float32 of genome ids, e.g. ``archive.elites()["genome_id"]``."""
        if self.decoder is None:
            raise ValueError("deep_ga: decode() needs the in-process chain decoder")
        return self.decoder.decode_batch(self.chains(ids))

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out["elite_fitness"] = self.elite_fitness if self.elite is not None else None
        if self.genome == "chain":
            out["chain_compression"] = self._last_compression
            out["chain_table_size"] = len(self.chain_table)
            if self.elite is not None:
                out["elite_chain_length"] = len(self.chain_table[self.elite])
        return out

    # -- state ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = super().state_dict()
        ga: dict[str, Any] = {"has_population": self.elite is not None,
                              "elite_fitness": self.elite_fitness,
                              "last_compression": self._last_compression}
        if self.elite is not None:
            if self.genome == "chain":
                ids = sorted(self.chain_table)
                ga.update(next_id=self.next_id, elite=int(self.elite),
                          parents=np.asarray(self.parents, dtype=np.int64),
                          table_ids=np.asarray(ids, dtype=np.int64),
                          table=chains_to_arrays([self.chain_table[i] for i in ids]))
            else:
                ga.update(parents=self.parents.detach().cpu(), elite=self.elite.detach().cpu())
        state["deep_ga"] = ga
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        ga = state["deep_ga"]
        self.elite_fitness = float(ga["elite_fitness"])
        self._last_compression = float(ga["last_compression"])
        if not ga["has_population"]:
            self.parents, self.elite, self.chain_table, self.next_id = None, None, {}, 0
            return
        if self.genome == "chain":
            ids = np.asarray(ga["table_ids"]).tolist()
            self.chain_table = dict(zip(ids, chains_from_arrays(ga["table"])))
            self.next_id = int(ga["next_id"])
            self.elite = int(ga["elite"])
            self.parents = np.asarray(ga["parents"]).tolist()
        else:
            self.parents = torch.as_tensor(ga["parents"]).to(self.device)
            self.elite = torch.as_tensor(ga["elite"]).to(self.device)
