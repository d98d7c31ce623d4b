"""Parameter counting for ``summarize``: wherever the graph holds weights, each distinct tensor once.

The rule (one rule for every exporter):

* **Where**: initializers (dense and sparse) of the main graph (``"initializers"``); ``Constant``
  nodes' ``value`` / ``sparse_value`` / ``value_floats`` and tensors in other nodes' attributes
  (``"constants"``); the initializers and constants of If/Loop/Scan bodies (``"subgraphs"``); the
  constants inside model-local functions (``"functions"``).
* **What**: a tensor of a floating-point type (float, double, float16, bfloat16, float8, float4)
  or of an integer type of 8 bits or fewer (the weights of a quantized model), with more than one
  element. Scalars (scales, epsilons, zero points, a bias of size 1) and int16/int32/int64/bool
  tensors (shapes for Reshape, axes, indices, masks) are not parameters.
* **Once**: a tensor whose dtype, dims and bytes repeat one counted before is not counted again
  (``repeated`` holds how many values such copies store). Exporters share identical weights
  differently: TorchScript keeps one initializer and points ``Identity`` nodes at it, dynamo shares
  one initializer between several nodes, or keeps folded copies (a transposed weight per layer), and
  drops a bias of zeros it can fold away. Counting each distinct tensor once gives the same number
  for both exporters. It equals ``sum(p.numel() for p in model.parameters())`` when the model's
  parameters are all different; a model whose layers hold identical values (an untrained
  ``nn.TransformerEncoder``, whose layers are deep copies of one layer, or many zero biases) counts
  them once. Sparse tensors count their dense size. Tensors in external data are told apart by their
  file, offset and length, not read.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np
import onnx
from onnx import external_data_helper, helper, numpy_helper

__all__ = ["LOCATIONS", "ParameterCount", "count_parameters", "is_parameter_type"]

LOCATIONS = ("initializers", "constants", "subgraphs", "functions")
_NARROW_INTS = {"INT8", "UINT8", "INT4", "UINT4", "INT2", "UINT2"}
_CONSTANT_OPS = {"Constant"}


def is_parameter_type(data_type: int) -> bool:
    """Floating-point types and integer types of 8 bits or fewer (quantized weights)."""
    try:
        name = onnx.TensorProto.DataType.Name(data_type)
    except ValueError:  # a type this onnx does not know
        return False
    return name.startswith(("FLOAT", "BFLOAT", "DOUBLE")) or name in _NARROW_INTS


@dataclass
class ParameterCount:
    """Distinct parameter values: in total, by dtype (count and bytes), by where the graph holds them."""

    total: int = 0
    by_dtype: dict[str, int] = field(default_factory=dict)
    bytes_by_dtype: dict[str, int] = field(default_factory=dict)
    by_location: dict[str, int] = field(default_factory=dict)
    repeated: int = 0


@dataclass(frozen=True)
class _Held:
    location: str
    data_type: int
    numel: int
    key: tuple


def _numel(dims: Sequence[int]) -> int:
    return math.prod(int(d) for d in dims)


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _bytes(tensor: onnx.TensorProto) -> bytes:
    """The tensor's values as little-endian bytes, however they are stored (``raw_data`` or the
    typed fields); for a tensor numpy cannot read, its serialized form without the name."""
    if tensor.HasField("raw_data"):
        return tensor.raw_data
    try:
        return numpy_helper.to_array(tensor).tobytes()
    except Exception:  # a malformed tensor: still told apart from the others by what it stores
        copy = onnx.TensorProto()
        copy.CopyFrom(tensor)
        copy.ClearField("name")
        copy.ClearField("doc_string")
        return copy.SerializeToString()


def _dense(tensor: onnx.TensorProto, location: str) -> _Held:
    dims = list(tensor.dims)
    if external_data_helper.uses_external_data(tensor):
        info = external_data_helper.ExternalDataInfo(tensor)
        key: tuple = ("external", info.location, info.offset, info.length, tensor.data_type, tuple(dims))
    else:
        key = ("dense", tensor.data_type, tuple(dims), _digest(_bytes(tensor)))
    return _Held(location, tensor.data_type, _numel(dims), key)


def _sparse(sparse: onnx.SparseTensorProto, location: str) -> _Held:
    parts = (_dense(sparse.values, location).key, _dense(sparse.indices, location).key)
    key = ("sparse", sparse.values.data_type, tuple(sparse.dims), parts)
    return _Held(location, sparse.values.data_type, _numel(sparse.dims), key)


def _attribute_tensors(node: onnx.NodeProto, location: str) -> Iterator[_Held]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.TENSOR:
            yield _dense(attr.t, location)
        elif attr.type == onnx.AttributeProto.TENSORS:
            yield from (_dense(t, location) for t in attr.tensors)
        elif attr.type == onnx.AttributeProto.SPARSE_TENSOR:
            yield _sparse(attr.sparse_tensor, location)
        elif attr.type == onnx.AttributeProto.FLOATS and node.op_type in _CONSTANT_OPS and attr.name == "value_floats":
            data = np.asarray(attr.floats, np.float32)
            key = ("dense", onnx.TensorProto.FLOAT, (data.size,), _digest(data.tobytes()))
            yield _Held(location, onnx.TensorProto.FLOAT, int(data.size), key)


def _graph_tensors(graph: onnx.GraphProto, initializers: str, nodes: str) -> Iterator[_Held]:
    yield from (_dense(t, initializers) for t in graph.initializer)
    yield from (_sparse(t, initializers) for t in graph.sparse_initializer)
    yield from _node_tensors(graph.node, nodes)


def _node_tensors(nodes: Iterable[onnx.NodeProto], location: str) -> Iterator[_Held]:
    inner = "functions" if location == "functions" else "subgraphs"
    for node in nodes:
        yield from _attribute_tensors(node, location)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else
                        attr.graphs if attr.type == onnx.AttributeProto.GRAPHS else []):
                yield from _graph_tensors(sub, inner, inner)


def held_tensors(model: onnx.ModelProto) -> Iterator[_Held]:
    """Every tensor the model holds, with where it is held (see the module's docstring)."""
    yield from _graph_tensors(model.graph, "initializers", "constants")
    for function in model.functions:
        yield from _node_tensors(function.node, "functions")


def count_parameters(model: onnx.ModelProto) -> ParameterCount:
    """The parameters of ``model`` by the rule of this module (external weights are not read)."""
    seen: set[tuple] = set()
    by_dtype: Counter[str] = Counter()
    by_bytes: Counter[str] = Counter()
    by_location: Counter[str] = Counter()
    repeated = 0
    for held in held_tensors(model):
        if held.numel <= 1 or not is_parameter_type(held.data_type):
            continue
        if held.key in seen:
            repeated += held.numel
            continue
        seen.add(held.key)
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(held.data_type))
        by_dtype[dtype.name] += held.numel
        by_bytes[dtype.name] += held.numel * dtype.itemsize
        by_location[held.location] += held.numel
    return ParameterCount(sum(by_dtype.values()), dict(by_dtype), dict(by_bytes),
                          {k: by_location[k] for k in LOCATIONS if by_location[k]}, repeated)
