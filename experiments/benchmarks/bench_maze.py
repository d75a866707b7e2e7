"""Maze rollout throughput: robot-steps per second, policy forward included.

P genomes of an 11-16-2 tanh MLP (``evo.policies.MLPPolicy``) each drive one robot in the hard
maze for 400 steps through ``evo.workers.rollout`` (the path every maze evaluation takes). The
table also splits one step into environment and policy time, and gives ns per robot-step so that
a flat column shows the per-step cost is linear in P.

    python experiments/benchmarks/bench_maze.py [--device cpu|cuda] [--quick] [--repeats 3]
                                                [--threads N] [--cpu-time]

``--cpu-time`` times with the process CPU clock on one thread: on a machine shared with other
jobs it measures what one core does while this process runs, where wall time would mostly
measure the other jobs.
"""

from __future__ import annotations

import argparse
import time

import torch

from evo.policies import MLPPolicy
from evo.workers.rollout import rollout
from tasks.maze import HardMaze


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCK = time.perf_counter


def _best_time(fn, repeats: int, device: torch.device) -> float:
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = CLOCK()
        fn()
        _sync(device)
        best = min(best, CLOCK() - start)
    return best


def bench_one(population: int, steps: int, repeats: int, device: torch.device) -> dict:
    task = HardMaze(episode_length=steps)
    policy = MLPPolicy(task.obs_dim, task.action_dim, hidden=(16,))
    params = policy.init(population, torch.Generator().manual_seed(0), device=device)
    forward = policy.bind(params)
    env = task.make_env(population, device)
    seeds = torch.arange(population, device=device)
    rollout(forward, env, min(steps, 20), seeds)  # warm-up: allocator, kernels, caches

    rollout_s = _best_time(lambda: rollout(forward, env, steps, seeds), repeats, device)

    # The same steps split into their two halves (fixed actions; the robots still move).
    obs = env.reset(seeds)
    actions = forward(obs)

    def env_only() -> None:
        env.reset(seeds)
        for _ in range(steps):
            env.step(actions)

    def policy_only() -> None:
        for _ in range(steps):
            forward(obs)

    with torch.no_grad():
        env_s = _best_time(env_only, repeats, device)
        policy_s = _best_time(policy_only, repeats, device)
    robot_steps = population * steps
    return {
        "P": population,
        "rollout_s": rollout_s,
        "steps_per_s": robot_steps / rollout_s,
        "ns_per_step": 1e9 * rollout_s / robot_steps,
        "env_us": 1e6 * env_s / steps,
        "policy_us": 1e6 * policy_s / steps,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--quick", action="store_true", help="100 steps, P up to 4096, 1 repeat")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs (default 3)")
    parser.add_argument("--steps", type=int, default=400, help="episode length (default 400)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads on CPU (default: torch's choice)")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with the process CPU clock, on 1 thread (for shared machines)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.exit(2, "--device: cuda is not available here; accepted: cpu\n")
    if args.cpu_time:
        if device.type != "cpu" or args.threads not in (None, 1):
            parser.exit(2, "--cpu-time: needs --device cpu and 1 thread\n")
        global CLOCK
        CLOCK = time.process_time
        args.threads = 1
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    populations = (256, 1024, 4096) if args.quick else (256, 1024, 4096, 16384)
    steps = 100 if args.quick else args.steps
    repeats = 1 if args.quick else args.repeats

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    clock = "process CPU time" if args.cpu_time else "wall time"
    print(f"hard_maze rollout, 11-16-2 tanh MLP, {steps} steps, best of {repeats} ({clock}); "
          f"device {name}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    header = f"{'P':>6} {'rollout s':>10} {'robot-steps/s':>14} {'ns/robot-step':>14} " \
             f"{'env us/step':>12} {'policy us/step':>15}"
    print(header)
    print("-" * len(header))
    for population in populations:
        r = bench_one(population, steps, repeats, device)
        print(f"{r['P']:>6} {r['rollout_s']:>10.3f} {r['steps_per_s']:>14,.0f} {r['ns_per_step']:>14.1f} "
              f"{r['env_us']:>12.0f} {r['policy_us']:>15.0f}", flush=True)


if __name__ == "__main__":
    main()
