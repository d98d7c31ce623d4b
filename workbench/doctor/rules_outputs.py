"""Rules for what the model returns: a non-tensor object among its outputs (OUT001, e.g. a transformers
cache with ``use_cache=True``) and ``output_names`` of the wrong count (OUT002). Their retries export
the model called with ``use_cache=False`` or wrapped to return tensors only, and the spec with one
name per returned tensor."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workbench.core._export_outputs import output_leaves, output_names_for
from workbench.core._locks import TORCH_LOCK
from workbench.core.spec import ExportSpec
from workbench.doctor.attempt import Setting
from workbench.doctor.context import Context
from workbench.doctor.findings import Finding, Retry
from workbench.doctor.wrappers import TensorOutputs, accepts_keyword
from workbench.errors import NonTensorOutputError, OutputNamesError

__all__ = ["names_finding", "non_tensor_finding", "spec_for_outputs"]


def spec_for_outputs(spec: ExportSpec | None, names: tuple[str, ...]) -> ExportSpec:
    """``spec`` with ``output_names`` set to ``names`` (kept where the count already fits) and the
    dynamic axes of output names that no longer exist dropped."""
    spec = spec or ExportSpec()
    if len(spec.output_names) == len(names):
        names = spec.output_names
    inputs = set(spec.input_names)
    axes = {k: v for k, v in spec.dynamic_axes.items() if k in inputs or k in names}
    return spec.replace(output_names=names, dynamic_axes=axes)


def _names_of(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[str, ...] | None:
    try:
        with TORCH_LOCK.shared(), torch.inference_mode():
            return output_names_for([p for p, _ in output_leaves(model(*inputs))])
    except Exception:  # the retry itself will report the failure
        return None


def _wrapped(ctx: Context, label: str, model: nn.Module) -> tuple[str, Setting] | None:
    names = _names_of(model, ctx.setting.example_inputs)
    if names is None:
        return None
    return label, ctx.setting.replace(model=model, spec=spec_for_outputs(ctx.setting.spec, names))


def non_tensor_finding(ctx: Context, err: NonTensorOutputError, base: dict[str, Any]) -> Finding:
    """OUT001 for ``err``: retries with ``use_cache=False`` (when forward takes it) and a tensor-only wrapper."""
    model = ctx.model
    settings = []
    if err.is_cache and accepts_keyword(model, "use_cache"):
        found = _wrapped(ctx, "re-export with use_cache=False", TensorOutputs(model, use_cache=False))
        if found:
            settings.append(found)
    found = _wrapped(ctx, "re-export with a wrapper whose forward returns the tensors only", TensorOutputs(model))
    if found:
        settings.append(found)
    what = "a key/value cache" if err.is_cache else "not a tensor"
    fix = ("model.config.use_cache = False   # or, in a wrapper:\n"
           "class Logits(torch.nn.Module):\n    def __init__(self, m):\n        super().__init__(); self.m = m\n"
           "    def forward(self, input_ids):\n        return self.m(input_ids, use_cache=False).logits"
           if err.is_cache else
           "Wrap the model so forward returns tensors only:\n"
           "    def forward(self, *args):\n        out = self.m(*args)\n        return out.tensor_field_you_need")
    return Finding(
        "OUT001", f"{type(model).__name__} returns a {err.type_name} at {err.path}",
        f"PyTorch runs the model fine, but its output {err.path} is a {err.type_name} ({what}); ONNX outputs "
        "are tensors, so there is no graph output to give it.",
        {**base, "output": err.path, "output_type": err.type_name, "is_cache": err.is_cache},
        fix, Retry(settings[0][0] if settings else "none applicable", {"model": "wrapped"}, settings=settings),
    )


def names_finding(ctx: Context, err: OutputNamesError, base: dict[str, Any]) -> Finding:
    """OUT002 for ``err``: the retry keeps the given names that fit and names the others from the output's fields."""
    spec = ctx.setting.spec or ExportSpec()
    names = tuple(err.given[: err.count]) + tuple(n for n in err.suggested if n not in err.given)[
        : max(0, err.count - len(err.given))]
    if len(names) != err.count:
        names = err.suggested
    fixed = spec_for_outputs(spec, names)
    action = f"re-export with output_names={list(names)!r}"
    return Finding(
        "OUT002", f"output_names has {len(err.given)} name(s), the model returns {err.count} tensor(s)",
        f"The spec names {len(err.given)} output(s) {list(err.given)} but {type(ctx.model).__name__} returns "
        f"{err.count} tensor(s) (its output flattens to {list(err.suggested)}).",
        {**base, "output_names": list(err.given), "returned": err.count, "suggestion": list(err.suggested)},
        f"wb.ExportSpec(..., output_names={names!r})\n"
        "or return only the tensors you name (a wrapper whose forward returns out.last_hidden_state).",
        Retry(action, {"output_names": list(names)}, settings=[(action, ctx.setting.replace(spec=fixed))]),
    )
