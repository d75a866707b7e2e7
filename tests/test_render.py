"""`neuroqd render`: pictures and videos of elites and of the distilled policy replay exactly what
the archive holds, land where asked (and nowhere else), and bad input is one line, exit code 2."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import imageio.v2 as imageio
import pytest
import torch
from PIL import Image

from experiments.cli import main
from experiments.render import load_run_view, render_run

QUIET = ["--quiet", "--set", "checkpoint_every=0"]
RUNS = {  # the cheapest runs that still fill a few cells
    "maze": ["me_hard_maze", "--set", "budget.evaluations=256", "--set", "task.episode_length=100"],
    "chain": ["ga_hard_maze", "--set", "deep_ga.genome=chain", "--set", "batch_size=64",
              "--set", "budget.evaluations=192", "--set", "task.episode_length=60"],
    "arm": ["me_arm", "--set", "batch_size=256", "--set", "budget.evaluations=512"],
    "ant": ["me_ant_omni", "--set", "task.episode_length=50", "--set", "policy.hidden=[8]",
            "--set", "batch_size=12", "--set", "budget.evaluations=24", "--set",
            "archive.dims=[20,20]", "--set", "workers.threads=1"],
    "gym": ["me_gym_pendulum", "--set", "task.env_id=InvertedPendulum-v5", "--set",
            "task.descriptor=experiments.examples.gym_descriptors:inverted_pendulum_cart",
            "--set", "task.descriptor_bounds=[[-1,1],[-0.2,0.2]]", "--set",
            "task.descriptor_names=null", "--set", "task.episode_length=30", "--set",
            "task.fitness_offset=0", "--set", "task.env_kwargs={width: 96, height: 64}",
            "--set", "batch_size=8", "--set", "budget.evaluations=16"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("render")
    dirs = {}
    for name, args in RUNS.items():
        dirs[name] = base / name
        # The chain archive needs its final checkpoint (the seed-chain table).
        quiet = QUIET if name != "chain" else ["--quiet"]
        assert main(["run", *args, *quiet, "--out", str(dirs[name])]) == 0
    return dirs


def render(capsys, run_dir, *args):
    capsys.readouterr()
    assert main(["render", str(run_dir), *args]) == 0
    return json.loads(capsys.readouterr().out)


def best_of(run_dir):
    elites = load_run_view(run_dir).elites
    i = int(torch.argmax(elites["fitness"]))
    return {k: v[i] for k, v in elites.items()}


def test_maze_best_is_the_archive_best_drawn_in_the_run_dir(runs, capsys):
    out = render(capsys, runs["maze"], "--best")
    best = best_of(runs["maze"])
    assert out["path"] == str(runs["maze"].resolve() / "renders" / "best.png")
    assert out["kind"] == "png" and out["cell"] == int(best["index"])
    assert load_run_view(runs["maze"]).default_suffix == ".png"
    assert load_run_view(runs["ant"]).default_suffix == load_run_view(runs["gym"]).default_suffix \
        == ".mp4"
    # The maze is deterministic and the rollout is the run's own: the very same numbers.
    assert out["fitness"] == out["archive_fitness"] == float(best["fitness"])
    assert out["descriptor"] == out["archive_descriptor"] == best["descriptors"].tolist()
    with Image.open(out["path"]) as im:
        assert im.format == "PNG" and im.width >= 500 and im.height >= 500


def test_seed_chain_elites_are_decoded_through_the_checkpoint(runs, capsys):
    out = render(capsys, runs["chain"], "--best")
    best = best_of(runs["chain"])
    assert out["genome_id"] == int(best["genome_id"])
    assert out["fitness"] == float(best["fitness"])
    assert out["descriptor"] == best["descriptors"].tolist()


def test_arm_pose_nearest_elite(runs, capsys):
    out = render(capsys, runs["arm"], "--descriptor", "0.2,0.8")
    view = load_run_view(runs["arm"])
    nearest = int(((view.elites["descriptors"] - torch.tensor([0.2, 0.8])) ** 2).sum(1).argmin())
    assert out["index"] == nearest and out["target"] == pytest.approx([0.2, 0.8])
    assert out["descriptor"] == view.elites["descriptors"][nearest].tolist()
    assert Path(out["path"]).name == "descriptor_0.2_0.8.png"
    # The drawn arm ends where the task says its end effector is.
    joints = view.task.joint_positions(view.elites["genomes"])
    assert torch.allclose(joints[:, -1], view.task.evaluate(view.elites["genomes"]).descriptors,
                          atol=1e-5)
    with Image.open(out["path"]) as im:
        assert im.width >= 400 and im.height >= 400


def test_ant_video_replays_the_elite(runs, capsys, tmp_path):
    out = render(capsys, runs["ant"], "--best")
    best = best_of(runs["ant"])
    assert out["kind"] == "mp4" and Path(out["path"]).name == "best.mp4"
    assert out["fitness"] == pytest.approx(float(best["fitness"]), rel=1e-5, abs=1e-5)
    assert out["descriptor"] == pytest.approx(best["descriptors"].tolist(), abs=1e-5)
    reader = imageio.get_reader(out["path"], format="FFMPEG")
    try:
        frames = [f for f in reader]
        fps = reader.get_meta_data()["fps"]
    finally:
        reader.close()
    # The reset state, then one frame per control step (an ant that fell ends early).
    assert len(frames) == out["frames"] and 2 <= out["frames"] <= 51
    assert frames[0].shape == (480, 640, 3) and fps == 20.0  # dt = 0.01 s x frame_skip 5
    assert frames[-1].std() > 10  # a picture, not a blank frame

    gif = render(capsys, runs["ant"], "--cell", str(out["cell"]), "--out", str(tmp_path / "a.gif"))
    with Image.open(gif["path"]) as im:
        assert im.format == "GIF" and im.n_frames == out["frames"] and im.size == (320, 240)
    assert gif["fitness"] == out["fitness"]


def test_distilled_policy_conditioned_on_a_descriptor(runs, capsys):
    from evo.distill import evaluate_distilled

    run_dir = runs["maze"]
    assert main(["distill", str(run_dir), "--epochs", "1", "--hidden", "16"]) == 0
    out = render(capsys, run_dir, "--descriptor", "0.3,0.7", "--distilled")
    assert Path(out["path"]).name == "distilled_0.3_0.7.png"
    assert out["target"] == pytest.approx([0.3, 0.7]) and out["index"] is None
    view = load_run_view(run_dir)
    actor, meta = view.distilled()
    # The same policy folded on the same target, evaluated as `neuroqd eval --distilled` does.
    ref = evaluate_distilled(actor, meta, view.task, view.config["archive"],
                             torch.tensor([[0.3, 0.7]]))
    assert out["descriptor"] == ref["reached"][0].tolist()
    assert out["fitness"] == pytest.approx(float(ref["fitness"][0]))
    assert out["cell"] == int(view.archive.ribs.index_of([[0.3, 0.7]])[0])

    cell = render(capsys, run_dir, "--best", "--distilled")
    assert Path(cell["path"]).name == "distilled_best.png"
    assert cell["target"] == cell["archive_descriptor"]


def test_gym_env_frames(runs, capsys):
    out = render(capsys, runs["gym"], "--best")
    reader = imageio.get_reader(out["path"], format="FFMPEG")
    try:
        frames = [f for f in reader]
    finally:
        reader.close()
    # InvertedPendulum pays 1 per step survived: reset frame + one per step.
    assert len(frames) == out["frames"] == int(out["fitness"]) + 1
    assert frames[0].shape == (64, 96, 3)


@pytest.mark.parametrize("run, args, starts", [
    ("maze", ["--cell", "0"], "--cell: archive cell 0 is empty; filled cells: "),
    ("maze", ["--cell", "2500"], "--cell: the archive's cells are 0 to 2499"),
    ("maze", ["--descriptor", "a,b"], "--descriptor: expected 2 comma-separated numbers, got "
                                      "'a,b'"),
    ("maze", ["--descriptor", "0.5,2"], "--descriptor: '0.5,2' lies outside"),
    ("chain", ["--best", "--distilled"], "--distilled: "),
    ("arm", ["--best", "--distilled"], "--distilled: task 'arm' is not a control task"),
    ("maze", ["--best", "--out", "x.txt"], "--out: expected .png, .mp4 or .gif, got .txt"),
    ("maze", ["--best", "--out", "x.mp4"], "--out: task 'hard_maze' renders a still picture"),
], ids=["empty-cell", "cell-range", "bad-descriptor", "out-of-bounds", "no-distilled",
        "direct-task-distilled", "extension", "maze-video"])
def test_bad_input_is_one_line_exit_2(runs, capsys, run, args, starts):
    capsys.readouterr()
    assert main(["render", str(runs[run]), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"neuroqd: error: {starts}") and err.count("\n") == 1, err
    if args[-1] == "--distilled" and run == "chain":
        assert "distilled/policy.json missing; run `neuroqd distill " in err


def test_explicit_out_from_threads_writes_only_that_file(runs, tmp_path):
    cache = tmp_path / "cache"
    before = {d: sorted(p.name for p in d.iterdir()) for d in (runs["ant"], runs["chain"])}
    jobs = [(runs["ant"], {"best": True}, cache / "ant.png"),
            (runs["ant"], {"cell": None, "descriptor": "0,0"}, cache / "ant_near.png"),
            (runs["chain"], {"best": True}, cache / "sub" / "maze.png")]
    results, errors = {}, []

    def job(run_dir, kw, out):
        try:
            results[out] = render_run(run_dir, out=out, **kw)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=job, args=j) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file()) == \
        ["ant.png", "ant_near.png", "sub/maze.png"]
    for run_dir, names in before.items():
        assert sorted(p.name for p in run_dir.iterdir()) == names
    with Image.open(cache / "ant.png") as im:
        assert im.size == (640, 480)
    view = load_run_view(runs["ant"])
    assert load_run_view(str(runs["ant"])) is view  # loaded once
    os.utime(runs["ant"] / "archive.npz", ns=(1, 1))  # as a resumed run rewrites it
    assert load_run_view(runs["ant"]) is not view


_SCRIPT = """
import sys
if sys.argv[1] == "mujoco-first":
    import mujoco  # before MUJOCO_GL is set: mujoco picks GLFW, which needs a display
from experiments.render import render_run
for run_dir, out in zip(sys.argv[2::2], sys.argv[3::2]):
    print(render_run(run_dir, best=True, out=out)["frames"])
"""


def test_headless_backends_in_fresh_processes(runs, tmp_path):
    import ctypes.util

    if not ctypes.util.find_library("OSMesa"):
        pytest.skip("needs Mesa's OSMesa (apt-get install libosmesa6; `make install` does it)")
    # As a fresh shell has it (this process's renders set both).
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "PYOPENGL_PLATFORM")}
    cases = {"mujoco-first": env, "osmesa": {**env, "MUJOCO_GL": "osmesa"}}
    outs = {case: [tmp_path / f"{case}_{run}.png" for run in ("ant", "gym")] for case in cases}
    procs = {case: subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, case, str(runs["ant"]), str(outs[case][0]),
         str(runs["gym"]), str(outs[case][1])],
        env=e, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for case, e in cases.items()}
    for case, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.split() == ["1", "1"], (case, err[-2000:])
        with Image.open(outs[case][0]) as ant, Image.open(outs[case][1]) as gym:
            assert ant.size == (640, 480) and gym.size == (96, 64)
            assert max(hi for _, hi in gym.getextrema()) > 0  # not a black frame
