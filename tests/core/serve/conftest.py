"""Tiny ONNX models built with onnx.helper (no export: fast) and servers on 127.0.0.1 for the serve tests."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("fastapi")

import workbench as wb  # noqa: E402

OPSET = [helper.make_opsetid("", 17)]


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=OPSET, ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def affine_model(path: Path) -> Path:
    """x float32 [batch, 8] -> y = x @ W + b [batch, 4] and s = sum(x, axis 1) [batch]."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"]),
             helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0)]
    graph = helper.make_graph(nodes, "affine", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4]),
                               helper.make_tensor_value_info("s", TensorProto.FLOAT, ["batch"])], [w, b, axes])
    return _save(graph, path)


def lookup_model(path: Path) -> Path:
    """ids int64 [batch, seq] -> Gather(table [10, 3]) [batch, seq, 3]; an id >= 10 makes ONNX Runtime fail."""
    table = numpy_helper.from_array(np.arange(30, dtype=np.float32).reshape(10, 3), "table")
    graph = helper.make_graph([helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0)], "lookup",
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])],
                              [helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["batch", "seq", 3])], [table])
    return _save(graph, path)


def slow_model(path: Path, iterations: int = 4000) -> Path:
    """x float32 [batch, 64] -> ``iterations`` rounds of tanh(state @ W): a few ms per row, for queue tests."""
    w = numpy_helper.from_array((np.eye(64) * 0.5).astype(np.float32), "W")
    body = helper.make_graph(
        [helper.make_node("MatMul", ["s_in", "W"], ["m"]), helper.make_node("Tanh", ["m"], ["s_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("s_in", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("s_out", TensorProto.FLOAT, ["batch", 64])], [w])
    trip = numpy_helper.from_array(np.array(iterations, dtype=np.int64), "trip")
    cond = numpy_helper.from_array(np.array(True), "cond")
    graph = helper.make_graph([helper.make_node("Loop", ["trip", "cond", "x"], ["y"], body=body)], "slow",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])], [trip, cond])
    return _save(graph, path)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve-models")
    return {"affine": affine_model(root / "affine.onnx"), "lookup": lookup_model(root / "lookup.onnx"),
            "slow": slow_model(root / "slow.onnx"), "slower": slow_model(root / "slower.onnx", 30000)}


@pytest.fixture(scope="module")
def affine_server(models: dict[str, Path]) -> Iterator[wb.Server]:
    with wb.serve(models["affine"], max_batch=8, max_wait_ms=2.0) as server:
        yield server


def rows(n: int, seed: int = 0, width: int = 8) -> list[np.ndarray]:
    """``n`` distinct float32 rows of shape (1, width)."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, width)).astype(np.float32) for _ in range(n)]


@pytest.fixture
def make_rows() -> Callable[..., list[np.ndarray]]:
    return rows
