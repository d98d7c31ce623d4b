"""graph_flops on hand-built graphs with hand-computed counts, and machine_peak."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from workbench.core.flops import Peak, graph_flops, graph_precision, infer_shapes, machine_peak
from workbench.core.peak import cpu_int8_extension
from workbench.errors import InvalidInputError, ModelFileError


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], output: str,
           initializers: Sequence[tuple[str, np.ndarray]] = ()) -> onnx.ModelProto:
    """A one-output model; the output's shape is left for inference to find."""
    inits = [numpy_helper.from_array(arr, name) for name, arr in initializers]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)],
                              initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _f(name: str, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _w(*shape: int) -> np.ndarray:
    return np.zeros(shape, dtype=np.float32)


def test_matmul_with_symbolic_batch_is_2mnk() -> None:
    k, n = 64, 96  # 64 * 96 > the "small initializer" limit, so the weight becomes shape-only
    model = _model([helper.make_node("MatMul", ["a", "w"], ["y"])], [_f("a", ["M", k])], "y", [("w", _w(k, n))])
    assert graph_flops(model, {"a": (5, k)}) == 2 * 5 * n * k
    assert graph_flops(model, {"a": (7, k)}) == 2 * 7 * n * k
    # the model passed in is not changed
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "M"


def test_batched_broadcast_matmul_counts_every_batch() -> None:
    model = _model([helper.make_node("MatMul", ["a", "w"], ["y"])], [_f("a", ["B", 3, "M", 8])], "y", [("w", _w(8, 4))])
    assert graph_flops(model, {"a": (2, 3, 10, 8)}) == 2 * (2 * 3) * 10 * 4 * 8


def test_gemm_with_transposes() -> None:
    m, k, n = 6, 5, 4
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transA=1, transB=1)
    model = _model([node], [_f("a", [k, "M"])], "y", [("b", _w(n, k)), ("c", _w(n))])
    assert graph_flops(model, {"a": (k, m)}) == 2 * m * n * k


def test_grouped_conv_and_conv_transpose() -> None:
    conv = helper.make_node("Conv", ["x", "w"], ["y"], group=2)  # out (1, 6, 6, 6)
    model = _model([conv], [_f("x", ["N", 4, 8, 8])], "y", [("w", _w(6, 2, 3, 3))])
    assert graph_flops(model, {"x": (1, 4, 8, 8)}) == 2 * (6 * 6 * 6) * (2 * 3 * 3)
    deconv = helper.make_node("ConvTranspose", ["x", "w"], ["y"])
    model = _model([deconv], [_f("x", ["N", 4, 5, 5])], "y", [("w", _w(4, 3, 2, 2))])
    assert graph_flops(model, {"x": (2, 4, 5, 5)}) == 2 * (2 * 4 * 5 * 5) * (3 * 2 * 2)


def test_chain_sums_counted_ops_and_ignores_the_rest() -> None:
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["y"]),
    ]
    model = _model(nodes, [_f("x", ["B", 16])], "y", [("w1", _w(16, 32)), ("w2", _w(32, 4))])
    assert graph_flops(model, {"x": (3, 16)}) == 2 * 3 * (16 * 32 + 32 * 4)
    relu_only = _model([helper.make_node("Relu", ["x"], ["y"])], [_f("x", ["B", 16])], "y")
    assert graph_flops(relu_only, {"x": (3, 16)}) == 0


def test_shapes_from_a_runtime_value_give_none() -> None:
    nodes = [helper.make_node("Reshape", ["x", "s"], ["r"]), helper.make_node("MatMul", ["r", "w"], ["y"])]
    inputs = [_f("x", [12]), helper.make_tensor_value_info("s", TensorProto.INT64, [2])]
    model = _model(nodes, inputs, "y", [("w", _w(3, 4))])
    assert graph_flops(model, {"x": (12,), "s": (2,)}) is None


def test_shape_chain_resolves_with_data_propagation() -> None:
    # Reshape x[B, 6] to [B*2, 3] through Shape/Gather/Mul/Concat, then MatMul by [3, 4].
    nodes = [
        helper.make_node("Shape", ["x"], ["shp"]),
        helper.make_node("Gather", ["shp", "zero"], ["b"]),
        helper.make_node("Mul", ["b", "two"], ["b2"]),
        helper.make_node("Concat", ["b2", "three"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["r"]),
        helper.make_node("MatMul", ["r", "w"], ["y"]),
    ]
    inits = [("zero", np.array([0], np.int64)), ("two", np.array([2], np.int64)),
             ("three", np.array([3], np.int64)), ("w", _w(3, 4))]
    model = _model(nodes, [_f("x", ["B", 6])], "y", inits)
    assert graph_flops(model, {"x": (5, 6)}) == 2 * (5 * 2) * 4 * 3


def test_infer_shapes_reports_intermediate_shapes() -> None:
    model = _model([helper.make_node("MatMul", ["a", "w"], ["y"])], [_f("a", ["M", 8])], "y", [("w", _w(8, 3))])
    shapes = infer_shapes(model, {"a": (4, 8)})
    assert shapes["y"] == (4, 3) and shapes["w"] == (8, 3) and shapes["a"] == (4, 8)


@pytest.fixture(scope="module")
def mlp_onnx(torch_export: Callable[..., Path]) -> Path:
    return torch_export("mlp")


@pytest.mark.parametrize("batch", [1, 7])
def test_exported_mlp_matches_hand_count(mlp_onnx: Path, batch: int) -> None:
    # Linear(16, 32) -> ReLU -> Linear(32, 4), exported as two Gemms
    assert graph_flops(mlp_onnx, {"x": (batch, 16)}) == 2 * batch * (16 * 32 + 32 * 4)


def test_bad_input_shapes_are_explained(mlp_onnx: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"unknown: \['y'\], missing: \['x'\]"):
        graph_flops(mlp_onnx, {"y": (2, 16)})
    with pytest.raises(InvalidInputError, match="Keep the rank"):
        graph_flops(mlp_onnx, {"x": (2, 16, 1)})
    with pytest.raises(InvalidInputError, match="Keep the rank and the fixed sizes"):
        graph_flops(mlp_onnx, {"x": (2, 17)})
    with pytest.raises(InvalidInputError, match="dict of input name"):
        graph_flops(mlp_onnx, [(2, 16)])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="tuple of ints"):
        graph_flops(mlp_onnx, {"x": (2, -1)})
    with pytest.raises(ModelFileError, match="No ONNX file"):
        graph_flops(mlp_onnx.with_name("missing.onnx"), {"x": (2, 16)})


def test_machine_peak_measures_float_both_ways_and_int8_and_is_cached() -> None:
    peak = machine_peak(size=128, repeats=5, max_seconds=0.2)
    assert isinstance(peak, Peak) and 3 <= len(peak.raw_times) <= 5
    assert peak.flops == 2 * 128**3 and peak.dtype == "float32"
    assert peak.gflops == pytest.approx(peak.flops / float(np.median(peak.raw_times)) / 1e9)
    assert peak.best_gflops >= peak.gflops > 0
    names = [s.name for s in peak.sources]
    assert names == ["torch.matmul", "onnxruntime MatMul"] and peak.source in names
    winner = next(s for s in peak.sources if s.name == peak.source)
    assert winner.raw_times == peak.raw_times and peak.best_gflops == max(s.best for s in peak.sources)
    assert all(s.threads == peak.threads and s.error is None for s in peak.sources)
    assert peak.int8 is not None and peak.int8.dtype == "int8" and peak.int8.error is None
    assert peak.int8_best_gops >= peak.int8_gops > 0
    assert peak.int8_extension == cpu_int8_extension() and peak.vnni == bool(peak.int8_extension)
    assert peak.best_for("float32") == peak.best_gflops and peak.best_for("int8") == peak.int8_best_gops
    assert peak.best_for("float16") is None
    assert machine_peak(size=128, repeats=5, max_seconds=0.2) is peak  # once per process
    assert machine_peak(size=128, repeats=5, max_seconds=0.2, refresh=True) is not peak
    assert "GFLOP/s" in repr(peak) and "128x128" in repr(peak) and "int8" in repr(peak)
    assert list(peak.to_pandas().source) == [*names, "onnxruntime MatMulInteger u8s8"]


def test_machine_peak_is_measured_once_across_threads() -> None:
    got: list[Peak] = []
    threads = [threading.Thread(target=lambda: got.append(machine_peak(size=48, repeats=3, max_seconds=0.0)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 3 and got[0] is got[1] is got[2]


def test_machine_peak_stops_at_its_time_budget_and_restores_threads() -> None:
    before = torch.get_num_threads()
    peak = machine_peak(size=64, repeats=50, max_seconds=0.0, threads=1, int8=False)
    assert len(peak.raw_times) == 3 and peak.threads == 1 and all(len(s.raw_times) == 3 for s in peak.sources)
    assert peak.int8 is None and peak.int8_gops is None and peak.best_for("int8") is None
    assert torch.get_num_threads() == before
    doubles = machine_peak(size=64, dtype="float64", repeats=3, max_seconds=0.0, int8=False)
    assert [s.name for s in doubles.sources] == ["torch.matmul"] and doubles.best_for("float32") is None


def test_machine_peak_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidInputError, match="floating-point"):
        machine_peak(dtype="int32")
    with pytest.raises(InvalidInputError, match="size must be an int >= 16"):
        machine_peak(size=0)
    with pytest.raises(InvalidInputError, match="repeats must be"):
        machine_peak(repeats=1)
    with pytest.raises(InvalidInputError, match="threads must be"):
        machine_peak(threads=0)


@pytest.mark.parametrize(("flags", "expected"), [
    ("fpu sse avx2 avx512f avx512_vnni", "avx512_vnni"), ("fpu avx2 avx_vnni", "avx_vnni"), ("fpu sse avx2", ""),
])
def test_cpu_int8_extension_reads_the_flags(tmp_path: Path, flags: str, expected: str) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\n")
    assert cpu_int8_extension(info) == expected
    assert cpu_int8_extension(tmp_path / "missing") is None


def _matmul_model(weight: np.ndarray) -> onnx.ModelProto:
    k, n = weight.shape
    return _model([helper.make_node("MatMul", ["x", "w"], ["y"])], [_f("x", ["B", k])], "y", [("w", weight)])


def test_graph_precision_tells_int8_from_float(tmp_path: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32 = _matmul_model(np.random.default_rng(0).random((64, 64), dtype=np.float32))
    assert graph_precision(fp32) == "float32"
    onnx.save(fp32, tmp_path / "fp32.onnx")
    quantize_dynamic(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", weight_type=QuantType.QInt8)
    ops = {n.op_type for n in onnx.load(tmp_path / "int8.onnx").graph.node}
    assert "MatMulInteger" in ops and graph_precision(tmp_path / "int8.onnx") == "int8"
    assert graph_precision(_matmul_model(np.zeros((64, 64), np.float16))) == "float16"
    qlinear = _model([helper.make_node("QLinearMatMul", ["a", "s", "z", "b", "s", "z", "s", "z"], ["y"])],
                     [_f("a", [2, 2])], "y")
    assert graph_precision(qlinear) == "int8"
    inner = helper.make_graph([helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])], "then", [],
                              [helper.make_tensor_value_info("q", TensorProto.UINT8, None)])
    branch = helper.make_node("If", ["c"], ["y"], then_branch=inner, else_branch=inner)
    assert graph_precision(_model([branch], [_f("x", [2])], "y")) == "int8"  # found inside a subgraph
