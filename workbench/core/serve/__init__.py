"""Serving: ``serve`` (a micro-batching HTTP server), ``load_test`` and the reusable production helpers.

FastAPI, uvicorn, httpx and prometheus-client are optional (``pip install 'onnx-workbench[serve]'``) and
imported on first use; Ray Serve (``engine="ray"``) needs ``[ray]``. ``import workbench`` works without them.

* ``server.py``: ``serve`` and ``Server``; ``app.py``: the FastAPI app; ``state.py``: what one served model holds;
* ``batcher.py``: the asyncio micro-batcher; ``validator.py``: ``InputValidator`` (the 422s);
* ``instrumented.py``: ``InstrumentedSession``; ``cache.py``: ``ModelCache``; ``metrics.py``: the registry;
* ``loadgen.py``: ``load_test``; ``results.py``: ``LoadResult``/``LoadLevel``; ``ray_engine.py``: Ray Serve.
"""

from __future__ import annotations

from workbench.core.serve.cache import ModelCache
from workbench.core.serve.instrumented import InstrumentedSession
from workbench.core.serve.loadgen import load_test
from workbench.core.serve.results import LoadLevel, LoadResult
from workbench.core.serve.server import Server, serve
from workbench.core.serve.validator import InputSpec, InputValidator, RequestInvalid

__all__ = ["InputSpec", "InputValidator", "InstrumentedSession", "LoadLevel", "LoadResult", "ModelCache",
           "RequestInvalid", "Server", "load_test", "serve"]
