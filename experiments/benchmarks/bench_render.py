"""Time `neuroqd render` on a 250-step ant_omni elite video, beside a Gymnasium baseline.

neuroqd: ``render_run(run_dir, best=True, out=...mp4)``, end to end from a cold view cache (load
config, task and archive, roll the elite out on the run's evaluation path, replay its states
into ``mujoco.Renderer`` at 640x480 and stream them to ffmpeg), and its render/encode part alone
(``time_s["render"]``). Baseline, in the same process, interleaved with it: a fresh
``gymnasium.make("Ant-v5", render_mode="rgb_array", width=640, height=480)`` (the same robot,
observation and reset as ant_omni) driven by the same elite policy for as many steps, one
``env.render()`` per step written by the same imageio/ffmpeg writer; once with Gymnasium's
default scene (shadows, reflections, 4x multisampling) and fixed camera, once with neuroqd's
scene (none of the three) and tracking camera, which isolates the rest of the pipeline. Also one
``neuroqd render`` command in a subprocess (imports included). Ratios are baseline time /
neuroqd time (> 1: neuroqd faster); CPU seconds (this process's threads and its ffmpeg
children) measure the work whatever else runs on the machine.

    python experiments/benchmarks/bench_render.py [--repeats 3] [--run DIR] [--gl egl|osmesa]

Without ``--run`` one generation of me_ant_omni (32 evaluations, 250-step episodes) is run in a
temporary folder; its best elite is rendered. Prints the load average and, per timing, the share
of the CPUs other processes used meanwhile (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script from anywhere: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

CLOCK = time.perf_counter


def cpu_seconds() -> float:
    """CPU seconds of this process (all its threads: llvmpipe renders on several) and of its
    finished children (ffmpeg): the work done, whatever else the machine runs meanwhile."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def make_run(base: Path) -> Path:
    """One generation of me_ant_omni (32 random policies): a few of them stay up for the 250
    steps, and the best elite is one of those."""
    from experiments.cli import main

    run_dir = base / "ant"
    assert main(["run", "me_ant_omni", "--set", "batch_size=32", "--set", "budget.evaluations=32",
                 "--set", "checkpoint_every=0", "--quiet", "--out", str(run_dir)]) == 0
    return run_dir


def gymnasium_video(view, index: int, steps: int, path: Path, scene_like_neuroqd: bool) -> float:
    """Seconds for a fresh Ant-v5 env to play elite ``index`` for ``steps`` steps, drawing and
    encoding a frame after the reset and after every step."""
    import gymnasium
    import mujoco
    import numpy as np
    import torch

    from experiments.render_media import _SCENE_OFF, CAMERA, _video_writer

    t0 = CLOCK()
    env = gymnasium.make("Ant-v5", render_mode="rgb_array", width=640, height=480,
                         include_cfrc_ext_in_observation=False, contact_cost_weight=0.0,
                         reset_noise_scale=0.0)
    if scene_like_neuroqd:  # neuroqd's scene and tracking camera (Gymnasium's has a fixed one)
        model = env.unwrapped.model
        model.vis.quality.offsamples = 0
        renderer = env.unwrapped.mujoco_renderer
        renderer.camera_id = None  # else each render() switches the camera back to free
        viewer = renderer._get_viewer("rgb_array")
        for flag in _SCENE_OFF:
            viewer.scn.flags[getattr(mujoco.mjtRndFlag, flag)] = False
        viewer.cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        viewer.cam.trackbodyid = model.body("torso").id
        for key, value in CAMERA.items():
            setattr(viewer.cam, key, value)
    forward = view.policy.bind(view.parameters(index)[None])
    obs, _ = env.reset(seed=view.seed)
    writer = _video_writer(path, "mp4", env.metadata["render_fps"])
    try:
        writer.append_data(env.render())
        for _ in range(steps):
            with torch.no_grad():
                action = forward(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
            obs, _, terminated, _, _ = env.step(np.clip(action, -1.0, 1.0))
            writer.append_data(env.render())
            if terminated:
                break
    finally:
        writer.close()
        env.close()
    return CLOCK() - t0


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--run", help="an ant_omni run directory (default: a small run made here)")
    p.add_argument("--gl", help="MUJOCO_GL (default: egl where available, else osmesa)")
    args = p.parse_args(argv)
    if args.gl:
        os.environ["MUJOCO_GL"] = args.gl
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench_render_") as tmp:
        measure(Path(tmp), Path(args.run) if args.run else make_run(Path(tmp)), args.repeats)


def measure(tmp: Path, run_dir: Path, repeats: int) -> None:
    import torch

    from bench_locomotion import Others, load_line  # the same CPU accounting
    from experiments import render
    from experiments.render import load_run_view, render_run

    view = load_run_view(run_dir)
    index = int(torch.argmax(view.elites["fitness"]))

    def ours():
        render._VIEWS.clear()  # end to end: the run is loaded again each time
        info = render_run(run_dir, best=True, out=tmp / "neuroqd.mp4")
        return info["time_s"]["render"], info

    def gym(like):
        return gymnasium_video(view, index, frames - 1, tmp / "gym.mp4", like), None

    jobs = {"neuroqd": ours, "gymnasium default scene": lambda: gym(False),
            "gymnasium, neuroqd's scene+camera": lambda: gym(True)}
    frames = ours()[1]["frames"]  # warm-up: imports, GL start-up, ffmpeg's first start
    gym(True)
    print(f"MUJOCO_GL={os.environ.get('MUJOCO_GL')}  torch {torch.__version__}  {load_line()}")
    rows: dict[str, list] = {k: [] for k in ("neuroqd", "neuroqd render+encode", *list(jobs)[1:])}
    mon = Others()
    for _ in range(repeats):
        for name, job in jobs.items():
            mon.start()
            cpu0 = cpu_seconds()
            t0 = CLOCK()
            render_s, info = job()
            row = (CLOCK() - t0, cpu_seconds() - cpu0, mon.stop())
            rows[name].append(row)
            if info is not None:
                rows["neuroqd render+encode"].append((render_s, math.nan, row[2]))
                times = info["time_s"]
    print(f"elite {index} of {run_dir}: {frames} frames (640x480), {json.dumps(times)}")
    base = statistics.median(r[0] for r in rows["neuroqd"])
    print(f"{'':34} {'median s':>8} {'ms/frame':>8} {'vs neuroqd':>10} {'CPU s':>6} others")
    for name, runs in rows.items():
        wall, cpu, share = (statistics.median(column) for column in zip(*runs))
        print(f"{name:34} {wall:8.3f} {1000 * wall / frames:8.1f} {wall / base:10.2f} "
              f"{cpu:6.2f} {share:5.0%}")
    cmd = [sys.executable, "-m", "experiments.cli", "render", str(run_dir), "--best",
           "--out", str(tmp / "cli.mp4")]
    mon.start()
    t0 = CLOCK()
    subprocess.run(cmd, check=True, capture_output=True, cwd=Path(__file__).resolve().parents[2])
    print(f"`neuroqd render DIR --best` command, imports included: {CLOCK() - t0:.2f} s "
          f"(others {mon.stop():.0%}); {load_line()}")


if __name__ == "__main__":
    main()
