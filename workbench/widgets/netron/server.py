"""A per-model HTTP server for Netron's front end, on 127.0.0.1, that works offline.

The page is Netron's own (the static files of the installed ``netron`` package); the server
differs from ``netron.serve`` where a notebook needs it to:

- one server per model, each with its own model: ``netron.serve`` keeps the served file in a
  class attribute shared by every server in the process, so a second model replaces the first;
- only that model (and the external-data files it names) is served, not its whole folder;
- every path sits under a random token (``/<token>/``): other local users cannot guess it;
- paths are relative, so the page works at ``/`` (direct) and behind jupyter-server-proxy
  (``{base_url}proxy/127.0.0.1:<port>/<token>/``);
- offline and private: a Content-Security-Policy allows connections to the page's own origin
  only, and ``workbench-offline.js`` (loaded before Netron's modules) marks consent as given and
  turns off Netron's telemetry, so the graph draws with no cookie dialog and no outside request.

Servers stop on ``stop()``, when their owner is garbage collected, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import http.server
import json
import logging
import mimetypes
import re
import secrets
import shutil
import threading
import urllib.parse
import weakref
from pathlib import Path
from typing import Iterable

from workbench.core._format import esc

logger = logging.getLogger(__name__)

OFFLINE_SCRIPT = Path(__file__).with_name("offline.js")
#: What the served page may load and connect to: its own origin only.
CSP = ("default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data: blob:; "
       "style-src 'self' 'unsafe-inline'; font-src 'self' data:; worker-src 'self' blob:; "
       "frame-src 'none'; object-src 'none'; form-action 'none'")
_STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json",
                 ".png": "image/png", ".ico": "image/x-icon", ".svg": "image/svg+xml", ".woff2": "font/woff2"}
_CSP_META = re.compile(r'<meta http-equiv="Content-Security-Policy"[^>]*>')
_VERSION_META = re.compile(r'<meta name="version" content="[^"]*">')
_INDEX_SCRIPT = '<script type="text/javascript" src="index.js"></script>'

_LIVE: weakref.WeakSet[NetronServer] = weakref.WeakSet()


def netron_root() -> Path:
    """The folder of the installed ``netron`` package (its front end's static files)."""
    import netron

    return Path(netron.__file__).resolve().parent


def netron_version() -> str:
    import netron

    return str(getattr(netron, "__version__", "0.0.0"))


def render_index(model_name: str, *, version: str | None = None, root: Path | None = None) -> str:
    """Netron's ``index.html`` with the meta tags its Python server adds (so it opens ``model_name``
    at start), a same-origin-only CSP, and the offline script before Netron's own scripts."""
    text = ((root or netron_root()) / "index.html").read_text(encoding="utf-8")
    name = esc(model_name)
    meta = "\n".join([
        '<meta name="type" content="Python">',
        f'<meta name="version" content="{esc(version or netron_version())}">',
        f'<meta name="file" content="data/{urllib.parse.quote(model_name)}">',
        f'<meta name="name" content="{name}">',
        f'<meta name="identifier" content="{name}">',
    ])
    text, n_version = _VERSION_META.subn(lambda _: meta, text, count=1)
    text, n_csp = _CSP_META.subn(lambda _: f'<meta http-equiv="Content-Security-Policy" content="{CSP}">', text, count=1)
    if not n_csp:
        text = text.replace("<head>", f'<head>\n<meta http-equiv="Content-Security-Policy" content="{CSP}">', 1)
    if not n_version:
        text = text.replace("</head>", meta + "\n</head>", 1)
    offline = '<script type="text/javascript" src="workbench-offline.js"></script>'
    if _INDEX_SCRIPT in text:
        text = text.replace(_INDEX_SCRIPT, _INDEX_SCRIPT + "\n" + offline, 1)
    else:
        text = text.replace("</head>", offline + "\n</head>", 1)
    return text


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        logger.debug("netron %s: " + format, self.server.owner.port, *args)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        self._serve(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        owner = self.server.owner
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        prefix = f"/{owner.token}/"
        if not path.startswith(prefix):
            self._send(404, "text/plain", b"Not found", head=head)
            return
        rest = path[len(prefix):]
        if rest in ("", "index.html"):
            body = render_index(owner.onnx_model.name).encode("utf-8")
            self._send(200, "text/html; charset=utf-8", body, head=head)
        elif rest == "workbench-offline.js":
            self._send(200, "text/javascript", OFFLINE_SCRIPT.read_bytes(), head=head)
        elif rest == "wb-id":
            body = json.dumps({"token": owner.token, "model": owner.onnx_model.name}).encode("utf-8")
            # Readable cross-origin: the notebook page probes this to choose the direct route.
            self._send(200, "application/json", body, head=head, cors=True)
        elif rest.startswith("data/"):
            self._send_model_file(rest[len("data/"):], head=head)
        else:
            self._send_static(rest, head=head)

    def _send_model_file(self, name: str, *, head: bool) -> None:
        owner = self.server.owner
        target = owner.served_files().get(name)
        if target is None or not target.is_file():
            self._send(404, "text/plain", b"Only the inspected model is served here.", head=head)
            return
        size = target.stat().st_size
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if not head:
                with target.open("rb") as source:
                    shutil.copyfileobj(source, self.wfile, 1 << 20)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send_static(self, rest: str, *, head: bool) -> None:
        root = netron_root()
        target = (root / rest).resolve()
        kind = _STATIC_TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0]
        if root not in target.parents or not target.is_file() or target.suffix not in _STATIC_TYPES or not kind:
            self._send(404, "text/plain", b"Not found", head=head)
            return
        self._send(200, kind, target.read_bytes(), head=head, cache=True)

    def _send(self, status: int, kind: str, body: bytes, *, head: bool, cors: bool = False, cache: bool = False) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "private, max-age=3600" if cache else "no-store")
            self.send_header("Referrer-Policy", "no-referrer")
            if cors:
                self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            if not head:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the browser went away mid-response
            pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: NetronServer, host: str, port: int) -> None:
        self.owner = owner
        super().__init__((host, port), _Handler)


class NetronServer:
    """Serves Netron for one ONNX file at ``http://127.0.0.1:<port>/<token>/`` from a daemon thread.

    ``extra_files`` are names next to the model that may be served too (its external data).
    """

    def __init__(self, onnx_model: str | Path, *, extra_files: Iterable[str] = (), host: str = "127.0.0.1") -> None:
        self.onnx_model = Path(onnx_model).resolve()
        self.extra_files = tuple(extra_files)
        self.host = host
        self.token = secrets.token_urlsafe(16)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server is not None else 0

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        """The direct URL (reachable where the browser shares the kernel's host)."""
        return f"http://{self.host}:{self.port}/{self.token}/"

    def proxy_path(self, base_url: str = "/") -> str:
        """The path through jupyter-server-proxy, under the Jupyter server's ``base_url``."""
        return f"{base_url.rstrip('/')}/proxy/{self.host}:{self.port}/{self.token}/"

    def served_files(self) -> dict[str, Path]:
        """URL name -> file, for the model and the external-data files it names; nothing else."""
        files = {self.onnx_model.name: self.onnx_model}
        folder = self.onnx_model.parent
        for name in self.extra_files:
            candidate = (folder / name).resolve()
            if candidate.parent == folder:
                files[name] = candidate
        return files

    def start(self) -> NetronServer:
        with self._lock:
            if self._server is None:
                self._server = _Server(self, self.host, 0)
                self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                                name=f"workbench-netron-{self.port}", daemon=True)
                self._thread.start()
                _LIVE.add(self)
        return self

    def stop(self) -> None:
        with self._lock:
            server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=2)
        _LIVE.discard(self)

    def __enter__(self) -> NetronServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        return f"NetronServer({str(self.onnx_model)!r}, {where})"


def live_servers() -> list[NetronServer]:
    """Servers started and not yet stopped in this process."""
    return [s for s in list(_LIVE) if s.running]


@atexit.register
def stop_all() -> None:
    """Stop every server of this process (run at interpreter exit)."""
    for server in live_servers():
        server.stop()
