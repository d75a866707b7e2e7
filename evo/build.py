"""Config -> task, archive, evaluator, algorithm, engine. The one place that wires parts
together, used by the command line and usable from Python::

    from evo.build import build_run
    engine = build_run(config, run_dir="runs/x")
    summary = engine.run()
"""

from __future__ import annotations

from pathlib import Path

import torch

from archives import make_archive
from evo.algorithms import algorithm_class
from evo.engine import Engine
from tasks import is_control_task, make_task


def build_task(config: dict):
    params = {k: v for k, v in config["task"].items() if k != "name"}
    return make_task(config["task"]["name"], **params)


def build_policy(config: dict, task):
    if not is_control_task(task):
        return None
    from evo.policies import make_policy

    return make_policy(config.get("policy") or {}, task.obs_dim, task.action_dim)


def build_decoder(config: dict, task, policy):
    """A seed-chain decoder when the algorithm's section says ``genome: chain``, else None.

    The decoder travels to worker processes inside the worker factory, so that they receive
    seeds and rebuild parameters themselves (each with its own parent cache).
    """
    section = config.get(config["algorithm"]) or {}
    if section.get("genome", "flat") != "chain":
        return None
    from evo.genomes import ChainDecoder

    if policy is not None:
        return ChainDecoder.for_policy(policy)
    _, init, _ = genome_space(task, None)
    return ChainDecoder.for_init(task.solution_dim, init)


def build_evaluator(config: dict, task, policy, decoder=None):
    """The evaluator ``workers`` asks for, with workers built from a picklable factory."""
    from evo.workers.local import LocalEvaluator, WorkerFactory

    workers = config["workers"]
    backend, count = workers["backend"], int(workers["count"])
    threads, timeout_s = int(workers.get("threads", 1)), workers.get("timeout_s")
    if backend == "local":
        return LocalEvaluator(task, policy, decoder, config["device"], threads)
    factory = WorkerFactory(task, policy, decoder, config["device"], threads)
    if backend == "process":
        from evo.workers.pool import ProcessEvaluator

        return ProcessEvaluator(factory, count, timeout_s)
    if backend == "ray":
        from evo.workers.ray_actors import RayEvaluator

        return RayEvaluator(factory, count, address=workers.get("address"), timeout_s=timeout_s)
    raise ValueError(f"workers.backend: unknown backend {backend!r}; accepted: local, process, ray")


class UniformInit:
    """``init(n, generator)``: genomes uniform in ``[low, high]^D`` (picklable, for workers)."""

    def __init__(self, dim: int, low: float, high: float) -> None:
        self.dim, self.low, self.high = int(dim), float(low), float(high)

    def __call__(self, n: int, generator: torch.Generator) -> torch.Tensor:
        u = torch.rand((n, self.dim), generator=generator, device=generator.device)
        return self.low + (self.high - self.low) * u


def genome_space(task, policy):
    """(solution_dim, init(n, generator) -> Tensor (n, D), bounds or None)."""
    if policy is not None:
        return policy.num_params, policy.init, None
    low, high = task.solution_bounds
    return task.solution_dim, UniformInit(task.solution_dim, low, high), (low, high)


def build_algorithm(config: dict):
    """Build the algorithm (with its task, archive and evaluator) a resolved config describes."""
    device = config["device"]
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} requested but CUDA is not available; accepted: cpu")
    task = build_task(config)
    policy = build_policy(config, task)
    cls = algorithm_class(config["algorithm"])
    return cls.from_config(config, task, policy)


def build_run(config: dict, run_dir: str | Path | None = None, progress: bool | None = None,
              callbacks: list | None = None) -> Engine:
    """The engine a resolved config describes; with ``logging.tensorboard`` or
    ``logging.mlflow`` (and a run_dir) it logs through an :class:`evo.tracking.Tracker`, whose
    ``finish(run_dir)`` sends the final files once they are written."""
    from evo.tracking import make_tracker

    algorithm = build_algorithm(config)
    tracker = make_tracker(config, run_dir, algorithm.task)
    return Engine(algorithm, int(config["budget"]["evaluations"]), run_dir,
                  log_every=int(config["log_every"]),
                  checkpoint_every=int(config["checkpoint_every"]),
                  callbacks=callbacks, progress=progress,
                  log_hooks=[tracker] if tracker is not None else None)


def default_archive(config: dict, task, solution_dim: int, extra_fields: dict | None = None):
    return make_archive(config["archive"], solution_dim, task.descriptor_bounds,
                        task.fitness_offset, extra_fields=extra_fields, seed=int(config["seed"]))
