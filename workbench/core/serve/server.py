"""``wb.serve``: a micro-batching HTTP server for an ONNX model, running in a background thread.

    >>> server = wb.serve("model.onnx", config=wb.SessionConfig(opt_level="all"))   # returns at once
    >>> server.url                                                                  # http://127.0.0.1:PORT
    >>> wb.load_test(server, inputs)
    >>> server.stop()                                                               # drains the queue

uvicorn runs on its own event loop in a daemon thread (also from a notebook, whose kernel keeps its loop);
``port=0`` binds a free port, read back into ``server.url``. ``stop()`` asks uvicorn to shut down gracefully:
no new connections, requests already accepted are answered, then the batcher's queue is drained. For the
foreground (a CLI), call ``server.wait()``. ``engine="ray"`` serves the same endpoints on Ray Serve
(``workbench.core.serve.ray_engine``).
"""

from __future__ import annotations

import gc
import socket
import threading
import time
from pathlib import Path
from typing import Any

from workbench.core._format import esc
from workbench.core.serve._deps import require
from workbench.core.serve.state import build_state
from workbench.core.session import SessionConfig
from workbench.errors import InvalidInputError, WorkbenchError, brief

__all__ = ["SERVE_DEFAULT_CONFIG", "Server", "run_app", "serve"]


#: The session config of ``serve(config=None)``: ONNX Runtime's defaults without spinning. Spinning intra-op
#: threads keep every core busy after each run, taking the CPU the event loop needs to read the next requests.
SERVE_DEFAULT_CONFIG = SessionConfig(allow_spinning=False)


class Server:
    """A running server: ``url``, ``running``, ``stop()``, ``metrics()``, ``wait()``; a context manager."""

    def __init__(self, *, url: str, onnx_model: Any, config: SessionConfig, engine: str, stopper: Any,
                 settings: dict[str, Any]) -> None:
        self.url = url
        self.onnx_model = onnx_model
        self.config = config
        self.engine = engine
        self.settings = settings
        self._stopper = stopper  # engine-specific: .stop(timeout), .alive()

    @property
    def running(self) -> bool:
        return bool(self._stopper.alive())

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, answer the requests already accepted (up to ``timeout`` s), then shut down."""
        self._stopper.stop(timeout)

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C stops it): the foreground mode of a command line."""
        try:
            while self.running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            self.stop()

    def metrics(self) -> dict[str, Any]:
        """The server's ``/metrics``, parsed: requests by status, batches, mean batch size, queue/compute ms."""
        from workbench.core.serve.metrics import parse_metrics

        httpx = require("httpx")
        try:
            text = httpx.get(f"{self.url}/metrics", timeout=10.0).text
        except httpx.HTTPError as exc:
            raise WorkbenchError(f"Could not read {self.url}/metrics ({brief(exc)}); is the server running?") from None
        return parse_metrics(text)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _model_name(self) -> str:
        model = self.onnx_model
        return Path(model).name if isinstance(model, (str, Path)) else type(model).__name__

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (f"Server({self._model_name()} at {self.url}, {self.engine}, {state}, "
                f"max_batch={self.settings.get('max_batch')}, config={self.config.label()})")

    def _repr_html_(self) -> str:
        state = "running" if self.running else "stopped"
        rows = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in self.settings.items())
        return (f"<div class='wb-serve'><b>Server</b> {esc(self._model_name())} at <code>{esc(self.url)}</code> "
                f"({esc(self.engine)}, {esc(state)}, config {esc(self.config.label())})"
                f"<table class='wb-table'>{rows}</table></div>")


class _UvicornThread:
    """uvicorn.Server on its own loop in a daemon thread."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        uvicorn = require("uvicorn")
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                timeout_graceful_shutdown=10, loop=_loop_kind(), http=_http_kind())
        self.server = uvicorn.Server(config)
        self.error: BaseException | None = None
        self.sock = sock
        self.thread = threading.Thread(target=self._run, name="wb-serve-uvicorn", daemon=True)

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self.error = exc

    def start(self, timeout: float = 60.0) -> None:
        """Start the thread and wait until uvicorn listens; if it does not, stop it, close the socket and raise."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.server.should_exit = True
                self.thread.join(10)
                self.sock.close()
                reason = (brief(self.error) if self.error else "uvicorn stopped while starting (its log says why)"
                          if not self.thread.is_alive() else f"it did not start in {timeout:g} s")
                raise WorkbenchError(f"The server did not start: {reason}.")
            time.sleep(0.01)

    def alive(self) -> bool:
        return self.thread.is_alive() and not self.server.should_exit

    def stop(self, timeout: float) -> None:
        if not self.thread.is_alive():  # already ended (or died): the socket is still ours to close
            self.sock.close()
            return
        self.server.config.timeout_graceful_shutdown = max(1, int(timeout))
        self.server.should_exit = True
        self.thread.join(timeout + 5)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(5)
        self.sock.close()


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _loop_kind() -> str:
    """uvloop when installed (``pip install onnx-workbench[serve]`` brings it): its event loop costs about half
    of asyncio's per request; plain asyncio otherwise."""
    return "uvloop" if _importable("uvloop") else "asyncio"


def _http_kind() -> str:
    """httptools' C parser when installed, h11 otherwise."""
    return "httptools" if _importable("httptools") else "h11"


def _freeze_gc() -> None:
    """Collect once, then move every object alive now into the GC's permanent generation (``gc.freeze``).

    A process that imported torch, onnx and the web stack holds ~200k tracked objects; a full collection of them
    took ~125 ms on the project's 2-core machine, and a server allocating JSON lists triggers one every second
    or two: the event loop (and ``/v1/health``) stalls for that long. After ``freeze`` a full collection scans
    only what was made since. The cost: cyclic garbage among the frozen objects is never collected (the
    ``gc.collect()`` before the freeze clears what exists now). Process-wide, also in a notebook's kernel.
    """
    gc.collect()
    gc.freeze()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit TCP_NODELAY: without it a response written in two parts waits for the client's
    # delayed ACK (40 ms a request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInputError(f"Cannot listen on {host}:{port} ({exc}). Pass port=0 for a free port, or "
                                "another host.") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _check_settings(max_batch: Any, max_wait_ms: Any, max_queue: Any, workers: Any, replicas: Any, engine: Any,
                    port: Any) -> None:
    counts = (("max_batch", max_batch), ("max_queue", max_queue), ("workers", workers), ("replicas", replicas))
    for name, value in counts:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidInputError(f"{name} must be an int >= 1, received {value!r}.")
    if not isinstance(max_wait_ms, (int, float)) or isinstance(max_wait_ms, bool) or not 0 <= max_wait_ms <= 10_000:
        raise InvalidInputError(f"max_wait_ms must be a number of ms in [0, 10000], received {max_wait_ms!r}.")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise InvalidInputError(f"port must be an int in [0, 65535] (0: a free port), received {port!r}.")
    if engine not in ("local", "ray"):
        raise InvalidInputError(f"engine must be 'local' or 'ray', received {engine!r}.")


def serve(onnx_model: Any, *, config: Any = None, host: str = "127.0.0.1", port: int = 0, max_batch: int = 16,
          max_wait_ms: float = 5.0, max_queue: int = 256, workers: int = 1, engine: str = "local", replicas: int = 1,
          dim_limits: Any = None, pad: bool = False) -> Server:
    """Serve ``onnx_model`` over HTTP with dynamic micro-batching; returns a running ``Server`` at once.

    ``config``: a ``SessionConfig`` (None: ``SERVE_DEFAULT_CONFIG``, ONNX Runtime's defaults without spinning
    threads), or a path to a config/tune JSON (``SessionConfig.from_json``); a tune JSON
    may also be given as ``onnx_model`` (its chosen model and config are served). ``max_batch`` rows per model
    run, ``max_wait_ms`` the longest the oldest request waits for a batch to fill, ``max_queue`` requests
    waiting before 503s, ``workers`` model runs at once. ``dim_limits`` bounds dynamic dims
    (``{"seq": (1, 512)}``). ``pad`` is not supported yet (requests of other shapes go to separate batches).
    ``engine="ray"`` deploys on Ray Serve with ``replicas`` replicas (``pip install onnx-workbench[ray]``).
    """
    _check_settings(max_batch, max_wait_ms, max_queue, workers, replicas, engine, port)
    if pad:
        raise InvalidInputError("pad=True is not supported: requests whose shapes differ past the batch axis run "
                                "in separate batches. Pass pad=False (the default).")
    onnx_model, config = _resolve(onnx_model, config)
    settings = {"max_batch": max_batch, "max_wait_ms": max_wait_ms, "max_queue": max_queue, "workers": workers,
                "replicas": replicas, "dim_limits": dim_limits}
    if engine == "ray":
        from workbench.core.serve.ray_engine import start_ray

        url, stopper = start_ray(onnx_model, config, host=host, port=port, settings=settings)
        return Server(url=url, onnx_model=onnx_model, config=config, engine="ray", stopper=stopper, settings=settings)
    state = build_state(onnx_model, config, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue,
                        workers=workers, dim_limits=dim_limits)
    from workbench.core.serve.app import build_app

    return run_app(build_app(state), host=host, port=port, onnx_model=onnx_model, config=config, settings=settings)


def run_app(app: Any, *, host: str = "127.0.0.1", port: int = 0, onnx_model: Any = None, config: Any = None,
            settings: dict[str, Any] | None = None, engine: str = "local") -> Server:
    """Run any ASGI ``app`` (e.g. ``teaching.naive_server.naive_app``) with uvicorn in a background thread, the
    way ``serve`` runs its own; returns the ``Server``."""
    _freeze_gc()
    sock = _bind(host, port)
    try:
        runner = _UvicornThread(app, sock)
    except BaseException:
        sock.close()
        raise
    runner.start()
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return Server(url=f"http://{shown}:{bound}", onnx_model=onnx_model, config=config or SessionConfig(),
                  engine=engine, stopper=runner, settings=settings or {})


def _resolve(onnx_model: Any, config: Any) -> tuple[Any, SessionConfig]:
    """A tune JSON as ``onnx_model`` -> its model and config; a config path -> ``SessionConfig.from_json``."""
    if isinstance(onnx_model, (str, Path)) and str(onnx_model).endswith(".json"):
        import json

        data = json.loads(Path(onnx_model).read_text())
        if not isinstance(data, dict) or "onnx_model" not in data:
            raise InvalidInputError(f"{onnx_model} is a JSON file without an 'onnx_model' entry: pass the ONNX file, "
                                    "or a tune result saved with TuneResult.save(...).")
        config = config if config is not None else onnx_model
        onnx_model = data["onnx_model"]
    if isinstance(config, (str, Path, dict)):
        from_json = getattr(SessionConfig, "from_json", None)
        if from_json is None:
            raise InvalidInputError("config as a JSON path needs SessionConfig.from_json (the tune release); "
                                    "pass a wb.SessionConfig.")
        config = from_json(config)
    if config is not None and not isinstance(config, SessionConfig):
        raise InvalidInputError(f"config must be a wb.SessionConfig or a path to a config JSON, received "
                                f"{type(config).__name__}.")
    return onnx_model, config or SERVE_DEFAULT_CONFIG
