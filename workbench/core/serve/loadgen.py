"""``load_test``: an async HTTP client (httpx) holding ``concurrency`` requests in flight, level by level.

Loopback only: the load generator refuses any URL whose host is not 127.0.0.1, localhost or ::1. Each level
runs for ``duration_s`` seconds or ``max_requests`` requests, whichever comes first; ``cancel`` stops it
between requests. The client runs on its own event loop in its own thread (so it also works from a notebook),
and ``client_cpu_s`` is that thread's CPU time: a server in the same process is not counted. After a 503 a
client waits 10 ms before its next request. With ``verify=True`` every 200 answer is compared with an offline
``session.run`` of its own request (``tolerance``, default ``"fp32"``); a mismatch counts as ``wrong``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import io
import json
import ssl
import threading
import time
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

import numpy as np

from workbench.core.cancel import Cancel, Progress, check_cancel, is_cancelled
from workbench.core.feeds import as_samples, to_numpy
from workbench.core.serve._deps import require
from workbench.core.serve.codec import request_body
from workbench.core.serve.results import LoadLevel, LoadResult
from workbench.core.tolerance import resolve_tolerance
from workbench.errors import InvalidInputError, WorkbenchError, brief

__all__ = ["check_loopback", "load_test"]


def check_loopback(url: str) -> str:
    """``url`` without a trailing slash if it is http(s) on a loopback host; ``InvalidInputError`` otherwise."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme not in ("http", "https") or not loopback:
        raise InvalidInputError(f"load_test sends traffic to loopback servers only (127.0.0.1, localhost, ::1); "
                                f"received {url!r}. Run the load test on the server's own machine.")
    return str(url).rstrip("/")


def _run_async(main: Callable[[], Any]) -> Any:
    """``asyncio.run(main())``, on uvloop when installed: the client's socket work costs less CPU, and the
    load generator shares the cores with the server it measures."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _in_thread(fn: Callable[[], Any]) -> Any:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="wb-load-test", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class _Plan:
    """The bodies to send, and for verification the expected outputs of each."""

    def __init__(self, url: str, inputs: Any, *, form: str, verify: bool, onnx_model: Any, config: Any,
                 tolerance: Any) -> None:
        httpx = require("httpx", what="wb.load_test")
        try:
            meta = httpx.get(f"{url}/v1/metadata", timeout=30.0).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise WorkbenchError(f"No workbench server answers at {url} ({brief(exc)}). Start one with "
                                 "wb.serve(onnx_model).") from None
        names = [i["name"] for i in meta.get("inputs", [])]
        self.ranks = {i["name"]: len(i["shape"]) for i in meta.get("inputs", [])}
        self.feeds = [_feed(sample, names) for sample in as_samples(inputs)]
        encoded = [request_body(feed, form=form) for feed in self.feeds]
        self.bodies = [body for body, _ in encoded]
        self.content_type = encoded[0][1]
        self.npz = form == "npz"
        self.timeout_s = 30.0  # seconds per request (load_test sets its timeout_s)
        self.rows = [_rows(feed, self.ranks) for feed in self.feeds]
        _, self.rtol, self.atol = resolve_tolerance(tolerance)
        self.expected: list[dict[str, np.ndarray]] | None = None
        if verify:
            self.expected = [self._offline(feed, onnx_model, config) for feed in self.feeds]

    def _offline(self, feed: dict[str, np.ndarray], onnx_model: Any, config: Any) -> dict[str, np.ndarray]:
        from workbench.core.session import load_session

        session = load_session(onnx_model, config)
        single = any(a.ndim == self.ranks.get(n, a.ndim) - 1 for n, a in feed.items())
        run_feed = {n: a[None, ...] for n, a in feed.items()} if single else feed
        outs = session.run(None, run_feed)
        return {o.name: (v[0] if single else v) for o, v in zip(session.get_outputs(), outs)}

    def check(self, index: int, body: bytes) -> tuple[int | None, bool]:
        """(the batch size the server reported, whether the outputs match the offline run)."""
        if self.npz:
            with np.load(io.BytesIO(body), allow_pickle=False) as archive:
                outputs = {n: archive[n] for n in archive.files}
            batch = None
        else:
            data = json.loads(body)
            outputs, batch = data.get("outputs", {}), data.get("batch_size")
        if self.expected is None:
            return batch, True
        want = self.expected[index]
        for name, expected in want.items():
            got = np.asarray(outputs.get(name, []), dtype=expected.dtype)
            if got.shape != expected.shape or not np.allclose(got, expected, rtol=self.rtol, atol=self.atol):
                return batch, False
        return batch, True


def _feed(sample: Any, names: Sequence[str]) -> dict[str, np.ndarray]:
    if isinstance(sample, dict):
        return {str(n): to_numpy(v) for n, v in sample.items()}
    values = list(sample)
    if len(values) != len(names):
        raise InvalidInputError(f"The served model takes {len(names)} inputs {list(names)}, a sample holds "
                                f"{len(values)}. Pass one array per input, or a dict {{name: array}}.")
    return {n: to_numpy(v) for n, v in zip(names, values)}


def _rows(feed: dict[str, np.ndarray], ranks: dict[str, int]) -> int:
    name, arr = next(iter(feed.items()))
    return 1 if arr.ndim < ranks.get(name, arr.ndim) or arr.ndim == 0 else int(arr.shape[0])


def _levels(concurrency: Any) -> list[int]:
    levels = [concurrency] if isinstance(concurrency, int) else list(concurrency)
    if not levels or not all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= 4096 for c in levels):
        raise InvalidInputError(f"concurrency must be an int or a sequence of ints in [1, 4096], received "
                                f"{concurrency!r}.")
    return levels


def load_test(url_or_server: Any, inputs: Any, *, concurrency: Any = (1, 8, 32, 64), duration_s: float = 10,
              progress: Progress | None = None, cancel: Cancel = None, verify: bool = False, onnx_model: Any = None,
              config: Any = None, max_requests: int | None = 100_000, form: str = "json", timeout_s: float = 30.0,
              tolerance: Any = "fp32", on_level: Callable[[LoadLevel], Any] | None = None) -> LoadResult:
    """Load-test a server (a ``Server`` or its URL) with ``inputs`` (one sample or a list: sent in turn).

    Per level of ``concurrency``: that many requests in flight for ``duration_s`` seconds (or ``max_requests``).
    ``progress("level", "<concurrency>")`` and ``on_level(LoadLevel)`` are called after each level.
    ``verify=True`` checks every answer against an offline run (of ``onnx_model``/``config``, taken from the
    ``Server`` when one is passed). ``form``: "json" or "npz". Loopback URLs only.
    """
    httpx = require("httpx", what="wb.load_test")
    url = check_loopback(getattr(url_or_server, "url", url_or_server))
    levels = _levels(concurrency)
    cancel = check_cancel(cancel)
    if form not in ("json", "npz"):
        raise InvalidInputError(f"form must be 'json' or 'npz', received {form!r}.")
    if not isinstance(duration_s, (int, float)) or not 0 < duration_s <= 3600:
        raise InvalidInputError(f"duration_s must be seconds in (0, 3600], received {duration_s!r}.")
    onnx_model = onnx_model if onnx_model is not None else getattr(url_or_server, "onnx_model", None)
    config = config if config is not None else getattr(url_or_server, "config", None)
    if verify and onnx_model is None:
        raise InvalidInputError("verify=True needs the model to run offline: pass the Server, or onnx_model=.")
    from workbench.core.serve.loadrun import run_level

    plan = _Plan(url, inputs, form=form, verify=verify, onnx_model=onnx_model, config=config, tolerance=tolerance)
    plan.timeout_s = float(timeout_s)

    async def main() -> LoadResult:
        done: list[LoadLevel] = []
        cpu = time.thread_time()
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        tls = ssl.create_default_context()  # one, shared: building it per client costs ~50 ms of CPU

        def make_client() -> Any:
            return httpx.AsyncHTTPTransport(limits=limits, verify=tls)

        for c in levels:
            if is_cancelled(cancel):
                break
            level = await run_level(make_client, url, plan, c, float(duration_s), max_requests, cancel)
            done.append(level)
            if progress is not None:
                progress("level", str(c))
            if on_level is not None:
                on_level(level)
        return LoadResult(levels=done, url=url, duration_s=float(duration_s), client_cpu_s=time.thread_time() - cpu,
                          cancelled=is_cancelled(cancel), verified=verify)

    return _in_thread(lambda: _run_async(main))
