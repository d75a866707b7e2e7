"""The ``neuroqd`` command: list, run, resume, plot, eval, distill, compare, render, report,
explore."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

from experiments.config import ConfigError, load_raw, resolve, shipped_configs

EXIT_USAGE = 2


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""


def _fail(message: str) -> int:
    print(f"neuroqd: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _fresh_dir(base: Path) -> Path:
    if not base.exists():
        return base
    i = 2
    while Path(f"{base}_{i}").exists():
        i += 1
    return Path(f"{base}_{i}")


# Errors about the input name the key first ("workers.count: must be >= 1, got 0",
# "policy.hidden=[0] must be ..."); any other exception is a bug and keeps its traceback.
# The run directory argument is named as `neuroqd --help` shows it: "DIR: ...".
_NAMES_A_KEY = re.compile(r"^(--)?([a-z_][a-z0-9_-]*|DIR)(\.[a-z0-9_/]+)*(:|=)")


def input_error(exc: BaseException) -> UsageError | None:
    """The one-line usage error that ``exc`` stands for, or None if it is not about the input."""
    if isinstance(exc, ValueError) and _NAMES_A_KEY.match(str(exc)):
        return UsageError(str(exc).splitlines()[0])
    return None


def _build(config: dict, run_dir: Path, progress):
    from evo.build import build_run

    try:
        return build_run(config, run_dir, progress=progress)
    except ValueError as exc:
        usage = input_error(exc)
        if usage is None:
            raise
        raise usage from None


def _finish(engine, run_dir: Path) -> None:
    from archives import save_archive
    from experiments.plotting import plot_run

    summary = engine.run()
    save_archive(engine.algorithm.archive, run_dir / "archive.npz")
    plot_run(run_dir)
    for hook in engine.log_hooks:  # trackers send the final files on (MLflow artifacts)
        finish = getattr(hook, "finish", None)
        if finish is not None:
            finish(run_dir)
    close = getattr(engine.algorithm.evaluator, "close", None)
    if close:
        close()
    shown = {k: summary[k] for k in ("evaluations", "qd_score", "coverage", "max_fitness", "time_s")}
    if "solved" in summary:
        shown["solved"] = summary["solved"]
        shown["evaluations_to_solve"] = summary["evaluations_to_solve"]
    print(json.dumps(shown))
    print(f"run directory: {run_dir}  (heatmap.png, curves.png, metrics.csv, summary.json)")


def cmd_list(args) -> int:
    from evo.algorithms import ALGORITHMS
    from tasks import TASKS

    print("algorithms: " + ", ".join(sorted(ALGORITHMS)))
    print("tasks:      " + ", ".join(sorted(TASKS)))
    print("configs:")
    width = max(len(n) for n in shipped_configs())
    for name in shipped_configs():
        raw = load_raw(name)
        print(f"  {name:<{width}} {raw.get('algorithm', '?')} on {raw.get('task', {}).get('name', '?')}"
              f"  ({raw.get('budget', {}).get('evaluations', '?')} evaluations)")
    return 0


def cmd_run(args) -> int:
    config = resolve(load_raw(args.config), args.set, seed=args.seed, device=args.device,
                     backend=args.backend, workers=args.workers)
    name = Path(args.config).stem
    if args.out:
        run_dir = Path(args.out)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise UsageError(f"--out: {run_dir} exists and is not empty; use `neuroqd resume "
                             f"{run_dir}` or another directory")
    else:
        run_dir = _fresh_dir(Path("runs") / f"{name}_s{config['seed']}")
    engine = _build(config, run_dir, args.progress)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    _finish(engine, run_dir)
    return 0


def _run_dir(path: str) -> Path:
    run_dir = Path(path)
    if not (run_dir / "config.yaml").exists():
        raise UsageError(f"DIR: {run_dir} is not a run directory (no config.yaml)")
    return run_dir


def cmd_resume(args) -> int:
    run_dir = _run_dir(args.dir)
    config = resolve(yaml.safe_load((run_dir / "config.yaml").read_text()))
    engine = _build(config, run_dir, args.progress)
    ckpt = engine.restore()
    where = f"iteration {engine.algorithm.iteration}" if ckpt else "the start (no checkpoint)"
    print(f"resuming {run_dir} from {where}", file=sys.stderr)
    _finish(engine, run_dir)
    return 0


def cmd_plot(args) -> int:
    from experiments.plotting import plot_run

    for path in plot_run(_run_dir(args.dir)):
        print(path)
    return 0


def cmd_compare(args) -> int:
    from experiments.plotting import compare_runs

    dirs = [_run_dir(d) for d in args.dirs]
    print(compare_runs(dirs, Path(args.out)))
    return 0


def _as_usage(fn, *args, **kwargs):
    """``fn(...)``, with a ValueError that names a key or argument turned into a UsageError."""
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        usage = input_error(exc)
        if usage is None:
            raise
        raise usage from None


def cmd_eval(args) -> int:
    from experiments.evaluate import evaluate_distilled_run, evaluate_run

    fn = evaluate_distilled_run if args.distilled else evaluate_run
    print(json.dumps(_as_usage(fn, _run_dir(args.dir), args.repeats)))
    return 0


def cmd_distill(args) -> int:
    from experiments.evaluate import distill_run

    print(json.dumps(_as_usage(distill_run, _run_dir(args.dir), epochs=args.epochs,
                               hidden=args.hidden, threads=args.threads,
                               batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                               device=args.device)))
    return 0


def cmd_render(args) -> int:
    from experiments.render import render_run

    print(json.dumps(_as_usage(render_run, _run_dir(args.dir), best=args.best, cell=args.cell,
                               descriptor=args.descriptor, distilled=args.distilled,
                               out=args.out)))
    return 0


def cmd_report(args) -> int:
    from experiments.report import write_report

    dirs = [_run_dir(d) for d in args.dirs]
    print(_as_usage(write_report, dirs, Path(args.out)))
    return 0


def cmd_explore(args) -> int:
    from experiments.explore import serve

    dirs = [_run_dir(d) for d in args.dirs]
    return _as_usage(serve, dirs, host=args.host, port=args.port, open_browser=args.open)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neuroqd", description="Evolutionary and quality-diversity "
                                "optimisation of neural networks.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="algorithms, tasks, shipped configs").set_defaults(fn=cmd_list)

    r = sub.add_parser("run", help="run a shipped config or a YAML file")
    r.add_argument("config", help="shipped config name (see `neuroqd list`) or path to a .yaml")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any key of the resolved config (dotted for nested keys)")
    r.add_argument("--seed", type=int)
    r.add_argument("--out", help="run directory (default: runs/NAME_sSEED, made unique)")
    r.add_argument("--backend", choices=["local", "process", "ray"])
    r.add_argument("--workers", type=int)
    r.add_argument("--device", help="cpu or cuda")
    r.set_defaults(fn=cmd_run)

    s = sub.add_parser("resume", help="continue a run from its newest checkpoint")
    s.add_argument("dir")
    s.set_defaults(fn=cmd_resume)

    for cmd in (r, s):
        g = cmd.add_mutually_exclusive_group()
        g.add_argument("--progress", dest="progress", action="store_true", default=None,
                       help="always show a progress bar (default: only on a terminal)")
        g.add_argument("--quiet", dest="progress", action="store_false")

    pl = sub.add_parser("plot", help="heatmap.png and curves.png of a run")
    pl.add_argument("dir")
    pl.set_defaults(fn=cmd_plot)

    e = sub.add_parser("eval", help="re-evaluate the elites of a run")
    e.add_argument("dir")
    e.add_argument("--distilled", action="store_true",
                   help="evaluate DIR/distilled/'s policy on every filled cell's descriptor")
    e.add_argument("--repeats", type=int, default=1)
    e.set_defaults(fn=cmd_eval)

    d = sub.add_parser("distill", help="train one descriptor-conditioned policy from a run's "
                       "archive (DIR/distilled/)")
    d.add_argument("dir")
    d.add_argument("--epochs", type=int, default=30)
    d.add_argument("--hidden", default="128,128", help="hidden widths, e.g. 128,128")
    d.add_argument("--threads", type=int, help="physics threads (default: the run's)")
    d.add_argument("--batch-size", type=int, default=256)
    d.add_argument("--lr", type=float, default=1e-3)
    d.add_argument("--seed", type=int, help="default: the run's seed")
    d.add_argument("--device", default="cpu", help="cpu or cuda")
    d.set_defaults(fn=cmd_distill)

    c = sub.add_parser("compare", help="curves of several runs, median and IQR per group")
    c.add_argument("dirs", nargs="+")
    c.add_argument("--out", default="compare.png")
    c.set_defaults(fn=cmd_compare)

    rd = sub.add_parser("render", help="an elite's or the distilled policy's behaviour: mp4/gif "
                        "for MuJoCo tasks, png for mazes and the arm")
    rd.add_argument("dir")
    which = rd.add_mutually_exclusive_group(required=True)
    which.add_argument("--best", action="store_true", help="the archive's best elite")
    which.add_argument("--cell", type=int, help="the elite of archive cell I")
    which.add_argument("--descriptor", help="X,Y: the elite nearest this descriptor, or with "
                       "--distilled the distilled policy conditioned on it")
    rd.add_argument("--distilled", action="store_true")
    rd.add_argument("--out", help="output file (.png, .mp4 or .gif; default: beside the run)")
    rd.set_defaults(fn=cmd_render)

    rp = sub.add_parser("report", help="one self-contained HTML file: heatmaps, curves, summary "
                        "table of the given runs")
    rp.add_argument("dirs", nargs="+")
    rp.add_argument("--out", default="report.html")
    rp.set_defaults(fn=cmd_report)

    ex = sub.add_parser("explore", help="local web page over run directories: archive, curves, "
                        "click a cell to see its elite")
    ex.add_argument("dirs", nargs="+")
    ex.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    ex.add_argument("--host", default="127.0.0.1")
    ex.add_argument("--open", action="store_true", help="open the page in the default browser")
    ex.set_defaults(fn=cmd_explore)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ConfigError, UsageError) as exc:
        return _fail(str(exc))
    except Exception as exc:
        from archives import StateFileError

        if isinstance(exc, StateFileError):  # a damaged run file: its message names it
            return _fail(str(exc).splitlines()[0])
        raise
    except KeyboardInterrupt:
        print("neuroqd: interrupted; continue with `neuroqd resume DIR`", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
