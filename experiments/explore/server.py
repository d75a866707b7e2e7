"""The explorer's HTTP server: its static page and a small JSON API over the given runs.

The standard library's ``ThreadingHTTPServer`` is enough here (a handful of GET endpoints for
one local user), so no web framework is needed. What a request can reach is fixed when the
server starts: the files of ``static/`` (by name), and per run, named by its index in the
command line and never by a path, its archive, metrics, config/summary and the renders in its
``explore_cache/``. No request path is ever joined onto a directory unchecked.

Endpoints (all GET; anything else is a 4xx with ``{"error": "..."}``)::

    /, /static/NAME                     the page (index.html, app.js, style.css)
    /api/runs                           the runs, the colormap and the run colours
    /api/status                         per run, a stamp per file: the page refetches what changed
    /api/runs/I/archive|metrics|files   elites as arrays; metrics.csv columns; config + summary
    /api/runs/I/render?cell=C | ?descriptor=X,Y [&distilled=1]
                                        202 while rendering (poll again), 200 with the media URL
    /api/runs/I/media/NAME              a render from DIR/explore_cache/ (byte ranges for video)
"""

from __future__ import annotations

import errno
import json
import math
import re
import socket
import socketserver
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from experiments.explore.renders import MEDIA_TYPES, RenderQueue, RenderRequestError
from experiments.explore.runs import COLORMAP, PALETTE, ExploredRun, colours

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}
MEDIA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*\.(png|mp4|gif)")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# The page's own files only: no script, style or media from anywhere else, nothing inline.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self'; connect-src 'self'")


class HTTPError(Exception):
    """An answer other than 200: sent as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def finite(obj):
    """``obj`` with NaN and infinities as None: the browser's JSON.parse rejects them."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


class ExploreServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows the runs it shows and renders their elites."""

    daemon_threads = True  # Ctrl-C never waits for a browser's open connection

    def __init__(self, runs: list[ExploredRun], host: str, port: int) -> None:
        self.runs = runs
        self.renders = RenderQueue()
        self.static = {p.name: p for p in STATIC.iterdir() if p.suffix in STATIC_TYPES}
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host up in DNS (socket.getfqdn), which can hang for
        # seconds on a machine without a resolver; the name is only used in log lines.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def url(self) -> str:
        host = self.server_name
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.server_port}/"

    def server_close(self) -> None:
        super().server_close()
        self.renders.close()


class Handler(BaseHTTPRequestHandler):
    server: ExploreServer
    server_version = "neuroqd-explore"
    protocol_version = "HTTP/1.1"  # keep-alive: the page polls every 2 s

    def __getattr__(self, name):
        if name.startswith("do_"):  # POST, PUT, ...: 405 rather than the base class's 501
            return self._method_not_allowed
        raise AttributeError(name)

    def _method_not_allowed(self) -> None:
        self._send_json({"error": f"method {self.command} not allowed; this server only "
                                  "answers GET"}, HTTPStatus.METHOD_NOT_ALLOWED, {"Allow": "GET"})

    def log_request(self, code="-", size="-") -> None:
        pass  # one line per poll would drown the terminal; errors are still logged

    def send_error(self, code, message=None, explain=None) -> None:
        # Requests the base class rejects (bad request line, headers too long) get JSON too.
        self.close_connection = True
        self._send_json({"error": message or HTTPStatus(code).phrase}, code)

    # -- answering ---------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, obj, status: int = 200, headers: dict | None = None) -> None:
        body = obj if isinstance(obj, bytes) else json.dumps(finite(obj)).encode()
        self._send(status, body, "application/json", headers)

    def do_GET(self) -> None:
        try:
            self._route()
        except HTTPError as exc:
            self._send_json({"error": str(exc)}, exc.status)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the browser went away (a video seek, a reload)
        except Exception as exc:  # a bug: the traceback stays in the terminal
            traceback.print_exc(file=sys.stderr)
            self._send_json({"error": f"internal error ({type(exc).__name__}); details in the "
                                      "terminal running neuroqd explore"}, 500)

    def _route(self) -> None:
        self._check_host()
        url = urlsplit(self.path)
        if "\\" in unquote(url.path) or "\x00" in unquote(url.path):
            raise HTTPError(400, "malformed path")
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        query = self._query(url.query)
        if parts in ([""], ["index.html"]):
            return self._static("index.html", query)
        if len(parts) == 2 and parts[0] == "static":
            return self._static(parts[1], query)
        if parts[:1] != ["api"]:
            raise HTTPError(404, f"not found: {url.path}")
        if parts == ["api", "runs"]:
            self._params(query, ())
            return self._send_json({"runs": [r.describe() for r in self.server.runs],
                                    "colormap": colours(COLORMAP), "colormap_name": COLORMAP,
                                    "palette": colours(PALETTE, 10)})
        if parts == ["api", "status"]:
            self._params(query, ())
            return self._send_json({"runs": [r.stamps() for r in self.server.runs]})
        if len(parts) >= 4 and parts[1] == "runs":
            run = self._run(parts[2])
            what = parts[3:]
            if what in (["archive"], ["metrics"], ["files"]):
                self._params(query, ())
                return self._send_json(getattr(run, f"{what[0]}_json")())
            if what == ["render"]:
                return self._render(run, query)
            if len(what) == 2 and what[0] == "media":
                return self._media(run, what[1], query)
        raise HTTPError(404, f"not found: {url.path}")

    def _check_host(self) -> None:
        # A web page elsewhere could reach a loopback server through a name resolving to
        # 127.0.0.1 (DNS rebinding); its requests carry that name in Host, so they are refused.
        if self.server.server_name not in LOOPBACK:
            return
        host = (self.headers.get("Host") or "").strip().lower()
        name = host[1:].split("]")[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        if name not in LOOPBACK:
            raise HTTPError(403, "Host must be 127.0.0.1 or localhost")

    @staticmethod
    def _query(text: str) -> dict[str, str]:
        try:
            pairs = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
        except ValueError:
            raise HTTPError(400, f"malformed query string {text[:80]!r}") from None
        repeated = [k for k, v in pairs.items() if len(v) > 1]
        if repeated:
            raise HTTPError(400, f"{repeated[0]}: given more than once")
        return {k: v[0] for k, v in pairs.items()}

    @staticmethod
    def _params(query: dict, accepted: tuple[str, ...]) -> None:
        unknown = sorted(set(query) - set(accepted))
        if unknown:
            raise HTTPError(400, f"{unknown[0][:40]}: unknown query parameter; accepted here: "
                                 f"{', '.join(accepted) or 'none'}")

    def _run(self, text: str) -> ExploredRun:
        if not re.fullmatch(r"\d{1,6}", text) or int(text) >= len(self.server.runs):
            raise HTTPError(404, f"run {text[:20]!r}: no such run; runs are numbered 0 to "
                                 f"{len(self.server.runs) - 1}")
        return self.server.runs[int(text)]

    def _static(self, name: str, query: dict) -> None:
        self._params(query, ())
        path = self.server.static.get(name)  # a fixed set of names: nothing else is reachable
        if path is None:
            raise HTTPError(404, f"not found: /static/{name[:80]}")
        self._send(200, path.read_bytes(), STATIC_TYPES[path.suffix])

    def _render(self, run: ExploredRun, query: dict) -> None:
        self._params(query, ("cell", "descriptor", "distilled"))
        if ("cell" in query) == ("descriptor" in query):
            raise HTTPError(400, "render: give exactly one of cell=C or descriptor=X,Y")
        cell = descriptor = None
        if "cell" in query:
            if not re.fullmatch(r"\d{1,9}", query["cell"]):
                raise HTTPError(400, f"cell: expected a non-negative integer, got "
                                     f"{query['cell'][:40]!r}")
            cell = int(query["cell"])
        else:
            try:
                descriptor = [float(v) for v in query["descriptor"].split(",")]
            except ValueError:
                raise HTTPError(400, f"descriptor: expected comma-separated numbers, got "
                                     f"{query['descriptor'][:80]!r}") from None
        flag = query.get("distilled", "0")
        if flag not in ("0", "1"):
            raise HTTPError(400, f"distilled: expected 0 or 1, got {flag[:20]!r}")
        try:
            state, info = self.server.renders.request(run, cell, descriptor, flag == "1")
        except FileNotFoundError:
            raise HTTPError(404, f"run {run.index} has no archive yet") from None
        except (RenderRequestError, ValueError) as exc:  # bad cell/descriptor, task without pictures
            raise HTTPError(400, str(exc).splitlines()[0]) from None
        if state == "error":
            raise HTTPError(400 if info["bad"] else 500, info["error"])
        if state == "pending":
            return self._send_json({"state": state, **info}, 202)
        url = f"/api/runs/{run.index}/media/{info['media']}"
        self._send_json({"state": state, "url": url, **info})

    def _media(self, run: ExploredRun, name: str, query: dict) -> None:
        self._params(query, ())
        path = run.cache_dir / name
        if not MEDIA_NAME.fullmatch(name) or not path.is_file():
            raise HTTPError(404, f"not found: render {name[:80]!r}")
        size = path.stat().st_size
        start, end, status = 0, size - 1, 200
        ranged = re.fullmatch(r"bytes=(\d*)-(\d*)", (self.headers.get("Range") or "").strip())
        if ranged and (ranged[1] or ranged[2]):  # <video> asks for byte ranges to seek
            if ranged[1]:
                start, end = int(ranged[1]), min(int(ranged[2] or size - 1), size - 1)
            else:
                start = max(0, size - int(ranged[2]))
            if start > end:
                return self._send_json({"error": "range not satisfiable"}, 416,
                                       {"Content-Range": f"bytes */{size}"})
            status = 206
        with open(path, "rb") as f:
            f.seek(start)
            body = f.read(end - start + 1)
        self._send(status, body, MEDIA_TYPES[path.suffix],
                   {"Accept-Ranges": "bytes", "Content-Range": f"bytes {start}-{end}/{size}"}
                   if status == 206 else {"Accept-Ranges": "bytes"})


def make_server(dirs, host: str = "127.0.0.1", port: int = 8765) -> ExploreServer:
    """A bound, not yet serving, explorer over run directories ``dirs`` (call
    ``serve_forever``; ``port=0`` picks a free port, see ``.url``).

    Raises
    ------
    ValueError
        One line naming the argument: ``--port:`` (out of range, in use), ``--host:``, ``DIR:``.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"--port: expected 0 to 65535 (0 picks a free port), got {port!r}")
    if not dirs:
        raise ValueError("DIR: give at least one run directory")
    runs = []
    for i, d in enumerate(dirs):
        if not (Path(d) / "config.yaml").is_file():
            raise ValueError(f"DIR: {d} is not a run directory (no config.yaml)")
        run = ExploredRun(i, Path(d))
        # Loaded once here, in the main thread: a damaged run stops the command with one line,
        # and every module a request needs is imported before requests run in parallel.
        try:
            run.archive_json()
        except ValueError as exc:
            raise ValueError(f"DIR: {d}: {str(exc).splitlines()[0]}") from None
        runs.append(run)
    try:
        return ExploreServer(runs, host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ValueError(f"--port: {port} is already in use on {host}; pick another, or "
                             "--port 0 for a free one") from None
        if exc.errno == errno.EACCES:
            raise ValueError(f"--port: {port} needs privileges on this machine; use a port "
                             "above 1023, or 0 for a free one") from None
        raise ValueError(f"--host: cannot listen on {host!r} ({exc.strerror or exc})") from None
