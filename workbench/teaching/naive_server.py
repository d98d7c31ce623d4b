"""The WRONG way to serve a model: the seed article's FastAPI pattern, kept runnable to measure and to show.

Do not copy this into production. ``naive_app(onnx_model)`` builds the app the seed article shows (the wire
format is the workbench's, ``{"inputs": {...}}`` -> ``{"outputs": {...}}``, so ``wb.load_test`` can drive it
too), with its two mistakes left in:

1. ``async def predict`` calls ``session.run`` directly: the blocking run holds the event loop, so while one
   request computes no other request is even read, ``/v1/health`` waits behind it, and requests never share
   a batch: one model run per request.
2. ``return {"error": ...}, 500`` in FastAPI is not a status code: FastAPI serialises the tuple and answers
   **200** with the body ``[{"error": "Inference failed"}, 500]``. A client checking the status sees success.

``wb.serve`` does the opposite: a micro-batcher on the event loop, ``session.run`` on a worker thread, and
real status codes (422, 500, 503). Notebook 12 and ``benchmarks/serve_load.py`` run both side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["naive_app"]


def naive_app(onnx_model: Any, *, config: Any = None) -> Any:
    """The seed article's server for ``onnx_model`` (a FastAPI app; run it with uvicorn or
    ``workbench.core.serve.server.run_app``). THE WRONG WAY. ``config=None`` uses ``wb.serve``'s default session
    config (``SERVE_DEFAULT_CONFIG``), so a comparison of the two servers compares the serving, not the session."""
    from workbench.core.serve._deps import require
    from workbench.core.serve.server import SERVE_DEFAULT_CONFIG
    from workbench.core.session import open_session

    fastapi = require("fastapi", what="naive_app")
    # One session, loaded once: this part the article gets right.
    session = open_session(onnx_model, config or SERVE_DEFAULT_CONFIG)
    app = fastapi.FastAPI(title="naive server (the seed article's pattern: do not copy)")

    async def predict(request: Any) -> Any:
        data = await request.json()
        try:
            feed = {i.name: np.asarray(data["inputs"][i.name], dtype=np.float32 if i.type == "tensor(float)"
                                       else np.int64) for i in session.get_inputs()}
            # MISTAKE 1: a blocking call inside `async def`: the event loop stops until it returns.
            outputs = session.run(None, feed)
            return {"outputs": {o.name: v.tolist() for o, v in zip(session.get_outputs(), outputs)}}
        except Exception:  # noqa: BLE001 - the article's catch-all
            # MISTAKE 2: FastAPI does not read this as (body, status): the client gets a 200 with a tuple body.
            return {"error": "Inference failed"}, 500

    predict.__annotations__["request"] = fastapi.Request  # (a FastAPI detail, not part of the article's code)
    app.post("/v1/predict")(predict)

    @app.get("/v1/health")
    async def health() -> Any:
        return {"status": "ok"}

    @app.get("/v1/metadata")
    async def metadata() -> Any:
        return {"model": "naive", "inputs": [{"name": i.name, "dtype": i.type, "shape": list(i.shape)}
                                             for i in session.get_inputs()]}

    return app
