"""Modules the doctor's retries export in place of the user's: the same model, called with
``use_cache=False`` and/or returning its tensors only (what the user's own wrapper would do)."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from workbench.core._export_outputs import tensor_leaves

__all__ = ["TensorOutputs", "accepts_keyword"]


def accepts_keyword(model: nn.Module, name: str) -> bool:
    """Whether ``model.forward`` takes the keyword ``name`` (or ``**kwargs``)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class TensorOutputs(nn.Module):
    """``model(*args, **call_kwargs)`` with the tensors of its output only, as a tuple (a cache object,
    strings and None dropped), in the order the workbench flattens outputs. Up to six positional inputs."""

    def __init__(self, model: nn.Module, **call_kwargs: Any) -> None:
        super().__init__()
        self.model = model
        self.call_kwargs = dict(call_kwargs)
        self.training = model.training  # the wrapper's own flag: train() would reset every submodule's mode

    def forward(self, x0: torch.Tensor, x1: torch.Tensor | None = None, x2: torch.Tensor | None = None,
                x3: torch.Tensor | None = None, x4: torch.Tensor | None = None,
                x5: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        # named positional parameters (not *args): torch.export matches dynamic_shapes to them one by one
        args = [x for x in (x0, x1, x2, x3, x4, x5) if x is not None]
        return tuple(tensor_leaves(self.model(*args, **self.call_kwargs)))

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.call_kwargs.items())
