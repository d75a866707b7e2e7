"""Ray actors as evaluation workers, on one machine or a cluster (``workers.address``).

Same contract as the process pool: every actor builds its task, policy and decoder from the
run's config and evaluates a contiguous slice with :func:`evaluate_batch`, so results do not
depend on the backend or the number of actors.
"""

from __future__ import annotations

from typing import Sequence

from torch import Tensor

from evo.workers.pool import evaluation_from_parts, slice_batch
from tasks import Evaluation


class _Worker:
    def __init__(self, config: dict) -> None:
        from evo.workers.pool import _init_worker

        _init_worker(config)

    def evaluate(self, genomes, seeds):
        from evo.workers.pool import _evaluate_slice

        return _evaluate_slice(genomes, seeds)


class RayEvaluator:
    """Evaluates a batch across ``count`` Ray actors.

    Parameters
    ----------
    config : dict
        The resolved run config.
    count : int
        Actors, one CPU each.
    address : str, optional
        A running cluster to connect to (``ray.init(address=...)``); None starts a local
        Ray instance sized for ``count`` actors.
    """

    backend = "ray"

    def __init__(self, config: dict, count: int, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError("workers.backend: 'ray' needs the ray package "
                             "(pip install 'neuroqd[ray]'); accepted without it: local, process") from None
        if count < 1:
            raise ValueError(f"workers.count: must be >= 1, got {count}")
        self._ray = ray
        if not ray.is_initialized():
            kwargs = {"address": address} if address else {"num_cpus": count}
            ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
        actor = ray.remote(num_cpus=1)(_Worker)
        self.count = int(count)
        self._actors = [actor.remote(config) for _ in range(self.count)]

    def __call__(self, genomes: Tensor | Sequence, seeds: Tensor) -> Evaluation:
        refs = [a.evaluate.remote(g, s)
                for a, (g, s) in zip(self._actors, slice_batch(genomes, seeds, self.count))]
        return evaluation_from_parts(self._ray.get(refs))

    def close(self) -> None:
        for a in self._actors:
            self._ray.kill(a)
        self._actors = []
