"""Feeds and dtypes: what a model runs on, turned into what ONNX Runtime or PyTorch takes.

``build_feed`` checks inputs against a session's graph inputs (names, count, dtypes, ranks,
static sizes) and returns ``{name: array}``; ``run_torch`` runs an ``nn.Module`` and flattens
its outputs in ONNX order; ``as_samples`` turns one sample or a list of samples into a list.
The dtype maps between ONNX Runtime's type strings, numpy and torch live here, once.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence, Union

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from workbench.errors import FeedError, InvalidInputError, describe

__all__ = ["ORT_TO_NUMPY", "ORT_TO_TORCH", "Sample", "as_samples", "build_feed", "by_graph_name", "flatten_outputs",
           "run_torch", "to_numpy"]

#: ONNX Runtime type string -> numpy scalar type.
ORT_TO_NUMPY: dict[str, Any] = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_, "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32, "tensor(uint64)": np.uint64,
}

#: ONNX Runtime type string -> torch dtype (bfloat16 included, which numpy lacks).
ORT_TO_TORCH: dict[str, torch.dtype] = {
    "tensor(float)": torch.float32, "tensor(float16)": torch.float16, "tensor(double)": torch.float64,
    "tensor(bfloat16)": torch.bfloat16, "tensor(int8)": torch.int8, "tensor(int16)": torch.int16,
    "tensor(int32)": torch.int32, "tensor(int64)": torch.int64, "tensor(uint8)": torch.uint8,
    "tensor(uint16)": torch.uint16, "tensor(uint32)": torch.uint32, "tensor(uint64)": torch.uint64,
    "tensor(bool)": torch.bool,
}

#: One set of inputs: a tuple of tensors/arrays (positional) or a feed dict ``{name: array}``.
Sample = Union[tuple[Any, ...], Mapping[str, Any]]


#: torch dtypes numpy has no type for -> (an int dtype of the same width, ml_dtypes' name for it).
_ML_DTYPES: dict[torch.dtype, tuple[torch.dtype, str]] = {
    torch.bfloat16: (torch.int16, "bfloat16"), torch.float8_e4m3fn: (torch.uint8, "float8_e4m3fn"),
    torch.float8_e5m2: (torch.uint8, "float8_e5m2"), torch.float8_e4m3fnuz: (torch.uint8, "float8_e4m3fnuz"),
    torch.float8_e5m2fnuz: (torch.uint8, "float8_e5m2fnuz"),
}


def to_numpy(value: Any) -> np.ndarray:
    """A tensor (detached, on CPU), an array or anything array-like as a numpy array. bfloat16 and
    float8 tensors become ml_dtypes arrays (numpy has no such types; onnx depends on ml_dtypes)."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.dtype in _ML_DTYPES:
            import ml_dtypes

            as_int, name = _ML_DTYPES[tensor.dtype]
            return tensor.view(as_int).numpy().view(getattr(ml_dtypes, name))
        return tensor.numpy()
    if isinstance(value, np.ndarray):
        return value
    return np.asarray(value)


def flatten_outputs(outputs: Any) -> list[torch.Tensor]:
    """PyTorch outputs (tensor, tuple, list, dict, namedtuple, dataclass such as ``ModelOutput``, nested) as
    a flat list of tensors in ONNX order: the same walk ``wb.export`` counts and names outputs with. A
    non-tensor leaf (a cache object) raises ``NonTensorOutputError`` saying how to leave it out."""
    from workbench.core._export_outputs import output_leaves

    return [tensor for _, tensor in output_leaves(outputs)]


def run_torch(model: nn.Module, inputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """Run ``model(*inputs)`` under ``torch.inference_mode`` and return its outputs as arrays."""
    from workbench.core._locks import TORCH_LOCK  # never beside an export (it swaps weights for fake tensors)

    with TORCH_LOCK.shared(), torch.inference_mode():
        outputs = model(*inputs)
    return [to_numpy(t) for t in flatten_outputs(outputs)]


def as_samples(inputs: Any) -> list[Sample]:
    """One sample (a tuple, a dict, one tensor/array) or a list of samples, as a list of samples."""
    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        return [(inputs,)]
    if isinstance(inputs, (Mapping, tuple)) and inputs:
        return [inputs]
    if isinstance(inputs, list) and inputs:
        if all(isinstance(s, (tuple, list, Mapping)) for s in inputs):
            return [tuple(s) if isinstance(s, list) else s for s in inputs]
        return [tuple(inputs)]
    raise InvalidInputError(
        f"inputs must be a tensor, a tuple of tensors/arrays (one sample), a feed dict {{name: array}}, or a "
        f"list of such samples, received {describe(inputs)}."
    )


def _graph_values(session: ort.InferenceSession, inputs: Sequence[Any] | Mapping[str, Any]) -> list[Any]:
    graph_inputs = session.get_inputs()
    expected = ", ".join(f"{i.name}: {i.type} {list(i.shape)}" for i in graph_inputs)
    if isinstance(inputs, Mapping):
        unknown = [n for n in inputs if n not in {i.name for i in graph_inputs}]
        missing = [i.name for i in graph_inputs if i.name not in inputs]
        if unknown or missing:
            raise FeedError(
                f"Feed names {list(inputs)} do not match the graph's inputs ({expected}): "
                f"unknown {unknown}, missing {missing}. Use the graph's input names."
            )
        return [inputs[i.name] for i in graph_inputs]
    values = [inputs] if isinstance(inputs, (torch.Tensor, np.ndarray)) else list(inputs)
    if len(values) != len(graph_inputs):
        raise FeedError(
            f"The graph takes {len(graph_inputs)} inputs ({expected}), received {len(values)}: "
            f"{[describe(v) for v in values]}. Pass one array per graph input, in order."
        )
    return values


def _check_value(spec: Any, value: Any) -> np.ndarray:
    if not isinstance(value, (torch.Tensor, np.ndarray)):
        raise FeedError(
            f"Input '{spec.name}' must be a torch.Tensor or numpy array, received {describe(value)}. "
            "Convert it with torch.as_tensor(...) or np.asarray(...)."
        )
    arr = to_numpy(value)
    want = ORT_TO_NUMPY.get(spec.type)
    if want is not None and arr.dtype != want:
        name = np.dtype(want).name
        raise FeedError(
            f"Input '{spec.name}' expects {spec.type} ({name}), received {arr.dtype} {describe(arr)}. "
            f"Convert it, e.g. tensor.to(torch.{name}) or array.astype(np.{name})."
        )
    if len(spec.shape) != arr.ndim:
        raise FeedError(
            f"Input '{spec.name}' expects rank {len(spec.shape)} {list(spec.shape)}, received rank {arr.ndim} "
            f"shape {list(arr.shape)}. Add or remove dimensions (e.g. a batch dimension with unsqueeze(0))."
        )
    for axis, (dim, size) in enumerate(zip(spec.shape, arr.shape)):
        if isinstance(dim, int) and dim != size:
            raise FeedError(
                f"Input '{spec.name}' has a static size {dim} on axis {axis} (graph shape {list(spec.shape)}), "
                f"received {size} (shape {list(arr.shape)}). Re-export with this axis in dynamic_axes "
                "or feed that size."
            )
    return np.ascontiguousarray(arr)


def build_feed(session: ort.InferenceSession, inputs: Sequence[Any] | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The feed dict for ``session``, checked against its inputs: names, count, dtypes, ranks, static dims."""
    values = _graph_values(session, inputs)
    return {spec.name: _check_value(spec, value) for spec, value in zip(session.get_inputs(), values)}


def by_graph_name(inputs: Sequence[Any], graph_names: Sequence[str], input_names: Sequence[str] = ()) -> dict[str, Any]:
    """Positional ``inputs`` keyed by the graph's input names: by ``input_names`` (the export spec's)
    where they cover the graph (the exporter may have dropped unused inputs), else in order."""
    if input_names and set(graph_names) <= set(input_names[: len(inputs)]):
        named = dict(zip(input_names, inputs))
        return {n: named[n] for n in graph_names}
    if len(inputs) != len(graph_names):
        raise InvalidInputError(
            f"The graph has inputs {list(graph_names)}, received {len(inputs)} tensors {[describe(t) for t in inputs]}. "
            "Pass the export spec's input names, or inputs that are exactly the graph's inputs."
        )
    return dict(zip(graph_names, inputs))
