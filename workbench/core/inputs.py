"""Making inputs at other sizes of the dynamic axes, and checking inputs against a model."""

from __future__ import annotations

import inspect
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from workbench.errors import InvalidInputError, describe


def as_input_tuple(inputs: Any, *, what: str = "example_inputs") -> tuple[torch.Tensor, ...]:
    """Accept one tensor or a tuple/list of tensors; return a tuple of tensors."""
    if isinstance(inputs, torch.Tensor):
        return (inputs,)
    if isinstance(inputs, (tuple, list)) and inputs and all(isinstance(t, torch.Tensor) for t in inputs):
        return tuple(inputs)
    raise InvalidInputError(
        f"{what} must be a torch.Tensor or a tuple of tensors, received {describe(inputs)}. "
        "Wrap the model's positional inputs in a tuple, e.g. (input_ids,)."
    )


def check_module(model: Any) -> nn.Module:
    """Raise unless ``model`` is an ``nn.Module``."""
    if not isinstance(model, nn.Module):
        raise InvalidInputError(
            f"Expected a torch.nn.Module, received {describe(model)}. "
            "Pass the model object itself (for a zoo model: wb.zoo.get(name).model)."
        )
    return model


def forward_arity(model: nn.Module) -> tuple[int, int, list[str]]:
    """(required positional count, max positional count or -1 for *args, parameter names) of forward."""
    sig = inspect.signature(model.forward)
    required = 0
    maximum = 0
    names: list[str] = []
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            maximum = -1
            continue
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
            if maximum >= 0:
                maximum += 1
            if p.default is p.empty:
                required += 1
    return required, maximum, names


def check_inputs_fit(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    """Raise if the number of inputs cannot be passed to ``model.forward``."""
    required, maximum, names = forward_arity(model)
    n = len(inputs)
    if n < required or (maximum >= 0 and n > maximum):
        want = f"{required}" if required == maximum else f"{required} to {'any' if maximum < 0 else maximum}"
        raise InvalidInputError(
            f"{type(model).__name__}.forward({', '.join(names)}) takes {want} positional inputs, "
            f"received {n}: {[describe(t) for t in inputs]}. Pass one tensor per forward argument, in order."
        )


def _new_tensor(example: torch.Tensor, shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
    if example.dtype == torch.bool:
        return torch.ones(shape, dtype=torch.bool)
    if example.dtype.is_floating_point:
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(example.dtype)
    lo = int(example.min()) if example.numel() else 0
    hi = int(example.max()) if example.numel() else 1
    if lo == hi:
        return torch.full(shape, lo, dtype=example.dtype)
    return torch.randint(lo, hi + 1, tuple(shape), generator=generator, dtype=example.dtype)


def resize_inputs(
    example_inputs: Sequence[torch.Tensor],
    input_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
    sizes: Mapping[str, int],
    *,
    seed: int = 0,
) -> tuple[torch.Tensor, ...]:
    """Inputs like ``example_inputs`` with each dynamic axis set to ``sizes[symbol]``.

    Integer inputs keep the range of values of the example (token ids stay valid ids,
    masks of ones stay ones); float inputs are standard normal. Axes whose symbol is not
    in ``sizes`` keep the example's size.
    """
    generator = torch.Generator().manual_seed(seed)
    out = []
    for i, example in enumerate(example_inputs):
        name = input_names[i] if i < len(input_names) else None
        axes = dynamic_axes.get(name, {}) if name else {}
        shape = list(example.shape)
        for dim, symbol in axes.items():
            if symbol in sizes and dim < len(shape):
                shape[dim] = int(sizes[symbol])
        if list(shape) == list(example.shape) and seed == 0:
            out.append(example)
        else:
            out.append(_new_tensor(example, shape, generator))
    return tuple(out)


def axis_symbols(dynamic_axes: Mapping[str, Mapping[int, str]], input_names: Sequence[str]) -> list[str]:
    """Symbols of the dynamic input axes, in order of first appearance."""
    seen: list[str] = []
    for name in input_names:
        for _, symbol in sorted(dynamic_axes.get(name, {}).items()):
            if symbol not in seen:
                seen.append(symbol)
    return seen


def example_sizes(
    example_inputs: Sequence[torch.Tensor],
    input_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
) -> dict[str, int]:
    """The size each dynamic-axis symbol has in the example inputs."""
    sizes: dict[str, int] = {}
    for i, example in enumerate(example_inputs):
        if i >= len(input_names):
            break
        for dim, symbol in dynamic_axes.get(input_names[i], {}).items():
            if dim < example.dim():
                sizes.setdefault(symbol, int(example.shape[dim]))
    return sizes


def resize_batch_seq(
    example_inputs: Sequence[torch.Tensor],
    input_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
    batch: int | None = None,
    seq: int | None = None,
    *,
    seed: int = 0,
) -> tuple[torch.Tensor, ...]:
    """The example resized along its dynamic axes: the first symbol is ``batch``, the second ``seq``
    (None keeps the example's size). Without dynamic axes the example itself is returned."""
    symbols = axis_symbols(dynamic_axes, input_names)
    if not symbols:
        return tuple(example_inputs)
    sizes: dict[str, int] = {}
    if batch is not None:
        sizes[symbols[0]] = batch
    if seq is not None and len(symbols) > 1:
        sizes[symbols[1]] = seq
    return resize_inputs(example_inputs, input_names, dynamic_axes, sizes, seed=seed)
