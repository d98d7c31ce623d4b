"""What the command line's arguments name: models (``module:factory``, ``file.py:factory``,
``zoo:NAME``), inputs at a batch/sequence size, dynamic axes and tolerances, with clear errors."""

from __future__ import annotations

import re
from typing import Any, Sequence

import torch

from workbench import zoo
from workbench.core._loader import import_module_or_file
from workbench.core.compare import TOLERANCES, Tolerance
from workbench.core.inputs import axis_symbols, resize_inputs
from workbench.core.pipeline import Target, as_target
from workbench.core.spec import ExportSpec
from workbench.errors import InvalidInputError, describe

FORMS = "module:factory, path/to/file.py:factory, zoo:NAME or a zoo name"


def _from_factory(text: str, module_text: str, attr: str) -> Target:
    module = import_module_or_file(module_text)
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))[:12]
        what = "no attribute" if factory is None else f"a non-callable {type(factory).__name__}"
        raise InvalidInputError(f"{module_text!r} has {what} {attr!r}. Name a factory function; callables there: {found}.")
    try:
        made = factory()
    except Exception as exc:
        raise InvalidInputError(f"The factory {text} raised {type(exc).__name__}: {exc}.") from exc
    try:
        target = as_target(made)
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"The factory {text} must return a ZooModel, (model, example_inputs) or (model, example_inputs, "
            f"spec); it returned {describe(made)}. {exc}"
        ) from exc
    if not isinstance(made, zoo.ZooModel):
        target.name = re.sub(r"\W", "_", attr)
    return target


def load_target(text: str, *, smoke: bool = False) -> Target:
    """The model an argument names: ``zoo:NAME`` (or a bare zoo name, built with ``smoke``),
    ``module:factory`` or ``path/to/file.py:factory`` (the factory returns a ZooModel or a tuple)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(f"A model argument is needed: {FORMS}. Received {text!r}.")
    if text.startswith("zoo:"):
        return as_target(zoo.get(text[4:], smoke=smoke))
    if text.endswith(".onnx"):
        raise InvalidInputError(
            f"{text!r} is an ONNX file, but this command needs the PyTorch model: pass {FORMS}."
        )
    if ":" in text:
        module_text, _, attr = text.rpartition(":")
        if not module_text or not attr.isidentifier():
            raise InvalidInputError(f"Cannot read {text!r} as module:factory; e.g. mypkg.models:build_model.")
        return _from_factory(text, module_text, attr)
    if text in zoo.names():
        return as_target(zoo.get(text, smoke=smoke))
    raise InvalidInputError(f"Cannot load the model {text!r}: expected {FORMS}. Zoo models: {zoo.names()}.")


def inputs_for(target: Target, batch: int | None, seq: int | None, *,
               spec: ExportSpec | None = None) -> tuple[torch.Tensor, ...]:
    """The example inputs, or inputs at ``batch`` x ``seq`` (zoo factory, or resized along the spec's axes)."""
    for name, value in (("batch", batch), ("seq", seq)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise InvalidInputError(f"--{name} must be an int >= 1, received {value!r}.")
    if batch is None and seq is None:
        return target.example_inputs
    if target.input_factory is not None:
        example_batch = int(target.example_inputs[0].shape[0]) if target.example_inputs[0].dim() else 1
        return tuple(target.input_factory(batch=batch or example_batch, seq=seq, seed=0))
    spec = spec or target.spec
    symbols = axis_symbols(spec.dynamic_axes, spec.input_names) if spec else []
    if not symbols or (seq is not None and len(symbols) < 2):
        raise InvalidInputError(
            f"--batch/--seq need dynamic axes in the model's spec to resize the example inputs; the spec has "
            f"{symbols or 'none'}. Return a spec with dynamic_axes from the factory, or leave --batch/--seq out."
        )
    sizes = {symbols[0]: batch} if batch is not None else {}
    if seq is not None:
        sizes[symbols[1]] = seq
    return resize_inputs(target.example_inputs, spec.input_names, spec.dynamic_axes, sizes)  # type: ignore[union-attr]


def dim_sizes_for(session: Any, batch: int | None, seq: int | None) -> dict[str, int]:
    """Sizes for an ONNX file's symbolic dims: the first symbol is the batch (default 1), the second
    the sequence (default 32)."""
    symbols: list[str] = []
    for arg in session.get_inputs():
        for dim in arg.shape:
            if isinstance(dim, str) and dim not in symbols:
                symbols.append(dim)
    sizes: dict[str, int] = {}
    for symbol, value in zip(symbols, (batch or 1, seq or 32)):
        sizes[symbol] = value
    return sizes


def parse_dynamic(items: Sequence[str]) -> dict[str, dict[int, str]]:
    """``["input_ids:0:batch", "input_ids:1:seq"]`` -> ``{"input_ids": {0: "batch", 1: "seq"}}``."""
    axes: dict[str, dict[int, str]] = {}
    for item in items:
        parts = item.split(":")
        if len(parts) != 3 or not parts[0] or not parts[1].isdigit() or not parts[2].isidentifier():
            raise InvalidInputError(
                f"--dynamic takes NAME:DIM:SYMBOL such as input_ids:0:batch, received {item!r}."
            )
        axes.setdefault(parts[0], {})[int(parts[1])] = parts[2]
    return axes


def parse_tolerance(text: str) -> Tolerance:
    """A preset name (fp32, fp16, int8) or ``RTOL,ATOL``."""
    if text in TOLERANCES:
        return text
    parts = text.split(",")
    try:
        rtol, atol = (float(p) for p in parts)
    except ValueError:
        raise InvalidInputError(
            f"--tolerance must be one of {list(TOLERANCES)} or RTOL,ATOL such as 1e-3,1e-5; received {text!r}."
        ) from None
    if rtol < 0 or atol < 0:
        raise InvalidInputError(f"--tolerance RTOL,ATOL must both be >= 0, received {text!r}.")
    return (rtol, atol)
