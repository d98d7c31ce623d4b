"""``convert_opset``: an ONNX model rewritten for another opset, checked against the original.

ONNX Runtime runs opset 7 and newer; a model saved with an older opset (or an op version ONNX
Runtime dropped) is refused with a pointer here. onnx's version converter rewrites the default
domain (``ai.onnx``) to the target opset; the converted model is then run beside the original,
which onnx's reference evaluator can still run, on inputs generated from the graph's signature
(or the ``inputs`` given), and the outputs are compared with ``compare_arrays``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, version_converter

from workbench.core._files import save_model
from workbench.core._format import badge, esc, fmt_num
from workbench.core._io import load_model
from workbench.core.compare import Comparison, compare_arrays
from workbench.core.session import open_session
from workbench.core.tolerance import Tolerance, resolve_tolerance
from workbench.errors import InvalidInputError, brief, describe

__all__ = ["ConvertResult", "convert_opset", "signature_inputs"]

_DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass
class ConvertResult:
    """An ONNX model converted from ``source_opset`` to ``target_opset``, and how it compares.

    ``verified`` is True when the converted model's outputs match the original's within
    ``comparison.tolerance``, False when they differ, None when the original could not be run
    (``note`` says why). ``evaluator`` names what ran the converted model: ``"onnxruntime"``, or
    ``"reference"`` (onnx's reference evaluator) when ONNX Runtime could not run it either.
    ``bool()`` is True only when ONNX Runtime runs the converted model and it matches the original.
    ``generated_inputs`` is False when ``inputs`` were given; ``fixes`` lists what was repaired
    after onnx's converter (see ``_fix_prelu_slopes``).
    """

    onnx_model: onnx.ModelProto = field(repr=False)
    source_opset: int
    target_opset: int
    out: Path | None
    verified: bool | None
    comparison: Comparison | None = None
    evaluator: str = ""
    generated_inputs: bool = True
    note: str = ""
    inputs: dict[str, Any] = field(default_factory=dict, repr=False)
    fixes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verified is True and self.evaluator == "onnxruntime"

    def __bool__(self) -> bool:
        return self.ok

    @property
    def max_abs(self) -> float:
        return self.comparison.max_abs if self.comparison is not None else float("nan")

    @property
    def max_rel(self) -> float:
        return self.comparison.max_rel if self.comparison is not None else float("nan")

    def _verdict(self) -> str:
        if self.verified is None:
            return "not verified"
        assert self.comparison is not None
        on = "generated" if self.generated_inputs else "the given"
        runner = ("ONNX Runtime" if self.evaluator == "onnxruntime"
                  else "onnx's reference evaluator, as ONNX Runtime cannot run it")
        return (f"{'matches' if self.verified else 'DIFFERS FROM'} the original at {self.comparison.tolerance} "
                f"(max abs {fmt_num(self.max_abs)}, max rel {fmt_num(self.max_rel)}) on {on} inputs; "
                f"converted model run by {runner}")

    def __repr__(self) -> str:
        where = f", saved to {self.out}" if self.out else ""
        lines = [f"ConvertResult opset {self.source_opset} -> {self.target_opset}{where}: {self._verdict()}"]
        lines += [f"  fixed: {fix}" for fix in self.fixes]
        if self.note:
            lines.append(f"  note: {self.note}")
        if self.comparison is not None and not self.verified:
            lines += [f"  {o.describe()}" for o in self.comparison.failures[:5]]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        where = f" saved to <code>{esc(self.out)}</code>" if self.out else ""
        note = f"<p><i>{esc(self.note)}</i></p>" if self.note else ""
        fixes = "".join(f"<p>fixed: {esc(fix)}</p>" for fix in self.fixes)
        table = self.comparison._repr_html_() if self.comparison is not None else ""
        return (f"<div><b>ConvertResult</b> {badge(self.verified)} opset {self.source_opset} &rarr; "
                f"{self.target_opset}{where}: {esc(self._verdict())}{fixes}{note}{table}</div>")


def default_opset(proto: onnx.ModelProto) -> int | None:
    """The ``ai.onnx`` opset a model imports (None when it imports none)."""
    return next((int(o.version) for o in proto.opset_import if o.domain in _DEFAULT_DOMAINS), None)


def _check_target(target_opset: Any) -> int:
    top = onnx.defs.onnx_opset_version()
    if isinstance(target_opset, bool) or not isinstance(target_opset, (int, np.integer)) or not 0 < target_opset <= top:
        raise InvalidInputError(
            f"target_opset must be an int between 1 and {top} (the newest opset this onnx knows), received "
            f"{describe(target_opset)}. ONNX Runtime runs opset 7 and newer; 13 is a widely supported choice."
        )
    return int(target_opset)


def _convert(proto: onnx.ModelProto, source: int, target: int) -> onnx.ModelProto:
    if source == target:
        converted = onnx.ModelProto()
        converted.CopyFrom(proto)
        return converted
    try:
        return version_converter.convert_version(proto, target)
    except Exception as exc:
        text = " ".join(str(exc).split())
        op = text.rsplit(" for ", 1)[-1] if "No Adapter" in text else None
        which = f" for {op}" if op and op.isidentifier() else ""
        raise InvalidInputError(
            f"onnx's version converter cannot convert this model from opset {source} to {target}{which}: "
            f"{brief(exc, 240)}. Try another target opset (converting up is better supported than down), or "
            f"export the model again from its source at opset {target}."
        ) from exc


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    except Exception:
        inferred = model.graph
    values = [*inferred.input, *inferred.value_info, *inferred.output]
    return {v.name: len(v.type.tensor_type.shape.dim) for v in values
            if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape")}


def _fix_prelu_slopes(model: onnx.ModelProto, source: int, target: int) -> list[str]:
    """Up to opset 6, PRelu's slope of shape ``[C]`` is per channel (axis 1); from opset 7 on it
    broadcasts from the right, and onnx's adapter leaves it as is, so ONNX Runtime refuses to run
    the result. Reshape such slopes (initializers used only by PRelu) to ``[C, 1, ...]``."""
    if not source < 7 <= target:
        return []
    graph, fixed = model.graph, []
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    initializers = {t.name: t for t in graph.initializer}
    ranks = _ranks(model)
    for node in graph.node:
        if node.op_type != "PRelu" or node.domain not in _DEFAULT_DOMAINS or len(node.input) < 2:
            continue
        slope, rank = initializers.get(node.input[1]), ranks.get(node.input[0], 0)
        if slope is None or uses[slope.name] != 1 or len(slope.dims) != 1 or slope.dims[0] <= 1 or rank <= 2:
            continue
        dims = [int(slope.dims[0])] + [1] * (rank - 2)
        del slope.dims[:]
        slope.dims.extend(dims)
        for value in graph.input:
            if value.name == slope.name:
                shape = helper.make_tensor_type_proto(slope.data_type, dims).tensor_type.shape
                value.type.tensor_type.shape.CopyFrom(shape)
        fixed.append(f"PRelu slope '{slope.name}' reshaped to {dims} (per-channel, as in opset {source})")
    return fixed


def _random_tensor(value: onnx.ValueInfoProto, rng: np.random.Generator) -> np.ndarray:
    kind = value.type.WhichOneof("value")
    tensor = value.type.tensor_type
    if kind != "tensor_type" or not tensor.elem_type:
        raise InvalidInputError(f"input '{value.name}' is a {kind or 'value of unknown type'}, not a tensor")
    shape = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else 1 for d in tensor.shape.dim)
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"input '{value.name}' has element type {tensor.elem_type}, unknown to numpy") from exc
    if tensor.elem_type == onnx.TensorProto.STRING:
        return rng.choice(np.array(["a", "bc", "Monday", "x y"], dtype=object), size=shape)
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 2, size=shape).astype(dtype)
    if np.issubdtype(dtype, np.complexfloating):
        return (rng.random(shape) + 1j * rng.random(shape)).astype(dtype)
    return rng.random(shape).astype(np.float32).astype(dtype)  # float16/32/64, bfloat16, float8 (ml_dtypes)


def signature_inputs(onnx_model: Any, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for ``onnx_model`` made from its graph's signature: each graph input (not an
    initializer) with its dtype and static dims (1 for a symbolic or unknown dim); floats uniform
    in [0, 1), integers 0 or 1, booleans and strings random. Sequence or map inputs raise
    ``InvalidInputError`` (pass ``inputs`` yourself)."""
    proto = load_model(onnx_model, load_external_data=False)
    rng = np.random.default_rng(seed)
    initializers = {i.name for i in proto.graph.initializer}
    return {v.name: _random_tensor(v, rng) for v in proto.graph.input if v.name not in initializers}


def _flatten(names: Sequence[str], values: Sequence[Any]) -> tuple[list[str], list[Any]]:
    """Outputs with sequences expanded to ``name[i]`` (optional None as an empty array)."""
    flat_names: list[str] = []
    flat_values: list[Any] = []
    for name, value in zip(names, values):
        if isinstance(value, list):
            flat_names += [f"{name}[{i}]" for i in range(len(value))]
            flat_values += list(value)
        else:
            flat_names.append(name)
            flat_values.append(np.zeros(0) if value is None else value)
    return flat_names, flat_values


def _reference_run(proto: onnx.ModelProto, feed: Mapping[str, Any]) -> list[Any]:
    from onnx.reference import ReferenceEvaluator

    return list(ReferenceEvaluator(proto).run(None, dict(feed)))


def _ort_run(proto: onnx.ModelProto, feed: Mapping[str, Any]) -> list[Any]:
    session = open_session(proto)
    return list(session.run(None, dict(feed)))


def _converted_outputs(converted: onnx.ModelProto, feed: Mapping[str, Any]) -> tuple[list[Any], str, str]:
    """Outputs of the converted model from ONNX Runtime, else from the reference evaluator."""
    try:
        return _ort_run(converted, feed), "onnxruntime", ""
    except Exception as exc:
        note = f"ONNX Runtime cannot run the converted model ({brief(exc, 200)}); onnx's reference evaluator ran it"
        return _reference_run(converted, feed), "reference", note


def _verify(proto: onnx.ModelProto, converted: onnx.ModelProto, feed: Mapping[str, Any],
            tolerance: Tolerance) -> tuple[Comparison | None, str, str]:
    names = [o.name for o in proto.graph.output]
    try:
        expected = _reference_run(proto, feed)
    except Exception as exc:
        return None, "", f"onnx's reference evaluator cannot run the original ({brief(exc, 200)}); not verified"
    try:
        actual, evaluator, note = _converted_outputs(converted, feed)
    except Exception as exc:
        return None, "", f"neither ONNX Runtime nor onnx's reference evaluator runs the converted model ({brief(exc, 200)})"
    exp_names, exp_values = _flatten(names, expected)
    act_names, act_values = _flatten(names, actual)
    if exp_names != act_names:
        note = (note + "; " if note else "") + f"outputs differ: original {exp_names}, converted {act_names}"
        act_values = act_values[: len(exp_values)] + [np.zeros(0)] * (len(exp_values) - len(act_values))
    return compare_arrays(exp_values, act_values, tolerance=tolerance, names=exp_names), evaluator, note


def _feed(proto: onnx.ModelProto, inputs: Mapping[str, Any] | None, seed: int) -> tuple[dict[str, Any] | None, str]:
    if inputs is not None:
        if not isinstance(inputs, Mapping):
            raise InvalidInputError(
                f"inputs must be a feed dict {{name: array}} for the original model, received {describe(inputs)}."
            )
        return {k: np.asarray(v) if not isinstance(v, list) else v for k, v in inputs.items()}, ""
    try:
        return signature_inputs(proto, seed=seed), ""
    except InvalidInputError as exc:
        return None, f"inputs cannot be generated: {exc}; pass inputs={{name: value}} to verify"


def convert_opset(
    onnx_model: Any,
    target_opset: int,
    out: str | os.PathLike[str] | None = None,
    *,
    inputs: Mapping[str, Any] | None = None,
    tolerance: Tolerance = "fp32",
    verify: bool = True,
    seed: int = 0,
) -> ConvertResult:
    """Convert ``onnx_model`` (a path or ``ModelProto``) to ``target_opset`` with onnx's version
    converter, save it to ``out`` (if given) and check it against the original.

    The check runs the original with onnx's reference evaluator and the converted model with
    ONNX Runtime (or the reference evaluator, when ONNX Runtime cannot open it either) on
    ``inputs`` (a feed dict; default: generated from the graph's signature, see
    ``signature_inputs``) and compares every output at ``tolerance``. When the original cannot be
    run, ``verified`` is None and ``note`` says why; the converted model is still returned and saved.
    Only the default domain (``ai.onnx``) is converted; custom domains are kept as they are.
    """
    if type(onnx_model).__name__ == "InferenceSession":
        raise InvalidInputError(
            "convert_opset needs the ONNX model itself (a path or an onnx.ModelProto), received an "
            "InferenceSession. Pass the path the session was opened from."
        )
    target = _check_target(target_opset)
    resolve_tolerance(tolerance)
    proto = load_model(onnx_model)
    source = default_opset(proto)
    if source is None:
        raise InvalidInputError(
            "The model imports no ai.onnx opset (opset_import has only "
            f"{[o.domain for o in proto.opset_import]}), so there is nothing to convert."
        )
    converted = _convert(proto, source, target)
    fixes = _fix_prelu_slopes(converted, source, target)
    note = f"already at opset {target}; nothing converted" if source == target else ""
    target_path = Path(out) if out is not None else None
    if target_path is not None:
        save_model(converted, target_path)
    result = ConvertResult(converted, source, target, target_path, None, note=note, generated_inputs=inputs is None,
                           fixes=fixes)
    if not verify:
        result.note = "; ".join(filter(None, [note, "not verified (verify=False)"]))
        return result
    feed, why = _feed(proto, inputs, seed)
    if feed is None:
        result.note = "; ".join(filter(None, [note, why]))
        return result
    comparison, evaluator, check_note = _verify(proto, converted, feed, tolerance)
    result.inputs, result.comparison, result.evaluator = feed, comparison, evaluator
    result.verified = None if comparison is None else bool(comparison)
    result.note = "; ".join(filter(None, [note, check_note]))
    return result

