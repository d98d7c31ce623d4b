"""The figures of a whole ``PipelineRun``: which figure goes with which stage."""

from __future__ import annotations

import plotly.graph_objects as go

from workbench.core.pipeline import Converted, PipelineRun, StageResult
from workbench.core.session import OPT_LEVELS
from workbench.viz.compare import error_bars, error_histogram, values_scatter
from workbench.viz.ops import op_histogram_figure
from workbench.viz.perf import opt_levels_figure, quantize_figure
from workbench.viz.probe import probe_figure
from workbench.viz.sweep import latency_figure, speedup_figure


def figures_for_stage(stage: StageResult) -> list[tuple[str, go.Figure]]:
    """The figures that fit one pipeline ``StageResult`` (an empty list where none do)."""
    name, result = stage.name, stage.result
    if result is None:
        return []
    if name == "summarize":
        return [("ops", op_histogram_figure(result))]
    if name == "compare":
        return [("values", values_scatter(result)), ("errors", error_histogram(result)), ("per-output", error_bars(result))]
    if name == "probe":
        return [("probe", probe_figure(result))]
    if name == "optimize":
        out = [("levels", opt_levels_figure(result))]
        top = next((result.results[lv] for lv in reversed(list(OPT_LEVELS)) if lv in result.results), None)
        if top is not None:
            out.append(("ops", op_histogram_figure(top, title=f"Op types before/after level {top.level!r}")))
        return out
    if name in ("int8", "fp16"):
        return [("ops", op_histogram_figure(result.result, title=f"Op types before/after {name}"))]
    if name == "sweep":
        return [("latency", latency_figure(result)), ("speedup", speedup_figure(result))]
    return []


def run_level_figures(run: PipelineRun) -> dict[str, list[tuple[str, go.Figure]]]:
    """Figures drawn from several stages, keyed by the stage whose section shows them: the INT8/FP16
    accuracy vs latency scatter goes with the last conversion stage that produced a result."""
    conversions = [s for s in run.stages if s.name in ("int8", "fp16") and isinstance(s.result, Converted)]
    if not conversions:
        return {}
    return {conversions[-1].name: [("accuracy vs latency", quantize_figure([s.result for s in conversions]))]}


def figures_for_run(run: PipelineRun) -> dict[str, list[tuple[str, go.Figure]]]:
    """Stage name -> its figures (``figures_for_stage`` plus ``run_level_figures``) for every stage."""
    out = {s.name: figures_for_stage(s) for s in run.stages}
    for name, figures in run_level_figures(run).items():
        out[name] = out.get(name, []) + figures
    return out
