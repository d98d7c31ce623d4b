"""PyTorch vs ONNX Runtime (or any two sets of outputs) compared element by element."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from workbench.core._format import badge, fmt_num, html_table, text_table
from workbench.core._io import ModelLike
from workbench.core.inputs import as_input_tuple, check_inputs_fit, check_module
from workbench.core.session import SessionConfig, open_session
from workbench.errors import FeedError, InvalidInputError, describe

# (rtol, atol) per preset. fp32: accumulation-order differences of kernels;
# fp16: 10-bit mantissa; int8: quantization steps of dynamic INT8.
TOLERANCES: dict[str, tuple[float, float]] = {
    "fp32": (1e-4, 1e-5),
    "fp16": (1e-2, 1e-3),
    "int8": (1e-1, 5e-2),
}

Tolerance = Union[str, tuple[float, float]]


def resolve_tolerance(tolerance: Tolerance) -> tuple[str, float, float]:
    """``(name, rtol, atol)`` for a preset name or an ``(rtol, atol)`` pair."""
    if isinstance(tolerance, str):
        if tolerance not in TOLERANCES:
            raise InvalidInputError(
                f"Unknown tolerance {tolerance!r}. Use one of {list(TOLERANCES)} or a pair (rtol, atol)."
            )
        rtol, atol = TOLERANCES[tolerance]
        return tolerance, rtol, atol
    if (
        isinstance(tolerance, (tuple, list))
        and len(tolerance) == 2
        and all(isinstance(v, (int, float)) and v >= 0 for v in tolerance)
    ):
        rtol, atol = float(tolerance[0]), float(tolerance[1])
        return f"rtol={rtol:g}, atol={atol:g}", rtol, atol
    raise InvalidInputError(
        f"tolerance must be a preset name ({list(TOLERANCES)}) or a pair (rtol, atol) of numbers >= 0, "
        f"received {tolerance!r}."
    )


@dataclass
class OutputDiff:
    """How one output differs: raw errors plus summary numbers."""

    name: str
    shape: tuple[int, ...]
    rtol: float
    atol: float
    max_abs: float
    max_rel: float
    mean_abs: float
    mismatches: int
    total: int
    worst_index: tuple[int, ...]
    worst_expected: float
    worst_actual: float
    expected_nonfinite: int
    actual_nonfinite: int
    abs_errors: np.ndarray = field(repr=False)
    expected: np.ndarray = field(repr=False)
    actual: np.ndarray = field(repr=False)
    shape_mismatch: str | None = None
    sample: int = 0

    @property
    def mismatch_pct(self) -> float:
        return 100.0 * self.mismatches / self.total if self.total else 0.0

    @property
    def ok(self) -> bool:
        return self.shape_mismatch is None and self.mismatches == 0 and self.actual_nonfinite <= self.expected_nonfinite

    def __bool__(self) -> bool:
        return self.ok

    @classmethod
    def from_arrays(cls, name: str, expected: Any, actual: Any, rtol: float, atol: float, *, sample: int = 0) -> OutputDiff:
        e = _to_numpy(expected)
        a = _to_numpy(actual)
        if e.shape != a.shape:
            empty = np.zeros(0)
            return cls(name, tuple(e.shape), rtol, atol, float("inf"), float("inf"), float("inf"),
                       max(e.size, a.size), max(e.size, a.size), (), float("nan"), float("nan"), 0, 0,
                       empty, e, a, shape_mismatch=f"expected shape {tuple(e.shape)}, got {tuple(a.shape)}",
                       sample=sample)
        if e.dtype == np.bool_ or not np.issubdtype(e.dtype, np.number):
            e = e.astype(np.float64)
            a = a.astype(np.float64)
        e64 = e.astype(np.float64)
        a64 = a.astype(np.float64)
        e_bad = ~np.isfinite(e64)
        a_bad = ~np.isfinite(a64)
        # A non-finite value matches only the same non-finite value.
        same_nonfinite = e_bad & a_bad & ((np.isnan(e64) & np.isnan(a64)) | (e64 == a64))
        with np.errstate(invalid="ignore", over="ignore"):
            abs_err = np.abs(a64 - e64)
        abs_err = np.where(same_nonfinite, 0.0, abs_err)
        abs_err = np.where(np.isnan(abs_err), np.inf, abs_err)
        rel_err = abs_err / np.maximum(np.abs(np.where(e_bad, 0, e64)), np.finfo(np.float64).tiny)
        rel_err = np.where(abs_err == 0, 0.0, rel_err)
        bad = abs_err > atol + rtol * np.abs(np.where(e_bad, 0, e64))
        total = int(e.size)
        if total:
            flat = int(np.argmax(abs_err))
            worst = tuple(int(i) for i in np.unravel_index(flat, e.shape))
            worst_e, worst_a = float(e64.reshape(-1)[flat]), float(a64.reshape(-1)[flat])
        else:
            worst, worst_e, worst_a = (), float("nan"), float("nan")
        return cls(
            name=name, shape=tuple(e.shape), rtol=rtol, atol=atol,
            max_abs=float(abs_err.max()) if total else 0.0,
            max_rel=float(rel_err.max()) if total else 0.0,
            mean_abs=float(abs_err.mean()) if total else 0.0,
            mismatches=int(bad.sum()), total=total, worst_index=worst,
            worst_expected=worst_e, worst_actual=worst_a,
            expected_nonfinite=int(e_bad.sum()), actual_nonfinite=int(a_bad.sum()),
            abs_errors=abs_err.reshape(-1), expected=e, actual=a, sample=sample,
        )

    def describe(self) -> str:
        if self.shape_mismatch:
            return f"{self.name}: {self.shape_mismatch}"
        text = (f"{self.name}{list(self.shape)}: max abs {fmt_num(self.max_abs)}, max rel {fmt_num(self.max_rel)}, "
                f"{self.mismatches}/{self.total} ({self.mismatch_pct:.2f}%) beyond tolerance")
        if self.mismatches:
            text += f"; worst at {self.worst_index}: expected {fmt_num(self.worst_expected)}, got {fmt_num(self.worst_actual)}"
        if self.actual_nonfinite or self.expected_nonfinite:
            text += f"; non-finite values: expected {self.expected_nonfinite}, got {self.actual_nonfinite}"
        return text


@dataclass
class Comparison:
    """The outcome of comparing expected (PyTorch) with actual (ONNX Runtime) outputs.

    ``outputs`` has one ``OutputDiff`` per output and per input sample. ``bool()`` is pass.
    """

    outputs: list[OutputDiff]
    tolerance: str
    rtol: float
    atol: float
    samples: int = 1
    input_shapes: list[list[tuple[int, ...]]] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.outputs) and all(o.ok for o in self.outputs)

    def __bool__(self) -> bool:
        return self.ok

    @property
    def max_abs(self) -> float:
        return max((o.max_abs for o in self.outputs), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((o.max_rel for o in self.outputs), default=0.0)

    @property
    def failures(self) -> list[OutputDiff]:
        return [o for o in self.outputs if not o.ok]

    def summary(self) -> dict[str, Any]:
        return {"ok": self.ok, "tolerance": self.tolerance, "max_abs": self.max_abs, "max_rel": self.max_rel,
                "mismatches": sum(o.mismatches for o in self.outputs), "samples": self.samples}

    def _rows(self) -> list[list[Any]]:
        return [[o.sample, o.name, str(list(o.shape)), o.max_abs, o.max_rel, o.mean_abs,
                 o.mismatches, f"{o.mismatch_pct:.2f}", "ok" if o.ok else "FAIL"] for o in self.outputs]

    _HEADERS = ["sample", "output", "shape", "max_abs", "max_rel", "mean_abs", "mismatches", "mismatch_%", "verdict"]

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self._rows(), columns=self._HEADERS)

    def __repr__(self) -> str:
        verdict = "PASS" if self.ok else "FAIL"
        head = (f"Comparison {verdict} at {self.tolerance} (rtol={self.rtol:g}, atol={self.atol:g}), "
                f"{self.samples} sample(s), max abs {fmt_num(self.max_abs)}, max rel {fmt_num(self.max_rel)}")
        lines = [head] + [f"  {o.describe()}" for o in self.failures[:5]]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        title = (f"<b>Comparison</b> {badge(self.ok)} at {self.tolerance} (rtol={self.rtol:g}, atol={self.atol:g}), "
                 f"{self.samples} sample(s)")
        return f"<div>{title}{html_table(self._HEADERS, self._rows())}</div>"

    def text_table(self) -> str:
        return text_table(self._HEADERS, self._rows())


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    return np.asarray(value)


def compare_arrays(
    expected: Mapping[str, Any] | Sequence[Any],
    actual: Mapping[str, Any] | Sequence[Any],
    tolerance: Tolerance = "fp32",
    *,
    names: Sequence[str] | None = None,
    sample: int = 0,
) -> Comparison:
    """Compare two sets of outputs (dicts by name, or sequences in the same order)."""
    tol_name, rtol, atol = resolve_tolerance(tolerance)
    if isinstance(expected, Mapping):
        names = list(expected)
        exp_list = [expected[n] for n in names]
        if not isinstance(actual, Mapping):
            act_list = list(actual)
        else:
            missing = [n for n in names if n not in actual]
            if missing:
                raise InvalidInputError(f"actual outputs lack {missing}; they have {list(actual)}.")
            act_list = [actual[n] for n in names]
    else:
        exp_list = list(expected)
        act_list = list(actual.values()) if isinstance(actual, Mapping) else list(actual)
        names = list(names) if names else [f"output_{i}" for i in range(len(exp_list))]
    if len(exp_list) != len(act_list):
        raise InvalidInputError(
            f"Expected {len(exp_list)} outputs ({list(names)}), received {len(act_list)}. "
            "Check output_names of the export spec and what forward returns."
        )
    diffs = [OutputDiff.from_arrays(n, e, a, rtol, atol, sample=sample) for n, e, a in zip(names, exp_list, act_list)]
    return Comparison(diffs, tol_name, rtol, atol)


def flatten_outputs(out: Any) -> list[torch.Tensor]:
    """PyTorch outputs (tensor, tuple, list, dict, nested) as a flat list of tensors in ONNX order."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for item in out for t in flatten_outputs(item)]
    if isinstance(out, Mapping):
        return [t for v in out.values() for t in flatten_outputs(v)]
    if out is None:
        return []
    return [torch.as_tensor(out)]


ORT_TO_NUMPY = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_, "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32, "tensor(uint64)": np.uint64,
}


def build_feed(session: ort.InferenceSession, inputs: Sequence[Any] | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The feed dict for ``session``, checked against its inputs: names, count, dtypes, ranks, static dims."""
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
        values = [inputs[i.name] for i in graph_inputs]
    else:
        values = [inputs] if isinstance(inputs, (torch.Tensor, np.ndarray)) else list(inputs)
        if len(values) != len(graph_inputs):
            raise FeedError(
                f"The graph takes {len(graph_inputs)} inputs ({expected}), received {len(values)}: "
                f"{[describe(v) for v in values]}. Pass one array per graph input, in order."
            )
    feed: dict[str, np.ndarray] = {}
    for spec, value in zip(graph_inputs, values):
        if not isinstance(value, (torch.Tensor, np.ndarray)):
            raise FeedError(
                f"Input '{spec.name}' must be a torch.Tensor or numpy array, received {describe(value)}. "
                "Convert it with torch.as_tensor(...) or np.asarray(...)."
            )
        arr = _to_numpy(value)
        want = ORT_TO_NUMPY.get(spec.type)
        if want is not None and arr.dtype != want:
            raise FeedError(
                f"Input '{spec.name}' expects {spec.type} ({np.dtype(want).name}), received {arr.dtype} "
                f"{describe(arr)}. Convert it, e.g. tensor.to(torch.{np.dtype(want).name}) or array.astype(np.{np.dtype(want).name})."
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
        feed[spec.name] = np.ascontiguousarray(arr)
    return feed


def run_torch(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    with torch.inference_mode():
        out = model(*inputs)
    return [_to_numpy(t) for t in flatten_outputs(out)]


def _as_samples(inputs: Any) -> list[tuple[torch.Tensor, ...]]:
    if isinstance(inputs, list) and inputs and all(isinstance(s, (tuple, list)) for s in inputs):
        return [as_input_tuple(s, what="each sample in inputs") for s in inputs]
    return [as_input_tuple(inputs, what="inputs")]


def compare(
    model: nn.Module,
    onnx_model: ModelLike | ort.InferenceSession,
    inputs: Any,
    tolerance: Tolerance = "fp32",
    config: SessionConfig | None = None,
) -> Comparison:
    """Run ``model`` (PyTorch) and the ONNX model (ORT) on ``inputs`` and compare every output.

    ``inputs`` is one tuple of tensors or a list of such tuples (several samples). The feed
    is checked against the graph's inputs before running.
    """
    check_module(model)
    resolve_tolerance(tolerance)
    samples = _as_samples(inputs)
    for sample in samples:
        check_inputs_fit(model, sample)
    session = onnx_model if isinstance(onnx_model, ort.InferenceSession) else open_session(onnx_model, config)
    output_names = [o.name for o in session.get_outputs()]
    if model.training:
        import warnings

        warnings.warn(
            f"{type(model).__name__} is in training mode (dropout and batch-norm statistics make PyTorch's "
            "outputs random). Call model.eval() before comparing.", UserWarning, stacklevel=2,
        )
    result: Comparison | None = None
    for i, sample in enumerate(samples):
        feed = build_feed(session, sample)
        expected = run_torch(model, sample)
        actual = session.run(None, feed)
        part = compare_arrays(expected, actual, tolerance, names=output_names, sample=i)
        if result is None:
            result = part
        else:
            result.outputs.extend(part.outputs)
        result.input_shapes.append([tuple(t.shape) for t in sample])
    assert result is not None
    result.samples = len(samples)
    result.providers = list(session.get_providers())
    return result
