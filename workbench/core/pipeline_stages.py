"""The stages of ``run_pipeline``, each a small top-level function ``stage_x(ctx) -> Outcome``.

A stage returns ``Outcome(status, result, summary)``; an exception it raises is captured by the
runner in ``pipeline.py``. ``Context`` carries the target, the budget, and the results of the
stages run so far. The optimize and int8/fp16 stages return ``OptLevels`` and ``Converted``
(``pipeline_results``): latency alongside what the core functions return.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import onnx
import torch
from torch import nn

from workbench.core._format import fmt_bytes, fmt_num, fmt_time
from workbench.core.bench import Measurement, benchmark
from workbench.core.compare import compare
from workbench.core.export import ExportResult, export
from workbench.core.graph import summarize
from workbench.core.inputs import as_input_tuple, axis_symbols, check_module, example_sizes, resize_inputs
from workbench.core.optimize import optimize
from workbench.core.pipeline_results import Converted, OptLevels
from workbench.core.probe import probe_shapes
from workbench.core.quantize import QuantizeResult, quantize_dynamic, to_fp16
from workbench.core.session import OPT_LEVELS, SessionConfig, open_session
from workbench.core.spec import ExportSpec
from workbench.core.sweep import sweep
from workbench.errors import InvalidInputError, describe
from workbench.zoo import ZooModel, get as zoo_get


@dataclass(frozen=True)
class Budget:
    """How much timing a run does: repetitions, the batch used for latency, the sweep grid."""

    warmup: int = 5
    runs: int = 30
    bench_batch: int = 4
    sweep_batches: tuple[int, ...] = (1, 4, 16)
    sweep_seqs: tuple[int, ...] = (32, 128)
    sweep_levels: tuple[str, ...] = ("basic", "all")
    sweep_warmup: int = 3
    sweep_runs: int = 15
    tolerance: str = "fp32"

    def __post_init__(self) -> None:
        for name in ("runs", "bench_batch", "sweep_runs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInputError(f"Budget.{name} must be an int >= 1, received {value!r}.")
        for name in ("sweep_batches", "sweep_seqs"):
            values = getattr(self, name)
            if not values or not all(isinstance(v, int) and v >= 1 for v in values):
                raise InvalidInputError(f"Budget.{name} must be a non-empty tuple of ints >= 1, received {values!r}.")
        bad = [lv for lv in self.sweep_levels if lv not in OPT_LEVELS]
        if bad:
            raise InvalidInputError(f"Budget.sweep_levels has unknown level(s) {bad}; use {list(OPT_LEVELS)}.")


FULL = Budget()
QUICK = Budget(warmup=3, runs=15, bench_batch=4, sweep_batches=(1, 4), sweep_seqs=(16, 32),
               sweep_levels=("all",), sweep_warmup=2, sweep_runs=10)


@dataclass
class Target:
    """The model a pipeline runs on: module, example inputs, spec (None: export's default) and,
    for zoo models, an input factory ``f(batch=, seq=, seed=)``."""

    name: str
    model: nn.Module
    example_inputs: tuple[torch.Tensor, ...]
    spec: ExportSpec | None = None
    input_factory: Callable[..., tuple[torch.Tensor, ...]] | None = None


def as_target(target: Any, *, smoke: bool = False) -> Target:
    """A ``Target`` from a ``ZooModel``, a zoo name, or ``(model, example_inputs[, spec])``."""
    if isinstance(target, Target):
        return target
    if isinstance(target, str):
        target = zoo_get(target, smoke=smoke)
    if isinstance(target, ZooModel):
        return Target(target.name, target.model, target.example_inputs, target.spec, target.input_factory)
    if isinstance(target, (tuple, list)) and len(target) in (2, 3):
        model = check_module(target[0])
        inputs = as_input_tuple(target[1])
        spec = target[2] if len(target) == 3 else None
        if spec is not None and not isinstance(spec, ExportSpec):
            raise InvalidInputError(f"The third item must be a wb.ExportSpec or None, received {describe(spec)}.")
        return Target(type(model).__name__.lower(), model, inputs, spec)
    raise InvalidInputError(
        f"Expected a ZooModel, a zoo model name, or a tuple (model, example_inputs[, spec]), received "
        f"{describe(target)}. For example run_pipeline(wb.zoo.get('mlp'), 'out') or run_pipeline((model, (x,)), 'out')."
    )


class Outcome(NamedTuple):
    status: bool | None
    result: Any
    summary: str


@dataclass
class Context:
    """What a stage can see: the target, the budget, the results so far, progress and cancel."""

    target: Target
    out_dir: Path
    budget: Budget
    report: Callable[[str, str], None]
    cancelled: Callable[[], bool]
    results: dict[str, Any] = field(default_factory=dict)
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def exported(self) -> ExportResult:
        return self.results["export"].result

    @property
    def path(self) -> Path:
        return self.exported.path

    @property
    def spec(self) -> ExportSpec:
        return self.exported.spec

    @property
    def symbols(self) -> list[str]:
        return axis_symbols(self.spec.dynamic_axes, self.spec.input_names)

    def example_sizes(self) -> tuple[int | None, int | None]:
        """(batch, seq) of the example inputs along the first two dynamic symbols (None if absent)."""
        sizes = example_sizes(self.target.example_inputs, self.spec.input_names, self.spec.dynamic_axes)
        syms = self.symbols
        return (sizes.get(syms[0]) if syms else None), (sizes.get(syms[1]) if len(syms) > 1 else None)

    def make_inputs(self, batch: int, seq: int | None, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Inputs at ``batch`` x ``seq`` from the zoo factory, or the example resized along the spec's axes."""
        if self.target.input_factory is not None:
            return as_input_tuple(self.target.input_factory(batch=batch, seq=seq, seed=seed))
        syms = self.symbols
        if not syms:
            return self.target.example_inputs
        sizes = {syms[0]: batch} if seq is None or len(syms) < 2 else {syms[0]: batch, syms[1]: seq}
        return resize_inputs(self.target.example_inputs, self.spec.input_names, self.spec.dynamic_axes, sizes, seed=seed)

    def graph_inputs(self) -> list[str]:
        if "graph_inputs" not in self.cache:
            proto = onnx.load(str(self.path), load_external_data=False)
            inits = {t.name for t in proto.graph.initializer}
            self.cache["graph_inputs"] = [v.name for v in proto.graph.input if v.name not in inits]
        return self.cache["graph_inputs"]

    def named(self, inputs: tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
        """``inputs`` as ``{graph input name: array}`` (inputs the exporter dropped are left out)."""
        names = self.graph_inputs()
        by_name = dict(zip(self.spec.input_names, inputs))
        if not set(names) <= set(by_name):
            by_name = dict(zip(names, inputs))
        return {n: by_name[n].detach().cpu().numpy() for n in names}

    def samples(self) -> list[tuple[torch.Tensor, ...]]:
        """Inputs of several shapes (the same for compare and the gates): the example, batch 1, and
        an odd batch with a shorter sequence."""
        if "samples" not in self.cache:
            _, seq = self.example_sizes()
            out = [self.target.example_inputs]
            if self.symbols:
                out.append(self.make_inputs(1, seq, seed=1))
                out.append(self.make_inputs(3, max(2, seq // 2) if seq else None, seed=2))
            self.cache["samples"] = out
        return self.cache["samples"]

    def bench_inputs(self) -> dict[str, np.ndarray]:
        if "bench" not in self.cache:
            _, seq = self.example_sizes()
            inputs = self.make_inputs(self.budget.bench_batch, seq) if self.symbols else self.target.example_inputs
            self.cache["bench"] = self.named(inputs)
        return self.cache["bench"]

    def bench_batch(self) -> int | None:
        first = next(iter(self.bench_inputs().values()))
        return int(first.shape[0]) if first.ndim else None

    def time_onnx(self, path: Path, label: str, config: SessionConfig | None = None) -> Measurement:
        session = open_session(path, config or SessionConfig())
        b = self.budget
        return benchmark(session, self.bench_inputs(), warmup=b.warmup, runs=b.runs, label=label,
                         batch_size=self.bench_batch())

    def baseline(self) -> Measurement:
        """FP32 latency at ONNX Runtime's default level: from the optimize stage, else measured once."""
        if "baseline" not in self.cache:
            levels = getattr(self.results.get("optimize"), "result", None)
            known = levels.latency.get("all") if isinstance(levels, OptLevels) else None
            self.cache["baseline"] = known or self.time_onnx(self.path, "fp32")
        return self.cache["baseline"]


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    run: Callable[[Context], Outcome]
    needs: tuple[str, ...] = ("export",)


# ---------------------------------------------------------------- the stages


def stage_export(ctx: Context) -> Outcome:
    t = ctx.target
    result = export(t.model, t.example_inputs, ctx.out_dir / f"{t.name}.onnx", t.spec)
    how = "cached" if result.cached else f"in {fmt_time(result.duration_s)}"
    warned = f", {len(result.warnings)} warning(s)" if result.warnings else ""
    return Outcome(True, result, f"{result.exporter} opset {result.opset} {how}{warned} -> {result.path.name}")


def stage_summarize(ctx: Context) -> Outcome:
    s = summarize(ctx.path)
    check = {True: "checker ok", False: f"checker FAILED: {s.checker_message}", None: "checker not run"}[s.checker_ok]
    return Outcome(s.checker_ok, s, f"{s.node_count} nodes, {s.parameter_count:,} parameters, "
                                    f"{fmt_bytes(s.file_bytes)}; {check}")


def stage_compare(ctx: Context) -> Outcome:
    c = compare(ctx.target.model, ctx.path, ctx.samples(), ctx.budget.tolerance)
    shapes = "; ".join(",".join(str(list(s)) for s in sample) for sample in c.input_shapes)
    return Outcome(c.ok, c, f"{'PASS' if c.ok else 'FAIL'} at {c.tolerance}: max abs {fmt_num(c.max_abs)}, "
                            f"max rel {fmt_num(c.max_rel)} over {c.samples} input shapes ({shapes})")


def stage_probe(ctx: Context) -> Outcome:
    if not ctx.symbols:
        return Outcome(None, None, "not applicable: the export has no dynamic input axes")
    p = probe_shapes(ctx.target.model, ctx.path, ctx.spec, ctx.target.example_inputs, tolerance=ctx.budget.tolerance)
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
            levels.results[level] = optimize(ctx.path, level, ctx.out_dir / f"{ctx.path.stem}.opt-{level}.onnx")
            levels.latency[level] = ctx.time_onnx(ctx.path, f"ORT {level}", SessionConfig(opt_level=level))
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
    q = quantize_dynamic(ctx.path, ctx.out_dir / f"{ctx.path.stem}.int8.onnx", inputs=_gate_inputs(ctx))
    return _convert(ctx, "int8", q)


def stage_fp16(ctx: Context) -> Outcome:
    q = to_fp16(ctx.path, ctx.out_dir / f"{ctx.path.stem}.fp16.onnx", inputs=_gate_inputs(ctx))
    return _convert(ctx, "fp16", q)


def stage_sweep(ctx: Context) -> Outcome:
    b = ctx.budget
    has_seq = len(ctx.symbols) > 1
    if ctx.symbols:
        batches: list[int] = list(b.sweep_batches)
        seqs: list[int | None] = list(b.sweep_seqs) if has_seq else [None]
    else:
        batches, seqs = [ctx.example_sizes()[0] or 1], [None]
    factory = ctx.target.input_factory or (lambda batch, seq, seed=0: ctx.make_inputs(batch, seq, seed))
    result = sweep(
        ctx.target.model, ctx.path, batches, seqs, [SessionConfig(opt_level=lv) for lv in b.sweep_levels],
        input_factory=factory, spec=ctx.spec, warmup=b.sweep_warmup, runs=b.sweep_runs,
        progress=lambda done, total, label: ctx.report("sweep", f"{done}/{total} {label}"), cancel=ctx.cancelled,
    )
    text = f"{len(result.rows)}/{result.total} cells over batch {batches} x seq {seqs}"
    speedups = [r for r in result.rows if r.speedup is not None and r.config != "eager"]
    if speedups:
        best = max(speedups, key=lambda r: r.speedup or 0)
        text += f"; best ORT speedup {best.speedup:.2f}x ({best.config}, batch={best.batch}, seq={best.seq})"
    if result.errors:
        text += f"; {len(result.errors)} failed cell(s), first: {result.errors[0].error}"
    if result.cancelled:
        text += "; cancelled"
    return Outcome(not result.errors and not result.cancelled, result, text)


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
