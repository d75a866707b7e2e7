"""MuJoCo locomotion throughput: neuroqd's evaluation path against the raw physics and EvoTorch.

Every figure is measured in this process, side by side with its baseline, after a warm-up call;
each is the median of ``--repeats`` timed calls. Env-steps are the control steps actually taken
(``Evaluation.info["episode_steps"]`` summed: random-policy ants fall and their episodes end
early); one control step is ``frame_skip`` MuJoCo steps (5 for the ant).

Sections (ant_omni, P = 256 policies, 250-step episodes, a (128, 128) tanh MLP, unless stated):

1. ``raw``        neuroqd ``LocalEvaluator`` vs ``mujoco.batch.Batch(model, P, threads,
                  persistent=True)`` stepping the task's own MjModel with zero controls and no
                  policy, on 1 and 2 physics threads. neuroqd with all-zero genomes (zero
                  actions: the same physics, nobody falls) gives the like-for-like ratio; random
                  genomes the real workload. Goal: >= 0.9x.
2. ``evotorch``   EvoTorch's ``VecGymNE`` (Ant-v5, 27-d obs, contact_cost_weight=0, no reset
                  noise, 250-step episodes, the same network and the *same genomes*: the flat
                  layouts agree) without actors and with 2 Ray actors. Goal: neuroqd >= 2.5x.
3. ``scaling``    1 -> 2 physics threads (``LocalEvaluator(threads=)``) and 1 -> 2 worker
                  processes (``ProcessEvaluator(WorkerFactory(threads=1), count=)``, started and
                  warmed up before timing). Goal: >= 1.8x each.
4. ``population`` env-steps/s and microseconds per env-step for P = 64 ... 4096.
5. ``tasks``      all eight locomotion tasks next to the raw zero-control limit of each model.
6. ``transitions`` bytes of ``Evaluation.transitions`` for one generation and the time cost
                  of recording them.

    python experiments/benchmarks/bench_locomotion.py [--quick] [--sections raw,evotorch,...]
        [--repeats 3] [--threads 2] [--torch-threads N] [--no-ray] [--wait-idle 120]

The machine may be shared: the script prints ``os.getloadavg()`` and, beside every timing,
``others``: the share of all CPUs used by processes outside this one and its children during
that timing (from /proc; Ray's actors count as "others"). ``--wait-idle S`` waits up to S
seconds before each section for the others to drop below 15% of the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):  # run as a script from anywhere: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evo.policies import MLPPolicy  # noqa: E402
from evo.workers.local import LocalEvaluator, WorkerFactory  # noqa: E402
from evo.workers.pool import ProcessEvaluator  # noqa: E402
from tasks import make_task  # noqa: E402

SECTIONS = ("raw", "evotorch", "scaling", "population", "tasks", "transitions")
ALL_TASKS = ("ant_omni", "anttrap_omni", "humanoid_omni", "ant_uni", "walker2d_uni",
             "halfcheetah_uni", "hopper_uni", "humanoid_uni")
HIDDEN = (128, 128)
CLOCK = time.perf_counter


# -- CPU accounting (shared machine) -------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")
_NCPU = os.cpu_count() or 1


def _proc_times() -> tuple[float, float]:
    """(busy CPU-seconds of the whole machine, CPU-seconds of this process and its children)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = (sum(fields[:8]) - fields[3] - fields[4]) / _TICK  # minus idle and iowait
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(rest[1])
        cpu[int(entry)] = (int(rest[11]) + int(rest[12])) / _TICK
    mine, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p and c not in mine]
        mine.update(kids)
        frontier.extend(kids)
    return busy, sum(cpu.get(p, 0.0) for p in mine)


class Others:
    """Share of all CPUs that other processes used between start() and stop()."""

    def start(self) -> None:
        self.t0, (self.busy0, self.mine0) = CLOCK(), _proc_times()

    def stop(self) -> float:
        busy, mine = _proc_times()
        wall = max(CLOCK() - self.t0, 1e-9)
        # Children that exited in between take their CPU time with them: clamp at 0.
        return max(0.0, (busy - self.busy0) - (mine - self.mine0)) / (wall * _NCPU)


def others_now(window: float = 2.0) -> float:
    o = Others()
    o.start()
    time.sleep(window)
    return o.stop()


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def wait_idle(max_wait: float, threshold: float = 0.15) -> None:
    if max_wait <= 0:
        return
    deadline = CLOCK() + max_wait
    share = others_now()
    while share > threshold and CLOCK() < deadline:
        print(f"  (others use {share:.0%} of the CPUs; waiting)", flush=True)
        share = others_now(5.0)
    print(f"  others use {share:.0%} of the CPUs; {load_line()}", flush=True)


def timed(fn, repeats: int) -> dict:
    """Median seconds of ``repeats`` calls of ``fn`` (already warmed up), the last call's
    result, and the median share of the machine the other processes used meanwhile."""
    seconds, shares, result = [], [], None
    mon = Others()
    for _ in range(repeats):
        mon.start()
        start = CLOCK()
        result = fn()
        seconds.append(CLOCK() - start)
        shares.append(mon.stop())
    return {"s": statistics.median(seconds), "best_s": min(seconds), "result": result,
            "others": statistics.median(shares)}


# -- the two sides ---------------------------------------------------------------------------------
def genomes_for(policy: MLPPolicy, P: int, kind: str) -> torch.Tensor:
    g = policy.init(P, torch.Generator().manual_seed(0))
    return torch.zeros_like(g) if kind == "zero" else g


def episode_steps(evaluation) -> int:
    return int(evaluation.info["episode_steps"].sum())


def raw_batch(model, frame_skip: int, P: int, T: int, threads: int, repeats: int) -> dict:
    """The physics alone: P simulations of ``model`` with zero controls for T control steps."""
    from mujoco import batch as mjbatch

    b = mjbatch.Batch(model, P, threads, persistent=True)
    b.bind("ctrl")[:] = 0.0

    def episode() -> int:
        b.reset()
        for _ in range(T):
            b.step(None, frame_skip)
        return P * T

    b.reset()
    b.step(None, frame_skip)  # warm-up: thread pool, first contacts
    r = timed(episode, repeats)
    r["steps"] = r["result"]
    r["rate"] = r["steps"] / r["s"]
    return r


def neuroqd_eval(evaluator, genomes: torch.Tensor, repeats: int, transitions: bool = False,
                 warm: bool = True) -> dict:
    seeds = torch.arange(genomes.shape[0])
    if warm:
        evaluator(genomes, seeds, transitions)  # builds the env, first kernels
    r = timed(lambda: evaluator(genomes, seeds, transitions), repeats)
    r["steps"] = episode_steps(r["result"])
    r["rate"] = r["steps"] / r["s"]
    return r


class Bench:
    """Holds the settings and caches measurements that several sections share."""

    def __init__(self, args) -> None:
        self.args = args
        self.quick = args.quick
        self.P = 32 if args.quick else 256
        self.T = 30 if args.quick else 250
        self.repeats = 1 if args.quick else args.repeats
        self.threads = args.threads
        self._tasks: dict = {}
        self._cache: dict = {}
        self._policies: dict = {}

    def task(self, name: str, T: int):
        key = (name, T)
        if key not in self._tasks:
            self._tasks[key] = make_task(name, episode_length=T)
        return self._tasks[key]

    def policy(self, task) -> MLPPolicy:
        key = (task.obs_dim, task.action_dim)
        if key not in self._policies:
            self._policies[key] = MLPPolicy(task.obs_dim, task.action_dim, hidden=HIDDEN)
        return self._policies[key]

    def local(self, name: str, P: int, T: int, threads: int, kind: str,
              transitions: bool = False, repeats: int | None = None, tag: str = "") -> dict:
        key = ("local", name, P, T, threads, kind, transitions, tag)
        if key not in self._cache:
            task = self.task(name, T)
            policy = self.policy(task)
            ev = LocalEvaluator(task, policy, threads=threads)
            self._cache[key] = neuroqd_eval(ev, genomes_for(policy, P, kind),
                                            repeats or self.repeats, transitions)
        return self._cache[key]

    def raw(self, name: str, P: int, T: int, threads: int, repeats: int | None = None) -> dict:
        key = ("raw", name, P, T, threads)
        if key not in self._cache:
            task = self.task(name, T)
            self._cache[key] = raw_batch(task.model, task.frame_skip, P, T, threads,
                                         repeats or self.repeats)
        return self._cache[key]


def _fmt_row(cells, widths) -> str:
    return " ".join(f"{c:>{w}}" if not isinstance(c, str) or i else f"{c:<{w}}"
                    for i, (c, w) in enumerate(zip(cells, widths)))


def _table(header: list[str], rows: list[list], widths: list[int]) -> None:
    line = _fmt_row(header, widths)
    print(line)
    print("-" * len(line))
    for row in rows:
        print(_fmt_row(row, widths), flush=True)


def _goal(ratio: float, goal: float) -> str:
    return f"{ratio:.2f}x (goal >= {goal}x: {'met' if ratio >= goal else 'MISSED'})"


# -- sections --------------------------------------------------------------------------------------
def section_raw(b: Bench) -> None:
    P, T = b.P, b.T
    print(f"\n## 1. ant_omni: neuroqd env-steps/s vs the raw mujoco.batch limit "
          f"(P={P}, {T} steps, median of {b.repeats}, torch threads {torch.get_num_threads()})")
    rows, ratios = [], {}
    for threads in (1, 2):
        raw = b.raw("ant_omni", P, T, threads)
        zero = b.local("ant_omni", P, T, threads, "zero")
        rand = b.local("ant_omni", P, T, threads, "random")
        rows.append([f"raw Batch, zero ctrl", threads, raw["steps"], f"{raw['s']:.2f}",
                     f"{raw['rate']:,.0f}", "1.00", f"{raw['others']:.0%}"])
        for label, r in (("neuroqd, zero genomes", zero), ("neuroqd, random genomes", rand)):
            rows.append([label, threads, r["steps"], f"{r['s']:.2f}", f"{r['rate']:,.0f}",
                         f"{r['rate'] / raw['rate']:.2f}", f"{r['others']:.0%}"])
        ratios[threads] = (zero["rate"] / raw["rate"], rand["rate"] / raw["rate"])
        # Diagnostic: the same zero-genome run with the other torch thread count (1 <-> all
        # CPUs): torch's intra-op threads and the physics threads share the cores.
        n = torch.get_num_threads()
        other = _NCPU if n == 1 else 1
        torch.set_num_threads(other)
        try:
            zt = b.local("ant_omni", P, T, threads, "zero", tag=f"torch{other}")
        finally:
            torch.set_num_threads(n)
        rows.append([f"  zero, torch threads={other}", threads, zt["steps"], f"{zt['s']:.2f}",
                     f"{zt['rate']:,.0f}", f"{zt['rate'] / raw['rate']:.2f}",
                     f"{zt['others']:.0%}"])
    _table(["", "threads", "env-steps", "s", "env-steps/s", "vs raw", "others"], rows,
           [26, 7, 9, 7, 11, 6, 6])
    for threads, (z, r) in ratios.items():
        print(f"  {threads} thread(s): zero genomes {_goal(z, 0.9)}; random genomes {r:.2f}x")


def _evotorch_problem(P: int, T: int, actors: int | None):
    import logging

    from evotorch.neuroevolution import VecGymNE

    logging.getLogger("evotorch").setLevel(logging.WARNING)
    net = ("Linear(obs_length, 128) >> Tanh() >> Linear(128, 128) >> Tanh() >> "
           "Linear(128, act_length) >> Tanh()")
    config = dict(include_cfrc_ext_in_observation=False, contact_cost_weight=0.0,
                  reset_noise_scale=0.0, max_episode_steps=T)
    return VecGymNE("Ant-v5", net, env_config=config, num_episodes=1, num_actors=actors)


def evotorch_eval(P: int, T: int, genomes: torch.Tensor, actors: int | None,
                  repeats: int) -> dict:
    problem = _evotorch_problem(P, T, actors)
    assert problem.solution_length == genomes.shape[1], (problem.solution_length, genomes.shape)
    batch = problem.generate_batch(P)
    batch.set_values(genomes)

    def once() -> int:
        before = problem.interaction_count
        problem.evaluate(batch)
        return problem.interaction_count - before

    start = CLOCK()
    once()  # warm-up: builds the vector env (and starts the actors)
    warm_s = CLOCK() - start
    r = timed(once, repeats)
    r["steps"] = r["result"]
    r["rate"] = r["steps"] / r["s"]
    r["warm_s"] = warm_s
    r["fitness"] = batch.evals.clone()
    if actors:
        problem.kill_actors()
    return r


def section_evotorch(b: Bench) -> None:
    P, T = b.P, b.T
    print(f"\n## 2. ant: neuroqd vs EvoTorch VecGymNE (P={P}, {T} steps, the same genomes; "
          f"median of {b.repeats})")
    print("  EvoTorch: Ant-v5, include_cfrc_ext_in_observation=False, contact_cost_weight=0, "
          "reset_noise_scale=0,\n  Linear(27,128)>>Tanh>>Linear(128,128)>>Tanh>>Linear(128,8)"
          ">>Tanh, num_episodes=1; env-steps = its interaction count")
    policy = b.policy(b.task("ant_omni", T))
    genomes = genomes_for(policy, P, "random")
    rows = []
    mine1 = b.local("ant_omni", P, T, 1, "random")
    mine2 = b.local("ant_omni", P, T, b.threads, "random")
    ev0 = evotorch_eval(P, T, genomes, None, b.repeats)
    rows.append(["EvoTorch, no actors", ev0["steps"], f"{ev0['s']:.2f}", f"{ev0['rate']:,.0f}",
                 f"{ev0['others']:.0%}"])
    results = {"no actors": ev0}
    if not b.args.no_ray:
        try:
            import ray

            if not ray.is_initialized():
                # A cluster of our own ("local"): never join another job's cluster.
                ray.init(address="local", num_cpus=_NCPU, include_dashboard=False,
                         log_to_driver=False, logging_level="error")
            ev2 = evotorch_eval(P, T, genomes, 2, b.repeats)
            rows.append(["EvoTorch, 2 Ray actors", ev2["steps"], f"{ev2['s']:.2f}",
                         f"{ev2['rate']:,.0f}", f"{ev2['others']:.0%}*"])
            results["2 Ray actors"] = ev2
            print(f"  (2 Ray actors: first call incl. actor start-up {ev2['warm_s']:.1f} s, "
                  f"excluded)")
        except Exception as exc:  # Ray missing or failing here: say so, keep the rest
            print(f"  EvoTorch with 2 Ray actors failed: {type(exc).__name__}: {exc}")
    rows.append(["neuroqd, 1 thread", mine1["steps"], f"{mine1['s']:.2f}",
                 f"{mine1['rate']:,.0f}", f"{mine1['others']:.0%}"])
    rows.append([f"neuroqd, {b.threads} threads", mine2["steps"], f"{mine2['s']:.2f}",
                 f"{mine2['rate']:,.0f}", f"{mine2['others']:.0%}"])
    _table(["", "env-steps", "s", "env-steps/s", "others"], rows, [24, 9, 7, 11, 7])
    if "2 Ray actors" in results:
        print("  * Ray's actors are not this process's children: their CPU counts as 'others'")
    if ev0["steps"] != mine2["steps"]:
        print(f"  note: step counts differ (EvoTorch {ev0['steps']}, neuroqd {mine2['steps']}): "
              f"compare env-steps/s, not wall time")
    else:
        print("  same genomes, same episodes: both took exactly the same env-steps")
    for label, r in results.items():
        print(f"  neuroqd ({b.threads} threads) vs EvoTorch {label}: "
              f"{_goal(mine2['rate'] / r['rate'], 2.5)}; neuroqd 1 thread: "
              f"{mine1['rate'] / r['rate']:.2f}x")


def section_scaling(b: Bench) -> None:
    P, T = b.P, b.T
    print(f"\n## 3. ant_omni scaling: physics threads and worker processes "
          f"(P={P}, {T} steps, random genomes, median of {b.repeats})")
    rows = []
    t1 = b.local("ant_omni", P, T, 1, "random")
    t2 = b.local("ant_omni", P, T, 2, "random")
    z1 = b.local("ant_omni", P, T, 1, "zero")
    z2 = b.local("ant_omni", P, T, 2, "zero")
    for label, r in (("LocalEvaluator threads=1", t1), ("LocalEvaluator threads=2", t2),
                     ("  zero genomes, threads=1", z1), ("  zero genomes, threads=2", z2)):
        rows.append([label, r["steps"], f"{r['s']:.2f}", f"{r['rate']:,.0f}",
                     f"{r['others']:.0%}"])
    task = b.task("ant_omni", T)
    policy = b.policy(task)
    genomes = genomes_for(policy, P, "random")
    proc = {}
    for count in (1, 2):
        start = CLOCK()
        ev = ProcessEvaluator(WorkerFactory(task, policy, threads=1), count=count)
        try:
            r = neuroqd_eval(ev, genomes, b.repeats)  # warm-up call inside, excluded
        finally:
            ev.close()
        proc[count] = r
        rows.append([f"ProcessEvaluator count={count}", r["steps"], f"{r['s']:.2f}",
                     f"{r['rate']:,.0f}", f"{r['others']:.0%}"])
        print(f"  (count={count}: start-up + warm-up {CLOCK() - start - r['s'] * b.repeats:.1f} s,"
              f" excluded)")
    _table(["", "env-steps", "s", "env-steps/s", "others"], rows, [28, 9, 7, 11, 6])
    print(f"  threads 1 -> 2:   {_goal(t2['rate'] / t1['rate'], 1.8)}; zero genomes "
          f"{z2['rate'] / z1['rate']:.2f}x")
    print(f"  processes 1 -> 2: {_goal(proc[2]['rate'] / proc[1]['rate'], 1.8)}")


def section_population(b: Bench) -> None:
    sizes = (16, 32, 128) if b.quick else (64, 256, 1024, 4096)
    long_T, short_T = (b.T, 10) if b.quick else (b.T, 50)
    th = b.threads
    print(f"\n## 4. ant_omni: cost vs population (random genomes, {th} threads, median of "
          f"{b.repeats}); {long_T} steps for P <= 256, {short_T} steps above")
    rows = []
    for P in sizes:
        T = long_T if P <= 256 else short_T
        r = b.local("ant_omni", P, T, th, "random")
        z = b.local("ant_omni", P, T, th, "zero")
        rows.append([P, T, r["steps"], f"{r['s']:.2f}", f"{r['rate']:,.0f}",
                     f"{1e6 * r['s'] / r['steps']:.0f}", f"{z['rate']:,.0f}",
                     f"{1e6 * z['s'] / z['steps']:.0f}", f"{r['others']:.0%}"])
    _table(["P", "steps", "env-steps", "s", "env-steps/s", "us/step", "zero: steps/s",
            "us/step", "others"], rows, [5, 5, 9, 7, 11, 7, 13, 7, 6])
    print("  us/step = wall microseconds per env-step (flat = cost linear in P); 'zero' = "
          "all-zero genomes (nobody falls)")


def section_tasks(b: Bench) -> None:
    P = b.P
    T = 10 if b.quick else 100
    th = b.threads
    reps = 1 if b.quick else min(b.repeats, 2)
    print(f"\n## 5. all tasks: P={P}, {T} steps, {th} threads, median of {reps}; raw = "
          f"mujoco.batch.Batch of the task's model, zero controls, no policy")
    rows = []
    for name in ALL_TASKS:
        raw = b.raw(name, P, T, th, repeats=reps)
        zero = b.local(name, P, T, th, "zero", repeats=reps)
        rand = b.local(name, P, T, th, "random", repeats=reps)
        task = b.task(name, T)
        rows.append([name, f"{task.obs_dim}/{task.action_dim}", f"{raw['rate']:,.0f}",
                     f"{zero['rate']:,.0f}", f"{zero['rate'] / raw['rate']:.2f}",
                     f"{zero['steps'] / (P * T):.2f}", f"{rand['rate']:,.0f}",
                     f"{rand['steps'] / (P * T):.2f}",
                     f"{max(raw['others'], zero['others'], rand['others']):.0%}"])
    _table(["task", "obs/act", "raw steps/s", "zero: steps/s", "vs raw", "alive",
            "random: steps/s", "alive", "others"], rows, [16, 7, 11, 13, 6, 5, 15, 5, 6])
    print("  alive = env-steps taken / (P x steps): episodes that end early take fewer steps")


def section_transitions(b: Bench) -> None:
    P, T, th = b.P, b.T, b.threads
    print(f"\n## 6. ant_omni transitions: P={P}, {T} steps, random genomes, {th} threads, "
          f"median of {b.repeats}")
    off = b.local("ant_omni", P, T, th, "random")
    on = b.local("ant_omni", P, T, th, "random", transitions=True)
    tr = on["result"].transitions
    valid = int(tr.valid.sum())
    fields = ", ".join(f"{f} {getattr(tr, f).element_size() * getattr(tr, f).numel() / 1e6:.1f}"
                       for f in tr.FIELDS)
    print(f"  Transitions: {len(tr):,} rows (P x longest episode), {valid:,} valid "
          f"(= env-steps {on['steps']:,}), {tr.nbytes / 1e6:.1f} MB "
          f"({tr.nbytes / max(valid, 1):.0f} B per valid step)")
    print(f"  MB by field: {fields}")
    rows = [["transitions=False", f"{off['s']:.3f}", f"{off['rate']:,.0f}", f"{off['others']:.0%}"],
            ["transitions=True", f"{on['s']:.3f}", f"{on['rate']:,.0f}", f"{on['others']:.0%}"]]
    _table(["", "s", "env-steps/s", "others"], rows, [18, 7, 11, 6])
    print(f"  recording costs {on['s'] - off['s']:+.3f} s per generation "
          f"({100 * (on['s'] / off['s'] - 1):+.1f}%)")


RUNNERS = {"raw": section_raw, "evotorch": section_evotorch, "scaling": section_scaling,
           "population": section_population, "tasks": section_tasks,
           "transitions": section_transitions}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: P=64, 50 steps, 1 repeat, small populations")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated subset of: {', '.join(SECTIONS)} (default all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per figure (median)")
    parser.add_argument("--threads", type=int, default=2,
                        help="physics threads for sections 2, 4, 5, 6 (default 2)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--no-ray", action="store_true", help="skip EvoTorch with Ray actors")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                        help="before each section wait up to S s for other processes to use "
                             "< 15%% of the CPUs")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.exit(2, f"--sections: unknown {', '.join(unknown)}; accepted: {', '.join(SECTIONS)}\n")
    if args.repeats < 1:
        parser.exit(2, "--repeats: must be >= 1\n")
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)

    import mujoco

    b = Bench(args)
    print(f"neuroqd locomotion benchmark: {load_line()} at start; {_NCPU} CPUs; torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads), mujoco {mujoco.__version__}, "
          f"numpy {np.__version__}; MLP {HIDDEN} tanh; {'quick' if args.quick else 'full'}")
    start = CLOCK()
    for name in sections:
        wait_idle(args.wait_idle)
        t0 = CLOCK()
        RUNNERS[name](b)
        print(f"  [{name}: {CLOCK() - t0:.0f} s; {load_line()}]", flush=True)
    print(f"\ntotal {CLOCK() - start:.0f} s; {load_line()} at the end")


if __name__ == "__main__":
    main()
