"""``neuroqd explore DIR...``: a local web page over run directories.

The page (``static/``: plain HTML, JavaScript and canvas, nothing fetched from elsewhere) draws
each run's archive as the heatmaps do (grid cells or clipped Voronoi cells, ribs' colour scale),
its metrics.csv curves beside the other runs', its config.yaml and summary.json. A click on a
filled cell shows the elite (fitness, descriptor, cell, genome id) and what it does: the png or
mp4 of :func:`experiments.render.render_run`, cached in ``DIR/explore_cache/``, the only place
the explorer writes. Runs with a distilled policy have a mode where a click anywhere rolls the
policy out towards that descriptor. A run still going is redrawn as its files grow.

From Python (a thread, port 0 for a free one)::

    server = make_server([Path("runs/me_arm_s0")], port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.url); ...; server.shutdown(); server.server_close()
"""

from __future__ import annotations

import webbrowser
from pathlib import Path

from experiments.explore.server import ExploreServer, make_server

__all__ = ["ExploreServer", "make_server", "serve"]


def serve(dirs: list[Path], host: str = "127.0.0.1", port: int = 8765,
          open_browser: bool = False) -> int:
    """Serve the explorer until Ctrl-C; prints its URL first. Returns 0.

    Raises
    ------
    ValueError
        ``--port:`` out of range or in use, ``--host:`` cannot listen there, ``DIR:`` not a run.
    """
    server = make_server(dirs, host, port)
    print(f"neuroqd explore: {server.url} (Ctrl-C to stop)", flush=True)
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
