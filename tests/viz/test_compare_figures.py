"""Comparison figures: values scatter, error histogram, per-output error bars."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
from _data import comparison

from workbench import viz
from workbench.core.compare import Comparison, compare_arrays
from workbench.viz._common import count_axis
from workbench.viz.compare import BOUNDS, FAILS, WITHIN_ATOL, WITHIN_RTOL, bounds, decade_step
from workbench.errors import InvalidInputError


def test_values_scatter_has_one_trace_per_output_and_the_identity_line():
    c = comparison(n=1000)
    fig = viz.values_scatter(c)
    assert isinstance(fig, go.Figure)
    assert [t.meta["output"] for t in fig.data] == ["logits", "pooled", None]
    logits = next(d for d in c.outputs if d.name == "logits")
    np.testing.assert_array_equal(fig.data[0].x, logits.expected.astype(np.float64))
    np.testing.assert_array_equal(fig.data[0].y, logits.actual.astype(np.float64))
    line = fig.data[-1]
    assert line.mode == "lines" and list(line.x) == list(line.y)
    assert line.x[0] <= min(fig.data[0].x.min(), fig.data[1].x.min())


def test_values_scatter_subsamples_to_max_points_and_keeps_the_worst_point():
    c = comparison(n=20000, samples=2)
    fig = viz.values_scatter(c, max_points=5000)
    points = sum(len(t.x) for t in fig.data[:-1])
    assert points <= 5000
    pooled = fig.data[1]
    worst = np.argmax(np.abs(np.asarray(pooled.y) - np.asarray(pooled.x)))
    assert abs(pooled.y[worst] - pooled.x[worst]) == pytest.approx(1e-3, rel=1e-2)
    logits = fig.data[0]
    assert len(logits.x) == 2500 and "2500 of 40000" in logits.name
    assert len(viz.values_scatter(c).data[0].x) <= viz.MAX_POINTS


def test_error_histogram_counts_every_finite_error_on_a_log_axis():
    c = comparison(n=1000, samples=2)
    fig = viz.error_histogram(c, bins=40)
    assert fig.layout.yaxis.type == "log"
    counts = {t.meta["output"]: int(np.sum(t.y)) for t in fig.data}
    assert counts == {"logits": 2000, "pooled": 40}
    assert len(fig.data[0].x) == 40
    assert fig.data[0].x[-1] + fig.data[0].width / 2 >= c.max_abs


def test_error_histogram_marks_atol_only_inside_the_range():
    exact = compare_arrays([np.ones(10, np.float32)], [np.ones(10, np.float32) + 1e-8], tolerance="fp32")
    fig = viz.error_histogram(exact)
    assert not fig.layout.shapes and not fig.layout.annotations  # no note over the plot (it covered the top tick)
    subtitle = fig.layout.title.subtitle.text
    assert "every error within atol" in subtitle and "(largest 0 &lt; atol 1e-05)" in subtitle
    loose = compare_arrays([np.zeros(10, np.float32)], [np.full(10, 1e-3, np.float32)], tolerance="fp32")
    fig = viz.error_histogram(loose)
    assert fig.layout.shapes[0].x0 == pytest.approx(loose.atol)


def test_error_bars_show_the_worst_per_output_and_the_tolerance_lines():
    c = comparison(n=500, samples=3)
    fig = viz.error_bars(c)
    abs_bar, rel_bar, beyond_bar = fig.data
    assert list(abs_bar.x) == ["logits", "pooled"]
    for bar, attr in ((abs_bar, "max_abs"), (rel_bar, "max_rel")):
        for name, value in zip(bar.x, bar.y):
            assert value == pytest.approx(max(getattr(d, attr) for d in c.outputs if d.name == name))
    assert list(abs_bar.marker.color) == ["#1a7f37", "#cf222e"]  # logits pass, pooled fails
    assert list(beyond_bar.marker.color) == ["#1a7f37", "#cf222e"]
    lines = sorted(s.y0 for s in fig.layout.shapes)
    assert lines == sorted([c.atol, c.rtol])
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    titles = [a.text for a in fig.layout.annotations]  # the tolerances are said where plotly cannot misplace
    assert f"atol {c.atol:g}" in titles[0] and f"rtol {c.rtol:g}" in titles[1]  # them (a log axis' annotations)


def test_error_bars_label_powers_of_ten_only():
    """Plotly labels 2 and 5 between the decades of a short log axis, crowding a narrow panel."""
    fig = viz.error_bars(comparison(n=500, samples=3))
    for axis in (fig.layout.yaxis, fig.layout.yaxis2):
        low, high = axis.range
        assert isinstance(axis.dtick, int) and axis.dtick >= 1 and (high - low) / axis.dtick <= 6
    assert decade_step([-12.5, 0.3]) == 3 and decade_step([-7.5, -4.7]) == 1 and decade_step(None) == 1


def _small_values_within_atol() -> Comparison:
    """Notebook 03's int8 case: every |error| is within atol, but one element's expected value is
    tiny, so its relative error (0.68) is far above rtol (0.1); the comparison passes."""
    e = np.array([0.03, 1.0, -2.0, 0.5], np.float32)
    a = e + np.array([0.0203, 0.01, -0.02, 0.001], np.float32)
    return compare_arrays({"logits": e}, {"logits": a}, tolerance="int8")


def test_a_pass_with_a_relative_error_above_rtol_shows_that_atol_covers_it():
    c = _small_values_within_atol()
    assert c.ok and c.max_rel > c.rtol
    bars = viz.error_bars(c)
    rel, beyond = bars.data[1], bars.data[2]
    assert rel.y[0] == pytest.approx(c.max_rel) and beyond.y == (None,)  # no element beyond atol: rtol judged none
    assert "within atol" in bars.layout.title.subtitle.text
    scatter = viz.values_scatter(c)
    points = scatter.data[0]
    assert set(points.marker.color) == {BOUNDS[WITHIN_ATOL][1]} and set(points.customdata) == {"within atol"}
    assert "within atol 4" in scatter.layout.title.subtitle.text
    histogram = viz.error_histogram(c)
    assert "every error within atol" in histogram.layout.title.subtitle.text


def test_each_element_is_marked_by_the_bound_it_passes_by():
    e = np.array([1.0, 10.0, 10.0, 0.0], np.float64)
    a = np.array([1.0 + 5e-6, 10.0 + 5e-4, 10.0 + 5e-2, 1e-3], np.float64)
    assert list(bounds(e, a, rtol=1e-4, atol=1e-5)) == [WITHIN_ATOL, WITHIN_RTOL, FAILS, FAILS]
    c = compare_arrays({"y": e}, {"y": a}, tolerance="fp32")
    fig = viz.values_scatter(c)
    colours = dict(zip(fig.data[0].x, fig.data[0].marker.color))
    assert colours[1.0] == BOUNDS[WITHIN_ATOL][1] and colours[0.0] == BOUNDS[FAILS][1]
    key = fig.layout.title.subtitle.text
    assert "within atol 1" in key and "within atol + rtol\u00b7|expected| 1" in key and "fails 2" in key
    histogram = viz.error_histogram(c)
    assert "3 beyond atol, 1 of them within atol + rtol" in histogram.layout.title.subtitle.text
    bars = viz.error_bars(c)
    assert bars.data[2].y[0] == pytest.approx(1e-3 / np.finfo(np.float64).tiny)  # the 0-expected element


def test_count_axes_tick_whole_numbers_only():
    fig = viz.error_histogram(_small_values_within_atol())
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.dtick == "D1" and fig.layout.yaxis.tickformat == "d"
    big = viz.error_histogram(comparison(n=5000))
    assert big.layout.yaxis.dtick == 1  # a wide range: the powers of ten
    assert count_axis(3) == dict(tick0=0, dtick=1, tickformat="d", rangemode="tozero")
    assert [count_axis(top)["dtick"] for top in (8, 9, 17, 40, 100, 2500)] == [1, 2, 5, 5, 20, 500]


def test_shape_mismatch_is_drawn_without_breaking():
    c = compare_arrays([np.zeros((2, 3))], [np.zeros((3, 2))], tolerance="fp32")
    assert len(viz.values_scatter(c).data) == 0  # nothing to pair: an empty figure with a note
    bars = viz.error_bars(c)
    assert bars.data[0].y == (None,) and "shape mismatch" in bars.data[0].text[0]


def test_figures_refuse_other_objects():
    with pytest.raises(InvalidInputError, match="Expected a wb.Comparison"):
        viz.values_scatter({"logits": 1})
    with pytest.raises(InvalidInputError, match="max_points"):
        viz.values_scatter(comparison(n=10), max_points=0)
