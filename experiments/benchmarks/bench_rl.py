"""TD3 critic training and batched policy-gradient variation throughput (DCRL-ME sizes).

(a) Critic training: ``evo.rl.TD3.train`` against a plain-torch TD3 update loop written here
    (CleanRL style) with the same sizes: obs 27 + a 2-d target descriptor, action 8, twin
    (256, 256) critics, a (128, 128) actor, minibatch 100, policy delay 2. Goal: >= 0.9x.
(b) PG variation: ``evo.rl.pg_variation`` of 64 offspring x 150 steps ((128, 128) policies,
    obs 27, minibatch 100, descriptor-conditioned critic) all at once, against the same
    offspring one after another: the same function with P = 1 (the fair baseline), and a
    plain per-offspring loop over an ``nn.Module`` policy with ``loss.backward()`` (what one
    would write without batching). Goal: >= 5x.
(c) With ``--compile``: ``TD3.train`` with its critic and actor losses wrapped in
    ``torch.compile`` (forward and backward graphs by Inductor) against the eager ``TD3.train``,
    and the time the first steps take to compile. Not used by the library: see
    docs/benchmarks.md for why.

Each pair is timed side by side in the same run (alternating, best of ``--repeats``), so the
ratios hold on a shared machine even when the absolute numbers do not.

On CPU the default is ONE torch thread: on the shared 2-core test machine, two OpenMP threads
competing with other jobs made every figure 10-50x slower and the ratios meaningless
(measured: 6 vs 231 critic steps/s). Pass ``--threads 2`` on an idle machine.

    python experiments/benchmarks/bench_rl.py [--device cpu|cuda] [--quick] [--repeats 2]
                                              [--threads N] [--compile]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch import nn

from evo.policies import MLPPolicy
from evo.rl import (
    TD3,
    DescriptorConditionedActor,
    DescriptorConditionedCritic,
    ReplayBuffer,
    pg_variation,
)
from tasks.base import Transitions

OBS, ACTION, DESC, MINIBATCH = 27, 8, 2, 100


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _buffer(rows: int, device: torch.device) -> ReplayBuffer:
    g = torch.Generator().manual_seed(0)
    t = Transitions(
        obs=torch.randn(rows, OBS, generator=g), action=torch.rand(rows, ACTION, generator=g) * 2 - 1,
        reward=torch.randn(rows, generator=g), next_obs=torch.randn(rows, OBS, generator=g),
        terminated=torch.rand(rows, generator=g) < 0.01, truncated=torch.rand(rows, generator=g) < 0.004,
        valid=torch.ones(rows, dtype=torch.bool), genome=torch.zeros(rows, dtype=torch.long),
        descriptor=torch.rand(rows, DESC, generator=g),
    )
    buf = ReplayBuffer(rows, OBS, ACTION, DESC, device=device)
    buf.add(t, desc_prime=torch.rand(rows, DESC, generator=g))
    return buf


class PlainTD3:
    """The baseline: a descriptor-conditioned TD3 update as one would write it in plain torch."""

    def __init__(self, buf: ReplayBuffer, device: torch.device) -> None:
        def mlp(i, o, h, act, out=None):
            layers, sizes = [], [i, *h, o]
            for k in range(len(sizes) - 1):
                layers.append(nn.Linear(sizes[k], sizes[k + 1]))
                if k < len(sizes) - 2:
                    layers.append(act())
            if out is not None:
                layers.append(out())
            return nn.Sequential(*layers).to(device)

        torch.manual_seed(0)
        self.q1 = mlp(OBS + ACTION + DESC, 1, (256, 256), nn.ReLU)
        self.q2 = mlp(OBS + ACTION + DESC, 1, (256, 256), nn.ReLU)
        self.pi = mlp(OBS + DESC, ACTION, (128, 128), nn.Tanh, nn.Tanh)
        self.q1_t, self.q2_t, self.pi_t = (
            mlp(OBS + ACTION + DESC, 1, (256, 256), nn.ReLU), mlp(OBS + ACTION + DESC, 1, (256, 256), nn.ReLU),
            mlp(OBS + DESC, ACTION, (128, 128), nn.Tanh, nn.Tanh))
        for t, s in ((self.q1_t, self.q1), (self.q2_t, self.q2), (self.pi_t, self.pi)):
            t.load_state_dict(s.state_dict())
        self.q_opt = torch.optim.Adam([*self.q1.parameters(), *self.q2.parameters()], lr=3e-4)
        self.pi_opt = torch.optim.Adam(self.pi.parameters(), lr=3e-4)
        self.data = buf._data
        self.size = len(buf)
        self.device = device
        self.step = 0

    def train(self, steps: int) -> None:
        d = self.data
        for _ in range(steps):
            idx = torch.randint(0, self.size, (MINIBATCH,), device=self.device)
            obs, act, rew = d["obs"][idx], d["action"][idx], d["reward"][idx]
            nobs, term, trunc = d["next_obs"][idx], d["terminated"][idx], d["truncated"][idx]
            desc, dp = d["desc"][idx] * 2 - 1, d["desc_prime"][idx] * 2 - 1
            with torch.no_grad():
                r = torch.exp(-torch.linalg.vector_norm(desc - dp, dim=-1) / 0.1) * rew.clamp(min=0)
                noise = (torch.randn_like(act) * 0.2).clamp(-0.5, 0.5)
                na = (self.pi_t(torch.cat([nobs, dp], -1)) + noise).clamp(-1, 1)
                x = torch.cat([nobs, na, dp], -1)
                y = r + (1 - term) * 0.99 * torch.minimum(self.q1_t(x), self.q2_t(x)).squeeze(-1)
            x = torch.cat([obs, act, dp], -1)
            mask = 1 - trunc
            loss = (((self.q1(x).squeeze(-1) - y) ** 2 + (self.q2(x).squeeze(-1) - y) ** 2) * mask).mean()
            self.q_opt.zero_grad()
            loss.backward()
            self.q_opt.step()
            self.step += 1
            if self.step % 2 == 0:
                a = self.pi(torch.cat([obs, dp], -1))
                pi_loss = -self.q1(torch.cat([obs, a, dp], -1)).mean()
                self.pi_opt.zero_grad()
                pi_loss.backward()
                self.pi_opt.step()
                with torch.no_grad():
                    for t, s in ((self.q1_t, self.q1), (self.q2_t, self.q2), (self.pi_t, self.pi)):
                        for tp, sp in zip(t.parameters(), s.parameters()):
                            tp.mul_(1 - 0.005).add_(0.005 * sp)


def _td3(device: torch.device) -> TD3:
    critic = DescriptorConditionedCritic(OBS, ACTION, DESC, generator=0).to(device)
    actor = DescriptorConditionedActor(OBS, ACTION, DESC, generator=1).to(device)
    return TD3(critic, actor, lengthscale=0.1, descriptor_bounds=[(0.0, 1.0)] * DESC, generator=2)


def bench_critic(steps: int, repeats: int, device: torch.device) -> tuple[float, float]:
    buf = _buffer(100_000, device)
    ours = _td3(device)
    plain = PlainTD3(buf, device)
    ours.train(buf, 20, MINIBATCH)  # warm-up
    plain.train(20)
    best_ours = best_plain = float("inf")
    for _ in range(repeats):  # alternate so both see the same machine load
        best_ours = min(best_ours, _timed(lambda: ours.train(buf, steps, MINIBATCH), device))
        best_plain = min(best_plain, _timed(lambda: plain.train(steps), device))
    return steps / best_ours, steps / best_plain


def bench_compiled(steps: int, repeats: int, device: torch.device) -> tuple[float, float, float]:
    """Eager and compiled ``TD3.train`` steps/s, and the compiled one's warm-up seconds."""
    buf = _buffer(100_000, device)
    eager, compiled = _td3(device), _td3(device)
    compiled._critic_loss = torch.compile(compiled._critic_loss)
    compiled._actor_loss = torch.compile(compiled._actor_loss)
    warmup = _timed(lambda: compiled.train(buf, 20, MINIBATCH), device)
    eager.train(buf, 20, MINIBATCH)
    best_e = best_c = float("inf")
    for _ in range(repeats):
        best_e = min(best_e, _timed(lambda: eager.train(buf, steps, MINIBATCH), device))
        best_c = min(best_c, _timed(lambda: compiled.train(buf, steps, MINIBATCH), device))
    return steps / best_e, steps / best_c, warmup


def bench_pg(offspring: int, steps: int, repeats: int, device: torch.device) -> tuple[float, float]:
    buf = _buffer(100_000, device)
    policy = MLPPolicy(OBS, ACTION, (128, 128), "tanh", "tanh")
    genomes = policy.init(offspring, torch.Generator().manual_seed(0), device=device)
    critic = DescriptorConditionedCritic(OBS, ACTION, DESC, generator=0).to(device)
    desc = torch.rand(offspring, DESC, generator=torch.Generator().manual_seed(1)).to(device) * 2 - 1

    def batched():
        pg_variation(genomes, policy, critic, buf, steps, 5e-3, MINIBATCH,
                     torch.Generator().manual_seed(0), descriptors=desc)

    def sequential():
        for p in range(offspring):
            pg_variation(genomes[p : p + 1], policy, critic, buf, steps, 5e-3, MINIBATCH,
                         torch.Generator().manual_seed(0), descriptors=desc[p : p + 1])

    def plain_loop():
        g = torch.Generator().manual_seed(0)
        for p in range(offspring):
            module = policy.to_module().to(device)
            nn.utils.vector_to_parameters(genomes[p], module.parameters())
            opt = torch.optim.Adam(module.parameters(), lr=5e-3)
            for _ in range(steps):
                obs = buf.sample(MINIBATCH, g, fields=("obs",))["obs"]
                loss = -critic.q1(obs, module(obs), desc[p].expand(MINIBATCH, -1)).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        critic.zero_grad(set_to_none=True)

    pg_variation(genomes, policy, critic, buf, 3, 5e-3, MINIBATCH, torch.Generator(), descriptors=desc)
    best_b = best_s = best_p = float("inf")
    for _ in range(repeats):
        best_b = min(best_b, _timed(batched, device))
        best_s = min(best_s, _timed(sequential, device))
        best_p = min(best_p, _timed(plain_loop, device))
    return best_b, best_s, best_p


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--quick", action="store_true",
                        help="300 critic steps, 16 offspring x 30 PG steps, 1 repeat")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs (default 2)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads on CPU (default 1: see the module docstring)")
    parser.add_argument("--compile", action="store_true",
                        help="also (c): TD3.train with torch.compile'd losses against eager")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.exit(2, "--device: cuda is not available here; accepted: cpu\n")
    if args.threads is None and device.type == "cpu":
        args.threads = 1
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    critic_steps = 300 if args.quick else 3000
    offspring, pg_steps = (16, 30) if args.quick else (64, 150)
    repeats = 1 if args.quick else args.repeats

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"evo.rl benchmark; device {name}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} cpus, load average {load}; best of {repeats}, wall time")

    ours, plain = bench_critic(critic_steps, repeats, device)
    print(f"(a) TD3 critic steps/s, DC critic (256,256) + actor (128,128), obs {OBS}+{DESC}, action "
          f"{ACTION}, minibatch {MINIBATCH}, {critic_steps} steps: evo.rl.TD3 {ours:,.0f}  plain torch "
          f"{plain:,.0f}  ratio {ours / plain:.2f}x (goal >= 0.9x)", flush=True)

    batched, sequential, plain = bench_pg(offspring, pg_steps, repeats, device)
    print(f"(b) PG variation, {offspring} offspring x {pg_steps} steps, (128,128) policies, minibatch "
          f"{MINIBATCH}: batched {batched:.2f} s; one after another: pg_variation P=1 {sequential:.2f} s "
          f"(speed-up {sequential / batched:.1f}x), plain module loop {plain:.2f} s (speed-up "
          f"{plain / batched:.1f}x); goal >= 5x", flush=True)

    if args.compile:
        eager, compiled, warmup = bench_compiled(critic_steps, repeats, device)
        print(f"(c) TD3 critic steps/s with torch.compile'd losses: eager {eager:,.0f}  compiled "
              f"{compiled:,.0f}  ratio {compiled / eager:.2f}x; compiling took {warmup:.1f} s", flush=True)


if __name__ == "__main__":
    main()
