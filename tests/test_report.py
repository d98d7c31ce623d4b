"""write_report: one self-contained HTML file, plotly.js once, every stage with its figures or error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from plotly.offline import get_plotlyjs

sys.path.insert(0, str(Path(__file__).parent / "viz"))
from _data import comparison, converted, opt_levels, probe_report, sweep_result  # noqa: E402

from workbench.core.pipeline import PipelineRun  # noqa: E402
from workbench.core.stages import StageResult  # noqa: E402
from workbench.errors import InvalidInputError  # noqa: E402
from workbench.report import render_report, write_report  # noqa: E402

PLOTLY_HEADER = get_plotlyjs()[:40]


def _run(tmp_path: Path) -> PipelineRun:
    stages = [
        StageResult("export", True, None, summary="dynamo opset 18"),
        StageResult("summarize", None, summary="skipped"),
        StageResult("compare", True, comparison(n=300), summary="PASS"),
        StageResult("probe", False, probe_report(), summary="2 of 5 failing"),
        StageResult("optimize", True, opt_levels()),
        StageResult("int8", True, converted("int8", 1e-3, 1e-2)),
        StageResult("fp16", False, None, exception="WorkbenchError: convert <float16> failed",
                    traceback="Traceback (most recent call last):\n  boom", summary="raised WorkbenchError"),
        StageResult("sweep", True, sweep_result(), warnings=["UserWarning: noisy machine"]),
    ]
    return PipelineRun("mlp", tmp_path, stages, quick=True, duration_s=3.5, started_at="2025-01-01T00:00:00+00:00",
                       versions={"torch": "2.x"})


def test_the_report_is_one_file_with_plotly_inlined_once(tmp_path: Path):
    path = write_report(_run(tmp_path), tmp_path / "out" / "report.html")
    assert path == tmp_path / "out" / "report.html" and path.is_file()
    text = path.read_text(encoding="utf-8")
    assert text.count(PLOTLY_HEADER) == 1
    assert "<script src=" not in text and "<link" not in text  # nothing to fetch: renders offline
    # compare 3, probe 1, optimize 2, int8 ops + accuracy-vs-latency 2, sweep 2
    assert text.count("Plotly.newPlot(") == 10
    assert not list(path.parent.glob(".*.tmp"))


def test_the_report_shows_every_stage_and_the_failures(tmp_path: Path):
    text = render_report(_run(tmp_path))
    for name in ("export", "summarize", "compare", "probe", "optimize", "int8", "fp16", "sweep"):
        assert f"id='stage-{name}'" in text and f"href='#stage-{name}'" in text
    assert "WorkbenchError: convert &lt;float16&gt; failed" in text  # escaped
    assert "Traceback (most recent call last)" in text
    assert "UserWarning: noisy machine" in text
    assert "NOT RUN" in text and "FAIL: 2 stage(s) failed" in text


def test_a_run_without_figures_has_no_plotly(tmp_path: Path):
    run = PipelineRun("m", tmp_path, [StageResult("export", False, None, "SpecError: bad names")])
    text = render_report(run)
    assert PLOTLY_HEADER not in text and "SpecError: bad names" in text


def test_a_figure_that_cannot_be_drawn_is_reported_in_its_section(tmp_path: Path):
    run = _run(tmp_path)
    run.stages[2].result.outputs = "not a list"  # breaks the comparison figures only
    text = render_report(run)
    assert "figures could not be drawn" in text
    assert text.count("Plotly.newPlot(") == 7


def test_strings_from_the_model_and_exceptions_are_escaped(tmp_path: Path):
    stages = [StageResult("export", False, None, exception="ExportError: bad <b>name</b> & 'quote'",
                          summary="<img src=x onerror=alert(1)>")]
    text = render_report(PipelineRun("<script>alert(1)</script>", tmp_path / "<dir>", stages))
    assert "<script>alert(1)" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<b>name</b>" not in text and "bad &lt;b&gt;name&lt;/b&gt; &amp; &#x27;quote&#x27;" in text
    assert "<img" not in text and "&lt;dir&gt;" in text


def test_bad_arguments(tmp_path: Path):
    with pytest.raises(InvalidInputError, match="is a folder"):
        write_report(_run(tmp_path), tmp_path)
    with pytest.raises(InvalidInputError, match="PipelineRun"):
        render_report({"stages": []})  # type: ignore[arg-type]


def test_the_report_shows_where_the_time_goes(tmp_path: Path, export_zoo, mlp):
    """With the case's inputs and an export that passed, the report profiles the file: top nodes and
    time by op type (a static snapshot of the latency overlay)."""
    from workbench.core.nodes import node_stats

    exported = export_zoo("mlp")
    run = PipelineRun("mlp", tmp_path, [StageResult("export", True, exported, summary="ok")], quick=True)
    text = render_report(run, inputs=mlp.make_inputs(batch=2))
    assert "Where the time goes" in text and "nodes by latency" in text and "Time by op type" in text
    assert text.count("Plotly.newPlot(") == 1 and text.count(PLOTLY_HEADER) == 1
    assert "Where the time goes" not in render_report(run)  # no inputs: nothing profiled
    stats = node_stats(exported.out, mlp.make_inputs(batch=2), metrics=("latency",), runs=1)
    top = stats.top(1, "latency")[0].name
    assert top in render_report(run, node_stats=stats)
