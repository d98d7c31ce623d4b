"""The accuracy gate: run a reference ONNX model and a converted one on the same inputs, compare outputs.

The reference (FP32) model runs first, on the inputs given or on inputs generated from the graph
(``generate_inputs``); inputs it rejects raise ``FeedError``. Each candidate then runs on the same
feeds (float inputs cast to the candidate's float type) and every output is compared at a
tolerance with ``compare_arrays``. A candidate ONNX Runtime cannot load or run is reported as an
error string by ``run_gate`` (``accuracy_gate`` raises it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import onnx
import onnxruntime as ort

from workbench.core._io import OnnxModel, check_onnx_path, load_model
from workbench.core.compare import Comparison, compare_arrays, merge
from workbench.core.feeds import ORT_TO_NUMPY, as_samples, build_feed
from workbench.core.session import SessionConfig, open_session
from workbench.core.tolerance import Tolerance, resolve_tolerance
from workbench.errors import FeedError, InvalidInputError, WorkbenchError, brief

__all__ = ["GateReference", "accuracy_gate", "generate_inputs", "reference_run", "run_gate"]

DEFAULT_DIM = 4  # size given to a symbolic dimension when inputs are generated
INT_HIGH = 100  # generated integer inputs lie in [0, INT_HIGH) (less when they index a smaller table)
_INDEX_PASSTHROUGH = ("Cast", "Identity", "Reshape", "Unsqueeze", "Squeeze", "Flatten")
_GATE_CONFIG = SessionConfig(opt_level="all")

Sample = dict[str, np.ndarray]


def _index_bounds(model: onnx.ModelProto) -> dict[str, int]:
    """Graph input -> number of rows of the smallest initializer table it indexes through Gather."""
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    inputs = {i.name for i in model.graph.input}
    bounds: dict[str, int] = {}
    for node in model.graph.node:
        axis = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
        if node.op_type != "Gather" or axis != 0 or len(node.input) < 2 or not shapes.get(node.input[0]):
            continue
        name = node.input[1]
        while name not in inputs and name in producer and producer[name].op_type in _INDEX_PASSTHROUGH:
            name = producer[name].input[0]
        if name in inputs:
            rows = int(shapes[node.input[0]][0])
            bounds[name] = min(rows, bounds.get(name, rows))
    return bounds


def _ort_dtype(type_str: str) -> np.dtype:
    if type_str not in ORT_TO_NUMPY:
        raise InvalidInputError(
            f"Cannot generate gate inputs of type {type_str}. Pass inputs=... explicitly (a tuple of arrays)."
        )
    return np.dtype(ORT_TO_NUMPY[type_str])


def generate_inputs(
    session: ort.InferenceSession,
    model: onnx.ModelProto | None = None,
    *,
    dim_sizes: Mapping[str, int] | None = None,
    seed: int = 0,
) -> Sample:
    """Inputs for ``session`` from its input types and shapes.

    Symbolic dimensions take ``dim_sizes[symbol]`` or ``DEFAULT_DIM``. Float inputs are standard
    normal; integer inputs whose name contains 'mask' are ones, other integer inputs lie in
    ``[0, INT_HIGH)``, narrowed to the rows of an embedding table they index (found in ``model``);
    bool inputs are True.
    """
    sizes = dict(dim_sizes or {})
    bounds = _index_bounds(model) if model is not None else {}
    rng = np.random.default_rng(seed)
    feed: Sample = {}
    for spec in session.get_inputs():
        shape = [d if isinstance(d, int) and d >= 0 else int(sizes.get(str(d), DEFAULT_DIM)) for d in spec.shape]
        dtype = _ort_dtype(spec.type)
        if dtype == np.bool_:
            feed[spec.name] = np.ones(shape, dtype=np.bool_)
        elif np.issubdtype(dtype, np.floating):
            feed[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif "mask" in spec.name.lower():
            feed[spec.name] = np.ones(shape, dtype=dtype)
        else:
            high = max(1, min(INT_HIGH, bounds.get(spec.name, INT_HIGH)))
            feed[spec.name] = rng.integers(0, high, size=shape).astype(dtype)
    return feed


@dataclass
class GateReference:
    """The reference model's feeds and outputs, computed once and compared with each candidate."""

    feeds: list[Sample]
    expected: list[list[np.ndarray]]
    names: list[str]


def reference_run(
    onnx_model: OnnxModel, inputs: Any = None, *, dim_sizes: Mapping[str, int] | None = None, seed: int = 0,
) -> GateReference:
    """Run the FP32 model on ``inputs`` (or generated ones); raise ``FeedError`` if it cannot."""
    session = open_session(onnx_model, _GATE_CONFIG)
    if inputs is None:
        model = load_model(onnx_model, load_external_data=False)
        feeds = [generate_inputs(session, model, dim_sizes=dim_sizes, seed=seed)]
    else:
        feeds = [build_feed(session, sample) for sample in as_samples(inputs)]
    names = [o.name for o in session.get_outputs()]
    expected = []
    for feed in feeds:
        try:
            expected.append(session.run(names, feed))
        except Exception as exc:
            shapes = {k: list(v.shape) for k, v in feed.items()}
            how = ("generated inputs" if inputs is None else "the inputs given")
            raise FeedError(
                f"The FP32 model '{onnx_model}' failed on {how} {shapes}: {brief(exc, 500)}. The gate needs inputs "
                "the model accepts: pass inputs=(...) (e.g. the export's example inputs) or dim_sizes={'seq': ...}."
            ) from exc
    return GateReference(feeds, expected, names)


def _adapt_feed(session: ort.InferenceSession, feed: Sample) -> Sample:
    """Cast float inputs to the float type the converted model expects (FP16 without keep_io_types)."""
    out = dict(feed)
    for spec in session.get_inputs():
        value = out.get(spec.name)
        want = ORT_TO_NUMPY.get(spec.type)
        if value is not None and want is not None and value.dtype != want and np.issubdtype(want, np.floating):
            out[spec.name] = value.astype(want)
    return out


def run_gate(reference: GateReference, candidate: OnnxModel, *, tolerance: Tolerance
             ) -> tuple[Comparison | None, str | None]:
    """Compare ``candidate``'s outputs with the reference's: ``(Comparison, None)`` or ``(None, error)``."""
    try:
        session = open_session(candidate, _GATE_CONFIG)
        actual = [session.run(reference.names, build_feed(session, _adapt_feed(session, f))) for f in reference.feeds]
    except Exception as exc:
        return None, f"ONNX Runtime could not run the converted model: {brief(exc, 500)}"
    parts = [compare_arrays(exp, act, tolerance=tolerance, names=reference.names, sample=i)
             for i, (exp, act) in enumerate(zip(reference.expected, actual))]
    shapes = [[tuple(v.shape) for v in feed.values()] for feed in reference.feeds]
    return merge(parts, shapes, session.get_providers()), None


def accuracy_gate(
    reference: OnnxModel, candidate: OnnxModel, inputs: Any = None, *, tolerance: Tolerance = "fp32",
    dim_sizes: Mapping[str, int] | None = None, seed: int = 0,
) -> Comparison:
    """Run two ONNX models (paths) with ONNX Runtime on the same inputs and compare their outputs."""
    resolve_tolerance(tolerance)
    ref = reference_run(check_onnx_path(reference), inputs, dim_sizes=dim_sizes, seed=seed)
    comparison, error = run_gate(ref, check_onnx_path(candidate), tolerance=tolerance)
    if comparison is None:
        raise WorkbenchError(f"{error}. Check '{candidate}' with wb.summarize / onnx.checker.")
    return comparison
