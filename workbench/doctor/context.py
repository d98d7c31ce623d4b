"""What the rules look at (``Context``) and the settings their retries run (other exporter, sizes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from torch import nn

from workbench.core.inputs import example_sizes, resize_inputs
from workbench.core.spec import ExportSpec
from workbench.doctor.attempt import Attempt, Setting, eval_mode
from workbench.doctor.bisect import Bisection
from workbench.doctor.divergence import Divergence
from workbench.doctor.findings import Finding, Retry
from workbench.doctor.trace import ModelTrace, trace_model

__all__ = ["Context", "at_least_two", "other_exporter_retry", "other_exporter_spec"]


@dataclass
class Context:
    """The setting, the attempt's results, and lazily the eager trace of the model.

    ``deep`` allows the expensive localizations (layerwise divergence, optimization bisection);
    retries re-check with ``deep=False``. ``findings`` are those found so far.
    """

    setting: Setting
    attempt: Attempt
    work_dir: Path
    deep: bool = True
    findings: list[Finding] = field(default_factory=list)
    divergence: Divergence | None = None
    bisection: Bisection | None = None

    @property
    def model(self) -> nn.Module:
        return self.setting.model

    @cached_property
    def trace(self) -> ModelTrace:
        with eval_mode(self.model, self.setting.eval_mode):
            return trace_model(self.model, self.setting.example_inputs)

    @property
    def spec(self) -> ExportSpec | None:
        return self.attempt.spec

    def has(self, *codes: str) -> bool:
        return any(f.code in codes for f in self.findings)


def other_exporter_spec(spec: ExportSpec | None) -> ExportSpec:
    """The same spec for the other exporter, at an opset that exporter handles (dynamo >= 18)."""
    spec = spec or ExportSpec()
    if spec.exporter == "dynamo":
        return spec.replace(exporter="torchscript", opset=min(spec.opset, 17))
    return spec.replace(exporter="dynamo", opset=max(spec.opset, 18))


def at_least_two(setting: Setting, spec: ExportSpec | None = None) -> tuple[torch.Tensor, ...]:
    """The example with every dynamic input axis of size 0 or 1 resized to 2 (others unchanged)."""
    spec = spec or setting.spec
    example = setting.example_inputs
    if spec is None or not spec.input_names:
        return example
    sizes = example_sizes(example, spec.input_names, spec.dynamic_axes)
    small = {s: 2 for s, n in sizes.items() if n < 2}
    if not small:
        return example
    return resize_inputs(example, spec.input_names, spec.dynamic_axes, {**sizes, **small}, seed=0)


def other_exporter_retry(ctx: Context, *, action: str | None = None) -> Retry:
    """Retry with the other exporter, from an example whose dynamic axes are >= 2."""
    spec = other_exporter_spec(ctx.spec or ctx.setting.spec)
    setting = ctx.setting.replace(spec=spec, example_inputs=at_least_two(ctx.setting, ctx.spec))
    text = action or f"export with the {spec.exporter} exporter (opset {spec.opset})"
    return Retry(text, {"exporter": spec.exporter, "opset": spec.opset}, settings=[(text, setting)])
