"""What one served model needs, built once: the shared session (``MODELS``), its instrumented runner, the
validator, the batcher, the metrics and the metadata ``/v1/metadata`` answers."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from workbench.core.serve.app import ServeState
from workbench.core.serve.batcher import MicroBatcher
from workbench.core.serve.cache import ModelCache
from workbench.core.serve.instrumented import InstrumentedSession
from workbench.core.serve.metrics import ServerMetrics
from workbench.core.serve.validator import _ORT_TYPES, InputValidator, specs_of
from workbench.core.session import SessionConfig

__all__ = ["MODELS", "build_state", "model_metadata"]

#: The process-wide model cache of the servers: a model served twice with one config is loaded once.
MODELS = ModelCache()


def _opset(onnx_model: Any) -> dict[str, int] | None:
    import onnx

    try:
        proto = onnx_model if isinstance(onnx_model, onnx.ModelProto) else (
            onnx.load(str(onnx_model), load_external_data=False) if isinstance(onnx_model, (str, Path)) else None)
    except Exception:  # noqa: BLE001 - metadata only; the session already loaded the file
        return None
    return None if proto is None else {(o.domain or "ai.onnx"): int(o.version) for o in proto.opset_import}


def model_metadata(onnx_model: Any, config: SessionConfig, session: Any, validator: InputValidator,
                   settings: dict[str, Any]) -> dict[str, Any]:
    """The JSON of ``/v1/metadata``: model, inputs, outputs, opset, providers, config and the server settings."""
    name = Path(onnx_model).name if isinstance(onnx_model, (str, Path)) else type(onnx_model).__name__
    return {
        "model": name,
        "inputs": validator.describe(),
        "outputs": [{"name": o.name, "dtype": _ORT_TYPES.get(o.type, o.type), "shape": list(o.shape)}
                    for o in session.get_outputs()],
        "opset": _opset(onnx_model),
        "providers": list(session.get_providers()),
        "config": asdict(config),
        "batched": validator.batched,
        "settings": {k: v for k, v in settings.items() if k != "dim_limits"},
    }


def build_state(onnx_model: Any, config: SessionConfig, *, max_batch: int, max_wait_ms: float, max_queue: int,
                workers: int, dim_limits: Any = None, batcher_factory: Any = None) -> ServeState:
    """Load (or reuse) the session and wire the validator, batcher and metrics around it. ``batcher_factory(run,
    validator, metrics)`` replaces the ``MicroBatcher`` (the Ray engine batches with ``@serve.batch``)."""
    session = MODELS.get(onnx_model, config)
    metrics = ServerMetrics()
    name = Path(onnx_model).stem if isinstance(onnx_model, (str, Path)) else "model"
    runner = InstrumentedSession(session, registry=metrics.registry, name=name)
    # An output whose first dim is fixed (or a scalar) has no batch axis: its rows cannot be split back, so such
    # a model is served one request per run, as a fixed-batch model is.
    outputs_batched = all(len(o.shape) >= 1 and not isinstance(o.shape[0], int) for o in session.get_outputs())
    validator = InputValidator(specs_of(session), dim_limits=dim_limits, max_rows=max_batch,
                               outputs_batched=outputs_batched)

    def run(feed: dict[str, Any]) -> list[Any]:
        return runner.run(None, feed)

    if batcher_factory is None:
        batcher: Any = MicroBatcher(run, max_batch=max_batch, max_wait_ms=max_wait_ms, max_queue=max_queue,
                                    workers=workers, batched=validator.batched, metrics=metrics)
    else:
        batcher = batcher_factory(run, validator, metrics)
    settings = {"max_batch": max_batch, "max_wait_ms": max_wait_ms, "max_queue": max_queue, "workers": workers}
    metadata = model_metadata(onnx_model, config, session, validator, settings)
    return ServeState(validator=validator, batcher=batcher, metrics=metrics,
                      output_names=[o.name for o in session.get_outputs()], metadata=metadata)
