"""evo.rl: TD3 networks, replay buffer, TD3 learner and the batched policy-gradient variation."""

from __future__ import annotations

import copy
import io

import pytest
import torch

from evo.policies import MLPPolicy
from evo.rl import (
    TD3,
    Actor,
    Critic,
    DescriptorConditionedActor,
    DescriptorConditionedCritic,
    ReplayBuffer,
    actor_to_genome,
    fold_descriptor,
    make_adam,
    normalise_descriptors,
    pg_variation,
)
from tasks.base import Transitions

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def make_transitions(n, obs_dim=3, action_dim=2, desc_dim=2, seed=0, valid=None, start=0.0):
    """n rows whose reward is ``start + row`` (rows are recognisable after the ring)."""
    g = torch.Generator().manual_seed(seed)
    return Transitions(
        obs=torch.randn(n, obs_dim, generator=g),
        action=torch.rand(n, action_dim, generator=g) * 2 - 1,
        reward=start + torch.arange(n, dtype=torch.float32),
        next_obs=torch.randn(n, obs_dim, generator=g),
        terminated=torch.rand(n, generator=g) < 0.2,
        truncated=torch.rand(n, generator=g) < 0.2,
        valid=torch.ones(n, dtype=torch.bool) if valid is None else valid,
        genome=torch.arange(n) // 4,
        descriptor=torch.rand(n, desc_dim, generator=g),
    )


def same_tensors(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def buffers_equal(a: ReplayBuffer, b: ReplayBuffer) -> bool:
    return a.total_added == b.total_added and all(
        torch.equal(a._data[f][: len(a)], b._data[f][: len(b)]) for f in ReplayBuffer.FIELDS
    )


# ------------------------------------------------------------------ networks


def test_network_shapes():
    critic = Critic(5, 2)
    q1, q2 = critic(torch.randn(7, 5), torch.randn(7, 2))
    assert q1.shape == q2.shape == (7,)
    assert critic.q1(torch.randn(3, 7, 5), torch.randn(3, 7, 2)).shape == (3, 7)
    dc = DescriptorConditionedCritic(5, 2, 3, hidden=(16, 16))
    q1, q2 = dc(torch.randn(7, 5), torch.randn(7, 2), torch.randn(7, 3))
    assert q1.shape == q2.shape == (7,)
    with pytest.raises(ValueError):
        dc(torch.randn(7, 5), torch.randn(7, 2))
    actor = Actor(5, 2, hidden=(16, 16))
    a = actor(torch.randn(7, 5))
    assert a.shape == (7, 2) and a.abs().max() <= 1
    dca = DescriptorConditionedActor(5, 2, 3, hidden=(16, 16))
    assert dca(torch.randn(7, 5), torch.randn(7, 3)).shape == (7, 2)


def test_actor_genome_is_an_mlp_policy_member():
    actor = Actor(5, 2, hidden=(16, 8), activation="relu", generator=3)
    genome = actor_to_genome(actor)
    policy = MLPPolicy(5, 2, (16, 8), "relu", "tanh")
    assert genome.shape == (policy.num_params,) and actor.policy.num_params == policy.num_params
    obs = torch.randn(4, 5)
    torch.testing.assert_close(policy(genome.expand(4, -1), obs), actor(obs).detach())


def test_same_seed_same_networks_and_global_rng_untouched():
    state = torch.get_rng_state()
    for cls, args in [(Critic, (5, 2)), (DescriptorConditionedCritic, (5, 2, 3)),
                      (Actor, (5, 2)), (DescriptorConditionedActor, (5, 2, 3))]:
        a, b, c = cls(*args, generator=7), cls(*args, generator=torch.Generator().manual_seed(7)), cls(*args, generator=8)
        assert same_tensors(a.parameters(), b.parameters())
        assert not same_tensors(a.parameters(), c.parameters())
    assert torch.equal(state, torch.get_rng_state())
    # torch's default Linear distribution: |w| <= 1/sqrt(fan_in)
    w = Critic(5, 2, generator=0).q1_net[0].weight
    assert w.abs().max() <= 1 / 7 ** 0.5 and w.std() > 0.1


def test_fold_descriptor_matches_conditioned_actor():
    actor = DescriptorConditionedActor(6, 3, 2, hidden=(16, 16), generator=1)
    d = torch.rand(5, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    genomes = fold_descriptor(actor, d)
    policy = MLPPolicy(6, 3, (16, 16), "tanh", "tanh")
    assert genomes.shape == (5, policy.num_params) and genomes.is_contiguous()
    obs = torch.randn(5, 6)
    torch.testing.assert_close(policy(genomes, obs), actor(obs, d).detach(), atol=1e-6, rtol=0)


def test_normalise_descriptors():
    d = torch.tensor([[0.0, -30.0], [1.0, 30.0], [0.5, 0.0]])
    out = normalise_descriptors(d, [(0.0, 1.0), (-30.0, 30.0)])
    torch.testing.assert_close(out, torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]))


# ------------------------------------------------------------------ replay buffer


def test_replay_adds_valid_rows_only():
    valid = torch.tensor([True, False, True, True, False, True])
    t = make_transitions(6, valid=valid)
    buf = ReplayBuffer(10, 3, 2, 2)
    assert buf.add(t) == 4 and len(buf) == 4
    assert torch.equal(buf._data["reward"][:4], torch.tensor([0.0, 2.0, 3.0, 5.0]))
    assert torch.equal(buf._data["desc_prime"][:4], t.descriptor[valid])  # default: S = 1
    assert torch.equal(buf._data["terminated"][:4], t.terminated[valid].float())
    dp = torch.full((6, 2), 0.25)
    buf.add(t, desc_prime=dp)
    assert torch.equal(buf._data["desc_prime"][4:8], dp[valid])
    with pytest.raises(ValueError):
        buf.add(t, desc_prime=torch.zeros(4, 2))


def test_replay_ring_wraps():
    buf = ReplayBuffer(7, 3, 2, 2)
    buf.add(make_transitions(5))
    buf.add(make_transitions(5, start=5))
    assert len(buf) == 7 and buf.total_added == 10 and buf.position == 3
    assert buf._data["reward"].tolist() == [7, 8, 9, 3, 4, 5, 6]
    buf.add(make_transitions(16, start=10))  # more than capacity at once: the last 7 stay
    assert buf.total_added == 26 and buf.position == 5
    assert all(buf._data["reward"][k % 7].item() == k for k in range(19, 26))  # row k at k % capacity


def test_replay_sampling_is_deterministic():
    buf = ReplayBuffer(100, 3, 2, 2)
    t = make_transitions(40)
    buf.add(t)
    a = buf.sample(32, torch.Generator().manual_seed(3))
    b = buf.sample(32, torch.Generator().manual_seed(3))
    assert all(torch.equal(a[f], b[f]) for f in ReplayBuffer.FIELDS)
    assert a["obs"].shape == (32, 3) and a["reward"].shape == (32,) and a["desc"].shape == (32, 2)
    rows = a["reward"].long()  # reward = row number here: each sample is a whole stored row
    assert torch.equal(a["obs"], t.obs[rows]) and torch.equal(a["next_obs"], t.next_obs[rows])
    only = buf.sample(32, torch.Generator().manual_seed(3), fields=("obs",))
    assert list(only) == ["obs"] and torch.equal(only["obs"], a["obs"])
    with pytest.raises(ValueError):
        ReplayBuffer(5, 3, 2, 2).sample(1, torch.Generator())


def test_replay_state_round_trip_and_deltas():
    buf = ReplayBuffer(9, 3, 2, 2)
    full_copy = ReplayBuffer(9, 3, 2, 2)
    incremental = ReplayBuffer(9, 3, 2, 2)
    incremental.load_state_dict(buf.state_dict())  # empty base
    saved_at = 0
    for i, n in enumerate([4, 3, 5, 0, 8, 12, 2]):  # wraps, and one chunk exceeds capacity
        buf.add(make_transitions(n, seed=i, start=100 * i), desc_prime=torch.full((n, 2), float(i)))
        if i % 2 == 1 or i == 6:  # a checkpoint every other add: deltas span several adds
            state = torch.load(_save(buf.state_dict()), weights_only=True)
            full_copy.load_state_dict(state)
            delta = torch.load(_save(buf.state_since(saved_at)), weights_only=True)
            incremental.apply_delta(delta)
            saved_at = buf.total_added
            assert buffers_equal(buf, full_copy) and buffers_equal(buf, incremental)
            g1, g2 = torch.Generator().manual_seed(i), torch.Generator().manual_seed(i)
            s1, s2 = buf.sample(16, g1), incremental.sample(16, g2)
            assert all(torch.equal(s1[f], s2[f]) for f in ReplayBuffer.FIELDS)
    assert buf.total_added == 34
    with pytest.raises(ValueError):  # a delta applied to the wrong base
        incremental.apply_delta(delta)


def _save(obj) -> io.BytesIO:
    f = io.BytesIO()
    torch.save(obj, f)
    f.seek(0)
    return f


# ------------------------------------------------------------------ TD3


def bandit_buffer(n=2000, obs_dim=2, seed=0):
    """A one-step bandit: reward 3 - (a - 0.5)^2, every step terminal; the best action is 0.5."""
    g = torch.Generator().manual_seed(seed)
    action = torch.rand(n, 1, generator=g) * 2 - 1
    t = Transitions(
        obs=torch.randn(n, obs_dim, generator=g), action=action,
        reward=3 - (action[:, 0] - 0.5) ** 2, next_obs=torch.randn(n, obs_dim, generator=g),
        terminated=torch.ones(n, dtype=torch.bool), truncated=torch.zeros(n, dtype=torch.bool),
        valid=torch.ones(n, dtype=torch.bool), genome=torch.zeros(n, dtype=torch.long),
        descriptor=torch.zeros(n, 1),
    )
    buf = ReplayBuffer(n, obs_dim, 1, 1)
    buf.add(t)
    return buf


def small_td3(seed=0, conditioned=False, device="cpu", **kw):
    if conditioned:
        critic = DescriptorConditionedCritic(3, 2, 2, hidden=(32, 32), generator=seed)
        actor = DescriptorConditionedActor(3, 2, 2, hidden=(16, 16), generator=seed + 1)
        kw = {"lengthscale": 0.1, "descriptor_bounds": [(0.0, 1.0), (0.0, 1.0)], **kw}
    else:
        critic = Critic(3, 2, hidden=(32, 32), generator=seed)
        actor = Actor(3, 2, hidden=(16, 16), generator=seed + 1)
    return TD3(critic.to(device), actor.to(device), generator=seed + 2, **kw)


def random_buffer(n=64, seed=0):
    buf = ReplayBuffer(128, 3, 2, 2)
    g = torch.Generator().manual_seed(seed + 100)
    buf.add(make_transitions(n, seed=seed), desc_prime=torch.rand(n, 2, generator=g))
    return buf


def test_td3_bandit_actor_moves_to_the_best_action():
    buf = bandit_buffer()
    critic = Critic(2, 1, hidden=(64, 64), generator=0)
    actor = Actor(2, 1, hidden=(32, 32), generator=1)
    td3 = TD3(critic, actor, critic_lr=1e-3, actor_lr=1e-3, generator=2)
    obs = torch.randn(256, 2, generator=torch.Generator().manual_seed(9))
    before = (actor(obs).detach() - 0.5).abs().mean().item()
    info = td3.train(buf, 1200, batch_size=100)
    after = (actor(obs).detach() - 0.5).abs().mean().item()
    assert info["nan_updates"] == 0 and info["actor_updates"] == 600 and td3.num_critic_steps == 1200
    assert after < 0.1 < before, (before, after)
    # Q at the best action approaches the true value 3 (terminal steps: no bootstrap)
    q1, q2 = critic(obs, torch.full((256, 1), 0.5))
    assert abs(q1.mean().item() - 3) < 0.3 and abs(q2.mean().item() - 3) < 0.3


def test_td3_similarity_scaled_reward():
    td3 = small_td3(conditioned=True, reward_offset=1.0)
    batch = {"reward": torch.tensor([1.0, -3.0, 2.0]),
             "desc": torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.0, 0.0]]),
             "desc_prime": torch.tensor([[0.5, 0.5], [0.5, 0.5], [0.03, 0.04]])}
    reward, (dp,) = td3._prepare(batch)
    # offset then clip at 0, then S = exp(-||d - d'||_2 / l) on [-1, 1]-normalised descriptors
    expected = torch.tensor([2.0, 0.0, 3.0 * torch.exp(torch.tensor(-0.1 / 0.1)).item()])
    torch.testing.assert_close(reward, expected)
    torch.testing.assert_close(dp, normalise_descriptors(batch["desc_prime"], [(0, 1), (0, 1)]))
    plain, cond = small_td3(reward_offset=1.0)._prepare(batch)
    assert cond == () and torch.equal(plain, torch.tensor([2.0, 0.0, 3.0]))
    with pytest.raises(ValueError):  # lengthscale must match the networks
        TD3(Critic(3, 2), Actor(3, 2), lengthscale=0.1)


def test_td3_truncated_steps_are_masked():
    td3 = small_td3()
    batch = random_buffer().sample(32, torch.Generator().manual_seed(0))
    batch["truncated"] = (torch.arange(32) < 16).float()
    changed = dict(batch, reward=batch["reward"] + 100.0 * batch["truncated"])

    def loss(b):
        td3.generator.manual_seed(5)  # same target policy noise for both batches
        reward, cond = td3._prepare(b)
        return td3._critic_loss(b, reward, cond)

    # the truncated rows' targets do not enter the critic error...
    assert torch.equal(loss(batch), loss(changed))
    td3.mask_truncated = False  # ...unless masking is turned off
    assert not torch.equal(loss(batch), loss(changed))


@pytest.mark.parametrize("conditioned", [False, True])
def test_td3_state_round_trip_continues_identically(conditioned):
    buf = random_buffer()
    a = small_td3(conditioned=conditioned)
    a.train(buf, 5, batch_size=16)
    state = torch.load(_save(a.state_dict()), weights_only=True)
    assert 0 in state["critic_optimizer"]["state"]  # Adam's integer keys, as torch gives them
    a.train(buf, 5, batch_size=16)
    b = small_td3(seed=10, conditioned=conditioned)
    b.load_state_dict(state)
    b.train(buf, 5, batch_size=16)
    for net in ("critic", "actor", "critic_target", "actor_target"):
        assert same_tensors(getattr(a, net).parameters(), getattr(b, net).parameters()), net
    sa, sb = a.actor_optimizer.state_dict()["state"], b.actor_optimizer.state_dict()["state"]
    assert all(torch.equal(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"]) for k in sa)
    assert (a.num_critic_steps, a.num_actor_steps) == (b.num_critic_steps, b.num_actor_steps) == (10, 5)


def test_td3_non_finite_batch_is_skipped_and_counted():
    td3 = small_td3()
    good = random_buffer()
    td3.train(good, 4, batch_size=16)  # targets now differ from the online networks
    bad = random_buffer()
    bad._data["obs"][:] = float("nan")
    before = copy.deepcopy(td3.state_dict())
    info = td3.train(bad, 4, batch_size=16)
    assert info["nan_updates"] == 6 and info["actor_updates"] == 0  # 4 critic + 2 actor
    after = td3.state_dict()
    for net in ("critic", "actor", "critic_target", "actor_target"):
        assert all(torch.equal(before[net][k], after[net][k]) for k in before[net]), net
    for opt in ("critic_optimizer", "actor_optimizer"):
        sb, sa = before[opt]["state"], after[opt]["state"]
        assert all(torch.equal(sb[i][k], sa[i][k]) for i in sb for k in sb[i]), opt
    assert td3.nan_updates == 6 and td3.num_critic_steps == 8
    info = td3.train(good, 4, batch_size=16)  # training goes on
    assert info["nan_updates"] == 0 and info["actor_updates"] == 2
    assert torch.isfinite(torch.nn.utils.parameters_to_vector(td3.critic.parameters())).all()


# ------------------------------------------------------------------ policy-gradient variation


def test_forward_batched_matches_separate_forwards():
    policy = MLPPolicy(5, 3, (8, 6), "tanh", "tanh")
    params = policy.init(4, torch.Generator().manual_seed(0)).requires_grad_(True)
    obs = torch.randn(4, 7, 5)
    out = policy.forward_batched(params, obs)
    assert out.shape == (4, 7, 3)
    with torch.no_grad():
        for p in range(4):
            torch.testing.assert_close(out[p], policy(params[p].expand(7, -1), obs[p]), atol=1e-6, rtol=0)
    out.sum().backward()
    module = policy.to_module()
    torch.nn.utils.vector_to_parameters(params[2].detach(), module.parameters())
    module(obs[2]).sum().backward()
    grad2 = torch.cat([p.grad.reshape(-1) for p in module.parameters()])
    torch.testing.assert_close(params.grad[2], grad2, atol=1e-6, rtol=0)


def test_one_adam_over_rows_is_independent_adams():
    # make_adam's fused Adam over the (P, D) stack (what pg_variation runs) against P plain
    # torch Adams, one per row: the same update rule, row by row.
    P, D, g = 5, 11, torch.Generator().manual_seed(0)
    start = torch.randn(P, D, generator=g)
    stacked = start.clone().requires_grad_(True)
    rows = [start[p].clone().requires_grad_(True) for p in range(P)]
    opt = make_adam([stacked], 1e-2)
    assert opt.defaults["fused"]
    opts = [torch.optim.Adam([r], lr=1e-2) for r in rows]
    for _ in range(20):
        grad = torch.randn(P, D, generator=g) * torch.logspace(-3, 2, P).unsqueeze(1)
        stacked.grad = grad.clone()
        opt.step()
        for p in range(P):
            rows[p].grad = grad[p].clone()
            opts[p].step()
    torch.testing.assert_close(stacked.detach(), torch.stack(rows).detach(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("conditioned", [False, True])
def test_batched_pg_equals_sequential(conditioned):
    buf = random_buffer()
    policy = MLPPolicy(3, 2, (16, 16), "tanh", "tanh")
    genomes = policy.init(4, torch.Generator().manual_seed(1))
    if conditioned:
        critic = DescriptorConditionedCritic(3, 2, 2, hidden=(32, 32), generator=2)
        desc = torch.rand(4, 2) * 2 - 1
    else:
        critic, desc = Critic(3, 2, hidden=(32, 32), generator=2), None
    kw = dict(steps=12, lr=5e-3, batch_size=16)
    batched = pg_variation(genomes, policy, critic, buf, generator=torch.Generator().manual_seed(3),
                           descriptors=desc, **kw)
    assert batched.shape == genomes.shape and not batched.requires_grad
    assert (batched - genomes).abs().max() > 1e-3  # they moved
    for p in range(4):
        one = pg_variation(genomes[p : p + 1], policy, critic, buf, generator=torch.Generator().manual_seed(3),
                           descriptors=None if desc is None else desc[p : p + 1], **kw)
        torch.testing.assert_close(batched[p : p + 1], one, atol=1e-5, rtol=0)
    assert all(p.grad is None for p in critic.parameters())


def test_pg_improves_q():
    buf = random_buffer()
    policy = MLPPolicy(3, 2, (16, 16), "tanh", "tanh")
    critic = Critic(3, 2, hidden=(32, 32), generator=2)
    genomes = policy.init(6, torch.Generator().manual_seed(1))
    out = pg_variation(genomes, policy, critic, buf, 30, 5e-3, 32, torch.Generator().manual_seed(0))
    obs = buf._data["obs"][: len(buf)].expand(6, -1, -1)
    with torch.no_grad():
        q_before = critic.q1(obs, policy.forward_batched(genomes, obs)).mean(1)
        q_after = critic.q1(obs, policy.forward_batched(out, obs)).mean(1)
    assert (q_after > q_before).all()


# ------------------------------------------------------------------ CUDA


@CUDA
def test_cuda_matches_cpu():
    buf_cpu = random_buffer()
    buf_gpu = ReplayBuffer(128, 3, 2, 2, device="cuda")
    buf_gpu.load_state_dict(buf_cpu.state_dict())
    s_cpu = buf_cpu.sample(16, torch.Generator().manual_seed(0))
    s_gpu = buf_gpu.sample(16, torch.Generator().manual_seed(0))
    assert all(torch.equal(s_cpu[f], s_gpu[f].cpu()) for f in ReplayBuffer.FIELDS)
    for conditioned in (False, True):
        a, b = small_td3(conditioned=conditioned), small_td3(conditioned=conditioned, device="cuda")
        a.train(buf_cpu, 10, batch_size=16)
        b.train(buf_gpu, 10, batch_size=16)
        for x, y in zip(a.actor.parameters(), b.actor.parameters()):
            torch.testing.assert_close(x, y.cpu(), atol=1e-4, rtol=1e-4)
    policy = MLPPolicy(3, 2, (16, 16), "tanh", "tanh")
    genomes = policy.init(4, torch.Generator().manual_seed(1))
    critic = Critic(3, 2, hidden=(32, 32), generator=2)
    out_cpu = pg_variation(genomes, policy, critic, buf_cpu, 10, 5e-3, 16, torch.Generator().manual_seed(3))
    out_gpu = pg_variation(genomes.cuda(), policy, critic.cuda(), buf_gpu, 10, 5e-3, 16,
                           torch.Generator().manual_seed(3))
    torch.testing.assert_close(out_cpu, out_gpu.cpu(), atol=1e-4, rtol=1e-4)
