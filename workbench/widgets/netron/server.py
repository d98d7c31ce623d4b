"""A per-model HTTP server for Netron's front end, on 127.0.0.1, that works offline.

The page is Netron's own (the static files of the installed ``netron`` package, see ``page.py``);
the server differs from ``netron.serve`` where a notebook needs it to:

- one server per model, each with its own model: ``netron.serve`` keeps the served file in a
  class attribute shared by every server in the process, so a second model replaces the first;
- only that model and the external-data files it names inside its folder are served (``policy.py``);
- every path sits under a random token (``/<token>/``): other local users cannot guess it;
- it answers only to the ``Host`` names it is reached by: 127.0.0.1/localhost/[::1] with its port,
  or the Jupyter server's host through jupyter-server-proxy (``policy.py``); others get 403;
- paths are relative, so the page works at ``/`` (direct) and behind jupyter-server-proxy
  (``{base_url}proxy/127.0.0.1:<port>/<token>/``);
- offline and private: a Content-Security-Policy (meta tag and header) allows the page's own
  folder only, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``, and
  ``workbench-offline.js`` marks consent as given and turns off Netron's telemetry;
- bounded: a request must arrive within ``request_timeout`` seconds, at most ``MAX_CONNECTIONS``
  are served at once, and ``stop()`` closes the open connections as well as the listening socket.

Servers stop on ``stop()``, when their owner is garbage collected, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import http.server
import json
import logging
import mimetypes
import os
import secrets
import shutil
import socket
import threading
import urllib.parse
import weakref
from pathlib import Path
from typing import Any, Iterable

from workbench.widgets.netron.page import (
    CSP,
    OFFLINE_SCRIPT,
    OVERLAY_SCRIPT,
    netron_css,
    netron_root,
    netron_version,
    page_csp,
    render_index,
)
from workbench.widgets.netron.overlay import OverlayChannel
from workbench.widgets.netron.policy import Route, external_file, route_of

__all__ = ["CSP", "NetronServer", "live_servers", "netron_root", "netron_version", "render_index", "stop_all"]

logger = logging.getLogger(__name__)

#: Seconds a connection may take to send its request (and to take each part of the answer).
REQUEST_TIMEOUT = 15.0
#: Connections served at once; more are closed on arrival (a browser opens about six).
MAX_CONNECTIONS = 64
_STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json",
                 ".png": "image/png", ".ico": "image/x-icon", ".svg": "image/svg+xml", ".woff2": "font/woff2"}
#: Further ``Host`` names to answer to, comma-separated (e.g. a port forwarded under another number).
ALLOWED_HOSTS_ENV = "WORKBENCH_NETRON_ALLOWED_HOSTS"
_REFUSED_HOST = (b"Forbidden: this server answers to 127.0.0.1 and localhost with its own port, or through the "
                 b"Jupyter server. To reach it by another name, set " + ALLOWED_HOSTS_ENV.encode() +
                 b"=name[:port] in the kernel's environment.")

_LIVE: weakref.WeakSet[NetronServer] = weakref.WeakSet()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    server_version = "workbench-netron"
    sys_version = ""
    _csp = CSP

    def setup(self) -> None:
        self.timeout = self.server.request_timeout  # StreamRequestHandler puts it on the socket
        super().setup()

    def version_string(self) -> str:
        return self.server_version  # no Python version in `Server`

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", self._csp)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - BaseHTTPRequestHandler's name
        logger.debug("netron %s: " + format, self.server.owner.port, *args)

    def do_HEAD(self) -> None:  # noqa: N802 - http.server's name
        self._serve(head=True)

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def _route(self) -> Route | None:
        owner = self.server.owner
        return route_of(self.headers.get_all("Host") or [], self.headers.get("X-Forwarded-Context"),
                        port=owner.port, allowed_hosts=owner.allowed_hosts)

    def _serve(self, *, head: bool) -> None:
        owner = self.server.owner
        route = self._route()
        if route is None:
            logger.debug("netron %s: refused Host %r", owner.port, self.headers.get("Host"))
            self._send(403, "text/plain", _REFUSED_HOST, head=head)
            return
        self._csp = page_csp(route.scope(owner.token))
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
        elif rest == "workbench-netron.css":
            self._send(200, "text/css; charset=utf-8", netron_css().encode("utf-8"), head=head, cache=True)
        elif rest == "workbench-overlay.js":
            self._send(200, "text/javascript", OVERLAY_SCRIPT.read_bytes(), head=head)
        elif rest == "wb-overlay.json":  # polled: ?since=<revision> answers {"revision"} alone when unchanged
            since = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("since", [""])[0]
            self._send(200, "application/json", owner.channel.state_json(since=since), head=head)
        elif rest == "wb-pick":
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            owner.channel.pick(query.get("name", [""])[0][:1000])
            self._send(204, "text/plain", b"", head=True)
        elif rest == "wb-id":
            body = json.dumps({"token": owner.token, "model": owner.onnx_model.name}).encode("utf-8")
            # Readable cross-origin: the notebook page probes this to choose the direct route.
            self._send(200, "application/json", body, head=head, cors=True)
        elif rest.startswith("data/"):
            self._send_model_file(rest[len("data/"):], head=head)
        else:
            self._send_static(rest, head=head)

    def _send_model_file(self, name: str, *, head: bool) -> None:
        target = self.server.owner.served_file(name)
        if target is None:
            self._send(404, "text/plain", b"Only the inspected model is served here.", head=head)
            return
        try:
            with target.open("rb") as source:
                size = source.seek(0, 2)
                source.seek(0)
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                if not head:
                    shutil.copyfileobj(source, self.wfile, 1 << 20)
        except OSError:  # the browser went away mid-response, or the file did
            self.close_connection = True

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
            if cors:
                self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            if not head:
                self.wfile.write(body)
        except OSError:  # the browser went away mid-response
            self.close_connection = True


class _Server(http.server.ThreadingHTTPServer):
    """Keeps its open connections, so that ``close_connections()`` can end them."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, owner: NetronServer, host: str, port: int) -> None:
        self.owner = owner
        self.request_timeout = owner.request_timeout
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        self._closing = False
        super().__init__((host, port), _Handler)

    @property
    def open_connections(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            refuse = self._closing or len(self._connections) >= MAX_CONNECTIONS
            if not refuse:
                self._connections.add(request)
        if refuse:
            super().shutdown_request(request)
            return
        threading.Thread(target=self.process_request_thread, args=(request, client_address),
                         name=f"workbench-netron-{self.server_address[1]}-request", daemon=True).start()

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open connection: its handler's next read or write fails, and it exits."""
        with self._connections_lock:
            self._closing = True
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("netron %s: error serving %s", self.server_address[1], client_address, exc_info=True)


def _shut_down(server: _Server, thread: threading.Thread | None) -> None:
    server.shutdown()  # waits for serve_forever to return
    server.close_connections()
    server.server_close()
    if thread is not None:
        thread.join(timeout=2)


class NetronServer:
    """Serves Netron for one ONNX file at ``http://127.0.0.1:<port>/<token>/`` from a daemon thread.

    ``extra_files`` are names of the model's external data, relative to its folder: each is served
    if it resolves to a file inside that folder. ``allowed_hosts`` are further ``Host`` names to
    answer to (a reverse proxy of your own in front of the kernel; also read, comma-separated, from
    ``$WORKBENCH_NETRON_ALLOWED_HOSTS``); ``request_timeout`` bounds how long a connection may take
    to send its request. ``channel`` carries the overlay the page draws on the graph and the
    nodes clicked there (``overlay.py``); a view passes its own so it outlives the server.
    """

    def __init__(self, onnx_model: str | Path, *, extra_files: Iterable[str] = (), host: str = "127.0.0.1",
                 allowed_hosts: Iterable[str] = (), request_timeout: float = REQUEST_TIMEOUT,
                 channel: OverlayChannel | None = None) -> None:
        self.channel = channel if channel is not None else OverlayChannel()
        self.onnx_model = Path(onnx_model).resolve()
        self.extra_files = tuple(extra_files)
        self.host = host
        from_env = [h for h in os.environ.get(ALLOWED_HOSTS_ENV, "").split(",") if h.strip()]
        self.allowed_hosts = (*allowed_hosts, *from_env)
        self.request_timeout = float(request_timeout)
        self.token = secrets.token_urlsafe(16)
        self._folder = Path(onnx_model).absolute().parent
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        server = self._server
        return server.server_address[1] if server is not None else 0

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def open_connections(self) -> int:
        """Connections being served now."""
        server = self._server
        return server.open_connections if server is not None else 0

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
        for name in self.extra_files:
            target = external_file(self._folder, name)
            if target is not None:
                files.setdefault(name, target)
        return files

    def served_file(self, name: str) -> Path | None:
        """The file served as ``data/<name>``, checked now (a file may have changed since the start)."""
        if name == self.onnx_model.name:
            return self.onnx_model if self.onnx_model.is_file() else None
        return external_file(self._folder, name) if name in self.extra_files else None

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
        """Stop serving: the listening socket and every open connection are closed."""
        with self._lock:
            server, thread, self._server, self._thread = self._server, self._thread, None, None
        _LIVE.discard(self)
        if server is None:
            return
        if threading.current_thread() is thread:
            # Called on the serving thread itself (a finalizer run by the garbage collector there):
            # shutdown() would wait for this very thread, so finish from another one.
            threading.Thread(target=_shut_down, args=(server, None), name="workbench-netron-stop", daemon=True).start()
            return
        _shut_down(server, thread)

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
