"""`neuroqd report`: one self-contained HTML file (images inlined, nothing fetched), the
summary table equal to summary.json, text escaped, and bad input one line, exit code 2."""

import base64
import csv
import json
import re
import shutil
from html.parser import HTMLParser

import pytest
import yaml

from experiments.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
RUN = ["me_arm", "--quiet", "--set", "budget.evaluations=1024", "--set", "batch_size=256",
       "--set", "checkpoint_every=0"]
ODD = 'arm<&>"_s1'  # a run name with characters HTML must escape


class Page(HTMLParser):
    """The parts of the page the tests look at: attributes, summary cells, <pre> text."""

    def __init__(self, text):
        super().__init__()
        self.attrs, self.rows, self.pre, self._table, self._pre = [], [], [], None, False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.attrs.append((tag, attrs))
        if tag == "table":
            self._table = attrs.get("id")
        elif tag == "tr" and self._table == "summary":
            self.rows.append([])
        elif tag == "td" and self._table == "summary":
            self.rows[-1].append(attrs.get("data-value"))
        elif tag == "pre":
            self._pre = True
            self.pre.append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag == "pre":
            self._pre = False

    def handle_data(self, data):
        if self._pre:
            self.pre[-1] += data


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    dirs = [base / "me_arm_s0", base / ODD]
    for seed, d in enumerate(dirs):
        assert main(["run", *RUN, "--seed", str(seed), "--out", str(d)]) == 0
    return dirs


def report(tmp_path, capsys, dirs):
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    capsys.readouterr()
    assert main(["report", *map(str, dirs), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert list(out.parent.iterdir()) == [out]  # one file, nothing beside it
    return out.read_text(encoding="utf-8")


def test_report_is_one_self_contained_file_with_the_summaries(runs, tmp_path, capsys):
    # a distilled policy's report (written by hand here: distilling needs a control task)
    distilled = runs[0] / "distilled"
    distilled.mkdir(exist_ok=True)
    (distilled / "report.json").write_text(json.dumps(
        {"archive": {"qd_score": 12.5}, "distilled": {"qd_score": 5.0}, "qd_score_ratio": 0.4}))
    shutil.copy(runs[0] / "heatmap.png", distilled / "heatmap.png")
    (runs[0] / "curves.png").unlink()  # drawn again for the report
    text = report(tmp_path, capsys, runs)
    assert (runs[0] / "curves.png").exists()

    assert not re.search(r"https?://", text)
    page = Page(text)
    sources = [a["src"] for tag, a in page.attrs if "src" in a]
    assert all(a["href"].startswith("#") for _, a in page.attrs if "href" in a)
    assert not [tag for tag, _ in page.attrs if tag in ("script", "link", "iframe", "object")]
    # heatmap and curves of each run, the distilled heatmap, the compare figure
    assert len(sources) == 6
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)

    header = ["algorithm", "task", "seed", "evaluations", "qd_score", "coverage", "max_fitness",
              "time_s", "failed_evaluations"]
    assert len(page.rows) == 3 and page.rows[0] == []  # the header row has no <td>
    for d, cells in zip(runs, page.rows[1:]):
        summary = json.loads((d / "summary.json").read_text())
        values = dict(zip(header, cells[1:]))
        assert {k: json.loads(values[k]) for k in header[3:]} == {k: summary[k] for k in header[3:]}
        assert json.loads(values["seed"]) == yaml.safe_load((d / "config.yaml").read_text())["seed"]
    # the resolved configs, unescaped, in their <details>
    assert page.pre == [(d / "config.yaml").read_text() for d in runs]
    assert text.count("<details>") == 2
    assert "qd_score_ratio" in text and "distilled policy" in text
    # the odd name only ever appears escaped
    assert ODD not in text and "arm&lt;&amp;&gt;&quot;_s1" in text


def test_a_stopped_run_shows_its_last_logged_row(runs, tmp_path, capsys):
    stopped = tmp_path / "stopped_s0"
    shutil.copytree(runs[0], stopped)
    (stopped / "summary.json").unlink()
    text = report(tmp_path, capsys, [stopped])
    with open(stopped / "metrics.csv", newline="") as f:
        last = list(csv.DictReader(f))[-1]
    cells = Page(text).rows[1]
    assert json.loads(cells[4]) == int(last["evaluations"])
    assert json.loads(cells[5]) == float(last["qd_score"])
    assert "(stopped: last logged row)" in text and "comparison" not in text


def test_bad_input_is_one_line_and_exit_2(runs, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.yaml").write_text((runs[0] / "config.yaml").read_text())
    for args, expected in [
        ([str(runs[0]), "--out", str(tmp_path / "nowhere" / "r.html")],
         f"--out: directory {tmp_path / 'nowhere'} does not exist"),
        ([str(runs[0]), "--out", str(tmp_path)], f"--out: {tmp_path} is a directory"),
        ([str(runs[0]), str(empty), "--out", str(tmp_path / "r.html")],
         f"DIR: {empty} has no metrics.csv"),
        ([str(tmp_path / "missing"), "--out", str(tmp_path / "r.html")], "DIR: "),
    ]:
        assert main(["report", *args]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "r.html").exists()
