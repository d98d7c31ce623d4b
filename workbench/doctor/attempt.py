"""One full check of a model case under one ``Setting``: the stages export, summarize (the ONNX
checker), session, compare, values (inputs with other values) and probe (other sizes of the
dynamic axes), run by core's stage machinery (``workbench.core.stages``).

The diagnosis runs it once with what the user gave; every retry runs it again with one change.
Each stage's failure is captured as data in its ``StageResult``; ``run_attempt`` never raises for
the model's problems. What torch and ONNX Runtime print while a stage runs (C++ warnings such as
``shape_type_inference.cpp``'s, the TorchScript exporter's "Torch IR graph at exception" dump) is
captured at the file-descriptor level (``workbench.core.capture``) into ``Attempt.output``; the rules
put it, trimmed, into their findings' evidence, and nothing of it reaches the terminal or a notebook.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import onnxruntime as ort
import torch
from torch import nn

from workbench.core._warn_capture import capture_warnings
from workbench.core.capture import captured_output
from workbench.core.case import ModelCase
from workbench.core.compare import Comparison, compare
from workbench.core.export import ExportResult, export
from workbench.core.graph import ModelSummary
from workbench.core.inputs import axis_symbols
from workbench.core.probe import ProbeReport, probe_shapes
from workbench.core.session import ProviderFallbackWarning, SessionConfig, open_session
from workbench.core.spec import ExportSpec
from workbench.core.stages import Outcome, Stage, StageResult, run_stages
from workbench.core.tolerance import Tolerance, resolve_tolerance

__all__ = ["STAGES", "STAGE_NAMES", "Attempt", "Setting", "eval_mode", "fastpath", "other_values", "run_attempt",
           "trimmed"]

_SETTING_FIELDS = ("eval_mode", "fastpath")


@dataclass(frozen=True)
class Setting:
    """What one attempt runs: the model case (model, example inputs, spec, config, tolerance),
    whether the model is put in eval mode, and whether PyTorch's transformer fast path
    (``torch.backends.mha``) stays enabled."""

    case: ModelCase
    eval_mode: bool = False
    fastpath: bool = True

    @property
    def model(self) -> nn.Module:
        return self.case.model

    @property
    def example_inputs(self) -> tuple[torch.Tensor, ...]:
        return self.case.example_inputs

    @property
    def spec(self) -> ExportSpec | None:
        return self.case.spec

    @property
    def config(self) -> SessionConfig:
        return self.case.config or SessionConfig()

    @property
    def tolerance(self) -> Tolerance:
        return self.case.tolerance

    @property
    def tolerance_name(self) -> str:
        return resolve_tolerance(self.tolerance)[0]

    @property
    def exporter(self) -> str:
        return self.spec.exporter if self.spec else "dynamo"

    def replace(self, **changes: Any) -> Setting:
        """A copy with ``eval_mode`` / ``fastpath`` and any ``ModelCase`` field (``spec``, ``config``,
        ``tolerance``, ``example_inputs``) changed."""
        own = {k: changes.pop(k) for k in _SETTING_FIELDS if k in changes}
        case = dataclasses.replace(self.case, **changes) if changes else self.case
        return dataclasses.replace(self, case=case, **own)

    def key(self) -> str:
        """A short stable key: equal settings (same input tensors) give equal keys."""
        data = {
            "spec": self.spec.to_dict() if self.spec else None,
            "config": repr(self.config), "tolerance": self.tolerance_name, "eval": self.eval_mode,
            "fastpath": self.fastpath, "model": id(self.model),
            "inputs": [(tuple(t.shape), str(t.dtype), str(t.device), id(t)) for t in self.example_inputs],
        }
        return hashlib.sha1(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:10]


@dataclass
class Run:
    """What the attempt's stages see: the setting, where files go, and the results so far."""

    setting: Setting
    work_dir: Path
    value_samples: int = 3
    results: dict[str, StageResult] = field(default_factory=dict)
    samples: list[tuple[torch.Tensor, ...]] = field(default_factory=list)
    output: dict[str, str] = field(default_factory=dict)

    def result(self, name: str) -> Any:
        found = self.results.get(name)
        return found.result if found is not None else None


def _quiet(name: str, fn: Callable[[Run], Outcome]) -> Callable[[Run], Outcome]:
    """``fn`` with what it prints (Python and C/C++ level) kept in ``run.output[name]``."""

    def stage(run: Run) -> Outcome:
        cap = None
        try:
            with captured_output() as cap:
                return fn(run)
        finally:
            if cap is not None and cap.text.strip():
                run.output[name] = cap.text

    stage.__name__ = stage.__qualname__ = fn.__name__
    stage.__doc__ = fn.__doc__
    return stage


def trimmed(text: str, *, lines: int = 12, chars: int = 1500) -> str:
    """The first ``lines`` non-blank lines of ``text`` (at most ``chars`` characters), saying how many
    lines were left out: what a finding's evidence shows of a stage's captured output."""
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    head = "\n".join(kept[:lines])
    if len(head) > chars:
        head = head[:chars].rsplit(" ", 1)[0] + " …"
    rest = len(kept) - min(len(kept), lines)
    return head + (f"\n… ({rest} more lines)" if rest else "")


def _export(run: Run) -> Outcome:
    s = run.setting
    out = run.work_dir / f"{type(s.model).__name__.lower()}-{s.exporter}-{s.key()}.onnx"
    result = export(s.model, s.example_inputs, out, spec=s.spec)
    return Outcome(True, result, f"{result.exporter} opset {result.opset} -> {result.out.name}")


def _summarize(run: Run) -> Outcome:
    summary: ModelSummary = run.result("export").summary
    ok = bool(summary.checker_ok)
    return Outcome(ok, summary, "checker ok" if ok else summary.checker_message)


def _session(run: Run) -> Outcome:
    with capture_warnings() as caught:  # this thread's warnings only (catch_warnings is process-global)
        session = open_session(run.result("export").out, run.setting.config)
    fallback = [str(w.message) for w in caught if issubclass(w.category, ProviderFallbackWarning)]
    return Outcome(not fallback, session, "; ".join(fallback) or f"on {', '.join(session.get_providers())}")


def _compared(comparison: Comparison) -> Outcome:
    if comparison.ok:
        return Outcome(True, comparison, f"match at {comparison.tolerance}")
    return Outcome(False, comparison, comparison.failures[0].describe())


def _compare(run: Run) -> Outcome:
    s = run.setting
    return _compared(compare(s.model, run.result("session"), s.example_inputs, tolerance=s.tolerance))


def _values(run: Run) -> Outcome:
    if not run.value_samples:
        return Outcome(None, None, "not asked for")
    s = run.setting
    run.samples = other_values(s.example_inputs, run.value_samples)
    return _compared(compare(s.model, run.result("session"), run.samples, tolerance=s.tolerance))


def _probe(run: Run) -> Outcome:
    spec: ExportSpec = run.result("export").spec
    if not axis_symbols(spec.dynamic_axes, spec.input_names):
        return Outcome(None, None, "not applicable: no dynamic input axes")
    s = run.setting
    report = probe_shapes(s.model, run.result("session"), s.example_inputs, spec=spec, tolerance=s.tolerance)
    if report.ok:
        return Outcome(True, report, f"{len(report.cases)} shape probes")
    case = report.failures[0]
    return Outcome(False, report, f"at {case.label}: {case.status} {case.message[:200]}")


#: The attempt's stages, in order.
STAGES: tuple[Stage, ...] = (
    Stage("export", "export to ONNX", _quiet("export", _export), needs=()),
    Stage("summarize", "read the graph, run the ONNX checker", _quiet("summarize", _summarize)),
    Stage("session", "build an ONNX Runtime session", _quiet("session", _session)),
    Stage("compare", "compare with PyTorch on the example", _quiet("compare", _compare), needs=("session",)),
    Stage("values", "compare on inputs with other values", _quiet("values", _values), needs=("compare",)),
    Stage("probe", "probe other sizes of the dynamic axes", _quiet("probe", _probe), needs=("session",)),
)
STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)


@dataclass
class Attempt:
    """The results of one attempt: a ``StageResult`` per stage that was reached (see ``stages``)."""

    setting: Setting
    results: dict[str, StageResult] = field(default_factory=dict)
    value_samples: list[tuple[torch.Tensor, ...]] = field(default_factory=list, repr=False)
    duration_s: float = 0.0
    #: stage name -> what torch / ONNX Runtime / the model printed while it ran (stages that printed nothing are absent)
    output: dict[str, str] = field(default_factory=dict, repr=False)

    def printed(self, stage: str, *, lines: int = 12, chars: int = 1500) -> str:
        """What ``stage`` printed, trimmed for a finding's evidence ("" when it printed nothing)."""
        return trimmed(self.output.get(stage, ""), lines=lines, chars=chars)

    def printed_evidence(self, *stages: str) -> dict[str, str]:
        """Evidence entries for what ``stages`` printed: ``torch_output`` for the export, else
        ``<stage>_output``; stages that printed nothing give none."""
        keys = {stage: "torch_output" if stage == "export" else f"{stage}_output" for stage in stages}
        return {keys[stage]: self.printed(stage) for stage in stages if self.output.get(stage, "").strip()}

    @property
    def stages(self) -> dict[str, bool | None]:
        """Stage name -> True (passed), False (failed) or None (not run)."""
        return {name: (self.results[name].status if name in self.results else None) for name in STAGE_NAMES}

    def result(self, name: str) -> Any:
        found = self.results.get(name)
        return found.result if found is not None else None

    def error(self, name: str) -> BaseException | None:
        """The exception the stage ``name`` raised (None when it returned or did not run)."""
        found = self.results.get(name)
        return found.error if found is not None else None

    @property
    def export(self) -> ExportResult | None:
        return self.result("export")

    @property
    def summary(self) -> ModelSummary | None:
        return self.result("summarize")

    @property
    def session(self) -> ort.InferenceSession | None:
        return self.result("session")

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers()) if self.session is not None else []

    @property
    def comparison(self) -> Comparison | None:
        return self.result("compare")

    @property
    def value_comparison(self) -> Comparison | None:
        return self.result("values")

    @property
    def probe(self) -> ProbeReport | None:
        return self.result("probe")

    @property
    def ok(self) -> bool:
        stages = self.stages
        return stages["export"] is True and all(v is not False for v in stages.values())

    @property
    def spec(self) -> ExportSpec | None:
        return self.export.spec if self.export else self.setting.spec

    @property
    def out(self) -> Path | None:
        """The exported ONNX file (None when the export failed)."""
        return self.export.out if self.export else None

    @property
    def failed_stage(self) -> str | None:
        return next((name for name, status in self.stages.items() if status is False), None)

    def failure(self) -> str:
        """One line: where it failed and why; or what passed."""
        stage = self.failed_stage
        if stage is None:
            ran = [name for name, status in self.stages.items() if status]
            extra = f", {len(self.probe.cases)} shape probes" if self.probe else ""
            return f"{', '.join(ran)} pass{extra}"
        result = self.results[stage]
        return f"{stage} fails: {result.exception or result.summary}"[:400]


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


def _other_value(t: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    if t.is_meta or t.dtype == torch.bool or t.numel() == 0:
        return t
    if t.dtype.is_floating_point:
        base = t.detach().float()
        if k == 0:
            return (-base).to(t.dtype)
        std = float(base.std()) if base.numel() > 1 else 1.0
        noise = torch.randn(tuple(t.shape), generator=gen) * (std or 1.0) + float(base.mean())
        return noise.to(dtype=t.dtype, device=t.device)
    lo, hi = int(t.min()), int(t.max())
    if lo == hi:
        return t
    return torch.randint(lo, hi + 1, tuple(t.shape), generator=gen, dtype=t.dtype).to(t.device)


def other_values(example: tuple[torch.Tensor, ...], n: int = 3, *, seed: int = 7) -> list[tuple[torch.Tensor, ...]]:
    """Inputs of the example's shapes with other values: the negated example, then random draws
    with the example's mean and spread (ints stay in the example's range, bool masks are kept)."""
    samples = []
    for k in range(n):
        gen = torch.Generator().manual_seed(seed + k)
        samples.append(tuple(_other_value(t, k, gen) for t in example))
    return samples


def run_attempt(setting: Setting, work_dir: Path, *, value_samples: int = 3) -> Attempt:
    """Run the attempt's ``STAGES`` under ``setting``; files go to ``work_dir``."""
    start = time.perf_counter()
    run = Run(setting, work_dir, value_samples)
    attempt = Attempt(setting)
    try:
        keep_fastpath = setting.fastpath and torch.backends.mha.get_fastpath_enabled()
        # every stage's warnings and printed output are captured into run.output (see _quiet)
        with eval_mode(setting.model, setting.eval_mode), fastpath(keep_fastpath):
            run_stages(STAGES, run)
    finally:
        attempt.results = run.results
        attempt.value_samples = run.samples
        attempt.output = run.output
        attempt.duration_s = time.perf_counter() - start
    return attempt
