"""FLOPs of an ONNX graph at concrete input shapes, and a measured GEMM peak of this machine.

``graph_flops`` counts the multiply-adds of the matrix products and convolutions in the main
graph (2 FLOPs per multiply-add; bias adds, activations and normalisations are not counted),
using ONNX shape inference on a light copy of the model whose inputs have the concrete shapes.
``machine_peak`` times a square matmul to say how many GFLOP/s this machine can do, so an
achieved GFLOP/s figure can be read against it.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import onnx

from workbench.core._checks import is_int
from workbench.core._format import esc, fmt_time
from workbench.core._io import OnnxModel, load_model
from workbench.core.graph import graph_inputs
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
# Machine peak
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peak:
    """A measured GEMM peak: ``size`` x ``size`` matmuls of ``dtype`` on ``threads`` threads."""

    size: int
    dtype: str
    threads: int
    raw_times: tuple[float, ...]

    @property
    def flops(self) -> int:
        """FLOPs of one matmul: ``2 * size**3``."""
        return 2 * self.size**3

    @property
    def median(self) -> float:
        return statistics.median(self.raw_times)

    @property
    def gflops(self) -> float:
        """GFLOP/s at the median time."""
        return self.flops / self.median / 1e9

    @property
    def best_gflops(self) -> float:
        """GFLOP/s at the fastest time."""
        return self.flops / min(self.raw_times) / 1e9

    def __repr__(self) -> str:
        return (
            f"Peak({self.gflops:.1f} GFLOP/s median, {self.best_gflops:.1f} best; {self.size}x{self.size} "
            f"{self.dtype} matmul on {self.threads} threads, {len(self.raw_times)} repeats, "
            f"median {fmt_time(self.median)})"
        )

    def _repr_html_(self) -> str:
        return f"<code>{esc(repr(self))}</code>"


def _torch_dtype(dtype: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(dtype, torch.dtype):
        result = dtype
    else:
        try:
            result = torch.from_numpy(np.zeros(1, dtype=np.dtype(dtype))).dtype
        except TypeError as exc:
            raise InvalidInputError(
                f"dtype must be a numpy or torch floating dtype such as 'float32', received {dtype!r}."
            ) from exc
    if not result.is_floating_point:
        raise InvalidInputError(
            f"machine_peak times a floating-point matmul, received dtype {dtype!r}. Use float32 or float64."
        )
    return result


def machine_peak(
    *, size: int = 1024, dtype: Any = "float32", threads: int | None = None, repeats: int = 10,
    max_seconds: float = 1.5,
) -> Peak:
    """Measure this machine's matmul peak with ``torch.mm`` (cached per process and arguments).

    Runs two warm-up matmuls, then up to ``repeats`` timed ones, stopping early (after at
    least three) once ``max_seconds`` is spent. ``threads`` defaults to torch's current count.
    """
    import torch

    if not is_int(size, 16):
        raise InvalidInputError(f"size must be an int >= 16, received {size!r}. Try 1024.")
    if not isinstance(repeats, int) or repeats < 3:
        raise InvalidInputError(f"repeats must be an int >= 3, received {repeats!r}.")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise InvalidInputError(f"threads must be an int >= 1 or None, received {threads!r}.")
    torch_dtype = _torch_dtype(dtype)
    return _machine_peak(size, str(torch_dtype).replace("torch.", ""), threads or torch.get_num_threads(),
                         repeats, float(max_seconds))


@functools.lru_cache(maxsize=16)
def _machine_peak(size: int, dtype: str, threads: int, repeats: int, max_seconds: float) -> Peak:
    import torch

    from workbench.core.bench import torch_threads  # holds TORCH_LOCK while the count is changed

    with torch_threads(threads):
        generator = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=generator).to(getattr(torch, dtype))
        b = torch.randn(size, size, generator=generator).to(getattr(torch, dtype))
        out = torch.empty_like(a)
        for _ in range(2):
            torch.mm(a, b, out=out)
        times: list[float] = []
        deadline = time.perf_counter() + max_seconds
        while len(times) < repeats and (len(times) < 3 or time.perf_counter() < deadline):
            start = time.perf_counter_ns()
            torch.mm(a, b, out=out)
            times.append((time.perf_counter_ns() - start) / 1e9)
    return Peak(size=size, dtype=dtype, threads=threads, raw_times=tuple(times))
