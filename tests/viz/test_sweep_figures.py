"""Sweep figures: latency vs batch per config and seq, speedup over eager."""

from __future__ import annotations

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
    assert list(band.y) == pytest.approx([r.p95 * 1e3 for r in rows] + [r.p50 * 1e3 for r in rows][::-1])
    assert band.fill == "toself"
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == ["eager", "CPU/all"]  # one legend entry per config


def test_latency_figure_without_band_and_without_seq_axis():
    rows = [SweepRow("eager", b, None, p50=b * 1e-3, p95=b * 2e-3) for b in (1, 2, 8)]
    fig = viz.latency_figure(SweepResult(rows=rows, total=3), band=False)
    assert len(fig.data) == 1 and list(fig.data[0].x) == [1, 2, 8]
    assert fig.layout.annotations[0].text == "no sequence axis"


def test_speedup_figure_bars_equal_the_rows_speedups():
    result = sweep_result()
    fig = viz.speedup_figure(result)
    assert [t.meta["config"] for t in fig.data] == ["CPU/all"]
    rows = [r for r in result.rows if r.config == "CPU/all"]
    assert list(fig.data[0].y) == pytest.approx([r.speedup for r in rows])
    assert list(fig.data[0].x) == [f"b={r.batch}, s={r.seq}" for r in rows]
    assert fig.layout.shapes[0].y0 == 1.0


def test_sweep_figures_with_nothing_to_draw_say_so():
    failed = SweepResult(rows=[SweepRow("eager", 1, None, error="inputs: boom")], total=1)
    for fig in (viz.latency_figure(failed), viz.speedup_figure(failed)):
        assert len(fig.data) == 0 and fig.layout.annotations
    with pytest.raises(InvalidInputError, match="SweepResult"):
        viz.latency_figure([1, 2])
