"""Sweep figures: latency vs batch per config and seq, speedup over eager."""

from __future__ import annotations

import numpy as np
import pytest
from _data import sweep_result

from workbench import viz
from workbench.core.sweep import SweepResult, SweepRow
from workbench.errors import InvalidInputError


def _trace(fig, **meta):
    return next(t for t in fig.data if all(t.meta.get(k) == v for k, v in meta.items()))


def test_latency_figure_has_a_line_and_band_per_config_and_seq():
    result = sweep_result()
    fig = viz.latency_figure(result)
    assert len(fig.data) == 2 * 2 * 2  # (line + band) x 2 configs x 2 seqs; the failed cell is left out
    assert [a.text for a in fig.layout.annotations] == ["seq = 16", "seq = 32"]
    line = _trace(fig, config="CPU/all", seq=32, kind="p50")
    rows = [r for r in result.rows if r.config == "CPU/all" and r.seq == 32]
    assert list(line.x) == [r.batch for r in rows]
    assert list(line.y) == pytest.approx([r.p50 * 1e3 for r in rows])
    band = _trace(fig, config="CPU/all", seq=32, kind="band")
    quartiles = [np.percentile(result.measurement("CPU/all", r.batch, 32).raw_times, [25, 75]) * 1e3 for r in rows]
    assert list(band.y) == pytest.approx([q[1] for q in quartiles] + [q[0] for q in quartiles][::-1])
    assert band.fill == "toself" and "p25..p75" in fig.layout.title.subtitle.text
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == ["eager", "CPU/all"]  # one legend entry per config


def test_one_slow_run_does_not_flatten_the_lines():
    """A p50..p95 band grew 50x with one slow run of ten and squashed every line to the bottom."""
    fig = viz.latency_figure(sweep_result(slow_run=True))
    band = _trace(fig, config="CPU/all", seq=32, kind="band")
    line = _trace(fig, config="CPU/all", seq=32, kind="p50")
    assert max(band.y) < 1.5 * max(line.y)  # the middle half of the runs, not the outlier


def test_each_row_of_panels_has_one_y_title_and_the_legend_sits_under_the_x_titles():
    fig = viz.latency_figure(sweep_result())
    assert fig.layout.yaxis.title.text == "latency (ms)"
    assert fig.layout.yaxis2.title.text is None  # it would be drawn over the first panel's ticks
    rows = [SweepRow("eager", 1, s, p50=1e-3, p95=1e-3) for s in (1, 2, 3, 4)]
    four = viz.latency_figure(SweepResult(rows=rows, total=4))  # 3 columns, 2 rows
    titled = [k for k, v in four.layout.to_plotly_json().items() if k.startswith("yaxis") and v.get("title")]
    assert titled == ["yaxis", "yaxis4"]
    for figure in (fig, viz.speedup_figure(sweep_result())):
        legend = figure.layout.legend
        assert (legend.yref, legend.y, legend.yanchor) == ("container", 0, "bottom")


def test_latency_figure_without_band_and_without_seq_axis():
    rows = [SweepRow("eager", b, None, p50=b * 1e-3, p95=b * 2e-3) for b in (1, 2, 8)]
    fig = viz.latency_figure(SweepResult(rows=rows, total=3))  # no raw times: no band, and the subtitle says so
    assert len(fig.data) == 1 and list(fig.data[0].x) == [1, 2, 8]
    assert fig.layout.annotations[0].text == "no sequence axis" and "p25" not in fig.layout.title.subtitle.text
    assert len(viz.latency_figure(sweep_result(), band=False).data) == 4


def test_speedup_figure_bars_equal_the_rows_speedups():
    result = sweep_result()
    fig = viz.speedup_figure(result)
    assert [t.meta["config"] for t in fig.data] == ["CPU/all"]
    rows = [r for r in result.rows if r.config == "CPU/all"]
    assert list(fig.data[0].y) == pytest.approx([r.speedup for r in rows])
    assert list(fig.data[0].x) == [f"b={r.batch}<br>s={r.seq}" for r in rows]  # two short lines: level labels
    assert fig.layout.shapes[0].y0 == 1.0
    assert fig.data[0].error_y.array is None and "whiskers" not in fig.layout.title.subtitle.text  # no intervals


def test_speedup_figure_draws_intervals_and_marks_unclear_cells():
    rows = [SweepRow("eager", b, None, p50=1e-3, speedup=1.0) for b in (1, 2, 4)]
    rows += [SweepRow("CPU/all", 1, None, p50=5e-4, speedup=2.0, speedup_low=1.8, speedup_high=2.3, verdict="faster"),
             SweepRow("CPU/all", 2, None, p50=1e-3, speedup=1.02, speedup_low=0.9, speedup_high=1.2,
                      verdict="no clear difference"),
             SweepRow("CPU/all", 4, None, p50=2e-3, speedup=0.5, speedup_low=0.2, speedup_high=float("inf"),
                      verdict="no clear difference")]
    fig = viz.speedup_figure(SweepResult(rows=rows, total=6))
    bars = fig.data[0]
    assert list(bars.x) == ["b=1", "b=2", "b=4"] and list(bars.y) == pytest.approx([2.0, 1.02, 0.5])
    assert list(bars.error_y.array) == pytest.approx([0.3, 0.18, 4.0 - 0.5])  # an unbounded top is cut at 2x the top bar
    assert list(bars.error_y.arrayminus) == pytest.approx([0.2, 0.12, 0.3])
    assert bars.meta["unclear"] == [False, True, True]
    assert list(bars.marker.pattern.shape) == ["", "/", "/"] and list(bars.marker.opacity) == [1.0, 0.45, 0.45]
    assert list(bars.text) == ["2.00x", "1.02x<br>unclear", "0.50x<br>unclear"]
    assert "no clear difference" in fig.layout.title.subtitle.text and "95% interval" in fig.layout.title.subtitle.text


def test_sweep_figures_with_nothing_to_draw_say_so():
    failed = SweepResult(rows=[SweepRow("eager", 1, None, error="inputs: boom")], total=1)
    for fig in (viz.latency_figure(failed), viz.speedup_figure(failed)):
        assert len(fig.data) == 0 and fig.layout.annotations
    with pytest.raises(InvalidInputError, match="SweepResult"):
        viz.latency_figure([1, 2])


def test_a_band_far_above_the_lines_is_cut_with_a_note():
    result = sweep_result()
    cell = result.measurement("CPU/all", 4, 32)
    cell.raw_times[:] = [t * (40 if i >= 2 else 1) for i, t in enumerate(cell.raw_times)]  # most runs slow
    cell.__dict__.pop("_quantiles", None)
    fig = viz.latency_figure(result)
    line_top = max(max(t.y) for t in fig.data if t.meta["kind"] == "p50" and t.meta["seq"] == 32)
    assert fig.layout.yaxis2.range[1] == pytest.approx(2.5 * line_top * 1.05)
    assert fig.layout.yaxis.range is None  # the other panel is drawn whole
    assert "cut at 2.5" in fig.layout.title.subtitle.text
    assert "cut" not in viz.latency_figure(sweep_result()).layout.title.subtitle.text
