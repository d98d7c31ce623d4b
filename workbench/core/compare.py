"""PyTorch vs ONNX Runtime (or any two sets of outputs) compared element by element.

``compare`` runs both on the same inputs; ``compare_arrays`` compares two sets of outputs.
Each gives a ``Comparison`` with one ``OutputDiff`` per output and sample. Tolerances are in
``tolerance.py``, feeds and dtypes in ``feeds.py``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import onnxruntime as ort
from torch import nn

from workbench.core._format import badge, esc, fmt_num, text_table
from workbench.core._io import OnnxModel
from workbench.core.feeds import as_samples, build_feed, run_torch, to_numpy
from workbench.core.inputs import as_input_tuple, check_inputs_fit, check_module
from workbench.core.ort_errors import run_errors
from workbench.core.session import SessionConfig, load_session
from workbench.core.tolerance import TOLERANCES, Tolerance, resolve_tolerance
from workbench.errors import InvalidInputError

__all__ = ["Comparison", "OutputDiff", "compare", "compare_arrays"]


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
    worst_expected: Any  # a float; the element itself for strings
    worst_actual: Any
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
        e = to_numpy(expected)
        a = to_numpy(actual)
        if e.shape != a.shape:
            empty = np.zeros(0)
            return cls(name, tuple(e.shape), rtol, atol, float("inf"), float("inf"), float("inf"),
                       max(e.size, a.size), max(e.size, a.size), (), float("nan"), float("nan"), 0, 0,
                       empty, e, a, shape_mismatch=f"expected shape {tuple(e.shape)}, got {tuple(a.shape)}",
                       sample=sample)
        if _is_text(e) or _is_text(a):
            return cls._exact(name, e, a, rtol, atol, sample=sample)
        e64, a64 = _as_numbers(e, a)
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
            worst_e, worst_a = e64.reshape(-1)[flat].item(), a64.reshape(-1)[flat].item()
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

    @classmethod
    def _exact(cls, name: str, e: np.ndarray, a: np.ndarray, rtol: float, atol: float, *, sample: int) -> OutputDiff:
        """Strings (and objects) match only when equal (bytes decoded as UTF-8): an error is 0 or inf."""
        equal = np.fromiter((_same(x, y) for x, y in zip(e.reshape(-1), a.reshape(-1))), dtype=bool, count=e.size)
        abs_err = np.where(equal, 0.0, np.inf)
        flat = int(np.argmax(abs_err)) if e.size else 0
        worst = tuple(int(i) for i in np.unravel_index(flat, e.shape)) if e.size else ()
        worst_e, worst_a = (_text(e.reshape(-1)[flat]), _text(a.reshape(-1)[flat])) if e.size else (None, None)
        return cls(name, tuple(e.shape), rtol, atol, float(abs_err.max(initial=0.0)), float(abs_err.max(initial=0.0)),
                   float(abs_err.mean()) if e.size else 0.0, int((~equal).sum()), int(e.size), worst, worst_e, worst_a,
                   0, 0, abs_err, e, a, sample=sample)

    def describe(self) -> str:
        if self.shape_mismatch:
            return f"{self.name}: {self.shape_mismatch}"
        if _is_text(self.expected) or _is_text(self.actual):
            text = f"{self.name}{list(self.shape)}: {self.mismatches}/{self.total} element(s) differ (compared exactly)"
            if self.mismatches:
                text += f"; first at {self.worst_index}: expected {self.worst_expected!r}, got {self.worst_actual!r}"
            return text
        text = (f"{self.name}{list(self.shape)}: max abs {fmt_num(self.max_abs)}, max rel {fmt_num(self.max_rel)}, "
                f"{self.mismatches}/{self.total} ({self.mismatch_pct:.2f}%) beyond tolerance")
        if self.mismatches:
            text += f"; worst at {self.worst_index}: expected {fmt_num(self.worst_expected)}, got {fmt_num(self.worst_actual)}"
        if self.actual_nonfinite or self.expected_nonfinite:
            text += f"; non-finite values: expected {self.expected_nonfinite}, got {self.actual_nonfinite}"
        return text


def _is_text(arr: np.ndarray) -> bool:
    """Strings, bytes and Python objects (ONNX Runtime returns string tensors as object arrays)."""
    return arr.dtype.kind in "OUSV"


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _same(x: Any, y: Any) -> bool:
    try:
        return bool(np.all(_text(x) == _text(y)))
    except Exception:  # values that cannot be compared (a ragged array against a string...) differ
        return False


def _as_numbers(e: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as float64, or complex128 when either is complex; bool, integers and ml_dtypes'
    bfloat16/float8/int4 included."""
    wide = np.complex128 if np.iscomplexobj(e) or np.iscomplexobj(a) else np.float64
    return e.astype(wide), a.astype(wide)


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
        samples = f"{self.samples} samples" if self.samples != 1 else "1 sample"
        title = (f"<b>Comparison</b> {badge(self.ok)} at {esc(self.tolerance)} (rtol={self.rtol:g}, atol={self.atol:g}), "
                 f"{samples}")
        return f"<div class='wb-comparison'>{title}{self._html_table()}</div>"

    def _html_table(self) -> str:
        """The outputs as a compact table: short headers, numbers to 3 digits that never wrap inside
        (``white-space: nowrap``), the sample column only for several samples; it scrolls sideways
        in a narrow panel instead of squeezing its columns."""
        several = self.samples > 1
        heads = (["sample"] if several else []) + ["output", "shape", "max abs", "max rel", "mean abs",
                                                    "mismatches", "verdict"]
        rows = []
        for o in self.outputs:
            mismatches = f"{o.mismatches:,} ({o.mismatch_pct:.2g}%)" if o.mismatches else "0"
            cells = ([str(o.sample)] if several else []) + [
                esc(o.name), esc(str(list(o.shape))), _compact(o.max_abs), _compact(o.max_rel), _compact(o.mean_abs),
                mismatches, "ok" if o.ok else "<b style='color:#cf222e'>FAIL</b>"]
            rows.append("<tr>" + "".join(f"<td style='{_CELL}'>{c}</td>" for c in cells) + "</tr>")
        head = "".join(f"<th style='{_CELL}'>{h}</th>" for h in heads)
        return (f"<div style='overflow-x: auto; max-width: 100%;'><table class='wb-table wb-comparison-table' "
                f"style='white-space: nowrap;'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody>"
                f"</table></div>")

    def text_table(self) -> str:
        return text_table(self._HEADERS, self._rows())

    def at(self, tolerance: Tolerance) -> Comparison:
        """The same outputs judged at another tolerance (no model is run again)."""
        name, rtol, atol = resolve_tolerance(tolerance)
        outputs = [OutputDiff.from_arrays(o.name, o.expected, o.actual, rtol, atol, sample=o.sample)
                   for o in self.outputs]
        return Comparison(outputs, name, rtol, atol, self.samples, list(self.input_shapes), list(self.providers))

    def smallest_passing_tolerance(self, presets: Mapping[str, tuple[float, float]] | Sequence[str] = TOLERANCES
                                   ) -> str | None:
        """The first preset (tightest first, in the order of ``presets``) at which every output passes;
        None when none does. ``presets`` is a dict like ``TOLERANCES`` or a list of preset names."""
        names = list(presets)
        for name in names:
            pair = presets[name] if isinstance(presets, Mapping) else name
            if self.at(pair).ok:
                return name
        return None


_CELL = "white-space: nowrap; padding: 2px 6px; text-align: right;"


def _compact(x: float) -> str:
    """A number in at most ~8 characters: ``1.19e-07``, ``0.0123``, ``2.5``, ``inf``."""
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")) or x == 0:
        return "0" if x == 0 else ("inf" if x > 0 else "-inf")
    return f"{x:.2e}" if abs(x) >= 1e4 or abs(x) < 1e-3 else f"{x:.3g}"


def _output_lists(expected: Mapping[str, Any] | Sequence[Any], actual: Mapping[str, Any] | Sequence[Any],
                  names: Sequence[str] | None) -> tuple[list[str], list[Any], list[Any]]:
    if isinstance(expected, Mapping):
        names = list(expected)
        exp_list = [expected[n] for n in names]
        if not isinstance(actual, Mapping):
            return names, exp_list, list(actual)
        missing = [n for n in names if n not in actual]
        if missing:
            raise InvalidInputError(f"actual outputs lack {missing}; they have {list(actual)}.")
        return names, exp_list, [actual[n] for n in names]
    exp_list = list(expected)
    act_list = list(actual.values()) if isinstance(actual, Mapping) else list(actual)
    return (list(names) if names else [f"output_{i}" for i in range(len(exp_list))]), exp_list, act_list


def compare_arrays(
    expected: Mapping[str, Any] | Sequence[Any],
    actual: Mapping[str, Any] | Sequence[Any],
    *,
    tolerance: Tolerance = "fp32",
    names: Sequence[str] | None = None,
    sample: int = 0,
) -> Comparison:
    """Compare two sets of outputs (dicts by name, or sequences in the same order)."""
    tol_name, rtol, atol = resolve_tolerance(tolerance)
    names, exp_list, act_list = _output_lists(expected, actual, names)
    if len(exp_list) != len(act_list):
        raise InvalidInputError(
            f"Expected {len(exp_list)} outputs ({list(names)}), received {len(act_list)}. "
            "Check output_names of the export spec and what forward returns."
        )
    diffs = [OutputDiff.from_arrays(n, e, a, rtol, atol, sample=sample) for n, e, a in zip(names, exp_list, act_list)]
    return Comparison(diffs, tol_name, rtol, atol)


def merge(parts: Sequence[Comparison], input_shapes: Sequence[list[tuple[int, ...]]], providers: Sequence[str]
          ) -> Comparison:
    """One ``Comparison`` of several samples (each part compared one sample)."""
    first = parts[0]
    return Comparison([o for part in parts for o in part.outputs], first.tolerance, first.rtol, first.atol,
                      samples=len(parts), input_shapes=[list(s) for s in input_shapes], providers=list(providers))


def compare(
    model: nn.Module,
    onnx_model: OnnxModel,
    inputs: Any,
    *,
    tolerance: Tolerance = "fp32",
    config: SessionConfig | None = None,
) -> Comparison:
    """Run ``model`` (PyTorch) and ``onnx_model`` (ONNX Runtime) on ``inputs`` and compare every output.

    ``inputs`` is one tuple of tensors or a list of such tuples (several samples). The feed
    is checked against the graph's inputs before running. A path or ``ModelProto`` is opened
    with ``load_session`` (memoized); a session is used as it is.
    """
    check_module(model)
    resolve_tolerance(tolerance)
    samples = [as_input_tuple(s, what="each sample in inputs") for s in as_samples(inputs)]
    for sample in samples:
        check_inputs_fit(model, sample)
    session = onnx_model if isinstance(onnx_model, ort.InferenceSession) else load_session(onnx_model, config)
    output_names = [o.name for o in session.get_outputs()]
    if model.training:
        warnings.warn(
            f"{type(model).__name__} is in training mode (dropout and batch-norm statistics make PyTorch's "
            "outputs random). Call model.eval() before comparing.", UserWarning, stacklevel=2,
        )
    parts = []
    for i, sample in enumerate(samples):
        feed = build_feed(session, sample)
        expected = run_torch(model, sample)
        with run_errors(session, feed):
            actual = session.run(None, feed)
        parts.append(compare_arrays(expected, actual, tolerance=tolerance, names=output_names, sample=i))
    return merge(parts, [[tuple(t.shape) for t in s] for s in samples], session.get_providers())
