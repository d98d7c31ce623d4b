"""The FastAPI app of ``wb.serve``: ``POST /v1/predict``, ``GET /v1/health``, ``/v1/metadata``, ``/metrics``.

Status codes: 200 with the outputs; 422 for a request that does not fit the model (the body lists what was
expected and what was received); 413 for a body over 64 MB (``ServeState.max_body_mb``); 415 for a content type other than JSON
or npz; 503 with ``Retry-After`` when the queue is full or the server is stopping; 500 naming the error when
the model fails on the request's batch (the server keeps serving). Never a 200 with an error inside.
Large bodies are decoded and encoded on a thread, so the event loop keeps answering ``/v1/health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, AsyncIterator

from workbench.core.serve._deps import require
from workbench.core.serve.batcher import BatchFailed, MicroBatcher, QueueFull
from workbench.core.serve.codec import NPZ, decode_json, decode_npz, encode_json, encode_npz
from workbench.core.serve.metrics import ServerMetrics
from workbench.core.serve.validator import InputValidator, RequestInvalid
from workbench.errors import brief

__all__ = ["ServeState", "build_app", "health_response", "metrics_response", "predict_response"]

_THREAD_BYTES = 256 * 1024  # bodies larger than this are decoded/encoded off the event loop


@dataclass
class ServeState:
    """Everything the app serves: the session runner, validator, batcher, metrics and what metadata says."""

    validator: InputValidator
    batcher: MicroBatcher
    metrics: ServerMetrics
    output_names: list[str]
    metadata: dict[str, Any]
    max_body_mb: float = 64.0


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    responses = require("starlette.responses", what="wb.serve")
    return responses.Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


async def _off_loop(size: int, fn: Any, *args: Any) -> Any:
    if size < _THREAD_BYTES:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


async def _disconnected(request: Any) -> None:
    """Returns once the client has gone away (the ASGI ``http.disconnect`` message)."""
    while True:
        message = await request.receive()
        if message.get("type") == "http.disconnect":
            return


def build_app(state: ServeState) -> Any:
    """The FastAPI application serving ``state``."""
    fastapi = require("fastapi")

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        state.batcher.start()
        yield
        await state.batcher.close()  # drain: every accepted request is answered

    app = fastapi.FastAPI(title=f"onnx-workbench: {state.metadata.get('model', 'model')}", lifespan=lifespan,
                          docs_url=None, redoc_url=None)

    async def predict(request: Any) -> Any:
        return await predict_response(state, request)

    predict.__annotations__["request"] = fastapi.Request  # the real class: FastAPI injects the raw request
    app.post("/v1/predict")(predict)

    @app.get("/v1/health")
    async def health() -> Any:
        return health_response(state)

    @app.get("/v1/metadata")
    async def metadata() -> Any:
        return _json(200, state.metadata)

    @app.get("/metrics")
    async def metrics() -> Any:
        return metrics_response(state)

    return app


def health_response(state: ServeState) -> Any:
    return _json(200, {"status": "ok", "queue": state.batcher.pending, "running": state.batcher.running})


def metrics_response(state: ServeState) -> Any:
    responses = require("starlette.responses")
    prom = require("prometheus_client")
    return responses.Response(state.metrics.text(), media_type=prom.CONTENT_TYPE_LATEST)


async def predict_response(state: ServeState, request: Any) -> Any:
    """Answer one ``POST /v1/predict`` (see the module docstring) and count it by status."""
    status, response = await _predict(state, request)
    state.metrics.requests.labels(str(status)).inc()
    return response


async def _predict(state: ServeState, request: Any) -> tuple[int, Any]:
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in ("application/json", NPZ):
        return 415, _json(415, {"error": "unsupported content type", "expected": f"application/json or {NPZ}",
                                "received": kind})
    limit = int(state.max_body_mb * 1024 * 1024)
    if int(request.headers.get("content-length") or 0) > limit:
        return 413, _json(413, {"error": "body too large", "expected": f"at most {state.max_body_mb:g} MB",
                                "received": request.headers.get("content-length")})
    body = await request.body()
    if len(body) > limit:
        return 413, _json(413, {"error": "body too large", "expected": f"at most {state.max_body_mb:g} MB",
                                "received": f"{len(body)} bytes"})
    try:
        values = await _off_loop(len(body), decode_npz if kind == NPZ else decode_json, body)
        checked = await _off_loop(len(body), lambda: state.validator.validate(values, strict_dtypes=kind == NPZ))
    except RequestInvalid as exc:
        return 422, _json(422, {"error": "invalid input", "detail": exc.problems,
                                "inputs": state.validator.describe()})
    try:
        outputs, info = await _answer_or_drop(state, request, checked)
    except QueueFull as exc:
        return 503, _json(503, {"error": "server busy", "detail": str(exc)}, headers={"Retry-After": "1"})
    except BatchFailed as exc:
        return 500, _json(500, {"error": exc.error, "detail": exc.reason})
    except _ClientGone:
        return 499, _json(499, {"error": "client went away"})
    except Exception as exc:  # noqa: BLE001 - anything else is still a 500 naming the error, never a crash
        return 500, _json(500, {"error": "server error", "detail": brief(exc)})
    try:
        return 200, await _encode(state, kind, checked.single, outputs, info)
    except Exception as exc:  # noqa: BLE001 - the same: a 500 naming the error
        return 500, _json(500, {"error": "server error", "detail": brief(exc)})


async def _encode(state: ServeState, kind: str, single: bool, outputs: list[Any], info: Any) -> Any:
    """The 200 response: the outputs (without the batch axis for a single example) as npz or JSON."""
    if single:
        outputs = [o[0] for o in outputs]
    meta = {"model": state.metadata.get("model"), "batch_size": info.batch_size,
            "queue_ms": round(info.queue_ms, 3), "compute_ms": round(info.compute_ms, 3)}
    responses = require("starlette.responses")
    if kind == NPZ:
        data = await _off_loop(sum(o.nbytes for o in outputs), encode_npz, state.output_names, outputs)
        headers = {"X-Batch-Size": str(info.batch_size), "X-Queue-Ms": f"{info.queue_ms:.3f}",
                   "X-Compute-Ms": f"{info.compute_ms:.3f}",
                   "X-Model": urllib.parse.quote(str(meta["model"]), safe="")}  # headers are Latin-1: quoted
        return responses.Response(data, media_type=NPZ, headers=headers)
    data = await _off_loop(sum(o.nbytes for o in outputs) * 4, encode_json, state.output_names, outputs, meta)
    return responses.Response(data, media_type="application/json")


class _ClientGone(Exception):
    pass


async def _answer_or_drop(state: ServeState, request: Any, checked: Any) -> Any:
    """Queue the request; if the client disconnects first, drop it from the queue (its future is cancelled,
    so the batcher skips it). One watcher task per request, no ``asyncio.wait``."""
    enqueue = getattr(state.batcher, "enqueue", None)  # MicroBatcher: a future at once (QueueFull raised here)
    future = (enqueue(checked.feed, checked.rows, checked.signature) if enqueue is not None
              else asyncio.ensure_future(state.batcher.submit(checked.feed, checked.rows, checked.signature)))
    watch = asyncio.ensure_future(_disconnected(request))
    watch.add_done_callback(functools.partial(_drop_if_gone, future))
    try:
        return await future
    except asyncio.CancelledError:
        if not watch.done() or watch.cancelled():
            raise  # this handler was cancelled, not dropped
        if state.batcher.metrics is not None:
            state.batcher.metrics.dropped.inc()
        raise _ClientGone() from None
    finally:
        watch.cancel()


def _drop_if_gone(future: asyncio.Future, watch: asyncio.Future) -> None:
    """The watcher returned: the client went away. A watcher cancelled or ended by an error is no disconnect."""
    if watch.cancelled() or watch.exception() is not None:
        return
    if not future.done():
        future.cancel()
