"""``ModelCase``: one model to work on, with its example inputs, spec and the one input maker.

The zoo's models, the doctor's broken gallery, the CLI's target and the notebooks' settings are
all ``ModelCase``s; ``run_pipeline`` and the doctor take one. ``as_case`` accepts a case or a
tuple ``(model, example_inputs[, spec])``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from workbench.core.inputs import as_input_tuple, axis_symbols, check_module, example_sizes, forward_arity, \
    resize_batch_seq
from workbench.core.session import SessionConfig
from workbench.core.spec import ExportSpec
from workbench.core.tolerance import Tolerance, resolve_tolerance
from workbench.errors import InvalidInputError, describe

__all__ = ["InputFactory", "ModelCase", "as_case"]

#: ``f(batch=, seq=, seed=)`` -> a tuple of tensors.
InputFactory = Callable[..., tuple[torch.Tensor, ...]]


@dataclass
class ModelCase:
    """A model, its example inputs and how to export, check and feed it.

    ``input_factory(batch=, seq=, seed=)`` makes inputs at other sizes; without it, ``make_inputs``
    resizes the example along the spec's dynamic axes (first symbol = batch, second = seq).
    ``tolerance`` and ``config`` are what the model's outputs should be checked at and run with.
    """

    name: str
    model: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    spec: ExportSpec | None = None
    input_factory: InputFactory | None = None
    tolerance: Tolerance = "fp32"
    config: SessionConfig | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInputError(f"ModelCase.name must be a non-empty str, received {describe(self.name)}.")
        check_module(self.model)
        self.example_inputs = as_input_tuple(self.example_inputs)
        if self.spec is not None and not isinstance(self.spec, ExportSpec):
            raise InvalidInputError(f"ModelCase.spec must be a wb.ExportSpec or None, received {describe(self.spec)}.")
        if self.input_factory is not None and not callable(self.input_factory):
            raise InvalidInputError(
                f"input_factory must be callable as f(batch=, seq=, seed=), received {describe(self.input_factory)}."
            )
        resolve_tolerance(self.tolerance)
        if self.config is not None and not isinstance(self.config, SessionConfig):
            raise InvalidInputError(f"ModelCase.config must be a wb.SessionConfig or None, received {describe(self.config)}.")

    @property
    def input_names(self) -> tuple[str, ...]:
        """The spec's input names, else the forward's parameter names (as export names them)."""
        if self.spec is not None and self.spec.input_names:
            return self.spec.input_names
        _, _, names = forward_arity(self.model)
        n = len(self.example_inputs)
        return tuple(names[:n]) if len(names) >= n else tuple(f"input_{i}" for i in range(n))

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return dict(self.spec.dynamic_axes) if self.spec is not None else {}

    @property
    def symbols(self) -> list[str]:
        """The dynamic axes' symbols in order of appearance (first: batch, second: seq)."""
        return axis_symbols(self.dynamic_axes, self.input_names)

    def make_inputs(self, batch: int | None = None, seq: int | None = None, *, seed: int = 0
                    ) -> tuple[torch.Tensor, ...]:
        """Inputs at ``batch`` x ``seq``: ``input_factory`` if given, else the example resized along
        the spec's dynamic axes. A size left None is the example's; no sizes and seed 0 give the
        example inputs themselves."""
        if batch is None and seq is None and seed == 0:
            return self.example_inputs
        if self.input_factory is not None:
            ex_batch, ex_seq = self.example_sizes()
            kwargs: dict[str, Any] = {"seq": seq if seq is not None else ex_seq, "seed": seed}
            if batch is not None or ex_batch is not None:
                kwargs["batch"] = batch if batch is not None else ex_batch
            made = self.input_factory(**kwargs)
            return as_input_tuple(made, what=f"{self.name}'s input_factory(batch=, seq=, seed=)")
        return resize_batch_seq(self.example_inputs, self.input_names, self.dynamic_axes, batch, seq, seed=seed)

    def example_sizes(self) -> tuple[int | None, int | None]:
        """``(batch, seq)`` of the example along the first two dynamic symbols (None where absent)."""
        sizes = example_sizes(self.example_inputs, self.input_names, self.dynamic_axes)
        symbols = self.symbols
        return (sizes.get(symbols[0]) if symbols else None), (sizes.get(symbols[1]) if len(symbols) > 1 else None)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{list(t.shape)} {str(t.dtype).replace('torch.', '')}" for t in self.example_inputs)
        return f"ModelCase({self.name!r}, {type(self.model).__name__}, inputs ({shapes}), symbols {self.symbols})"


def as_case(obj: Any, *, name: str | None = None) -> ModelCase:
    """``obj`` as a ``ModelCase``: a case as it is (renamed if ``name`` is given), or a tuple
    ``(model, example_inputs)`` / ``(model, example_inputs, spec)``."""
    if isinstance(obj, ModelCase):
        if name is not None and name != obj.name:
            from dataclasses import replace

            return replace(obj, name=name)
        return obj
    if isinstance(obj, tuple) and len(obj) in (2, 3) and isinstance(obj[0], nn.Module):
        model, inputs = obj[0], obj[1]
        spec = obj[2] if len(obj) == 3 else None
        return ModelCase(name or type(model).__name__.lower(), model, as_input_tuple(inputs), spec)
    raise InvalidInputError(
        f"Expected a wb.ModelCase or a tuple (model, example_inputs[, spec]), received {describe(obj)}. "
        "For a zoo model pass wb.zoo.get(name); for your own, (model, (x,)) or wb.ModelCase(name, model, (x,), spec)."
    )
