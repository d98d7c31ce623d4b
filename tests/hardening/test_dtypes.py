"""Every ONNX data type through the public functions: a result or a clear refusal, never a raw error.

For each ``TensorProto`` data type two tiny models are built: ``Identity`` on that type, and
``Cast`` from float32 to it and back (outputs: the cast value and the round trip). Each goes
through ``summarize``, ``open_session``, ``optimize``, ``graph_flops``, ``placement``,
``benchmark`` and ``compare_arrays`` (and ``compare`` against ``nn.Identity`` where torch has the
dtype). A refusal must be a ``WorkbenchError`` that names the data type. ``compare_arrays`` is also
fed every numpy-representable dtype directly (strings, bytes, bool, complex, ml_dtypes' bfloat16,
float8 and int4 included): equal arrays pass, changed ones fail, nothing raises.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

import workbench as wb

DTYPES = [name for name in TensorProto.DataType.keys() if name != "UNDEFINED"]
#: dtypes that ONNX Runtime (CPU) opens and runs from Python in an Identity model.
RUNS_IDENTITY = {"FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING", "BOOL", "FLOAT16",
                 "DOUBLE", "UINT32", "UINT64"}
TORCH = {"FLOAT": torch.float32, "DOUBLE": torch.float64, "FLOAT16": torch.float16, "BFLOAT16": torch.bfloat16,
         "INT8": torch.int8, "UINT8": torch.uint8, "INT16": torch.int16, "INT32": torch.int32, "INT64": torch.int64,
         "BOOL": torch.bool, "FLOAT8E4M3FN": torch.float8_e4m3fn, "FLOAT8E5M2": torch.float8_e5m2}


def _first_opset(op: str, type_str: str) -> int | None:
    """The first ai.onnx opset (>= 13) whose ``op`` accepts ``type_str`` (e.g. 'tensor(int4)')."""
    schemas = onnx.defs.get_all_schemas_with_history()
    versions = sorted({s.since_version for s in schemas if s.name == op and not s.domain})
    for version in versions:
        schema = onnx.defs.get_schema(op, version, "")
        if any(type_str in c.allowed_type_strs for c in schema.type_constraints):
            return max(13, version)
    return None


def _type_str(name: str) -> str:
    return "tensor(" + {"FLOAT": "float", "DOUBLE": "double"}.get(name, name.lower()) + ")"


def _model(nodes: list[onnx.NodeProto], inputs: list[Any], outputs: list[Any], opset: int) -> onnx.ModelProto:
    model = helper.make_model(helper.make_graph(nodes, "dtype", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 10)
    return model


def identity_model(name: str) -> onnx.ModelProto:
    elem = getattr(TensorProto, name)
    opset = _first_opset("Identity", _type_str(name)) or 21
    x, y = (helper.make_tensor_value_info(name, elem, [3]) for name in ("x", "y"))
    return _model([helper.make_node("Identity", ["x"], ["y"], name="identity")], [x], [y], opset)


def cast_model(name: str) -> onnx.ModelProto:
    elem = getattr(TensorProto, name)
    opset = _first_opset("Cast", _type_str(name)) or 21
    nodes = [helper.make_node("Cast", ["x"], ["y"], to=elem, name="cast_to"),
             helper.make_node("Cast", ["y"], ["z"], to=TensorProto.FLOAT, name="cast_back")]
    outputs = [helper.make_tensor_value_info("y", elem, [3]), helper.make_tensor_value_info("z", TensorProto.FLOAT, [3])]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])], outputs, opset)


def values(name: str) -> np.ndarray:
    """Three values of the ONNX type ``name`` as numpy (ml_dtypes for the narrow floats and ints)."""
    if name == "STRING":
        return np.array(["a", "bé", ""], dtype=object)
    if name == "BOOL":
        return np.array([True, False, True])
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(getattr(TensorProto, name)))
    return np.array([0.5, 1.0, 2.0] if dtype.kind in "fcV" or "float" in dtype.name else [0, 1, 2]).astype(dtype)


def _names_dtype(err: wb.WorkbenchError, name: str) -> bool:
    text = str(err).lower()
    dtype_names = {name.lower(), _type_str(name), str(values(name).dtype).lower()}
    return any(d in text for d in dtype_names) or "identity" in text or "cast" in text


def _refused_or(call: Any, name: str) -> Any:
    """``call()``'s result, or None when it raised a WorkbenchError naming the dtype or the op."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return call()
    except wb.WorkbenchError as err:
        assert _names_dtype(err, name), f"refusal does not say what was refused: {err}"
        return None


@pytest.fixture(params=DTYPES)
def dtype_name(request: pytest.FixtureRequest) -> str:
    return request.param


def test_summarize_names_every_dtype(dtype_name: str) -> None:
    for model in (identity_model(dtype_name), cast_model(dtype_name)):
        summary = wb.summarize(model)
        assert isinstance(summary, wb.ModelSummary)
        assert summary.outputs[0].dtype not in ("", "unknown"), summary
        repr(summary), summary._repr_html_()


def test_identity_model(dtype_name: str, tmp_path: Path) -> None:
    path = tmp_path / f"identity_{dtype_name}.onnx"
    onnx.save(identity_model(dtype_name), path)
    x = values(dtype_name)
    session = _refused_or(lambda: wb.open_session(path), dtype_name)
    if dtype_name in RUNS_IDENTITY:
        assert session is not None, f"{dtype_name}: ONNX Runtime runs Identity on it, the workbench must open it"
    _refused_or(lambda: wb.optimize(path, tmp_path / "opt.onnx", opt_level="basic"), dtype_name)
    _refused_or(lambda: wb.graph_flops(path, {"x": (3,)}), dtype_name)
    _refused_or(lambda: wb.placement(path, {"x": x}), dtype_name)
    _refused_or(lambda: wb.benchmark(path, {"x": x}, warmup=0, runs=2), dtype_name)
    if session is None:
        return
    try:
        (y,) = session.run(None, {"x": x})
    except Exception as exc:  # ONNX Runtime's own call: its error must be explainable
        from workbench.core.ort_errors import explain_run_error

        err = explain_run_error(exc, session, {"x": x})
        assert isinstance(err, wb.FeedError) and _names_dtype(err, dtype_name), err
        return
    assert wb.compare_arrays([x], [y], tolerance="fp32"), dtype_name


def test_cast_model(dtype_name: str, tmp_path: Path) -> None:
    path = tmp_path / f"cast_{dtype_name}.onnx"
    onnx.save(cast_model(dtype_name), path)
    x = np.array([0.5, 1.0, 2.0], dtype=np.float32)
    session = _refused_or(lambda: wb.open_session(path), dtype_name)
    _refused_or(lambda: wb.placement(path, {"x": x}), dtype_name)
    if session is None:
        return
    try:
        y, z = session.run(None, {"x": x})
    except Exception as exc:
        from workbench.core.ort_errors import explain_run_error

        err = explain_run_error(exc, session, {"x": x})
        assert isinstance(err, wb.WorkbenchError) and _names_dtype(err, dtype_name), err
        return
    expected_z = x.astype(values(dtype_name).dtype).astype(np.float32) if dtype_name != "STRING" else x
    result = wb.compare_arrays([expected_z], [z], tolerance="fp32")
    assert isinstance(result, wb.Comparison)
    assert wb.compare_arrays([y], [y]), f"{dtype_name}: an output does not match itself"


@pytest.mark.parametrize("name", sorted(TORCH))
def test_compare_with_torch_identity(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"identity_{name}.onnx"
    onnx.save(identity_model(name), path)
    x = torch.tensor([0.5, 1.0, 2.0]).to(TORCH[name])
    result = _refused_or(lambda: wb.compare(torch.nn.Identity(), path, (x,)), name)
    if result is not None:
        assert result, f"{name}: {result!r}"


ARRAY_DTYPES = [np.float32, np.float64, np.float16, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                np.int64, np.uint64, np.bool_, np.complex64, np.complex128, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn,
                ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2, ml_dtypes.float8_e5m2fnuz, ml_dtypes.int4,
                ml_dtypes.uint4, np.str_, np.bytes_, object]


@pytest.mark.parametrize("dtype", ARRAY_DTYPES, ids=lambda d: np.dtype(d).name)
def test_compare_arrays_every_dtype(dtype: Any) -> None:
    kind = np.dtype(dtype).kind
    if kind in "OUS":
        text = [["a", "bc"], ["", "é"]]
        base = np.array([[s.encode() for s in row] for row in text] if kind == "S" else text).astype(dtype)
    else:
        base = np.array([[0, 1], [2, 3]]).astype(dtype)
    changed = base.copy()
    changed[1, 1] = base[0, 0]
    same = wb.compare_arrays([base], [base.copy()], tolerance="fp32")
    assert same and same.outputs[0].mismatches == 0, repr(same)
    differ = wb.compare_arrays([base], [changed], tolerance="fp32")
    assert not differ and differ.outputs[0].mismatches == 1, repr(differ)
    assert "(1, 1)" in repr(differ), repr(differ)
    repr(differ), differ._repr_html_(), differ.to_pandas()


def test_compare_arrays_strings_against_bytes_and_mixed() -> None:
    text = np.array(["tuesday", "wednesday"], dtype=object)
    assert wb.compare_arrays([text], [np.array([b"tuesday", b"wednesday"], dtype=object)])
    assert not wb.compare_arrays([text], [np.array([1.0, 2.0])])
    assert not wb.compare_arrays([np.array([1.0, 2.0])], [text])
