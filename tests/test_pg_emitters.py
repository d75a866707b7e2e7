"""PGA-ME and DCG-ME / DCRL-ME emitters: they run end to end, learn from every transition,
resume exactly (critics, optimisers, replay buffer, generators), keep the replay buffer out of
the checkpoints, and survive NaN losses."""

import csv
import math

import torch

from evo.build import build_run
from experiments.config import resolve
from run_helpers import split_and_resume


def raw(emitter: dict, evaluations=96, **over) -> dict:
    return {"algorithm": "map_elites", "task": {"name": "hard_maze", "episode_length": 30},
            "batch_size": 16, "budget": {"evaluations": evaluations}, "log_every": 1,
            "checkpoint_every": 1, "policy": {"hidden": [8]},
            "map_elites": {"emitters": [{"type": "isoline", "proportion": 0.5},
                                        {"proportion": 0.5, "critic_steps": 10, "pg_steps": 3,
                                         "batch_size": 32, "critic_hidden": [16, 16],
                                         "replay_size": 700, **emitter}]}, **over}


def _same_learner(a, b):
    assert all(torch.equal(x, y) for x, y in zip(a.td3.critic.parameters(), b.td3.critic.parameters()))
    assert all(torch.equal(x, y) for x, y in zip(a.td3.actor.parameters(), b.td3.actor.parameters()))
    sa, sb = a.buffer.state_dict(), b.buffer.state_dict()
    assert sa["total_added"] == sb["total_added"]
    assert all(torch.equal(sa[f], sb[f]) for f in a.buffer.FIELDS)


def test_pga_me_resumes_exactly(tmp_path):
    whole, resumed = split_and_resume(raw({"type": "pg", "greedy_actor": 1}), tmp_path, 48)
    _same_learner(whole.algorithm.emitters[1], resumed.algorithm.emitters[1])


def test_dcg_me_resumes_exactly_with_a_wrapped_ring_and_counts_actor_rollouts(tmp_path):
    spec = {"type": "dcrl", "injection": 0.0, "actor_evaluations": 4}
    whole, resumed = split_and_resume(raw(spec), tmp_path, 48)
    a, b = whole.algorithm.emitters[1], resumed.algorithm.emitters[1]
    _same_learner(a, b)
    assert a.buffer.total_added > a.buffer.capacity  # the ring wrapped, and chunks were pruned
    # 5 generations of 16, and 4 actor rollouts in each but the first: 96, the budget
    assert whole.algorithm.iteration == 5 and whole.algorithm.evaluations == 5 * 16 + 4 * 4
    with open(tmp_path / "whole" / "metrics.csv") as f:
        errors = [float(r["actor_descriptor_error"]) for r in csv.DictReader(f)]
    assert math.isnan(errors[0]) and all(math.isfinite(e) for e in errors[1:])


def test_dcrl_me_injects_actor_offspring_and_learns_every_transition():
    config = resolve(raw({"type": "dcrl", "injection": 0.5}, evaluations=64, checkpoint_every=0))
    engine = build_run(config, progress=False)
    engine.run()
    emitter = engine.algorithm.emitters[1]
    # every step of every episode is in the buffer: 4 generations x 16 genomes x 30 steps
    assert emitter.buffer.total_added == 4 * 16 * 30
    assert emitter.td3.num_critic_steps == 4 * 10
    genomes = engine.algorithm.ask()
    assert genomes.shape == (16, engine.algorithm.archive.solution_dim)
    from evo.rl import fold_descriptor, normalise_descriptors

    # the last 4 offspring are the actor folded onto the descriptors the emitter intended
    intended = emitter._intended[-4:]
    expected = fold_descriptor(emitter.td3.actor, normalise_descriptors(
        intended, engine.algorithm.task.descriptor_bounds))
    assert torch.allclose(genomes[-4:], expected)


def test_checkpoints_do_not_rewrite_the_replay_buffer(tmp_path):
    spec = {"type": "pg", "replay_size": 100_000}
    engine = build_run(resolve(raw(spec, evaluations=80)), tmp_path, progress=False)
    engine.run()
    ckpts = sorted((tmp_path / "checkpoints").glob("ckpt_*.npz"))
    chunks = sorted((tmp_path / "checkpoints" / "emitter_1").glob("replay_*.npz"))
    buffer_bytes = sum(t.numel() * 4 for k, t in engine.algorithm.emitters[1].buffer.state_dict().items()
                       if isinstance(t, torch.Tensor))
    assert len(chunks) == 5  # one chunk per checkpoint, each with that generation's rows only
    assert all(c.stat().st_size < 0.3 * buffer_bytes for c in chunks)
    assert all(c.stat().st_size < 0.3 * buffer_bytes for c in ckpts)


def test_nan_losses_are_skipped_counted_and_never_reach_the_archive(tmp_path):
    config = resolve(raw({"type": "pg"}, evaluations=64, checkpoint_every=0))

    def poison(engine, row):  # NaN rewards in the replay buffer after the first generation
        if engine.algorithm.iteration == 1:
            # rows 300-399 of the 700-row ring survive the next generation's 480 new rows
            engine.algorithm.emitters[1].buffer._data["reward"][300:400] = float("nan")

    engine = build_run(config, tmp_path, progress=False, callbacks=[poison])
    summary = engine.run()
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert int(rows[0]["nan_updates"]) == 0 and int(rows[-1]["nan_updates"]) > 0
    assert summary["evaluations"] == 64
    elites = engine.algorithm.archive.elites()
    assert torch.isfinite(elites["genomes"]).all() and torch.isfinite(elites["fitness"]).all()


def test_dcrl_me_killed_with_sigkill_then_resumed_equals_an_uninterrupted_run(tmp_path):
    from run_helpers import sigkill_then_resume

    e = "map_elites.emitters.1."
    sets = ["batch_size=16", "budget.evaluations=192", "task.episode_length=30",
            "policy.hidden=[8]", "checkpoint_every=2", "log_every=1", f"{e}critic_steps=10",
            f"{e}pg_steps=3", f"{e}replay_size=700", f"{e}critic_hidden=[16,16]"]
    sigkill_then_resume(tmp_path, ["dcrl_me_hard_maze", *[a for s in sets for a in ("--set", s)]],
                        checkpoints=2)
    # the descriptor-conditioned actor of the resumed run is the uninterrupted run's
    from evo.distill_io import load_distilled

    a, _ = load_distilled(tmp_path / "full" / "distilled")
    b, _ = load_distilled(tmp_path / "killed" / "distilled")
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
