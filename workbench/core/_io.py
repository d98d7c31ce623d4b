"""Loading ONNX files with clear errors for missing, empty, corrupt or non-ONNX files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Union

import onnx

from workbench.errors import ModelFileError, describe

if TYPE_CHECKING:
    import onnxruntime as ort

PathLike = Union[str, "os.PathLike[str]"]
#: An ONNX model: a path, a ``ModelProto`` or (where the function runs it) an ``InferenceSession``.
OnnxModel = Union[str, "os.PathLike[str]", onnx.ModelProto, "ort.InferenceSession"]


def is_path(value: object) -> bool:
    """True for a str or an ``os.PathLike`` (what ``check_onnx_path`` accepts)."""
    return isinstance(value, (str, os.PathLike))


def check_onnx_path(path: PathLike) -> Path:
    """Return ``path`` as a ``Path`` if it names a readable, non-empty file; raise otherwise."""
    if not isinstance(path, (str, os.PathLike)):
        raise ModelFileError(
            f"Expected a path to an .onnx file, received {describe(path)}. "
            "Pass the path returned by wb.export(...) or a str/Path."
        )
    p = Path(path)
    if not p.exists():
        raise ModelFileError(
            f"No ONNX file at '{p}'. Check the path, or export the model first with wb.export(...)."
        )
    if p.is_dir():
        raise ModelFileError(f"'{p}' is a directory, not an ONNX file. Pass the path of the .onnx file inside it.")
    if p.stat().st_size == 0:
        raise ModelFileError(
            f"'{p}' is empty (0 bytes): an export was probably interrupted. Export the model again."
        )
    return p


def load_model(onnx_model: OnnxModel, *, load_external_data: bool = True) -> onnx.ModelProto:
    """Load an ONNX model from a path (or pass a ``ModelProto`` through) with clear errors."""
    if isinstance(onnx_model, onnx.ModelProto):
        return onnx_model
    p = check_onnx_path(onnx_model)
    try:
        proto = onnx.load(str(p), load_external_data=load_external_data)
    except Exception as exc:  # protobuf raises DecodeError, onnx raises its own
        raise ModelFileError(
            f"'{p}' ({p.stat().st_size} bytes) could not be parsed as an ONNX model: "
            f"{type(exc).__name__}: {exc}. The file is truncated, corrupt or not an ONNX file; "
            "export the model again."
        ) from exc
    if not proto.graph.node and not proto.graph.output and not proto.opset_import:
        raise ModelFileError(
            f"'{p}' parsed, but holds no graph, outputs or opset imports, so it is not an ONNX model "
            "(protobuf accepts many byte strings). Check that this is the file wb.export(...) wrote."
        )
    return proto
