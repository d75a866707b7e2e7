"""Seed-chain genomes and batched policies: storage, rebuild time, forward throughput.

Run:  .venv/bin/python experiments/benchmarks/bench_genomes.py [--device cpu|cuda] [--json FILE]

1. A Deep GA lineage of a ~100k-parameter network (MLP 27-256-352-8): ``--pop`` genomes evolved
   for ``--generations`` generations by truncation selection (random ranks: storage and rebuild
   cost do not depend on fitness). Reports the bytes of the final population's seed chains vs
   their float32 vectors, the compression ratio, rebuild time per genome with a cold cache
   (full replay) and with a warm parent cache (one noise draw), and checks bit-exactness.
2. Batched forward throughput of ``--policies`` stacked 27-128-128-8 tanh MLPs, MLPPolicy
   (stacked baddbmm) vs ModulePolicy (functional_call + vmap), in policy-steps/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from evo.genomes import ChainDecoder, SeedChain, chains_to_arrays, compression_ratio, new_seeds
from evo.policies import MLPPolicy, ModulePolicy


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def lineage(pop: int, generations: int, truncation: int, sigma: float, seed: int):
    """Final population and its parents after ``generations`` GA generations (chains only)."""
    g = torch.Generator().manual_seed(seed)
    population = [SeedChain.root(s) for s in new_seeds(pop, g)]
    parents = population
    for _ in range(generations):
        order = torch.randperm(pop, generator=g)[:truncation].tolist()
        parents = [population[i] for i in order]
        picks = torch.randint(0, truncation, (pop,), generator=g).tolist()
        population = [parents[p].child(s, sigma) for p, s in zip(picks, new_seeds(pop, g))]
    return population, parents


def bench_genomes(args) -> dict:
    policy = MLPPolicy(27, 8, hidden=(256, 352))
    D = policy.num_params
    elites, parents = lineage(args.pop, args.generations, args.truncation, args.sigma, args.seed)
    chain_bytes = sum(c.nbytes for c in elites)
    array_bytes = sum(a.nbytes for a in chains_to_arrays(elites).values())
    float_bytes = len(elites) * D * 4

    # cold: every genome replayed from scratch (init + one draw per generation). The test machine
    # is shared, so each figure is the median and the best of repeated timings.
    cold = ChainDecoder.for_policy(policy, cache_size=0)
    sample = elites[: args.cold_sample]
    cold_vecs, cold_times = [], []
    for c in sample:
        t0 = time.perf_counter()
        cold_vecs.append(cold.replay(c))
        cold_times.append(time.perf_counter() - t0)

    # warm: the T parents were decoded when they were evaluated last generation; then the whole
    # population of children, with a cache no larger than T (decode_batch pins the parents)
    warm_times = []
    for _ in range(args.repeats):
        warm = ChainDecoder.for_policy(policy, cache_size=max(args.truncation, 1))
        for p in parents:
            warm.decode(p)
        draws0 = warm.noise_draws
        t0 = time.perf_counter()
        batch = warm.decode_batch(elites)
        warm_times.append((time.perf_counter() - t0) / len(elites))
        draws_per_child = (warm.noise_draws - draws0) / len(elites)
    warm_s = statistics.median(warm_times)
    cold_s = statistics.median(cold_times)

    exact = all(torch.equal(batch[i], v) for i, v in enumerate(cold_vecs))
    return {
        "num_params": D,
        "elites": len(elites),
        "generations": args.generations,
        "chain_len": len(elites[0]),
        "chain_bytes": chain_bytes,
        "chain_arrays_bytes": array_bytes,
        "float32_bytes": float_bytes,
        "ratio_compact": float_bytes / chain_bytes,
        "ratio_arrays": float_bytes / array_bytes,
        "ratio_per_genome": compression_ratio(elites[0], D),
        "rebuild_cold_ms": cold_s * 1e3,
        "rebuild_cold_best_ms": min(cold_times) * 1e3,
        "rebuild_warm_ms": warm_s * 1e3,
        "rebuild_warm_best_ms": min(warm_times) * 1e3,
        "draws_per_warm_child": draws_per_child,
        "bit_exact": bool(exact),
        "bit_exact_checked": len(cold_vecs),
    }


def _steps_per_s(forward, obs, device, seconds, windows=5) -> tuple[float, float]:
    """(median, best) policy-steps/s over ``windows`` timing windows of ``seconds / windows``."""
    rates = []
    with torch.no_grad():
        for _ in range(3):
            forward(obs)
        for _ in range(windows):
            _sync(device)
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / windows:
                forward(obs)
                n += 1
            _sync(device)
            rates.append(n * obs.shape[0] / (time.perf_counter() - t0))
    return statistics.median(rates), max(rates)


def bench_policies(args) -> dict:
    device = args.device
    mlp = MLPPolicy(27, 8, hidden=(128, 128))
    mod = ModulePolicy(mlp.to_module().to(device))
    params = mlp.init(args.policies, torch.Generator().manual_seed(0), device=device)
    obs = torch.randn(args.policies, 27, generator=torch.Generator().manual_seed(1)).to(device)
    f_mlp, f_mod = mlp.bind(params), mod.bind(params)
    with torch.no_grad():
        max_err = (f_mlp(obs) - f_mod(obs)).abs().max().item()
    out = {"policies": args.policies, "shape": "27-128-128-8", "max_abs_diff": max_err}
    out["mlp_steps_per_s"], out["mlp_best"] = _steps_per_s(f_mlp, obs, device, args.seconds)
    out["vmap_steps_per_s"], out["vmap_best"] = _steps_per_s(f_mod, obs, device, args.seconds)
    out["mlp_over_vmap"] = out["mlp_steps_per_s"] / out["vmap_steps_per_s"]
    # the maze-sized case: many tiny networks
    small = MLPPolicy(11, 2, hidden=(16,))
    p_small = small.init(args.small_policies, torch.Generator().manual_seed(2), device=device)
    o_small = torch.randn(args.small_policies, 11, generator=torch.Generator().manual_seed(3)).to(device)
    out["small_shape"] = "11-16-2"
    out["small_policies"] = args.small_policies
    out["small_mlp_steps_per_s"], out["small_mlp_best"] = _steps_per_s(
        small.bind(p_small), o_small, device, args.seconds
    )
    out["small_vmap_steps_per_s"], out["small_vmap_best"] = _steps_per_s(
        ModulePolicy(small.to_module().to(device)).bind(p_small), o_small, device, args.seconds
    )
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pop", type=int, default=1000, help="elites / population size")
    ap.add_argument("--generations", type=int, default=50)
    ap.add_argument("--truncation", type=int, default=20, help="parents per generation (T)")
    ap.add_argument("--sigma", type=float, default=0.002)
    ap.add_argument("--cold-sample", type=int, default=20, help="genomes rebuilt from scratch")
    ap.add_argument("--policies", type=int, default=1024)
    ap.add_argument("--small-policies", type=int, default=16384)
    ap.add_argument("--seconds", type=float, default=2.0, help="timing per forward bench (5 windows)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the warm rebuild")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    load0 = os.getloadavg()[0]
    g = bench_genomes(args)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, device {args.device}")
    print(f"seed chains: {g['elites']} elites x {g['num_params']} params, {g['generations']} generations")
    print(f"  float32 vectors      {g['float32_bytes'] / 1e6:10.1f} MB")
    print(f"  seed chains (compact){g['chain_bytes'] / 1e6:10.3f} MB   ratio {g['ratio_compact']:.0f}x")
    print(f"  seed chains (arrays) {g['chain_arrays_bytes'] / 1e6:10.3f} MB   ratio {g['ratio_arrays']:.0f}x")
    print(f"  rebuild cold (replay {g['chain_len']} steps) {g['rebuild_cold_ms']:.2f} ms/genome "
          f"(best {g['rebuild_cold_best_ms']:.2f})")
    print(f"  rebuild warm parent cache  {g['rebuild_warm_ms']:.3f} ms/genome "
          f"(best {g['rebuild_warm_best_ms']:.3f}; {g['draws_per_warm_child']:.2f} noise draws each)")
    print(f"  bit-exact cache vs replay: {g['bit_exact']} ({g['bit_exact_checked']} checked)")

    p = bench_policies(args)
    print(f"batched forward, {p['policies']} x {p['shape']} tanh MLPs (max |diff| {p['max_abs_diff']:.1e}):")
    print(f"  MLPPolicy (baddbmm)  {p['mlp_steps_per_s'] / 1e3:8.1f} k policy-steps/s (best {p['mlp_best'] / 1e3:.1f} k)")
    print(f"  ModulePolicy (vmap)  {p['vmap_steps_per_s'] / 1e3:8.1f} k policy-steps/s (best {p['vmap_best'] / 1e3:.1f} k)")
    print(f"  ratio MLP / vmap     {p['mlp_over_vmap']:8.2f}x (medians)")
    print(f"  {p['small_policies']} x {p['small_shape']}: MLPPolicy {p['small_mlp_steps_per_s'] / 1e6:.2f} M/s "
          f"(best {p['small_mlp_best'] / 1e6:.2f}), vmap {p['small_vmap_steps_per_s'] / 1e6:.2f} M/s "
          f"(best {p['small_vmap_best'] / 1e6:.2f})")
    load = (load0, os.getloadavg()[0])
    print(f"load average (1 min) at start / end: {load[0]:.2f} / {load[1]:.2f} on {os.cpu_count()} CPUs "
          "(a shared machine inflates medians; best-of figures are the least disturbed)")
    result = {"genomes": g, "policies": p, "device": args.device, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "loadavg": load}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
