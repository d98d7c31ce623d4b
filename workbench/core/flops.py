"""FLOPs of an ONNX graph at concrete input shapes, and a measured GEMM peak of this machine.

``graph_flops`` counts the multiply-adds of the matrix products and convolutions in the main
graph (2 FLOPs per multiply-add; bias adds, activations and normalisations are not counted),
using ONNX shape inference on a light copy of the model whose inputs have the concrete shapes.
``graph_precision`` says whether a graph computes in float or int8, so an achieved rate is read
against the matching peak; ``machine_peak`` (``peak.py``, re-exported here) measures them.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import onnx

from workbench.core._checks import is_int
from workbench.core._io import OnnxModel, load_model
from workbench.core.graph import graph_inputs
from workbench.core.peak import Peak, PeakSource, machine_peak  # measured here once; re-exported
from workbench.errors import InvalidInputError, ModelFileError, describe

Shape = tuple[int | None, ...]
ShapeTable = Mapping[str, Shape | None]

#: Initializers with more elements than this become shape-only inputs in the copy that shape
#: inference sees: their values do not matter to shapes, and copying them would cost memory.
_SMALL_INITIALIZER = 4096

COUNTED_OPS: tuple[str, ...] = (
    "MatMul", "MatMulInteger", "QLinearMatMul", "Gemm", "Conv", "ConvInteger", "QLinearConv",
    "ConvTranspose",
)


# ---------------------------------------------------------------------------------------------
# Shape inference at concrete input shapes
# ---------------------------------------------------------------------------------------------


def _set_shape(value: onnx.ValueInfoProto, shape: Sequence[int]) -> None:
    dims = value.type.tensor_type.shape.dim
    del dims[:]
    for size in shape:
        dims.add().dim_value = int(size)


def _declared_shape(value: onnx.ValueInfoProto) -> Shape | None:
    tensor_type = value.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim)


def _as_shapes(input_shapes: Any) -> dict[str, tuple[int, ...]]:
    """``input_shapes`` as ``{name: tuple of ints}``; raise ``InvalidInputError`` on anything else."""
    if not isinstance(input_shapes, Mapping):
        raise InvalidInputError(
            f"input_shapes must be a dict of input name -> shape, received {describe(input_shapes)}. "
            "For example {'input_ids': (2, 32)}."
        )
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in input_shapes.items():
        if not isinstance(shape, Sequence) or not all(
            is_int(s, 0) for s in shape
        ):
            raise InvalidInputError(
                f"input_shapes[{name!r}] must be a tuple of ints >= 0, received {shape!r}. "
                "Pass tuple(tensor.shape)."
            )
        out[str(name)] = tuple(int(s) for s in shape)
    return out


def _check_input_shapes(graph: onnx.GraphProto, input_shapes: Mapping[str, tuple[int, ...]]) -> None:
    """Raise ``InvalidInputError`` when ``input_shapes`` does not fit the graph's real inputs."""
    real = {v.name: v for v in graph_inputs(graph)}
    unknown = sorted(set(input_shapes) - set(real))
    missing = sorted(set(real) - set(input_shapes))
    if unknown or missing:
        raise InvalidInputError(
            f"input_shapes names {sorted(input_shapes)}, but the graph's inputs are {sorted(real)} "
            f"(unknown: {unknown}, missing: {missing}). Give one shape per graph input, by its ONNX name."
        )
    for name, shape in input_shapes.items():
        declared = _declared_shape(real[name])
        if declared is None:
            continue
        fixed_mismatch = any(d is not None and d != s for d, s in zip(declared, shape))
        if len(declared) != len(shape) or fixed_mismatch:
            raise InvalidInputError(
                f"input_shapes[{name!r}] is {tuple(shape)}, but the graph declares {declared} "
                "(None = dynamic). Keep the rank and the fixed sizes; only dynamic axes can change."
            )


def _shape_only_input(tensor: onnx.TensorProto) -> onnx.ValueInfoProto:
    return onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims))


def _light_copy(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> onnx.ModelProto:
    """A copy of ``model`` with concrete input shapes, no inferred shapes, and big weights as inputs."""
    source = model.graph
    graph = onnx.GraphProto(name=source.name)
    graph.node.extend(source.node)
    for value in source.input:
        copy = graph.input.add()
        copy.CopyFrom(value)
        if value.name in input_shapes:
            _set_shape(copy, input_shapes[value.name])
    declared = {v.name for v in graph.input}
    for tensor in source.initializer:
        if math.prod(tensor.dims) <= _SMALL_INITIALIZER and tensor.data_location != onnx.TensorProto.EXTERNAL:
            graph.initializer.append(tensor)
        elif tensor.name not in declared:
            graph.input.append(_shape_only_input(tensor))
    graph.sparse_initializer.extend(source.sparse_initializer)
    for value in source.output:
        out = graph.output.add()
        out.name = value.name
        out.type.tensor_type.elem_type = value.type.tensor_type.elem_type
    copy = onnx.ModelProto(ir_version=model.ir_version, graph=graph)
    copy.opset_import.extend(model.opset_import)
    copy.functions.extend(model.functions)
    if copy.functions:
        from onnx.inliner import inline_local_functions

        copy = inline_local_functions(copy)
    return copy


def infer_shapes(onnx_model: OnnxModel, input_shapes: Mapping[str, Sequence[int]]) -> dict[str, Shape | None]:
    """Shapes of every value in the main graph when the inputs have ``input_shapes``.

    Runs ``onnx.shape_inference.infer_shapes`` (with data propagation, so ``Shape`` ->
    ``Reshape`` chains resolve) on a light copy; the model passed in is not changed. A dim
    inference could not resolve is ``None``; a value with no shape at all maps to ``None``.
    """
    proto = _as_proto(onnx_model)
    input_shapes = _as_shapes(input_shapes)
    _check_input_shapes(proto.graph, input_shapes)
    copy = _light_copy(proto, input_shapes)
    try:
        inferred = onnx.shape_inference.infer_shapes(copy, data_prop=True)
    except Exception as exc:  # onnx raises InferenceError and friends
        raise ModelFileError(
            f"ONNX shape inference failed at input shapes {input_shapes}: {type(exc).__name__}: {exc}. "
            "Check that these shapes are valid for the model (run it once with ONNX Runtime)."
        ) from exc
    graph = inferred.graph
    shapes: dict[str, Shape | None] = {t.name: tuple(int(d) for d in t.dims) for t in graph.initializer}
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        shapes[value.name] = _declared_shape(value)
    return shapes


def _as_proto(onnx_model: OnnxModel) -> onnx.ModelProto:
    # Weights' values are not needed for shapes, so external data is not read.
    return load_model(onnx_model, load_external_data=False)


# ---------------------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------------------


def _known(shapes: ShapeTable, name: str) -> tuple[int, ...] | None:
    shape = shapes.get(name) if name else None
    if shape is None or any(d is None for d in shape):
        return None
    return tuple(int(d) for d in shape)  # type: ignore[arg-type]


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for attribute in node.attribute:
        if attribute.name == name:
            return int(attribute.i)
    return default


def _matmul_k(a: Shape | None, b: Shape | None) -> int | None:
    """The contracted size of ``a @ b``, from whichever operand's shape knows it."""
    candidates = []
    if a:
        candidates.append(a[-1])
    if b:
        candidates.append(b[0] if len(b) == 1 else b[-2])
    return next((int(k) for k in candidates if k is not None), None)


def _matmul_flops(a_index: int, b_index: int) -> Callable[[onnx.NodeProto, ShapeTable], int | None]:
    """2 * (elements of the output) * K, which covers batched and broadcast matmuls."""

    def count(node: onnx.NodeProto, shapes: ShapeTable) -> int | None:
        out = _known(shapes, node.output[0])
        k = _matmul_k(shapes.get(node.input[a_index]), shapes.get(node.input[b_index]))
        if out is None or k is None:
            return None
        return 2 * math.prod(out) * k

    return count


def _gemm_flops(node: onnx.NodeProto, shapes: ShapeTable) -> int | None:
    a = _known(shapes, node.input[0])
    b = _known(shapes, node.input[1])
    if a is None or b is None or len(a) != 2 or len(b) != 2:
        return None
    m, k = (a[1], a[0]) if _attr(node, "transA", 0) else a
    n = b[0] if _attr(node, "transB", 0) else b[1]
    return 2 * m * n * k


def _conv_flops(w_index: int) -> Callable[[onnx.NodeProto, ShapeTable], int | None]:
    """2 * (elements of the output) * (input channels per group) * (kernel elements)."""

    def count(node: onnx.NodeProto, shapes: ShapeTable) -> int | None:
        w = _known(shapes, node.input[w_index])
        out = _known(shapes, node.output[0])
        if w is None or out is None:
            return None
        return 2 * math.prod(out) * math.prod(w[1:])

    return count


def _conv_transpose_flops(node: onnx.NodeProto, shapes: ShapeTable) -> int | None:
    """Each input element is multiplied by a (Cout/group) x kernel slice of the weight."""
    x = _known(shapes, node.input[0])
    w = _known(shapes, node.input[1])
    if x is None or w is None:
        return None
    return 2 * math.prod(x) * math.prod(w[1:])


_COUNTERS: dict[str, Callable[[onnx.NodeProto, ShapeTable], int | None]] = {
    "MatMul": _matmul_flops(0, 1),
    "MatMulInteger": _matmul_flops(0, 1),
    "QLinearMatMul": _matmul_flops(0, 3),
    "Gemm": _gemm_flops,
    "Conv": _conv_flops(1),
    "ConvInteger": _conv_flops(1),
    "QLinearConv": _conv_flops(3),
    "ConvTranspose": _conv_transpose_flops,
}


def node_flops(node: onnx.NodeProto, shapes: ShapeTable) -> int | None:
    """FLOPs of one node (0 for ops that are not counted), or ``None`` if a shape is unknown."""
    counter = _COUNTERS.get(node.op_type) if node.domain in ("", "ai.onnx") else None
    return 0 if counter is None else counter(node, shapes)


def graph_flops(onnx_model: OnnxModel, input_shapes: Mapping[str, Sequence[int]]) -> int | None:
    """FLOPs of one run of ``onnx_model`` (a path or ``ModelProto``) at ``input_shapes``.

    Counts ``COUNTED_OPS`` (MatMul, Gemm, Conv and their quantized and transposed forms) in
    the main graph after inlining local functions, at 2 FLOPs per multiply-add, e.g.
    ``2*M*N*K`` for a ``[M, K] @ [K, N]`` MatMul. Ops inside ``If``/``Loop`` bodies and
    contrib ops (``com.microsoft``) are not counted. Returns ``None`` when a counted op's
    shape cannot be inferred. ``input_shapes`` maps every graph input name to a shape.
    """
    proto = _as_proto(onnx_model)
    shapes = infer_shapes(proto, input_shapes)
    graph = _light_copy(proto, {}).graph if proto.functions else proto.graph
    total = 0
    for node in graph.node:
        flops = node_flops(node, shapes)
        if flops is None:
            return None
        total += flops
    return total


# ---------------------------------------------------------------------------------------------
# The data type the graph computes its products in
# ---------------------------------------------------------------------------------------------

#: Ops that mark a graph as computing its products in int8 (ONNX Runtime's dynamic and static
#: quantization, ONNX's integer ops).
INT8_OPS: frozenset[str] = frozenset({
    "MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
    "QLinearMatMul", "QLinearConv", "QGemm", "QAttention", "QLinearAdd", "QLinearMul", "DynamicQuantizeLSTM",
})


def graph_precision(onnx_model: OnnxModel) -> str:
    """``"int8"`` when the graph (subgraphs included) has an integer product or quantize op
    (``MatMulInteger``, ``DynamicQuantizeLinear``, ``QLinear*``...), ``"float16"`` when its matrix
    products take float16 weights, else ``"float32"``: the peak an achieved rate is read against."""
    model = _as_proto(onnx_model)
    ops = {node.op_type for node in _all_nodes(model.graph)}
    if ops & INT8_OPS or any(op.startswith("QLinear") for op in ops):
        return "int8"
    halves = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16}
    counted = [n for n in _all_nodes(model.graph) if n.op_type in COUNTED_OPS]
    if halves and any(name in halves for n in counted for name in n.input):
        return "float16"
    return "float32"


def _all_nodes(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    nodes = []
    for node in graph.node:
        nodes.append(node)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                nodes.extend(_all_nodes(sub))
    return nodes

__all__ = ["COUNTED_OPS", "INT8_OPS", "Peak", "PeakSource", "graph_flops", "graph_precision", "infer_shapes",
           "machine_peak", "node_flops"]
