"""Policy-gradient emitters: PGA-ME (Nilsson & Cully 2021) and DCG-ME / DCRL-ME (Faldor et al.
2023, 2024), as MAP-Elites emitters that own a TD3 critic, an actor and a replay buffer.

Every generation, in ``tell``, the emitter pushes every valid transition of the evaluated batch
into its replay buffer (failed evaluations excluded) and trains its critic and actor
(``critic_steps`` TD3 updates); in the next ``ask`` it improves archive elites by ``pg_steps``
steps of gradient ascent on the critic, all offspring at once (``evo.rl.pg_variation``).

- ``pg`` (PGA-ME): PG offspring of uniformly drawn elites, plus ``greedy_actor`` copies of the
  TD3 actor itself as offspring. Pair it with an iso+line emitter for PGA-ME's batch.
- ``dcrl`` (DCRL-ME, DCG-ME): descriptor-conditioned critic Q(s, a | d') and actor pi(s | d');
  each parent is improved for its own archive descriptor; ``injection`` of the emitter's share
  are the actor folded onto descriptors of uniformly drawn filled cells (DCRL-ME's actor
  injection); ``actor_evaluations`` > 0 also rolls the actor out on that many archive
  descriptors every generation, counted against the budget (DCG-ME). Transitions carry the
  intended descriptor d': the parent's descriptor for PG offspring, the target for injected
  and actor offspring, the achieved one for everything else (similarity 1).

Defaults are REFERENCE.md section 5's: the DCRL-ME paper for ``dcrl``, QDax's PGAMEConfig for
``pg``. Rewards are made non-negative with the task's per-step ``reward_offset``.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor

from evo.algorithms.emitters import Emitter, EmitterContext
from tasks import Evaluation


def _task_reward_offset(task) -> float:
    return float(getattr(task, "reward_offset", 0.0))


class PGEmitter(Emitter):
    """PGA-ME's policy-gradient emitter (see the module docstring).

    Parameters
    ----------
    context : EmitterContext
        Needs a control task and its MLPPolicy.
    critic_steps : int
        TD3 critic updates per generation (actor and targets every ``policy_delay``-th).
    pg_steps : int
        Gradient steps per PG offspring.
    batch_size : int
        Minibatch of transitions for critic, actor and PG steps.
    policy_lr, critic_lr, actor_lr : float
        Adam learning rates of the PG offspring, the critic and the TD3 actor.
    critic_hidden : list of int
    discount, tau, policy_noise, noise_clip, policy_delay : TD3's
    replay_size : int
        Replay buffer capacity (transitions).
    greedy_actor : int
        Offspring that are copies of the TD3 actor (PGA-ME: 1).
    """

    wants_transitions = True
    conditioned = False

    def __init__(self, context: EmitterContext, critic_steps: int = 300, pg_steps: int = 100,
                 batch_size: int = 256, policy_lr: float = 1e-3, critic_lr: float = 3e-4,
                 actor_lr: float = 3e-4, critic_hidden: list = (256, 256),
                 discount: float = 0.99, tau: float = 0.005, policy_noise: float = 0.2,
                 noise_clip: float = 0.5, policy_delay: int = 2, replay_size: int = 1_000_000,
                 greedy_actor: int = 1) -> None:
        super().__init__(context)
        from evo.rl import Actor, Critic, DescriptorConditionedActor, \
            DescriptorConditionedCritic, ReplayBuffer, TD3

        task, policy = context.task, context.policy
        key = "map_elites.emitters"
        if policy is None or not hasattr(task, "make_env"):
            raise ValueError(f"{key}.type: policy-gradient emitters need a control task with a "
                             f"policy; accepted tasks: the mazes, the locomotion tasks, gym")
        if policy.output_activation != "tanh":
            raise ValueError(f"policy.output_activation: policy-gradient emitters need 'tanh' "
                             f"(the TD3 actor's), got {policy.output_activation!r}")
        for name, value in (("critic_steps", critic_steps), ("pg_steps", pg_steps),
                            ("batch_size", batch_size), ("replay_size", replay_size)):
            if not isinstance(value, int) or value < (0 if name.endswith("steps") else 1):
                raise ValueError(f"{key}.{name}: must be a non-negative integer "
                                 f"(batch_size and replay_size >= 1), got {value!r}")
        for name, value in (("policy_lr", policy_lr), ("critic_lr", critic_lr),
                            ("actor_lr", actor_lr)):
            if not (isinstance(value, (int, float)) and value > 0 and math.isfinite(value)):
                raise ValueError(f"{key}.{name}: must be a number > 0, got {value!r}")
        self.critic_steps, self.pg_steps = critic_steps, pg_steps
        self.batch_size, self.policy_lr = batch_size, float(policy_lr)
        self.greedy_actor = int(greedy_actor)
        d = len(task.descriptor_bounds)
        g, device = context.generator, context.device
        hidden = tuple(int(h) for h in critic_hidden)
        if self.conditioned:
            critic = DescriptorConditionedCritic(task.obs_dim, task.action_dim, d, hidden, generator=g)
            actor = DescriptorConditionedActor(task.obs_dim, task.action_dim, d, policy.hidden,
                                               policy.activation, generator=g)
        else:
            critic = Critic(task.obs_dim, task.action_dim, hidden, generator=g)
            actor = Actor(task.obs_dim, task.action_dim, policy.hidden, policy.activation, generator=g)
        self.td3 = TD3(critic.to(device), actor.to(device), critic_lr=critic_lr, actor_lr=actor_lr,
                       discount=discount, tau=tau, policy_noise=policy_noise,
                       noise_clip=noise_clip, policy_delay=policy_delay,
                       reward_offset=_task_reward_offset(task),
                       lengthscale=self.lengthscale if self.conditioned else None,
                       descriptor_bounds=task.descriptor_bounds, generator=g)
        self.buffer = ReplayBuffer(replay_size, task.obs_dim, task.action_dim, d, device)
        self._intended: Tensor | None = None  # d' of this emitter's offspring (dcrl)

    # -- offspring ---------------------------------------------------------------------------
    def ask(self, archive, n: int) -> Tensor:
        from evo.rl import actor_to_genome

        greedy = min(self.greedy_actor, n) if len(self.buffer) else 0
        parents = archive.sample(n - greedy, self.context.generator).to(self.context.device)
        out = [self._improve(parents, None)]
        if greedy:
            out.append(actor_to_genome(self.td3.actor).to(parents)[None].expand(greedy, -1))
        return torch.cat(out)

    def _improve(self, parents: Tensor, descriptors: Tensor | None) -> Tensor:
        if not len(self.buffer) or self.pg_steps == 0 or len(parents) == 0:
            return parents.clone()
        from evo.rl import pg_variation

        return pg_variation(parents, self.context.policy, self.td3.critic, self.buffer,
                            self.pg_steps, self.policy_lr, self.batch_size,
                            self.context.generator, descriptors=descriptors)

    # -- learning ----------------------------------------------------------------------------
    def tell(self, genomes: Tensor, evaluation: Evaluation, status: Tensor,
             rows: slice) -> dict[str, float]:
        self._push(evaluation, self._desc_prime(evaluation, rows))
        stats = {"critic_loss": math.nan, "actor_loss": math.nan}
        if len(self.buffer) and self.critic_steps:
            out = self.td3.train(self.buffer, self.critic_steps, self.batch_size)
            stats = {"critic_loss": float(out.get("critic_loss", math.nan)),
                     "actor_loss": float(out.get("actor_loss", math.nan))}
        stats["nan_updates"] = self.td3.nan_updates
        stats["replay_size"] = len(self.buffer)
        return stats

    def _desc_prime(self, evaluation: Evaluation, rows: slice) -> Tensor | None:
        return None

    def _push(self, evaluation: Evaluation, desc_prime: Tensor | None) -> None:
        tr = evaluation.transitions
        if tr is None:
            raise RuntimeError("policy-gradient emitters need the batch's transitions")
        # Failed evaluations (NaN actions, unstable physics) teach the critic nothing true.
        tr.valid = tr.valid & ~evaluation.failed.to(tr.valid.device)[tr.genome]
        self.buffer.add(tr, None if desc_prime is None else desc_prime[tr.genome])

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"td3": self.td3.state_dict(), "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.td3.load_state_dict(state["td3"])
        self.buffer.load_state_dict(state["buffer"])

    def checkpoint_state(self, directory: Path) -> dict:
        """Like :meth:`state_dict`, but the replay buffer goes to ``directory`` as the rows
        added since the previous checkpoint (a replay of up to 1e6 transitions would otherwise
        make every checkpoint a full rewrite); the state holds only its row count."""
        self._replay_chunks(directory).save(self.buffer)
        return {"td3": self.td3.state_dict(), "buffer_total_added": self.buffer.total_added}

    def load_checkpoint_state(self, state: dict, directory: Path) -> None:
        self.td3.load_state_dict(state["td3"])
        self._replay_chunks(directory).load(self.buffer, int(state["buffer_total_added"]))

    def _replay_chunks(self, directory: Path) -> "ReplayChunks":
        chunks = getattr(self, "_chunks", None)
        if chunks is None or chunks.directory != Path(directory):
            chunks = self._chunks = ReplayChunks(Path(directory))
        return chunks


class ReplayChunks:
    """A replay buffer on disk as consecutive chunks of rows, one written per checkpoint.

    ``replay_<since>_<total>.npz`` holds the rows a buffer gained between row counts ``since``
    and ``total`` (``ReplayBuffer.state_since``). Loading a checkpoint at row count N replays the
    chunks up to N; chunks past N belong to a run that was abandoned (killed before its next
    checkpoint landed, or a damaged checkpoint) and are removed. A chunk is deleted once every
    row in it has been overwritten in the ring as of the older of the two checkpoints the
    engine keeps.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.saved: list[int] = []  # row counts of the latest saves (newest last)

    def _files(self) -> list[tuple[int, int, Path]]:
        out = []
        for path in self.directory.glob("replay_*_*.npz"):
            since, total = path.stem.split("_")[1:]
            out.append((int(since), int(total), path))
        return sorted(out)

    def save(self, buffer) -> None:
        from archives import save_state

        self.directory.mkdir(parents=True, exist_ok=True)
        since = self.saved[-1] if self.saved else 0
        if buffer.total_added > since or not self._files():
            save_state(self.directory / f"replay_{since:013d}_{buffer.total_added:013d}.npz",
                       buffer.state_since(since))
        self.saved = (self.saved + [buffer.total_added])[-2:]
        keep_from = self.saved[0] - buffer.capacity  # rows the older kept checkpoint still needs
        for _, total, path in self._files():
            if total <= keep_from:
                path.unlink(missing_ok=True)

    def load(self, buffer, total_added: int) -> None:
        from archives import load_state

        buffer.total_added = 0  # empty (rows past total_added are never read)
        needed_from = max(0, total_added - buffer.capacity)
        for since, total, path in self._files():
            if total > total_added:
                path.unlink()  # an abandoned future: the run continues from total_added
                continue
            if since > buffer.total_added:
                if since > needed_from:
                    raise StateError(f"{path}: replay rows {buffer.total_added}..{since} are missing")
                buffer.total_added = since  # the rows before were pruned: the ring no longer has them
            if since == buffer.total_added:
                buffer.apply_delta(load_state(path))
        if buffer.total_added != total_added:
            raise StateError(f"{self.directory}: replay chunks reach row {buffer.total_added}, "
                             f"the checkpoint needs {total_added}")
        self.saved = [total_added]


class StateError(RuntimeError):
    """Replay chunks do not match the checkpoint that refers to them."""


class DCRLEmitter(PGEmitter):
    """DCG-ME / DCRL-ME's descriptor-conditioned emitter (see the module docstring).

    Parameters (beyond :class:`PGEmitter`'s, with the DCRL-ME paper's defaults)
    ----------
    injection : float
        Fraction of this emitter's share made by actor injection (DCRL-ME: 64 of 128 = 0.5;
        DCG-ME: 0).
    lengthscale : float
        l of the similarity S = exp(-||d - d'|| / l) on normalised descriptors.
    actor_evaluations : int
        DCG-ME: rollouts of the actor on archive descriptors per generation, counted against
        the budget and used as training data (DCRL-ME: 0).
    """

    conditioned = True

    def __init__(self, context: EmitterContext, injection: float = 0.5, lengthscale: float = 0.1,
                 actor_evaluations: int = 0, critic_steps: int = 3000, pg_steps: int = 150,
                 batch_size: int = 100, policy_lr: float = 5e-3, critic_lr: float = 3e-4,
                 actor_lr: float = 3e-4, critic_hidden: list = (256, 256),
                 discount: float = 0.99, tau: float = 0.005, policy_noise: float = 0.2,
                 noise_clip: float = 0.5, policy_delay: int = 2,
                 replay_size: int = 1_000_000) -> None:
        key = "map_elites.emitters"
        if not 0 <= injection <= 1:
            raise ValueError(f"{key}.injection: must be in [0, 1], got {injection!r}")
        if not lengthscale > 0:
            raise ValueError(f"{key}.lengthscale: must be > 0, got {lengthscale!r}")
        if not isinstance(actor_evaluations, int) or actor_evaluations < 0:
            raise ValueError(f"{key}.actor_evaluations: must be an integer >= 0, "
                             f"got {actor_evaluations!r}")
        self.injection, self.lengthscale = float(injection), float(lengthscale)
        self.actor_evaluations = actor_evaluations
        super().__init__(context, critic_steps, pg_steps, batch_size, policy_lr, critic_lr,
                         actor_lr, critic_hidden, discount, tau, policy_noise, noise_clip,
                         policy_delay, replay_size, greedy_actor=0)

    def _normalise(self, d: Tensor) -> Tensor:
        from evo.rl import normalise_descriptors

        return normalise_descriptors(d.to(self.context.device), self.context.task.descriptor_bounds)

    def ask(self, archive, n: int) -> Tensor:
        from evo.rl import fold_descriptor

        g, device = self.context.generator, self.context.device
        n_inject = int(round(n * self.injection)) if len(self.buffer) else 0
        cells = archive.sample_indices(n, g)
        parents = archive.retrieve(cells[: n - n_inject]).to(device)
        intended = archive.retrieve(cells, "measures").to(device, torch.float32)
        out = [self._improve(parents, self._normalise(intended[: n - n_inject]))]
        if n_inject:
            with torch.no_grad():
                out.append(fold_descriptor(self.td3.actor, self._normalise(intended[n - n_inject:])))
        self._intended = intended
        return torch.cat(out)

    def _desc_prime(self, evaluation: Evaluation, rows: slice) -> Tensor:
        desc_prime = evaluation.descriptors.clone()
        if self._intended is not None and rows.stop > rows.start:
            desc_prime[rows] = self._intended.to(desc_prime)
        return desc_prime

    def tell(self, genomes: Tensor, evaluation: Evaluation, status: Tensor,
             rows: slice) -> dict[str, float]:
        stats = {"actor_descriptor_error": math.nan} if self.actor_evaluations else {}
        if self.actor_evaluations and len(self.buffer) and len(self.context.archive):
            stats.update(self._evaluate_actor())
        stats.update(super().tell(genomes, evaluation, status, rows))
        self._intended = None
        return stats

    def _evaluate_actor(self) -> dict[str, float]:
        """DCG-ME: roll the actor out on archive descriptors (counted against the budget)."""
        from evo.rl import fold_descriptor

        archive = self.context.archive
        cells = archive.sample_indices(self.actor_evaluations, self.context.generator)
        targets = archive.retrieve(cells, "measures").to(self.context.device, torch.float32)
        with torch.no_grad():
            genomes = fold_descriptor(self.td3.actor, self._normalise(targets))
        ev = self.context.evaluate(genomes, transitions=True)
        self._push(ev, targets.to(ev.descriptors))
        ok = ~ev.failed
        error = (ev.descriptors[ok] - targets.cpu()[ok]).norm(dim=1).mean() if ok.any() else math.nan
        return {"actor_descriptor_error": float(error)}

    def export_policy(self, directory: Path) -> None:
        """Save the descriptor-conditioned actor as a standalone policy file (``policy.json``
        + ``policy.safetensors``, ``kind: dc_actor``) that ``neuroqd eval --distilled`` and
        ``evo.distill_io.load_distilled`` read without the run."""
        from evo.distill_io import save_distilled

        task = self.context.task
        try:
            from tasks import task_defaults

            names = task_defaults(task.name)
        except ValueError:  # a task made in Python, not in the registry
            names = {}
        params = {k: getattr(task, k) for k in names if hasattr(task, k)}
        save_distilled(directory, self.td3.actor, {
            "kind": "dc_actor",
            "descriptor_bounds": [[float(lo), float(hi)] for lo, hi in task.descriptor_bounds],
            "task": {"name": task.name, **params},
            "source": {"critic_steps": self.td3.num_critic_steps,
                       "transitions": self.buffer.total_added}})
