"""``neuroqd report DIR... --out report.html``: one self-contained HTML page about some runs.

The page holds, per run, its name, algorithm and task, heatmap and curves (drawn again with
:func:`experiments.plotting.plot_run` when missing), the distilled policy's report when there
is one, and the resolved config; above them a table of every run's summary and, for several
runs, :func:`experiments.plotting.compare_runs`' figure. Every image is inlined as a base64
``data:`` URI and the style sits in the page, so the file can be mailed or archived alone:
it loads nothing from anywhere.
"""

from __future__ import annotations

import base64
import html
import json
import tempfile
from pathlib import Path

import yaml

from evo.tracking import dotted_items
from experiments.plotting import compare_runs, plot_curves, plot_run, read_metrics

# summary.json keys shown in the table, in this order (the last two: tasks with a goal)
SUMMARY_KEYS = ("evaluations", "qd_score", "coverage", "max_fitness", "time_s",
                "failed_evaluations", "solved", "evaluations_to_solve")
FIGURES = (("heatmap.png", "archive heatmap"), ("curves.png", "curves"),
           ("maze.png", "final positions in the maze"))

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1em; max-width: 1400px;
       color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
th { background: #f3f3f3; }
section { border-top: 2px solid #ddd; margin-top: 2em; }
img { max-width: 100%; margin: 0.5em 0; vertical-align: top; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
.note { color: #777; }
.wide { overflow-x: auto; }
"""


def write_report(dirs: list[Path], out: Path) -> str:
    """Write the report of run directories ``dirs`` to the HTML file ``out``; returns its path.

    A missing output directory or a run directory without metrics.csv raises a one-line
    ValueError naming ``--out`` or ``DIR``.
    """
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out: {out} is a directory; give a file name such as report.html")
    if not out.parent.is_dir():
        raise ValueError(f"--out: directory {out.parent} does not exist")
    dirs = [Path(d) for d in dirs]
    if not dirs:
        raise ValueError("DIR: give at least one run directory")
    for d in dirs:
        if not (d / "config.yaml").exists():
            raise ValueError(f"DIR: {d} is not a run directory (no config.yaml)")
        if not (d / "metrics.csv").exists():
            raise ValueError(f"DIR: {d} has no metrics.csv (the run logged nothing yet)")
    runs = [_run_view(d) for d in dirs]
    compare = None
    if len(dirs) > 1:
        with tempfile.TemporaryDirectory() as tmp:
            compare = _data_uri(compare_runs(dirs, Path(tmp) / "compare.png"))
    out.write_text(render_html(runs, compare), encoding="utf-8")
    return str(out)


def _run_view(run_dir: Path) -> dict:
    """What the page shows of one run: names, summary, images as data URIs, config text."""
    if not all((run_dir / name).exists() for name in ("heatmap.png", "curves.png")):
        try:
            plot_run(run_dir)
        except FileNotFoundError:  # no archive (killed before its first checkpoint): curves only
            plot_curves(run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    summary_path = run_dir / "summary.json"
    if summary_path.exists():
        summary, finished = json.loads(summary_path.read_text()), True
    else:  # a stopped run: its last logged row stands in
        last = {k: v[-1].item() for k, v in read_metrics(run_dir).items() if len(v)}
        summary = {k: int(last[k]) if k in ("evaluations", "failed_evaluations") else last[k]
                   for k in SUMMARY_KEYS if k in last}
        finished = False
    distilled = None
    if (run_dir / "distilled" / "report.json").exists():
        report = json.loads((run_dir / "distilled" / "report.json").read_text())
        image = run_dir / "distilled" / "heatmap.png"
        distilled = {"values": dotted_items(report),
                     "heatmap": _data_uri(image) if image.exists() else None}
    return {"name": run_dir.name, "path": str(run_dir), "algorithm": config.get("algorithm", "?"),
            "task": (config.get("task") or {}).get("name", "?"), "seed": config.get("seed"),
            "summary": summary, "finished": finished,
            "figures": [(label, _data_uri(run_dir / name)) for name, label in FIGURES
                        if (run_dir / name).exists()],
            "distilled": distilled, "config": yaml.safe_dump(config, sort_keys=False)}


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _shown(value) -> str:
    """A summary value as the table shows it (the exact value is in the cell's data-value)."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _cell(value) -> str:
    return f'<td data-value="{_e(json.dumps(value))}">{_e(_shown(value))}</td>'


def _summary_table(runs: list[dict]) -> str:
    keys = [k for k in SUMMARY_KEYS if any(k in r["summary"] for r in runs)]
    head = "".join(f"<th>{_e(k)}</th>" for k in ("run", "algorithm", "task", "seed", *keys))
    rows = []
    for i, run in enumerate(runs):
        name = _e(run["name"]) + ("" if run["finished"] else ' <span class="note">(stopped: '
                                  'last logged row)</span>')
        cells = "".join(_cell(run["summary"].get(k)) for k in keys)
        rows.append(f'<tr id="row-{i}"><td><a href="#run-{i}">{name}</a></td>'
                    f'<td class="text">{_e(run["algorithm"])}</td><td class="text">'
                    f'{_e(run["task"])}</td>{_cell(run["seed"])}{cells}</tr>')
    return (f'<div class="wide"><table id="summary"><tr>{head}</tr>{"".join(rows)}</table>'
            f'</div>')


def _img(uri: str, alt: str) -> str:
    return f'<img src="{_e(uri)}" alt="{_e(alt)}">'


def _run_section(i: int, run: dict) -> str:
    parts = [f'<section id="run-{i}"><h2>{_e(run["name"])}</h2>',
             f'<p>{_e(run["algorithm"])} on {_e(run["task"])}, seed {_e(run["seed"])}'
             f' <span class="note">({_e(run["path"])})</span></p>']
    parts += [_img(uri, f"{run['name']}: {label}") for label, uri in run["figures"]]
    if run["distilled"] is not None:
        parts.append("<h3>distilled policy</h3>")
        if run["distilled"]["heatmap"]:
            parts.append(_img(run["distilled"]["heatmap"], f"{run['name']}: distilled policy"))
        rows = "".join(f'<tr><td>{_e(k)}</td>{_cell(v)}</tr>'
                       for k, v in run["distilled"]["values"].items())
        parts.append(f'<table class="distilled"><tr><th>report.json</th><th>value</th></tr>'
                     f'{rows}</table>')
    parts.append(f'<details><summary>resolved config</summary><pre>{_e(run["config"])}</pre>'
                 f'</details></section>')
    return "\n".join(parts)


def render_html(runs: list[dict], compare: str | None = None) -> str:
    """The page for ``runs`` (as :func:`_run_view` describes them) and an optional compare
    figure (a data URI)."""
    title = "neuroqd report: " + ", ".join(r["name"] for r in runs)
    body = [f"<h1>{_e(title)}</h1>", _summary_table(runs)]
    if compare is not None:
        body += ["<h2>comparison</h2>", '<p class="note">median and interquartile range per '
                 'group (runs named NAME_sSEED are grouped by NAME)</p>',
                 _img(compare, "comparison")]
    body += [_run_section(i, run) for i, run in enumerate(runs)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
