"""``wb.serve(..., engine="ray")``: the same endpoints and batching on Ray Serve, past one machine.

One Ray Serve deployment per model (``replicas`` copies), its FastAPI ingress answering ``/v1/predict``,
``/v1/health``, ``/v1/metadata`` and ``/metrics`` exactly as the local engine does (the same validator, codec
and metrics: ``app.py``), and Ray's ``@serve.batch`` doing the micro-batching: calls are collected up to
``max_batch`` rows (``batch_size_fn`` counts rows) or ``max_wait_ms``, grouped by input signature, run on a thread
and split back. ``max_queue`` becomes the deployment's ``max_queued_requests`` (Ray answers 503 past it).
``/metrics`` shows the replica that answered (each replica has its own registry); Ray's own metrics cover the
cluster. The workbench writes no scheduler: placement, replicas and routing are Ray's.

Local (the default): a single-node Ray cluster is started in this process with ``num_cpus=os.cpu_count()`` and
no dashboard, and shut down with the last server. A real cluster: connect first and the workbench uses it::

    import ray
    ray.init(address="ray://head-node:10001")     # or set RAY_ADDRESS before wb.serve
    server = wb.serve(tune_json, engine="ray", replicas=4, host="0.0.0.0", port=8000)

On a cluster, give every node the same model path (shared storage) or pass an ``onnx.ModelProto``: its bytes
travel with the deployment. Each model gets the route prefix ``/<name>``, so ``server.url`` ends with it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from workbench.core.serve._deps import require
from workbench.core.serve.batcher import BatchFailed, BatchInfo, OutputNotBatched, _split
from workbench.errors import WorkbenchError, brief

__all__ = ["start_ray"]

_LOCK = threading.Lock()
_LIVE: dict[str, Any] = {"apps": set(), "owns_ray": False, "owns_serve": False, "port": None}


class _RayBatcher:
    """What ``app.py`` needs of a batcher (``submit``, ``pending``, ``running``, ``metrics``), on ``@serve.batch``."""

    def __init__(self, batch_fn: Any, metrics: Any) -> None:
        self._batch_fn = batch_fn
        self.metrics = metrics
        self.pending = 0
        self.running = 0

    async def submit(self, feed: dict[str, np.ndarray], rows: int, signature: Any) -> Any:
        self.pending += 1
        try:
            result = await self._batch_fn((feed, rows, signature, time.perf_counter()))
        finally:
            self.pending -= 1
        if isinstance(result, BaseException):
            raise result
        return result


def _stack_and_run(run: Any, feeds: list[dict[str, np.ndarray]]) -> tuple[list[np.ndarray], float]:
    feed = feeds[0] if len(feeds) == 1 else {n: np.concatenate([f[n] for f in feeds]) for n in feeds[0]}
    start = time.perf_counter()
    return run(feed), time.perf_counter() - start


async def run_groups(run: Any, items: list[tuple[Any, ...]], metrics: Any, batched: bool = True) -> list[Any]:
    """One ``@serve.batch`` call: the items grouped by signature, each group run once on a thread and split.
    Not ``batched`` (a fixed batch size, or an output without a batch axis): each item runs alone."""
    results: list[Any] = [None] * len(items)
    groups: dict[Any, list[int]] = {}
    for k, item in enumerate(items):
        groups.setdefault(item[2] if batched else k, []).append(k)
    for index in groups.values():
        rows = [items[k][1] for k in index]
        dispatched = time.perf_counter()
        try:
            outputs, seconds = await asyncio.to_thread(_stack_and_run, run, [items[k][0] for k in index])
            parts = _split(outputs, rows, batched)
        except Exception as exc:  # the model failed on this group: fail its requests only
            for k in index:
                results[k] = BatchFailed(brief(exc), sum(rows), split=isinstance(exc, OutputNotBatched))
            continue
        metrics.batch_size.observe(sum(rows))
        metrics.compute_seconds.observe(seconds)
        for k, part in zip(index, parts):
            metrics.queue_seconds.observe(dispatched - items[k][3])
            results[k] = (part, BatchInfo(sum(rows), (dispatched - items[k][3]) * 1e3, seconds * 1e3))
    return results


def _deployment(serve: Any, fastapi: Any, name: str, settings: dict[str, Any]) -> Any:
    """The deployment class for one model (FastAPI ingress, ``@serve.batch``)."""
    from workbench.core.serve.app import _json, health_response, metrics_response, predict_response

    api = fastapi.FastAPI(title=f"onnx-workbench on Ray Serve: {name}", docs_url=None, redoc_url=None)
    max_batch = settings["max_batch"]

    @serve.deployment(name=name, num_replicas=settings["replicas"], max_ongoing_requests=max(4 * max_batch, 32),
                      max_queued_requests=settings["max_queue"], ray_actor_options={"num_cpus": 0})
    @serve.ingress(api)
    class WorkbenchModel:
        def __init__(self, model: Any, config: Any) -> None:
            from workbench.core.serve.state import build_state

            if isinstance(model, bytes):
                import onnx

                model = onnx.load_from_string(model)

            def factory(run: Any, validator: Any, metrics: Any) -> _RayBatcher:
                self._run = run
                self._batched = bool(validator.batched)  # False: each request runs alone
                return _RayBatcher(self._batch, metrics)

            self.state = build_state(model, config, max_batch=max_batch, max_wait_ms=settings["max_wait_ms"],
                                     max_queue=settings["max_queue"], workers=1, dim_limits=settings["dim_limits"],
                                     batcher_factory=factory)
            from workbench.core.serve.server import _freeze_gc

            _freeze_gc()  # the replica's process: no 100 ms full collections of the imported modules' objects

        @serve.batch(max_batch_size=max_batch, batch_wait_timeout_s=settings["max_wait_ms"] / 1e3,
                     batch_size_fn=lambda items: sum(item[1] for item in items))
        async def _batch(self, items: list[tuple[Any, ...]]) -> list[Any]:
            return await run_groups(self._run, items, self.state.metrics, self._batched)

        async def predict(self, request: Any) -> Any:
            return await predict_response(self.state, request)

        predict.__annotations__["request"] = fastapi.Request
        api.post("/v1/predict")(predict)

        @api.get("/v1/health")
        async def health(self) -> Any:
            return health_response(self.state)

        @api.get("/v1/metadata")
        async def metadata(self) -> Any:
            return _json(200, {**self.state.metadata, "engine": "ray", "replicas": settings["replicas"]})

        @api.get("/metrics")
        async def metrics(self) -> Any:
            return metrics_response(self.state)

    return WorkbenchModel


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _ensure_cluster(ray: Any, serve: Any, host: str, port: int) -> int:
    """Connect to (or start) Ray and Ray Serve's HTTP proxy; the proxy's port."""
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # no INFO line per deployment in a notebook
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
        if not os.environ.get("RAY_ADDRESS"):  # a local single-node cluster sized to this machine
            kwargs["num_cpus"] = os.cpu_count() or 1
        ray.init(**kwargs)
        _LIVE["owns_ray"] = True
    if _LIVE["port"] is None:
        port = port or _free_port(host)
        serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "ERROR"})
        _LIVE["owns_serve"], _LIVE["port"] = True, port
    return int(_LIVE["port"])


class _RayStopper:
    def __init__(self, name: str, url: str) -> None:
        self.name, self.url = name, url
        self._stopped = False

    def alive(self) -> bool:
        return not self._stopped

    def stop(self, timeout: float) -> None:
        if self._stopped:
            return
        ray = require("ray", extra="ray")
        serve = require("ray.serve", extra="ray")
        with _LOCK:
            self._stopped = True
            serve.delete(self.name)  # Ray drains: replicas finish their ongoing requests first
            _LIVE["apps"].discard(self.name)
            if not _LIVE["apps"]:
                if _LIVE["owns_ray"]:  # our local cluster: shutting Ray down ends Serve with it
                    ray.shutdown()
                elif _LIVE["owns_serve"]:
                    serve.shutdown()
                _LIVE.update(owns_ray=False, owns_serve=False, port=None)


def _wait_ready(url: str, timeout: float = 120.0) -> None:
    httpx = require("httpx")
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/health", timeout=5.0).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    raise WorkbenchError(f"The Ray Serve deployment at {url} did not become healthy in {timeout:.0f} s "
                         f"({brief(last) if last else 'no answer'}).")


def start_ray(onnx_model: Any, config: Any, *, host: str, port: int, settings: dict[str, Any]) -> tuple[str, Any]:
    """Deploy ``onnx_model`` on Ray Serve; ``(url, stopper)`` for ``Server``."""
    what = 'wb.serve(..., engine="ray")'
    ray = require("ray", extra="ray", what=what)
    serve = require("ray.serve", extra="ray", what=what)
    fastapi = require("fastapi", what=what)
    import onnx

    model: Any = onnx_model.SerializeToString() if isinstance(onnx_model, onnx.ModelProto) else str(onnx_model)
    stem = Path(onnx_model).stem if isinstance(onnx_model, (str, Path)) else "model"
    name = f"wb-{''.join(c if c.isalnum() else '-' for c in stem)[:40]}-{uuid.uuid4().hex[:6]}"
    with _LOCK:
        port = _ensure_cluster(ray, serve, host, port)
        app = _deployment(serve, fastapi, name, settings).bind(model, config)
        try:
            serve.run(app, name=name, route_prefix=f"/{name}")
        except Exception as exc:
            raise WorkbenchError(f"Ray Serve could not deploy {stem}: {brief(exc)}") from exc
        _LIVE["apps"].add(name)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/{name}"
    stopper = _RayStopper(name, url)
    try:
        _wait_ready(url)
    except WorkbenchError:
        stopper.stop(10)
        raise
    return url, stopper
