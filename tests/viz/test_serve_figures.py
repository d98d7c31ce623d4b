"""Load-test figures: throughput and latency percentiles against concurrency, one result or several."""

from __future__ import annotations

from typing import Any

import pytest

from workbench import viz
from workbench.core.serve import LoadLevel, LoadResult
from workbench.errors import InvalidInputError


def _level(concurrency: int, rps: float, p99: float, *, errors: dict[int, int] | None = None, ok: int = 100,
           mean_batch: float | None = 4.0) -> LoadLevel:
    return LoadLevel(concurrency=concurrency, requests=ok + sum((errors or {}).values()), ok=ok, errors=errors or {},
                     throughput_rps=rps, p50_ms=p99 / 3, p95_ms=p99 / 1.5, p99_ms=p99, mean_batch=mean_batch, wrong=0)


def _result(*levels: LoadLevel, cancelled: bool = False) -> LoadResult:
    return LoadResult(levels=list(levels), url="http://127.0.0.1:1", duration_s=1.0, client_cpu_s=0.5,
                      cancelled=cancelled)


def _trace(fig: Any, **meta: Any) -> Any:
    return next(t for t in fig.data if all(t.meta.get(k) == v for k, v in meta.items()))


def test_throughput_figure_draws_a_line_per_result_in_order_of_concurrency() -> None:
    batched = _result(_level(32, 900.0, 40.0), _level(1, 100.0, 12.0), _level(8, 600.0, 20.0))
    naive = _result(_level(1, 90.0, 11.0), _level(32, 120.0, 300.0))
    fig = viz.load_throughput_figure({"workbench": batched, "naive": naive})
    line = _trace(fig, label="workbench", kind="throughput")
    assert list(line.x) == [1, 8, 32] and list(line.y) == [100.0, 600.0, 900.0]
    assert list(_trace(fig, label="naive").y) == [90.0, 120.0]
    assert fig.layout.xaxis.type == "log" and list(fig.layout.xaxis.tickvals) == [1, 8, 32]
    assert "requests/s" in fig.layout.yaxis.title.text
    single = viz.load_throughput_figure(batched)
    assert [t.meta["label"] for t in single.data] == ["server"] and single.layout.showlegend is False


def test_latency_figure_draws_the_percentiles_and_skips_levels_without_answers() -> None:
    result = _result(_level(1, 100.0, 12.0), _level(64, 0.0, float("nan"), ok=0, errors={503: 40}))
    fig = viz.load_latency_figure(result)
    assert [t.meta["kind"] for t in fig.data] == ["p50", "p95", "p99"]
    p99 = _trace(fig, kind="p99")
    assert list(p99.x) == [1] and list(p99.y) == pytest.approx([12.0])  # the level with no answer is left out
    assert "40 requests failed (503: 40)" in fig.layout.title.subtitle.text
    only = viz.load_latency_figure(result, percentiles=["p99"])
    assert [t.meta["kind"] for t in only.data] == ["p99"]
    with pytest.raises(InvalidInputError, match="percentiles"):
        viz.load_latency_figure(result, percentiles=["p42"])


def test_load_figure_puts_throughput_and_p99_side_by_side() -> None:
    result = _result(_level(1, 100.0, 12.0, mean_batch=1.0), _level(16, 700.0, 30.0, mean_batch=9.5))
    fig = viz.load_figure(result)
    assert [a.text for a in fig.layout.annotations] == ["throughput (requests/s)", "p99 latency (ms)"]
    assert fig.data[0].xaxis == "x" and list(fig.data[0].y) == [100.0, 700.0]
    assert fig.data[1].xaxis == "x2" and list(fig.data[1].y) == pytest.approx([12.0, 30.0])
    assert "1.0\u20139.5" in fig.layout.title.subtitle.text
    two = viz.load_figure({"max_batch=1": result, "max_batch=16": result})
    assert len(two.data) == 4 and two.layout.showlegend is True


def test_empty_and_wrong_inputs() -> None:
    empty = viz.load_figure(_result(cancelled=True))
    assert not empty.data and "No load levels" in empty.layout.annotations[0].text
    assert not viz.load_latency_figure(_result(_level(8, 0.0, float("nan"), ok=0, errors={500: 3}))).data
    for bad in (42, {}, {"a": 1}, [_result()]):
        with pytest.raises(InvalidInputError, match="LoadResult"):
            viz.load_throughput_figure(bad)
