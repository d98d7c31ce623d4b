"""The headless core: export, inspect, validate, run, benchmark, optimize, quantize.

Imports no UI library (checked by import-linter contracts in pyproject.toml and a test).
"""

try:
    import onnxruntime as _ort  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "onnx-workbench needs ONNX Runtime, which is not installed. Install exactly one of "
        "`pip install onnx-workbench[cpu]` (onnxruntime) or `pip install onnx-workbench[gpu]` "
        "(onnxruntime-gpu); both provide the same module and conflict."
    ) from exc
