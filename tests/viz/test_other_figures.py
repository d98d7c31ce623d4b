"""Op histograms, probe heatmap, optimization levels, conversions, and figures per pipeline stage."""

from __future__ import annotations

from collections import Counter

import pytest
from _data import comparison, converted, model_summary, opt_levels, optimize_result, probe_report, sweep_result

from workbench import viz
from workbench.core.stages import StageResult
from workbench.errors import InvalidInputError
from workbench.viz.probe import STATUS_CODES


def test_op_histogram_of_a_summary_is_one_series_largest_first():
    fig = viz.op_histogram_figure(model_summary())
    assert len(fig.data) == 1
    assert list(fig.data[0].y) == ["Relu", "Add"] and list(fig.data[0].x) == [2, 1]
    assert fig.layout.title.subtitle.text.startswith("3 nodes in 2 op types")


def test_op_histogram_before_after_and_top():
    result = optimize_result()
    fig = viz.op_histogram_figure(result, top=3)
    before, after = fig.data
    assert (before.name, after.name) == ("before", "after")
    assert list(before.y) == ["Add", "MatMul", "FusedMatMul"]  # ties: by name
    assert list(before.x) == [6, 4, 0] and list(after.x) == [2, 2, 2]
    assert "the 3 most frequent of 6 op types" in fig.layout.title.subtitle.text
    assert fig.layout.xaxis.tickformat == "d" and fig.layout.xaxis.dtick == 1  # counts: never a tick at 1.5
    # Narrow (the Graph tab at 1000 px): each bar carries its count, so no colliding x tick labels,
    # and a count past the longest bar spills into the margin instead of being cut.
    assert fig.layout.xaxis.showticklabels is False and all(t.cliponaxis is False for t in fig.data)
    assert list(before.text) == ["6", "4", "0"] and fig.layout.xaxis.range[1] > 6
    assert len(viz.op_histogram_figure(Counter({"Relu": 3})).data) == 1
    with pytest.raises(InvalidInputError, match="op counters"):
        viz.op_histogram_figure("model.onnx")


def test_probe_figure_is_a_status_grid():
    report = probe_report()
    fig = viz.probe_figure(report)
    heat = fig.data[0]
    assert list(heat.y) == ["1", "2", "4"] and list(heat.x) == ["1", "8", "16"]
    z = [list(row) for row in heat.z]
    assert z[1][1] == STATUS_CODES["match"][0]  # batch=2, seq=8
    assert z[0][1] == STATUS_CODES["ort_failed"][0]
    assert z[2][1] == STATUS_CODES["mismatch"][0]
    assert z[0][0] == STATUS_CODES["torch_failed"][0]
    assert z[2][2] is None  # not probed
    assert "bad reshape" in heat.customdata[0][1]
    assert "3 of 5 failing" not in fig.layout.title.text and "2 of 5 failing" in fig.layout.title.text
    assert "batch, seq at fp32" in fig.layout.title.subtitle.text


def test_probe_figure_one_axis_and_many_axes():
    report = probe_report()
    for case in report.cases:
        case.sizes = {"batch": case.sizes["batch"]}
    report.symbols = ["batch"]
    report.cases = [c for i, c in enumerate(report.cases) if i in (0, 1, 2)]
    fig = viz.probe_figure(report)
    assert list(fig.data[0].y) == ["1", "2", "4"] and len(fig.data[0].x) == 1
    report.symbols = ["a", "b", "c"]
    assert fig.data[0].type == "heatmap" and viz.probe_figure(report).data[0].type == "table"


def test_opt_levels_figure_bars_are_medians_with_p95_whiskers():
    levels = opt_levels()
    fig = viz.opt_levels_figure(levels)
    bar = fig.data[0]
    assert list(bar.x) == ["disable", "basic", "extended", "all"]
    assert list(bar.y) == pytest.approx([levels.latency[lv].p50 * 1e3 for lv in bar.x])
    assert list(bar.error_y.array) == pytest.approx([(levels.latency[lv].p95 - levels.latency[lv].p50) * 1e3
                                                     for lv in bar.x])
    assert levels.best == "all" and "fastest: all" in fig.layout.title.subtitle.text


def test_quantize_figure_places_each_conversion_at_latency_and_gate_error():
    int8, fp16 = converted("int8", 0.001, 0.01), converted("fp16", 0.0015, 2e-4, "fp16")
    fig = viz.quantize_figure([int8, fp16])
    assert [t.meta["kind"] for t in fig.data] == ["int8", "fp16"]
    assert fig.data[0].x[0] == pytest.approx(int8.latency.p50 * 1e3)
    assert fig.data[0].y[0] == pytest.approx(int8.result.gate.max_abs)
    assert fig.layout.yaxis.type == "log"
    assert fig.layout.shapes[0].x0 == pytest.approx(int8.baseline.p50 * 1e3)
    assert int8.speedup == pytest.approx(2.0, rel=1e-6)


def test_figures_for_stage_dispatch_on_the_result_type():
    assert viz.figures_for_stage(StageResult("probe", False, None, "RuntimeError: boom")) == []
    names = [n for n, _ in viz.figures_for_stage(StageResult("optimize", True, opt_levels()))]
    assert names == ["levels", "ops"]
    names = [n for n, _ in viz.figures_for_stage(StageResult("int8", True, converted("int8", 1e-3, 1e-2)))]
    assert names == ["ops"]
    # the stage's name plays no part: a doctor's stage, or one named anything, gets its result's figures
    assert [n for n, _ in viz.figures_for_stage(StageResult("values", True, comparison(n=10)))] == [
        "values", "errors", "per-output"]
    assert [n for n, _ in viz.figures_for_stage(StageResult("anything", False, probe_report()))] == ["probe"]
    assert [n for n, _ in viz.figures_for(model_summary())] == ["ops"]
    assert [n for n, _ in viz.figures_for(sweep_result())] == ["latency", "speedup"]
    assert viz.figures_for("a string") == [] and viz.figures_for(None) == []
    title = viz.figures_for(converted("fp16", 1e-3, 1e-4, "fp16"))[0][1].layout.title.text
    assert "fp16" in title


def test_figures_say_what_they_take():
    with pytest.raises(InvalidInputError, match=r"Expected a wb.ProbeReport .*received str"):
        viz.probe_figure("report")
    with pytest.raises(InvalidInputError, match="Expected the optimize stage's wb.OptLevels"):
        viz.opt_levels_figure(optimize_result())
    with pytest.raises(InvalidInputError, match="Converted"):
        viz.quantize_figure([converted("int8", 1e-3, 1e-2), optimize_result()])
    with pytest.raises(InvalidInputError, match="top must be an int >= 1"):
        viz.op_histogram_figure(model_summary(), top=0)


def _every_figure() -> dict[str, object]:
    c = comparison(n=50)
    return {"scatter": viz.values_scatter(c), "histogram": viz.error_histogram(c), "bars": viz.error_bars(c),
            "latency": viz.latency_figure(sweep_result()), "speedup": viz.speedup_figure(sweep_result()),
            "probe": viz.probe_figure(probe_report()), "ops": viz.op_histogram_figure(optimize_result()),
            "levels": viz.opt_levels_figure(opt_levels()),
            "conversions": viz.quantize_figure([converted("int8", 1e-3, 1e-2), converted("fp16", 2e-3, 1e-4, "fp16")])}


@pytest.mark.parametrize("name", list(_every_figure()))
def test_titles_fit_half_a_1000_px_page_and_legends_sit_below_the_axis_titles(name: str):
    """A title longer than its figure is cut ("... \u00b7 CPU/disabl"); a legend at y=-0.18 of the plot
    sat on the x axis' title. At half of a 1000 px page a figure is ~460 px: about 56 characters of
    the 17 px title font, so a title and a panel's suffix (" \u00b7 CPU/disable/t4") stay under 36 + 20."""
    fig = _every_figure()[name]
    title = fig.layout.title
    assert len(title.text) <= 36, title.text
    assert title.yref == "container" and title.yanchor == "top"  # the subtitle and panel titles get room below
    legend = fig.layout.legend
    assert (legend.yref, legend.y, legend.yanchor) == ("container", 0, "bottom")
    assert fig.layout.margin.t >= 52 + (18 if title.subtitle.text else 0)
