"""`neuroqd explore` over HTTP: its endpoints serve the runs as compact arrays, renders land in
DIR/explore_cache/ only and are not served once stale, a run still going is served live, and
traversal or malformed requests get a short JSON 4xx, never a traceback."""

import http.client
import json
import os
import shutil
import socket
import time

import numpy as np
import pytest

from experiments.cli import main
from experiments.explore import make_server
from explore_helpers import MAZE, explorer, get, get_json, neuroqd_run, synthetic_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("explore")
    neuroqd_run(MAZE, base / "maze")
    neuroqd_run(["cvt_me_arm", "--set", "batch_size=64", "--set", "budget.evaluations=256",
                 "--set", "archive.cells=64", "--set", "archive.samples=2000"], base / "cvt")
    synthetic_run(base / "legs", "me_ant_omni", ["task.name=ant_uni", "archive.dims=[3,3,3,3]"])
    synthetic_run(base / "hopper", "me_walker2d_uni", ["task.name=hopper_uni", "archive.dims=[10]"])
    # The Deep GA with seed chains: its archive stores genome ids (checkpoints hold the chains).
    assert main(["run", "ga_hard_maze", "--set", "deep_ga.genome=chain", "--set", "batch_size=64",
                 "--set", "budget.evaluations=192", "--set", "task.episode_length=60", "--quiet",
                 "--out", str(base / "chain")]) == 0
    return {name: base / name for name in ("maze", "cvt", "legs", "hopper", "chain")}


@pytest.fixture(scope="module")
def server(runs):
    with explorer([runs[name] for name in ("maze", "cvt", "legs", "hopper", "chain")]) as server:
        yield server


def files_outside_cache(run_dir):
    return {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")
            if "explore_cache" not in p.relative_to(run_dir).parts}


def render(url: str, timeout: float = 120):
    """Ask for a render until it is there (200) or refused; returns (status, body, polls)."""
    deadline, polls = time.time() + timeout, 0
    while True:
        status, body = get_json(url)
        polls += 1
        if status != 202 or time.time() > deadline:
            return status, body, polls
        time.sleep(0.1)


def test_page_and_run_list(server, runs):
    status, headers, body = get(server.url)
    assert status == 200 and b'src="/static/app.js"' in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]  # no script from elsewhere
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css")):
        status, headers, _ = get(server.url + "static/" + name)
        assert status == 200 and headers["Content-Type"].startswith(kind)
    status, listing = get_json(server.url + "api/runs")
    import matplotlib

    first = matplotlib.colormaps["magma"](0.0)  # the heatmaps' colormap (ribs' default)
    assert listing["colormap"][0] == "#%02x%02x%02x" % tuple(round(255 * c) for c in first[:3])
    assert len(listing["colormap"]) == 256 and len(listing["palette"]) == 10
    maze = listing["runs"][0]
    assert maze["name"] == "maze" and maze["task"] == "hard_maze" and maze["descriptor_y_down"]
    assert maze["descriptor_names"] == ["final x", "final y"]
    assert [r["descriptor_dim"] for r in listing["runs"]] == [2, 2, 4, 1, 2]
    assert maze["dir"] == str(runs["maze"])  # shown as typed; URLs name a run by its index


def test_grid_archive_metrics_and_files(server, runs):
    from archives import load_archive

    _, a = get_json(server.url + "api/runs/0/archive")
    elites = load_archive(runs["maze"] / "archive.npz").elites()
    assert a["view"] == "grid" and a["dims"] == [50, 50] and a["cells"] == 2500
    assert a["index"] == elites["index"].tolist() and a["source"] == "archive.npz"
    assert np.allclose(a["fitness"], elites["fitness"].numpy(), rtol=1e-5)
    assert np.allclose(np.array(a["descriptors"]).T, elites["descriptors"].numpy(), atol=1e-5)
    assert (a["vmin"], a["vmax"]) == pytest.approx((min(a["fitness"]), max(a["fitness"])), rel=1e-6)
    _, m = get_json(server.url + "api/runs/0/metrics")
    lines = (runs["maze"] / "metrics.csv").read_text().splitlines()
    assert m["rows"] == len(lines) - 1 > 1 and m["columns"][:3] == ["iteration", "evaluations",
                                                                    "qd_score"]
    assert m["data"]["evaluations"][-1] == 512
    _, f = get_json(server.url + "api/runs/0/files")
    assert f["config"] == (runs["maze"] / "config.yaml").read_text()
    assert f["summary"]["evaluations"] == 512


def test_cvt_cells_are_voronoi_polygons_clipped_to_the_bounds(server):
    import shapely

    _, a = get_json(server.url + "api/runs/1/archive")
    assert a["view"] == "cvt" and a["cells"] == 64 and len(a["polygon_start"]) == 65
    xy = np.array(a["polygon_xy"]).reshape(-1, 2)
    centroids = np.array(a["centroids"]).reshape(-1, 2)
    _, listing = get_json(server.url + "api/runs")
    (lo_x, hi_x), (lo_y, hi_y) = listing["runs"][1]["descriptor_bounds"]
    assert xy[:, 0].min() >= lo_x - 1e-6 and xy[:, 0].max() <= hi_x + 1e-6
    assert xy[:, 1].min() >= lo_y - 1e-6 and xy[:, 1].max() <= hi_y + 1e-6
    cells = [shapely.Polygon(xy[s:e]) for s, e in zip(a["polygon_start"], a["polygon_start"][1:])]
    assert sum(c.area for c in cells) == pytest.approx((hi_x - lo_x) * (hi_y - lo_y), rel=1e-3)
    assert all(c.buffer(1e-6).contains(shapely.Point(p)) for c, p in zip(cells, centroids))


def test_other_descriptor_sizes_are_drawn_as_dots_with_a_note(server):
    _, legs = get_json(server.url + "api/runs/2/archive")
    assert legs["view"] == "scatter" and legs["descriptor_dim"] == 4
    assert len(legs["descriptors"]) == 4 and len(legs["index"]) == 81
    assert "first two dimensions" in legs["note"]
    _, hopper = get_json(server.url + "api/runs/3/archive")
    assert hopper["view"] == "scatter" and "y the fitness" in hopper["note"]


def test_render_is_cached_in_explore_cache_and_never_stale(server, runs):
    maze = runs["maze"]
    before = files_outside_cache(maze)
    _, a = get_json(server.url + "api/runs/0/archive")
    best = a["index"][int(np.argmax(a["fitness"]))]
    status, info, polls = render(f"{server.url}api/runs/0/render?cell={best}")
    assert status == 200 and polls >= 2  # rendered in the background while the page polls
    assert info["kind"] == "png" and info["cell"] == best and "path" not in info
    assert info["fitness"] == pytest.approx(max(a["fitness"]), rel=1e-5)  # the maze replays exactly
    status, headers, png = get(server.url + info["url"].lstrip("/"))
    assert status == 200 and headers["Content-Type"] == "image/png" and png[:4] == b"\x89PNG"
    status, headers, part = get(server.url + info["url"].lstrip("/"), {"Range": "bytes=0-99"})
    assert status == 206 and part == png[:100]
    assert headers["Content-Range"] == f"bytes 0-99/{len(png)}"
    assert (maze / "explore_cache" / info["media"]).exists()
    assert files_outside_cache(maze) == before  # the server writes nowhere else
    # Another server (a later session) answers from the cache at once.
    with explorer([maze]) as again:
        status, cached, polls = render(f"{again.url}api/runs/0/render?cell={best}")
        assert status == 200 and polls == 1 and cached["media"] == info["media"]
        # The archive changes (a new checkpoint, a resumed run): the old render is stale.
        stamp = (maze / "archive.npz").stat()
        os.utime(maze / "archive.npz", ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))
        status, fresh, polls = render(f"{again.url}api/runs/0/render?cell={best}")
        assert status == 200 and polls >= 2 and fresh["media"] != info["media"]


def test_seed_chain_elites_show_their_genome_id(server):
    _, a = get_json(server.url + "api/runs/4/archive")
    assert len(a["genome_id"]) == len(a["index"]) > 0
    status, info, _ = render(f"{server.url}api/runs/4/render?cell={a['index'][0]}")
    assert status == 200 and info["genome_id"] == a["genome_id"][0]
    assert info["fitness"] == pytest.approx(a["fitness"][0], rel=1e-6)


def test_distilled_policy_renders_where_clicked(runs, server):
    status, body = get_json(f"{server.url}api/runs/0/render?descriptor=0.5,0.5&distilled=1")
    assert status == 400 and "no distilled policy" in body["error"]
    distilled = runs["maze"].parent / "distilled_maze"
    shutil.copytree(runs["maze"], distilled, ignore=shutil.ignore_patterns("explore_cache"))
    assert main(["distill", str(distilled), "--epochs", "1", "--hidden", "16"]) == 0
    with explorer([distilled]) as srv:
        _, listing = get_json(srv.url + "api/runs")
        assert listing["runs"][0]["stamps"]["distilled"] is not None
        status, info, _ = render(f"{srv.url}api/runs/0/render?descriptor=0.3,0.6&distilled=1")
        assert status == 200 and info["target"] == pytest.approx([0.3, 0.6])
        assert len(info["descriptor"]) == 2 and info["kind"] == "png"
        status, body, _ = render(f"{srv.url}api/runs/0/render?descriptor=3,0.6&distilled=1")
        assert status == 400 and "outside the descriptor bounds" in body["error"]


@pytest.mark.parametrize("path", [
    "/static/../../etc/passwd", "/static/%2e%2e/%2e%2e/etc/passwd", "/static/..%2f..%2fetc%2fpasswd",
    "/static/%2fetc%2fpasswd", "//etc/passwd", "/etc/passwd", "/static/", "/static/app.js/x",
    "/api/runs/0/media/..%2fconfig.yaml", "/api/runs/0/media/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/api/runs/0/media/.%2e", "/api/runs/0/media/config.yaml", "/api/runs/0/../../../etc/passwd",
    "/api/runs/5/archive", "/api/runs/-1/archive", "/api/runs/99999999/archive",
    "/api/runs/0x1/archive", "/api/runs/%2e%2e/archive", "/api/runs/0/config.yaml",
    "/api/runs/0/archive.npz", "/api/nope", "/favicon.ico",
])
def test_traversal_and_unknown_paths_are_404(server, path):
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
    connection.request("GET", path)  # sent as written: no client-side normalisation
    response = connection.getresponse()
    body = response.read()
    assert response.status == 404, (path, body)
    assert list(json.loads(body)) == ["error"] and b"root:" not in body


@pytest.mark.parametrize("query", [
    "render?cell=abc", "render?cell=-1", "render?cell=1.5", "render?cell=", "render?cell=1&cell=2",
    "render?cell=99999", "render", "render?cell=1&descriptor=0,0", "render?descriptor=a,b",
    "render?descriptor=0.5", "render?descriptor=nan,0", "render?descriptor=0.5,0.5&distilled=2",
    "render?cell=1&color=red", "archive?x=1", "metrics?", "files?a=1&a=2", "render?%zz",
])
def test_malformed_queries_get_a_short_json_400(server, query):
    status, headers, body = get(f"{server.url}api/runs/0/{query}")
    if query == "metrics?":  # an empty query string is no query at all
        assert status == 200
        return
    assert status == 400, (query, body)
    assert headers["Content-Type"] == "application/json"
    error = json.loads(body)["error"]
    assert "\n" not in error and "Traceback" not in error and len(error) < 200


def test_other_methods_bad_request_lines_and_foreign_hosts_are_refused(server):
    status, headers, body = get(server.url + "api/runs", method="POST")
    assert status == 405 and headers["Allow"] == "GET" and "error" in json.loads(body)
    status, _, _ = get(server.url + "api/runs", method="DELETE")
    assert status == 405
    # A page elsewhere reaching the loopback server through its own host name (DNS rebinding).
    status, _, body = get(server.url + "api/runs", {"Host": "203.0.113.7:80"})
    assert status == 403 and "error" in json.loads(body)
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as s:
        s.sendall(b"GET /api/runs extra HTTP/1.1\r\n\r\n")  # one word too many
        reply = s.recv(65536)
    assert reply.startswith(b"HTTP/1.1 400") and b"Traceback" not in reply
    assert get(server.url + "api/status")[0] == 200  # still serving


def test_live_run_is_served_as_its_files_change(runs, tmp_path):
    live = tmp_path / "live"
    shutil.copytree(runs["maze"], live, ignore=shutil.ignore_patterns("explore_cache"))
    (live / "summary.json").unlink()
    final = live / "archive.npz"
    final.rename(tmp_path / "archive.npz")  # while a run goes, the archive is in checkpoints only
    with explorer([live]) as srv:
        _, status = get_json(srv.url + "api/status")
        assert status["runs"][0]["summary"] is None
        _, a = get_json(srv.url + "api/runs/0/archive")
        assert a["source"].startswith("ckpt_") and len(a["index"]) > 0
        _, f = get_json(srv.url + "api/runs/0/files")
        assert f["summary"] is None and "still going" in f["summary_note"]
        _, m = get_json(srv.url + "api/runs/0/metrics")
        with open(live / "metrics.csv", "a") as csv_file:
            csv_file.write("99,9999,1.0,0.5,-1.0,1.0" + ",0" * (len(m["columns"]) - 6) + "\n")
        _, after = get_json(srv.url + "api/status")
        assert after["runs"][0]["metrics"] != status["runs"][0]["metrics"]
        _, m2 = get_json(srv.url + "api/runs/0/metrics")
        assert m2["rows"] == m["rows"] + 1 and m2["data"]["evaluations"][-1] == 9999
        (tmp_path / "archive.npz").rename(final)  # the run ends
        _, after = get_json(srv.url + "api/status")
        assert after["runs"][0]["archive"].startswith("archive.npz:")
        _, a2 = get_json(srv.url + "api/runs/0/archive")
        assert a2["source"] == "archive.npz" and a2["stamp"] == after["runs"][0]["archive"]


def test_bad_port_or_directory_is_one_line_exit_2(runs, tmp_path, capsys):
    for port in (-1, 65536, "80"):
        with pytest.raises(ValueError, match=r"^--port: expected 0 to 65535"):
            make_server([runs["maze"]], port=port)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=rf"^--port: {port} is already in use"):
            make_server([runs["maze"]], port=port)
        capsys.readouterr()
        assert main(["explore", str(runs["maze"]), "--port", str(port)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"neuroqd: error: --port: {port} is already in use") \
            and err.count("\n") == 1
    assert main(["explore", str(runs["maze"]), "--port", "70000"]) == 2
    assert main(["explore", str(tmp_path)]) == 2
    assert "DIR:" in capsys.readouterr().err
