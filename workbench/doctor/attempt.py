"""One full check of a model under one ``Setting``: export, checker, session, comparisons, probes.

The diagnosis runs it once with what the user gave; every retry runs it again with one change.
Every stage's failure is captured as data; ``run_attempt`` never raises for the model's problems.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import onnxruntime as ort
import torch
from torch import nn

from workbench.core.compare import Comparison, Tolerance, compare, resolve_tolerance
from workbench.core.export import ExportResult, export
from workbench.core.graph import ModelSummary
from workbench.core.inputs import axis_symbols
from workbench.core.probe import ProbeReport, probe_shapes
from workbench.core.session import ProviderFallbackWarning, SessionConfig, open_session
from workbench.core.spec import ExportSpec

STAGE_ORDER: tuple[str, ...] = ("export", "checker", "session", "compare", "values", "probes")


@dataclass(frozen=True)
class Setting:
    """What one attempt runs with: the spec (None: export's defaults), session config, tolerance,
    example inputs, whether the model is put in eval mode, and whether PyTorch's transformer fast
    path (``torch.backends.mha``) stays enabled."""

    spec: ExportSpec | None
    config: SessionConfig
    tolerance: Tolerance
    inputs: tuple[torch.Tensor, ...] = field(compare=False, repr=False)
    eval_mode: bool = False
    fastpath: bool = True

    @property
    def tolerance_name(self) -> str:
        return resolve_tolerance(self.tolerance)[0]

    @property
    def exporter(self) -> str:
        return self.spec.exporter if self.spec else "dynamo"

    def replace(self, **changes: Any) -> Setting:
        return replace(self, **changes)

    def key(self) -> str:
        """A short stable key: equal settings (same input tensors) give equal keys."""
        data = {
            "spec": self.spec.to_dict() if self.spec else None,
            "config": repr(self.config), "tolerance": self.tolerance_name, "eval": self.eval_mode,
            "fastpath": self.fastpath,
            "inputs": [(tuple(t.shape), str(t.dtype), str(t.device), id(t)) for t in self.inputs],
        }
        return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:10]


@dataclass
class Attempt:
    """The results of one attempt. ``stages`` is tri-state per stage (None: not run)."""

    setting: Setting
    stages: dict[str, bool | None] = field(default_factory=lambda: dict.fromkeys(STAGE_ORDER))
    export: ExportResult | None = None
    export_error: BaseException | None = None
    summary: ModelSummary | None = None
    session: ort.InferenceSession | None = field(default=None, repr=False)
    session_error: BaseException | None = None
    session_warnings: list[str] = field(default_factory=list)
    providers: list[str] = field(default_factory=list)
    comparison: Comparison | None = None
    compare_error: BaseException | None = None
    value_samples: list[tuple[torch.Tensor, ...]] = field(default_factory=list, repr=False)
    value_comparison: Comparison | None = None
    probes: ProbeReport | None = None
    probe_error: BaseException | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.stages["export"] is True and all(v is not False for v in self.stages.values())

    @property
    def spec(self) -> ExportSpec | None:
        return self.export.spec if self.export else self.setting.spec

    @property
    def path(self) -> Path | None:
        return self.export.path if self.export else None

    @property
    def failed_stage(self) -> str | None:
        return next((s for s in STAGE_ORDER if self.stages[s] is False), None)

    def failure(self) -> str:
        """One line: where it failed and why; or what passed."""
        stage = self.failed_stage
        if stage is None:
            ran = [s for s in STAGE_ORDER if self.stages[s]]
            extra = f", {len(self.probes.cases)} shape probes" if self.probes else ""
            return f"{', '.join(ran)} pass{extra}"
        detail = {
            "export": lambda: signature(self.export_error),
            "checker": lambda: self.summary.checker_message if self.summary else "",
            "session": lambda: signature(self.session_error) if self.session_error else "; ".join(self.session_warnings),
            "compare": lambda: signature(self.compare_error) if self.compare_error else _first_failure(self.comparison),
            "values": lambda: _first_failure(self.value_comparison),
            "probes": lambda: signature(self.probe_error) if self.probe_error else _first_probe(self.probes),
        }[stage]()
        return f"{stage} fails: {detail}"[:400]


def signature(exc: BaseException | None) -> str:
    """``Type: first meaningful line`` of an exception and its causes (the innermost cause first)."""
    if exc is None:
        return ""
    chain = []
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        exc = getattr(exc, "exception", None) or exc.__cause__
    inner = chain[-1]
    return f"{type(inner).__name__}: {first_line(str(inner))}"


def first_line(text: str) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("Failed to export", "Failed to convert")):
            return line[:300]
    return text.strip()[:300]


def _first_failure(comparison: Comparison | None) -> str:
    if comparison is None or not comparison.failures:
        return ""
    return comparison.failures[0].describe()


def _first_probe(report: ProbeReport | None) -> str:
    if report is None or not report.failures:
        return ""
    case = report.failures[0]
    return f"at {case.label}: {case.status} {case.message[:200]}"


@contextlib.contextmanager
def fastpath(enabled: bool) -> Iterator[None]:
    """Enable or disable PyTorch's transformer fast path (nested tensors) for the block."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(enabled)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


@contextlib.contextmanager
def eval_mode(model: nn.Module, enabled: bool) -> Iterator[None]:
    """Put ``model`` in eval mode for the block and restore each module's flag afterwards."""
    if not enabled:
        yield
        return
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def other_values(example: tuple[torch.Tensor, ...], n: int = 3, *, seed: int = 7) -> list[tuple[torch.Tensor, ...]]:
    """Inputs of the example's shapes with other values: the negated example, then random draws
    with the example's mean and spread (ints stay in the example's range, bool masks are kept)."""
    samples: list[tuple[torch.Tensor, ...]] = []
    for k in range(n):
        gen = torch.Generator().manual_seed(seed + k)
        sample = []
        for t in example:
            if t.is_meta or t.dtype == torch.bool or t.numel() == 0:
                sample.append(t)
            elif t.dtype.is_floating_point:
                base = t.detach().float()
                if k == 0:
                    sample.append((-base).to(t.dtype))
                    continue
                std = float(base.std()) if base.numel() > 1 else 1.0
                mean = float(base.mean())
                noise = torch.randn(tuple(t.shape), generator=gen) * (std or 1.0) + mean
                sample.append(noise.to(dtype=t.dtype, device=t.device))
            else:
                lo, hi = int(t.min()), int(t.max())
                if lo == hi:
                    sample.append(t)
                else:
                    sample.append(torch.randint(lo, hi + 1, tuple(t.shape), generator=gen, dtype=t.dtype).to(t.device))
        samples.append(tuple(sample))
    return samples


def has_dynamic_inputs(spec: ExportSpec | None) -> bool:
    return bool(spec) and bool(axis_symbols(spec.dynamic_axes, spec.input_names))


def run_attempt(model: nn.Module, setting: Setting, workdir: Path, *, value_samples: int = 3) -> Attempt:
    """Export, check, open, compare (example and other values) and probe under ``setting``."""
    start = time.perf_counter()
    attempt = Attempt(setting)
    try:
        keep_fastpath = setting.fastpath and torch.backends.mha.get_fastpath_enabled()
        with eval_mode(model, setting.eval_mode), fastpath(keep_fastpath), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            _run(model, setting, workdir, attempt, value_samples)
    finally:
        attempt.duration_s = time.perf_counter() - start
    return attempt


def _run(model: nn.Module, setting: Setting, workdir: Path, attempt: Attempt, value_samples: int) -> None:
    stages = attempt.stages
    path = workdir / f"{type(model).__name__.lower()}-{setting.exporter}-{setting.key()}.onnx"
    try:
        attempt.export = export(model, setting.inputs, path, setting.spec)
        stages["export"] = True
    except Exception as exc:
        attempt.export_error = exc
        stages["export"] = False
        return
    try:
        attempt.summary = attempt.export.summary
        stages["checker"] = bool(attempt.summary.checker_ok)
    except Exception as exc:  # an unreadable file is a checker failure too
        stages["checker"] = False
        attempt.export_error = exc
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            attempt.session = open_session(attempt.export.path, setting.config)
        except Exception as exc:
            attempt.session_error = exc
            stages["session"] = False
            return
    attempt.session_warnings = [str(w.message) for w in caught if issubclass(w.category, ProviderFallbackWarning)]
    attempt.providers = list(attempt.session.get_providers())
    stages["session"] = not attempt.session_warnings
    try:
        attempt.comparison = compare(model, attempt.session, setting.inputs, setting.tolerance)
        stages["compare"] = attempt.comparison.ok
    except Exception as exc:
        attempt.compare_error = exc
        stages["compare"] = False
    if value_samples and stages["compare"]:
        attempt.value_samples = other_values(setting.inputs, value_samples)
        try:
            attempt.value_comparison = compare(model, attempt.session, attempt.value_samples, setting.tolerance)
            stages["values"] = attempt.value_comparison.ok
        except Exception as exc:
            attempt.compare_error = exc
            stages["values"] = False
    spec = attempt.export.spec
    if has_dynamic_inputs(spec):
        try:
            attempt.probes = probe_shapes(model, attempt.session, spec, setting.inputs, tolerance=setting.tolerance)
            stages["probes"] = attempt.probes.ok
        except Exception as exc:
            attempt.probe_error = exc
            stages["probes"] = False
