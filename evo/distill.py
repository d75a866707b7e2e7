"""Distillation: an archive becomes one descriptor-conditioned policy pi(s | d'), and that policy
is judged by how well it reaches the descriptors it is asked for.

- :func:`distill_archive` rolls out every elite once (one batched evaluator call), records the
  (observation, action) pairs of its episode with the elite's archived descriptor as the
  condition, and fits a :class:`~evo.rl.networks.DescriptorConditionedActor` to them by
  supervised learning (behaviour cloning, MSE on actions).
- :func:`evaluate_distilled` folds the actor on K target descriptors into K plain genomes
  (:func:`~evo.rl.networks.fold_descriptor`), evaluates them in one batched call and reports the
  QD score of what they reach and how far from their targets they end up (REFERENCE section 5).

The file format (``policy.safetensors`` + ``policy.json``, shared with the DC actor of
DCG-ME / DCRL-ME runs) lives in :mod:`evo.distill_io`; its names are re-exported here.
"""

from __future__ import annotations

import math
import time
from typing import Any, Sequence

import torch
from torch import Tensor

from evo.distill_io import (KINDS, NORMALISATION, POLICY_JSON, POLICY_WEIGHTS, PolicyFileError,
                            check_policy_task, load_distilled, plain_policy, save_distilled)
from evo.rl.networks import (DescriptorConditionedActor, fold_descriptor, make_adam,
                              normalise_descriptors)

__all__ = [
    "KINDS", "NORMALISATION", "POLICY_JSON", "POLICY_WEIGHTS", "PolicyFileError",
    "check_policy_task", "distill_archive", "evaluate_distilled", "load_distilled",
    "plain_policy", "record_elites", "save_distilled", "train_actor",
]

# Seeds of the distillation's own rollouts are drawn below this bound (int64, positive).
_SEED_RANGE = 2**62


def _check_positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: must be an integer >= 1, got {value!r}")
    return value


def _check_schedule(epochs, batch_size, lr) -> None:
    _check_positive("--epochs", epochs)
    _check_positive("--batch-size", batch_size)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"--lr: must be a number > 0, got {lr!r}")


def record_elites(elites: dict[str, Tensor], task, policy, *, generator: torch.Generator,
                  threads: int = 1, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Roll out every elite once and keep the steps of its episode as training pairs.

    Parameters
    ----------
    elites : dict
        ``Archive.elites()``: ``genomes`` (n, D) float32 parameter vectors of ``policy`` and
        ``descriptors`` (n, d) float32, the archived descriptors used as conditions.
    task : control task
    policy : the run's policy (e.g. :class:`~evo.policies.MLPPolicy`)
    generator : torch.Generator (CPU)
        The rollouts' seeds are drawn from it.
    threads : int
        Physics threads (MuJoCo).
    device : str or torch.device
        Where the rollouts' policy forward runs.

    Returns
    -------
    dict
        ``obs`` (N, obs_dim), ``action`` (N, action_dim), ``descriptor`` (N, d) float32 (the
        archived descriptor of the step's elite), ``elite`` (N,) int64, and ``reached`` (n, d)
        float32 / ``failed`` (n,) bool of the rollouts; N counts the valid steps of the elites
        whose rollout did not fail.
    """
    from evo.workers.local import LocalEvaluator

    genomes, descriptors = elites["genomes"], elites["descriptors"]
    n = genomes.shape[0]
    if n == 0:
        raise ValueError("archive: no elites to distil")
    if "genome_id" in elites:
        raise ValueError("archive: its elites are Deep GA seed-chain ids (genome_id), not "
                         "parameters; decode them with the run's ChainDecoder first")
    if genomes.ndim != 2 or genomes.shape[1] != policy.num_params:
        raise ValueError(f"archive: elites must be parameter vectors of the run's policy "
                         f"({policy.num_params} values), got shape {tuple(genomes.shape)}")
    seeds = torch.randint(_SEED_RANGE, (n,), generator=generator, dtype=torch.int64)
    evaluator = LocalEvaluator(task, policy, device=device, threads=threads)
    ev = evaluator(genomes.float(), seeds, transitions=True)
    tr = ev.transitions
    keep = tr.valid & ~ev.failed[tr.genome]
    elite = tr.genome[keep]
    return {"obs": tr.obs[keep], "action": tr.action[keep],
            "descriptor": descriptors.float()[elite], "elite": elite,
            "reached": ev.descriptors, "failed": ev.failed}


def _obs_statistics(obs: Tensor) -> tuple[Tensor, Tensor]:
    mean = obs.mean(dim=0)
    std = obs.std(dim=0) if obs.shape[0] > 1 else torch.ones_like(mean)
    # A constant input (the maze's bias) carries no information: leave it unscaled.
    std = torch.where(std > 1e-6, std, torch.ones_like(std))
    return mean, std


@torch.no_grad()
def _fold_obs_normalisation(actor: DescriptorConditionedActor, mean: Tensor, std: Tensor) -> None:
    # Training sees (obs - mean) / std; folding that affine map into the first layer gives an
    # actor on raw observations, so the file, fold_descriptor and MLPPolicy need no normaliser.
    first = actor.net[0]
    w_obs = first.weight[:, :actor.obs_dim]
    first.bias -= w_obs @ (mean / std)
    w_obs /= std


def train_actor(data: dict[str, Tensor], descriptor_bounds, *, hidden: Sequence[int] = (128, 128),
                activation: str = "tanh", epochs: int = 50, batch_size: int = 256,
                lr: float = 1e-3, generator: torch.Generator,
                device: str | torch.device = "cpu") -> tuple[DescriptorConditionedActor, dict]:
    """Fit pi(obs, d_norm) -> action by minibatch MSE regression (Adam).

    Parameters
    ----------
    data : dict
        ``obs`` (N, obs_dim), ``action`` (N, action_dim), ``descriptor`` (N, d) float32 raw
        descriptors (as :func:`record_elites` returns).
    descriptor_bounds : sequence of (low, high)
        The task's bounds; conditions are normalised with :func:`normalise_descriptors`.
    hidden, activation : the actor's hidden widths and hidden activation (output: tanh).
    epochs, batch_size, lr : the regression's schedule.
    generator : torch.Generator (CPU)
        Initial weights and minibatch order.
    device : where training runs.

    Returns
    -------
    (DescriptorConditionedActor on ``device``, in eval mode, taking raw observations; dict)
        The dict holds ``samples``, ``epochs``, ``steps``, ``batch_size``, ``lr``,
        ``loss_per_epoch`` (list of float), ``final_loss`` and ``clipped_actions``.
    """
    _check_schedule(epochs, batch_size, lr)
    obs, action = data["obs"].float(), data["action"].float()
    n = obs.shape[0]
    if n == 0:
        raise ValueError("archive: the elites' rollouts produced no valid step to learn from")
    # A tanh actor cannot output beyond [-1, 1]; targets there would only inflate the loss.
    clipped = int((action.abs() > 1).any(dim=1).sum())
    action = action.clamp(-1.0, 1.0)
    cond = normalise_descriptors(data["descriptor"].float(), descriptor_bounds)
    mean, std = _obs_statistics(obs)
    x = torch.cat([(obs - mean) / std, cond], dim=1).to(device)
    y = action.to(device)
    actor = DescriptorConditionedActor(obs.shape[1], action.shape[1], cond.shape[1], tuple(hidden),
                                       activation, generator=generator).to(device)
    opt = make_adam(actor.net.parameters(), float(lr))
    losses = []
    batch = min(batch_size, n)
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(device)
        total = 0.0
        for start in range(0, n - batch + 1, batch):  # drop the ragged tail: equal-sized steps
            idx = order[start:start + batch]
            loss = torch.nn.functional.mse_loss(actor.net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * batch
        losses.append(total / (n - n % batch))
    actor.eval()
    _fold_obs_normalisation(actor, mean.to(device), std.to(device))
    steps = epochs * (n // batch)
    return actor, {"samples": n, "epochs": epochs, "steps": steps, "batch_size": batch,
                   "lr": float(lr), "loss_per_epoch": losses, "final_loss": losses[-1],
                   "clipped_actions": clipped}


def distill_archive(elites: dict[str, Tensor], task, policy, *, hidden: Sequence[int] = (128, 128),
                    activation: str = "tanh", epochs: int = 50, batch_size: int = 256,
                    lr: float = 1e-3, generator: torch.Generator | int, threads: int = 1,
                    device: str | torch.device = "cpu") -> tuple[DescriptorConditionedActor, dict]:
    """Distil an archive of policies into one descriptor-conditioned actor.

    Parameters
    ----------
    elites : dict
        ``Archive.elites()`` of an archive whose solutions are parameter vectors of ``policy``
        (MAP-Elites, novelty search, Deep GA with flat genomes; decode seed chains first).
    task : control task the archive was made on
    policy : the run's policy
    hidden, activation : the distilled actor's hidden layers (its output is tanh)
    epochs, batch_size, lr : supervised training schedule (Adam, MSE on actions)
    generator : torch.Generator (CPU) or int seed
        Every random draw: rollout seeds, initial weights, minibatch order.
    threads : int
        Physics threads for the rollouts.
    device : where rollouts' policies and the training run.

    Returns
    -------
    actor : DescriptorConditionedActor (on ``device``, eval mode, raw observations in)
    stats : dict
        :func:`train_actor`'s figures plus ``elites``, ``evaluations`` (rollouts made),
        ``failed_rollouts``, ``elite_descriptor_error`` (mean L2 distance between where each
        elite's rollout ended and its archived descriptor) and ``time_s``.
    """
    from evo.rl.networks import make_generator

    _check_schedule(epochs, batch_size, lr)  # before the rollouts, which may take a while
    g = make_generator(generator)
    t0 = time.perf_counter()
    data = record_elites(elites, task, policy, generator=g, threads=threads, device=device)
    actor, stats = train_actor(data, task.descriptor_bounds, hidden=hidden, activation=activation,
                               epochs=epochs, batch_size=batch_size, lr=lr, generator=g,
                               device=device)
    n = elites["genomes"].shape[0]
    ok = ~data["failed"]
    # How far the elites themselves land from their archived descriptors when rolled out
    # again (0 on deterministic tasks): the floor for the distilled policy's descriptor error.
    own_error = (data["reached"][ok] - elites["descriptors"][ok].float()).norm(dim=1)
    stats = {"elites": n, "evaluations": n, "failed_rollouts": int(data["failed"].sum()),
             "elite_descriptor_error": float(own_error.mean()) if len(own_error) else math.nan,
             **stats, "time_s": round(time.perf_counter() - t0, 3)}
    return actor, stats


def evaluate_distilled(actor: DescriptorConditionedActor, meta: dict, task, archive_spec: dict,
                       targets: Tensor, *, repeats: int = 1, threads: int = 1, seed: int = 0,
                       device: str | torch.device = "cpu") -> dict[str, Any]:
    """Condition the actor on each target descriptor, roll it out, and score what it reaches.

    Parameters
    ----------
    actor : DescriptorConditionedActor
    meta : dict
        The policy's metadata (``descriptor_bounds`` normalises the targets).
    task : control task
    archive_spec : dict
        The run's ``archive`` config section: the outcomes fill a fresh archive of that kind.
    targets : Tensor (K, d) float32
        Raw target descriptors, e.g. every filled cell's elite descriptor.
    repeats : int
        Rollouts per target (fresh seeds each); an archive entry takes the mean fitness and
        mean reached descriptor of its target's rollouts.
    threads, device : physics threads; where the folded policies run.
    seed : int
        Seeds of the rollouts.

    Returns
    -------
    dict
        ``targets``, ``repeats``, ``evaluations``, ``qd_score``, ``coverage``, ``max_fitness``,
        ``num_elites`` of the filled archive; ``mean_descriptor_error`` and
        ``median_descriptor_error`` (L2 distance between reached and target descriptor, over
        all non-failed rollouts, descriptor units); ``failed_evaluations``; and, not
        JSON-ready: ``archive`` (the filled :class:`archives.Archive`, whose solutions are the
        target descriptors, (d,) each: the genome of a cell is the actor folded on it),
        ``reached`` (K, d) and ``fitness`` (K,) float32 means per target.
    """
    from archives import make_archive
    from evo.workers.local import LocalEvaluator

    _check_positive("--repeats", repeats)
    if targets.ndim != 2 or targets.shape[1] != actor.descriptor_dim:
        raise ValueError(f"targets must have shape (K, {actor.descriptor_dim}), "
                         f"got {tuple(targets.shape)}")
    K = targets.shape[0]
    targets = targets.float().cpu()
    params = next(actor.parameters())
    cond = normalise_descriptors(targets, meta["descriptor_bounds"]).to(params.device)
    genomes = fold_descriptor(actor, cond).repeat(repeats, 1)  # (R K, D), repeat-major
    g = torch.Generator().manual_seed(int(seed))
    seeds = torch.randint(_SEED_RANGE, (repeats * K,), generator=g, dtype=torch.int64)
    evaluator = LocalEvaluator(task, plain_policy(actor), device=device, threads=threads)
    ev = evaluator(genomes, seeds)
    reached = ev.descriptors.view(repeats, K, -1).double()
    failed_runs = ev.failed.view(repeats, K)
    error = (reached - targets.double()).norm(dim=2)[~failed_runs]
    fitness = ev.fitness.view(repeats, K).double().mean(dim=0).float()
    reached_mean = reached.mean(dim=0).float()
    failed = failed_runs.any(dim=0)
    archive = make_archive(archive_spec, targets.shape[1], task.descriptor_bounds,
                           task.fitness_offset)
    archive.add(targets, fitness, reached_mean, failed)
    metrics = archive.metrics()
    return {"targets": K, "repeats": repeats, "evaluations": repeats * K,
            "qd_score": metrics["qd_score"], "coverage": metrics["coverage"],
            "max_fitness": metrics["max_fitness"], "num_elites": metrics["num_elites"],
            "mean_descriptor_error": float(error.mean()) if error.numel() else math.nan,
            "median_descriptor_error": float(error.median()) if error.numel() else math.nan,
            "failed_evaluations": int(ev.failed.sum()),
            "archive": archive, "reached": reached_mean, "fitness": fitness}
