"""Plotly figures from core results: pure functions, ``result -> plotly.graph_objects.Figure``.

    >>> import workbench as wb
    >>> from workbench import viz
    >>> fig = viz.values_scatter(wb.compare(model, "model.onnx", inputs))

No widget state here: the widgets show these figures, the report embeds them.
"""

from __future__ import annotations

from workbench.viz._common import MAX_POINTS
from workbench.viz.compare import error_bars, error_histogram, values_scatter
from workbench.viz.nodes import op_time_figure, top_nodes_figure, top_nodes_html
from workbench.viz.ops import op_histogram_figure
from workbench.viz.perf import opt_levels_figure, quantize_figure
from workbench.viz.pipeline import figures_for, figures_for_run, figures_for_stage, run_level_figures
from workbench.viz.probe import probe_figure
from workbench.viz.serve import load_figure, load_latency_figure, load_throughput_figure
from workbench.viz.sweep import latency_figure, speedup_figure
from workbench.viz.tune import pareto_figure, tune_speedups_figure

__all__ = [
    "MAX_POINTS", "error_bars", "error_histogram", "figures_for", "figures_for_run", "figures_for_stage",
    "latency_figure", "op_histogram_figure", "opt_levels_figure", "probe_figure", "quantize_figure",
    "run_level_figures", "speedup_figure", "values_scatter", "op_time_figure", "top_nodes_figure", "top_nodes_html",
    "pareto_figure", "tune_speedups_figure",
    "load_figure", "load_latency_figure", "load_throughput_figure",
]
