"""The stages of ``run_pipeline``, each a small top-level function ``stage_x(ctx) -> Outcome``.

A stage returns ``Outcome(status, result, summary)``; an exception it raises is captured by
``stages.run_stage``. ``Context`` carries the ``ModelCase``, the budget and the results of the
stages run so far. The optimize and int8/fp16 stages return ``OptLevels`` and ``Converted``
(``pipeline_results``): latency alongside what the core functions return.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import torch

from workbench.core._checks import is_int
from workbench.core._format import fmt_bytes, fmt_num, fmt_time
from workbench.core.bench import Measurement, benchmark
from workbench.core.cancel import Cancel, is_cancelled
from workbench.core.case import ModelCase
from workbench.core.compare import compare
from workbench.core.export import ExportResult, export
from workbench.core.feeds import by_graph_name, to_numpy
from workbench.core.graph import graph_inputs, summarize
from workbench.core.optimize import optimize
from workbench.core.pipeline_results import Converted, OptLevels
from workbench.core.probe import probe_shapes
from workbench.core.quantize import QuantizeResult, quantize_dynamic, to_fp16
from workbench.core.session import OPT_LEVELS, OptLevel, SessionConfig
from workbench.core.spec import ExportSpec
from workbench.core.stages import Outcome, Stage
from workbench.core.sweep import sweep
from workbench.core.tolerance import Tolerance, resolve_tolerance
from workbench.errors import InvalidInputError


@dataclass(frozen=True)
class Budget:
    """How much timing a run does: repetitions, the batch used for latency, the sweep grid.

    ``tolerance`` None checks at the case's own tolerance."""

    warmup: int = 5
    runs: int = 30
    batch: int = 4
    batch_sizes: tuple[int, ...] = (1, 4, 16)
    seq_lens: tuple[int, ...] = (32, 128)
    opt_levels: tuple[OptLevel, ...] = ("basic", "all")
    sweep_warmup: int = 3
    sweep_runs: int = 15
    tolerance: Tolerance | None = None

    def __post_init__(self) -> None:
        for name in ("runs", "batch", "sweep_runs"):
            value = getattr(self, name)
            if not is_int(value, 1):
                raise InvalidInputError(f"Budget.{name} must be an int >= 1, received {value!r}.")
        for name in ("batch_sizes", "seq_lens"):
            values = getattr(self, name)
            if not values or not all(is_int(v, 1) for v in values):
                raise InvalidInputError(f"Budget.{name} must be a non-empty tuple of ints >= 1, received {values!r}.")
        bad = [lv for lv in self.opt_levels if lv not in OPT_LEVELS]
        if bad:
            raise InvalidInputError(f"Budget.opt_levels has unknown level(s) {bad}; use {list(OPT_LEVELS)}.")
        if self.tolerance is not None:
            resolve_tolerance(self.tolerance)


FULL = Budget()
QUICK = Budget(warmup=3, runs=15, batch=4, batch_sizes=(1, 4), seq_lens=(16, 32), opt_levels=("all",),
               sweep_warmup=2, sweep_runs=10)


@dataclass
class Context:
    """What a stage can see: the case, the budget, the results so far, progress and cancel."""

    case: ModelCase
    work_dir: Path
    budget: Budget
    report: Callable[[str, str], None]
    cancel: Cancel = None
    results: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)

    def cancelled(self) -> bool:
        return is_cancelled(self.cancel)

    @property
    def exported(self) -> ExportResult:
        return self.results["export"].result

    @property
    def onnx_path(self) -> Path:
        return self.exported.out

    @property
    def spec(self) -> ExportSpec:
        return self.exported.spec

    @property
    def symbols(self) -> list[str]:
        return self.case.symbols

    @property
    def tolerance(self) -> Tolerance:
        return self.budget.tolerance if self.budget.tolerance is not None else self.case.tolerance

    def session_config(self, opt_level: OptLevel | None = None) -> SessionConfig:
        config = self.case.config or SessionConfig()
        return config.replace(opt_level=opt_level) if opt_level else config

    def named(self, inputs: tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
        """``inputs`` as ``{graph input name: array}`` (inputs the exporter dropped are left out)."""
        if "graph_inputs" not in self.cache:
            proto = onnx.load(str(self.onnx_path), load_external_data=False)
            self.cache["graph_inputs"] = [v.name for v in graph_inputs(proto.graph)]
        named = by_graph_name(inputs, self.cache["graph_inputs"], self.spec.input_names)
        return {n: to_numpy(t) for n, t in named.items()}

    def samples(self) -> list[tuple[torch.Tensor, ...]]:
        """Inputs of several shapes (the same for compare and the gates): the example, batch 1, and
        an odd batch with a shorter sequence."""
        if "samples" not in self.cache:
            _, seq = self.case.example_sizes()
            out = [self.case.example_inputs]
            if self.symbols:
                out.append(self.case.make_inputs(1, seq, seed=1))
                out.append(self.case.make_inputs(3, max(2, seq // 2) if seq else None, seed=2))
            self.cache["samples"] = out
        return self.cache["samples"]

    def bench_inputs(self) -> dict[str, np.ndarray]:
        if "bench" not in self.cache:
            _, seq = self.case.example_sizes()
            inputs = self.case.make_inputs(self.budget.batch, seq) if self.symbols else self.case.example_inputs
            self.cache["bench"] = self.named(inputs)
        return self.cache["bench"]

    def bench_batch(self) -> int | None:
        first = next(iter(self.bench_inputs().values()))
        return int(first.shape[0]) if first.ndim else None

    def time_onnx(self, onnx_path: Path, label: str, config: SessionConfig | None = None) -> Measurement:
        b = self.budget
        return benchmark(onnx_path, self.bench_inputs(), config=config or self.session_config(), warmup=b.warmup,
                         runs=b.runs, label=label, batch_size=self.bench_batch())

    def baseline(self) -> Measurement:
        """FP32 latency at ONNX Runtime's default level: from the optimize stage, else measured once."""
        if "baseline" not in self.cache:
            levels = getattr(self.results.get("optimize"), "result", None)
            known = levels.latency.get("all") if isinstance(levels, OptLevels) else None
            self.cache["baseline"] = known or self.time_onnx(self.onnx_path, "fp32")
        return self.cache["baseline"]


# ---------------------------------------------------------------- the stages


def file_stem(name: str) -> str:
    """A case name as a file name inside ``work_dir``: no folder separators, no leading dot, <= 100 chars."""
    stem = re.sub(r"[^\w.-]+", "_", name).strip("._")
    return stem[:100] or "model"


def stage_export(ctx: Context) -> Outcome:
    c = ctx.case
    result = export(c.model, c.example_inputs, ctx.work_dir / f"{file_stem(c.name)}.onnx", spec=c.spec)
    how = "cached" if result.cached else f"in {fmt_time(result.duration_s)}"
    warned = f", {len(result.warnings)} warning(s)" if result.warnings else ""
    return Outcome(True, result, f"{result.exporter} opset {result.opset} {how}{warned} -> {result.out.name}")


def stage_summarize(ctx: Context) -> Outcome:
    s = summarize(ctx.onnx_path)
    check = {True: "checker ok", False: f"checker FAILED: {s.checker_message}", None: "checker not run"}[s.checker_ok]
    return Outcome(s.checker_ok, s, f"{s.node_count} nodes, {s.parameter_count:,} parameters, "
                                    f"{fmt_bytes(s.file_bytes)}; {check}")


def stage_compare(ctx: Context) -> Outcome:
    c = compare(ctx.case.model, ctx.onnx_path, ctx.samples(), tolerance=ctx.tolerance, config=ctx.case.config)
    shapes = "; ".join(",".join(str(list(s)) for s in sample) for sample in c.input_shapes)
    return Outcome(c.ok, c, f"{'PASS' if c.ok else 'FAIL'} at {c.tolerance}: max abs {fmt_num(c.max_abs)}, "
                            f"max rel {fmt_num(c.max_rel)} over {c.samples} input shapes ({shapes})")


def stage_probe(ctx: Context) -> Outcome:
    if not ctx.symbols:
        return Outcome(None, None, "not applicable: the export has no dynamic input axes")
    p = probe_shapes(ctx.case.model, ctx.onnx_path, ctx.case.example_inputs, spec=ctx.spec, tolerance=ctx.tolerance,
                     config=ctx.case.config)
    text = f"{len(p.cases)} shapes over {p.symbols}, {len(p.failures)} failing"
    if p.failures:
        text += f" (first: {p.failures[0].label}: {p.failures[0].status})"
    return Outcome(p.ok, p, text)


def stage_optimize(ctx: Context) -> Outcome:
    levels = OptLevels()
    for level in OPT_LEVELS:
        if ctx.cancelled():
            levels.cancelled = True
            break
        ctx.report("optimize", f"level {level}")
        try:
            out = ctx.work_dir / f"{ctx.onnx_path.stem}.opt-{level}.onnx"
            levels.results[level] = optimize(ctx.onnx_path, out, opt_level=level)
            levels.latency[level] = ctx.time_onnx(ctx.onnx_path, f"ORT {level}", ctx.session_config(level))
        except Exception as exc:  # captured per level: the other levels still run
            levels.errors[level] = f"{type(exc).__name__}: {str(exc).strip()}"
    parts = [f"{lv} {fmt_time(m.p50)}" for lv, m in levels.latency.items()]
    text = "p50 " + ", ".join(parts) if parts else "no level ran"
    if levels.best:
        text += f"; fastest: {levels.best}"
    if levels.errors:
        text += f"; failed: {', '.join(levels.errors)}"
    return Outcome(None if levels.cancelled else levels.ok, levels, text)


def _convert(ctx: Context, kind: str, result: QuantizeResult) -> Outcome:
    converted = Converted(kind, result)
    try:
        converted.baseline = ctx.baseline()
        converted.latency = ctx.time_onnx(result.path, kind)
    except Exception as exc:  # the conversion and its gate are kept even if timing fails
        converted.latency_error = f"{type(exc).__name__}: {str(exc).strip()[:400]}"
    return Outcome(converted.ok, converted, converted.summary())


def _gate_inputs(ctx: Context) -> list[dict[str, np.ndarray]]:
    return [ctx.named(sample) for sample in ctx.samples()]


def stage_int8(ctx: Context) -> Outcome:
    q = quantize_dynamic(ctx.onnx_path, ctx.work_dir / f"{ctx.onnx_path.stem}.int8.onnx", inputs=_gate_inputs(ctx))
    return _convert(ctx, "int8", q)


def stage_fp16(ctx: Context) -> Outcome:
    q = to_fp16(ctx.onnx_path, ctx.work_dir / f"{ctx.onnx_path.stem}.fp16.onnx", inputs=_gate_inputs(ctx))
    return _convert(ctx, "fp16", q)


def _sweep_text(result: Any, batches: list[int], seqs: list[int | None]) -> str:
    text = f"{len(result.rows)}/{result.total} cells over batch {batches} x seq {seqs}"
    speedups = [r for r in result.rows if r.speedup is not None and r.config != "eager"]
    if speedups:
        best = max(speedups, key=lambda r: r.speedup or 0)
        text += f"; best ORT speedup {best.speedup:.2f}x ({best.config}, batch={best.batch}, seq={best.seq})"
    if result.errors:
        text += f"; {len(result.errors)} failed cell(s), first: {result.errors[0].error}"
    return text + ("; cancelled" if result.cancelled else "")


def stage_sweep(ctx: Context) -> Outcome:
    b = ctx.budget
    if ctx.symbols:
        batches: list[int] = list(b.batch_sizes)
        seqs: list[int | None] = list(b.seq_lens) if len(ctx.symbols) > 1 else [None]
    else:
        batches, seqs = [ctx.case.example_sizes()[0] or 1], [None]
    result = sweep(
        ctx.case.model, ctx.onnx_path, batch_sizes=batches, seq_lens=seqs,
        configs=[ctx.session_config(lv) for lv in b.opt_levels], input_factory=ctx.case.make_inputs, spec=ctx.spec,
        warmup=b.sweep_warmup, runs=b.sweep_runs, cancel=ctx.cancel,
        progress=lambda done, total, label: ctx.report("sweep", f"{done}/{total} {label}"),
    )
    return Outcome(not result.errors and not result.cancelled, result, _sweep_text(result, batches, seqs))


STAGES: tuple[Stage, ...] = (
    Stage("export", "Export to ONNX", stage_export, needs=()),
    Stage("summarize", "What the ONNX file holds", stage_summarize),
    Stage("compare", "PyTorch vs ONNX Runtime", stage_compare),
    Stage("probe", "Shape probes over the dynamic axes", stage_probe),
    Stage("optimize", "ONNX Runtime optimization levels", stage_optimize),
    Stage("int8", "Dynamic INT8 quantization", stage_int8),
    Stage("fp16", "FP16 conversion", stage_fp16),
    Stage("sweep", "Latency sweep over batch and sequence", stage_sweep),
)
