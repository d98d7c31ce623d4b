"""``InputValidator``: a request's tensors checked against the graph's own input signature.

Names, dtypes, ranks and fixed dims come from the model; dynamic dims are checked against limits the
user sets (``dim_limits``), and a symbol shared by several inputs (``seq`` in ``input_ids`` and
``attention_mask``) must have one size. Every problem is collected, so a 422 lists them all, each with
what was expected and what was received. Axis 0 is the batch axis when it is dynamic on every input (and, as
``build_state`` tells it, on every output); every input must then hold the same number of rows there, and a
request may send one example (rank one less, no batch axis) or a batch of rows.

JSON has no dtypes: a JSON number list is accepted for a float input (ints too), an int input takes
whole numbers only (range checked) and a bool input takes true/false. The binary form (npz) must carry
the exact dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

import numpy as np

from workbench.errors import FeedError, InvalidInputError

__all__ = ["InputSpec", "InputValidator", "RequestInvalid", "Validated", "specs_of"]

Dim = Union[int, str, None]
#: ``{"seq": 512}`` (max), ``{"seq": (8, 512)}`` (min, max), or keyed by ``"input_ids:1"`` for one axis.
DimLimits = Mapping[str, Union[int, tuple[int, int]]]

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16", "tensor(int8)": "int8",
    "tensor(uint8)": "uint8", "tensor(uint16)": "uint16", "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64", "tensor(bool)": "bool",
}


class RequestInvalid(FeedError):
    """A request that does not fit the model (answered 422). ``problems``: one dict per problem with
    ``input``, ``problem``, ``expected`` and ``received``."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        text = "; ".join(f"{p['input']}: {p['problem']} (expected {p['expected']}, received {p['received']})"
                         for p in problems)
        super().__init__(f"Invalid request: {text}")


@dataclass(frozen=True)
class InputSpec:
    """One graph input: name, numpy dtype name and dims (int fixed, str symbolic, None unknown)."""

    name: str
    dtype: str
    dims: tuple[Dim, ...]

    def text(self) -> str:
        return f"{self.dtype} [{', '.join('?' if d is None else str(d) for d in self.dims)}]"


@dataclass
class Validated:
    """Checked arrays (with the batch axis), the rows they hold, and whether the request sent one example."""

    feed: dict[str, np.ndarray]
    rows: int
    single: bool
    signature: tuple[Any, ...] = field(default=())


def _received(arr: np.ndarray) -> str:
    return f"{arr.dtype} {list(arr.shape)}"


class InputValidator:
    """Checks requests against ``inputs`` (see the module docstring). ``max_rows`` caps the batch axis."""

    def __init__(self, inputs: Sequence[InputSpec], *, dim_limits: DimLimits | None = None,
                 max_rows: int | None = None, outputs_batched: bool = True) -> None:
        """``outputs_batched=False`` (an output without a batch axis) turns batching off, as a fixed batch does."""
        if not inputs:
            raise InvalidInputError("The model has no inputs to validate; a server needs at least one.")
        self.inputs = list(inputs)
        self.dim_limits = _check_limits(dim_limits or {})
        self.max_rows = max_rows
        self.batched = outputs_batched and all(len(s.dims) >= 1 and not isinstance(s.dims[0], int)
                                               for s in self.inputs)

    @classmethod
    def from_model(cls, onnx_model: Any, *, config: Any = None, dim_limits: DimLimits | None = None,
                   max_rows: int | None = None) -> InputValidator:
        """A validator for ``onnx_model`` (a path, ModelProto or InferenceSession) from its graph inputs."""
        from workbench.core.session import load_session

        return cls(specs_of(load_session(onnx_model, config)), dim_limits=dim_limits, max_rows=max_rows)

    def describe(self) -> list[dict[str, Any]]:
        """The inputs as JSON-ready dicts (name, dtype, shape) for ``/v1/metadata``."""
        return [{"name": s.name, "dtype": s.dtype, "shape": list(s.dims)} for s in self.inputs]

    def validate(self, values: Mapping[str, Any], *, strict_dtypes: bool = False) -> Validated:
        """Check ``values`` ({name: nested list or array}); raise ``RequestInvalid`` with every problem."""
        if not isinstance(values, Mapping):
            raise RequestInvalid([{"input": "inputs", "problem": "not an object", "expected":
                                   "{" + ", ".join(f'"{s.name}": [...]' for s in self.inputs) + "}",
                                   "received": type(values).__name__}])
        problems: list[dict[str, str]] = []
        names = {s.name for s in self.inputs}
        for name in values:
            if name not in names:
                problems.append(_problem(str(name), "unknown input", f"one of {sorted(names)}", "a value"))
        arrays: dict[str, np.ndarray] = {}
        for spec in self.inputs:
            if spec.name not in values:
                problems.append(_problem(spec.name, "missing input", spec.text(), "nothing"))
                continue
            arr = _as_array(spec, values[spec.name], strict_dtypes, problems)
            if arr is not None:
                arrays[spec.name] = arr
        if problems:
            raise RequestInvalid(problems)
        return self._shapes(arrays)

    def _shapes(self, arrays: dict[str, np.ndarray]) -> Validated:
        problems: list[dict[str, str]] = []
        single_flags = {spec.name: self.batched and arrays[spec.name].ndim == len(spec.dims) - 1
                        for spec in self.inputs}
        if len(set(single_flags.values())) > 1:
            problems.append(_problem("inputs", "some inputs have a batch axis and some do not",
                                     "all with or all without the batch axis",
                                     ", ".join(f"{n} {list(a.shape)}" for n, a in arrays.items())))
            raise RequestInvalid(problems)
        single = bool(single_flags and next(iter(single_flags.values())))
        if single:
            arrays = {n: a[None, ...] for n, a in arrays.items()}
        sizes: dict[str, tuple[int, str]] = {}
        for spec in self.inputs:
            _check_dims(spec, arrays[spec.name], self.dim_limits, sizes, problems)
        if self.batched:
            _check_batch_axis(arrays, problems)
        rows = int(next(iter(arrays.values())).shape[0]) if self.batched else 1
        if self.batched and self.max_rows is not None and rows > self.max_rows:
            problems.append(_problem("inputs", "too many rows in one request", f"at most {self.max_rows} rows "
                                     "(the server's max_batch)", f"{rows} rows"))
        if problems:
            raise RequestInvalid(problems)
        feed = {n: np.ascontiguousarray(a) for n, a in arrays.items()}
        signature = tuple((n, a.dtype.str, a.shape[1:] if self.batched else a.shape) for n, a in feed.items())
        return Validated(feed, rows, single, signature)


def specs_of(session: Any) -> list[InputSpec]:
    """The ``InputSpec`` of each input of an ``InferenceSession``."""
    return [InputSpec(i.name, _ORT_TYPES.get(i.type, i.type), tuple(i.shape)) for i in session.get_inputs()]


def _problem(name: str, problem: str, expected: str, received: str) -> dict[str, str]:
    return {"input": name, "problem": problem, "expected": expected, "received": received}


def _check_batch_axis(arrays: dict[str, np.ndarray], problems: list[dict[str, str]]) -> None:
    """Batched: axis 0 holds the rows, so every input must have the same size there (whatever its dim's name)."""
    firsts = {n: int(a.shape[0]) for n, a in arrays.items() if a.ndim >= 1}
    if len(set(firsts.values())) > 1:
        problems.append(_problem("inputs", "batch axis differs between inputs",
                                 "the same number of rows on axis 0 of every input",
                                 ", ".join(f"{n} {list(arrays[n].shape)}" for n in firsts)))


def _check_limits(limits: DimLimits) -> dict[str, tuple[int, int]]:
    checked: dict[str, tuple[int, int]] = {}
    for key, value in limits.items():
        pair = (1, value) if isinstance(value, int) and not isinstance(value, bool) else value
        if (not isinstance(pair, tuple) or len(pair) != 2 or not all(isinstance(v, int) for v in pair)
                or not 0 <= pair[0] <= pair[1]):
            raise InvalidInputError(
                f"dim_limits[{key!r}] must be a max size (int) or a pair (min, max) with 0 <= min <= max, "
                f"received {value!r}. Example: dim_limits={{'seq': (1, 512)}}.")
        checked[str(key)] = pair
    return checked


def _as_array(spec: InputSpec, value: Any, strict: bool, problems: list[dict[str, str]]) -> np.ndarray | None:
    want = np.dtype(spec.dtype) if spec.dtype in _ORT_TYPES.values() else None
    try:
        arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    except (ValueError, TypeError) as exc:
        problems.append(_problem(spec.name, "not a rectangular array", spec.text(), f"ragged nested lists ({exc})"))
        return None
    if want is None:
        problems.append(_problem(spec.name, "unsupported input type", "a tensor input", spec.dtype))
        return None
    if arr.dtype == want:
        return arr
    if strict or arr.dtype.kind not in "biuf" or (want.kind in "iu" and arr.dtype.kind == "f") \
            or (want.kind == "b") != (arr.dtype.kind == "b"):
        hint = "" if strict else " (JSON: numbers for float inputs, whole numbers for int inputs, true/false for bool)"
        problems.append(_problem(spec.name, "wrong dtype" + hint, spec.text(), _received(arr)))
        return None
    if want.kind in "iu" and arr.size:
        info = np.iinfo(want)
        if arr.min() < info.min or arr.max() > info.max:
            problems.append(_problem(spec.name, f"values out of {want} range", spec.text(),
                                     f"values from {arr.min()} to {arr.max()}"))
            return None
    return arr.astype(want)


def _check_dims(spec: InputSpec, arr: np.ndarray, limits: dict[str, tuple[int, int]],
                sizes: dict[str, tuple[int, str]], problems: list[dict[str, str]]) -> None:
    if arr.ndim != len(spec.dims):
        problems.append(_problem(spec.name, "wrong rank", f"rank {len(spec.dims)} {spec.text()}"
                                 " (or one less: a single example without the batch axis)", _received(arr)))
        return
    for axis, (dim, size) in enumerate(zip(spec.dims, arr.shape)):
        where = f"axis {axis}"
        if isinstance(dim, int):
            if dim != size:
                problems.append(_problem(spec.name, f"wrong size on {where}", f"{dim} ({spec.text()})",
                                         _received(arr)))
            continue
        found = limits.get(f"{spec.name}:{axis}") or limits.get(str(dim))
        low, high = found if found else (1 if axis == 0 else 0, None)
        if size < low or (high is not None and size > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            problems.append(_problem(spec.name, f"size of dynamic {where} ({dim}) out of limits", bound,
                                     _received(arr)))
        if isinstance(dim, str):
            seen = sizes.setdefault(dim, (size, spec.name))
            if seen[0] != size:
                problems.append(_problem(spec.name, f"'{dim}' differs between inputs",
                                         f"{dim} = {seen[0]} as in {seen[1]}", _received(arr)))
