"""Which figures go with which result: dispatched on the result's type (never on a stage's name),
so a stage of the pipeline or of the doctor gets the figures of whatever it returned.

Add the figures of a new result type with one ``@figures_for.register`` function here.
"""

from __future__ import annotations

from functools import singledispatch
from typing import Any

import plotly.graph_objects as go

from workbench.core.compare import Comparison
from workbench.core.graph import ModelSummary
from workbench.core.pipeline import PipelineRun
from workbench.core.pipeline_results import Converted, OptLevels
from workbench.core.probe import ProbeReport
from workbench.core.session import OPT_LEVELS
from workbench.core.stages import StageResult
from workbench.core.sweep import SweepResult
from workbench.core.tune_results import TuneResult
from workbench.viz.compare import error_bars, error_histogram, values_scatter
from workbench.viz.ops import op_histogram_figure
from workbench.viz.perf import opt_levels_figure, quantize_figure
from workbench.viz.probe import probe_figure
from workbench.viz.sweep import latency_figure, speedup_figure
from workbench.viz.tune import pareto_figure, tune_speedups_figure

Figures = list[tuple[str, go.Figure]]


@singledispatch
def figures_for(result: Any) -> Figures:
    """``(name, figure)`` pairs that show ``result``; none for a type without figures (``None``, an
    ``ExportResult``: its graph is drawn from the ``ModelSummary``)."""
    return []


@figures_for.register
def _(result: ModelSummary) -> Figures:
    return [("ops", op_histogram_figure(result))]


@figures_for.register
def _(result: Comparison) -> Figures:
    return [("values", values_scatter(result)), ("errors", error_histogram(result)), ("per-output", error_bars(result))]


@figures_for.register
def _(result: ProbeReport) -> Figures:
    return [("probe", probe_figure(result))]


@figures_for.register
def _(result: OptLevels) -> Figures:
    out = [("levels", opt_levels_figure(result))]
    top = next((result.results[lv] for lv in reversed(OPT_LEVELS) if lv in result.results), None)
    if top is not None:
        out.append(("ops", op_histogram_figure(top, title=f"Op types before/after level {top.level!r}")))
    return out


@figures_for.register
def _(result: Converted) -> Figures:
    return [("ops", op_histogram_figure(result.result, title=f"Op types before/after {result.kind}"))]


@figures_for.register
def _(result: SweepResult) -> Figures:
    return [("latency", latency_figure(result)), ("speedup", speedup_figure(result))]


@figures_for.register
def _(result: TuneResult) -> Figures:
    return [("pareto", pareto_figure(result)), ("speedups", tune_speedups_figure(result))]


def figures_for_stage(stage: StageResult) -> Figures:
    """The figures of one stage's result (``figures_for(stage.result)``)."""
    return figures_for(stage.result)


def run_level_figures(run: PipelineRun) -> dict[str, Figures]:
    """Figures drawn from several stages, keyed by the stage whose section shows them: the INT8/FP16
    accuracy vs latency scatter goes with the last stage that produced a ``Converted``."""
    conversions = [s for s in run.stages if isinstance(s.result, Converted)]
    if not conversions:
        return {}
    return {conversions[-1].name: [("accuracy vs latency", quantize_figure([s.result for s in conversions]))]}


def figures_for_run(run: PipelineRun) -> dict[str, Figures]:
    """Stage name -> its figures (``figures_for`` its result, plus ``run_level_figures``) for every stage."""
    out = {s.name: figures_for(s.result) for s in run.stages}
    for name, figures in run_level_figures(run).items():
        out[name] = out.get(name, []) + figures
    return out
