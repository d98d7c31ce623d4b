"""One self-contained HTML report of a ``PipelineRun``: summary table, a section per stage with its
figures and tables, failures with their messages. plotly.js is embedded once, so the file opens
offline and can be mailed or attached to a CI run.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from workbench.core._format import badge, esc, fmt_time
from workbench.core.pipeline import STAGES, PipelineRun
from workbench.core.stages import StageResult
from workbench.errors import InvalidInputError, brief, describe
from workbench.viz.nodes import op_time_figure, top_nodes_html
from workbench.viz.pipeline import figures_for_stage, run_level_figures

_TITLES = {s.name: s.title for s in STAGES}
_FIGURE_CONFIG = {"displaylogo": False, "responsive": True}

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0 auto;
       max-width: 1180px; padding: 0 24px 48px; color: #1f2328; }
h1 { margin-top: 28px; } h2 { border-bottom: 1px solid #d0d7de; padding-bottom: 4px; margin-top: 36px; }
table.wb-table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
table.wb-table th, table.wb-table td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left;
       vertical-align: top; }
table.wb-table th { background: #f6f8fa; }
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; font-size: 12px; white-space: pre-wrap; }
pre.error { background: #ffebe9; border-left: 4px solid #cf222e; }
.meta { color: #57606a; font-size: 13px; } .figure { margin: 12px 0; }
details { margin: 8px 0; } summary { cursor: pointer; color: #0969da; }
"""


def _figure_html(fig: go.Figure) -> str:
    div = fig.to_html(full_html=False, include_plotlyjs=False, config=_FIGURE_CONFIG,
                      div_id=f"wb-fig-{uuid.uuid4().hex[:10]}", default_width="100%")
    return f"<div class='figure'>{div}</div>"


def _summary_table(run: PipelineRun) -> str:
    rows = "".join(
        f"<tr><td><a href='#stage-{esc(s.name)}'>{esc(s.name)}</a></td><td>{badge(s.status)}</td>"
        f"<td>{fmt_time(s.duration_s) if s.status is not None else ''}</td>"
        f"<td>{esc(s.exception or s.summary)}</td></tr>"
        for s in run.stages
    )
    return ("<table class='wb-table'><thead><tr><th>stage</th><th>status</th><th>time</th><th>summary</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>")


def _result_html(result: Any) -> str:
    render = getattr(result, "_repr_html_", None)
    if render is None:
        return ""
    try:
        return render()
    except Exception as exc:  # a broken repr must not lose the report
        return f"<pre class='error'>could not render this result: {esc(brief(exc))}</pre>"


def _stage_section(stage: StageResult, figures: list[tuple[str, go.Figure]] | str) -> str:
    parts = [f"<section id='stage-{esc(stage.name)}'><h2>{esc(_TITLES.get(stage.name, stage.name))} "
             f"{badge(stage.status)}</h2>",
             f"<p class='meta'>stage <code>{esc(stage.name)}</code>"
             + (f", {fmt_time(stage.duration_s)}" if stage.status is not None else "") + "</p>"]
    if stage.summary:
        parts.append(f"<p>{esc(stage.summary)}</p>")
    if stage.exception:
        parts.append(f"<pre class='error'>{esc(stage.exception)}</pre>")
    if stage.traceback:
        parts.append(f"<details><summary>traceback</summary><pre>{esc(stage.traceback)}</pre></details>")
    if stage.warnings:
        items = "".join(f"<li>{esc(w[:1000])}</li>" for w in stage.warnings)
        parts.append(f"<details><summary>{len(stage.warnings)} warning(s)</summary><ul>{items}</ul></details>")
    if isinstance(figures, str):
        parts.append(f"<pre class='error'>figures could not be drawn: {esc(figures)}</pre>")
    else:
        parts.extend(_figure_html(fig) for _, fig in figures)
    table = _result_html(stage.result)
    if table:
        parts.append(f"<details><summary>details</summary>{table}</details>")
    return "".join(parts) + "</section>"


def _figures(run: PipelineRun) -> tuple[dict[str, list[tuple[str, go.Figure]] | str], list[str]]:
    """Figures per stage, and notes on figures that could not be drawn. A stage whose figures fail
    gets the error text instead of figures; the other stages still draw."""
    out: dict[str, list[tuple[str, go.Figure]] | str] = {}
    notes: list[str] = []
    for stage in run.stages:
        try:
            out[stage.name] = figures_for_stage(stage)
        except Exception as exc:  # one broken result must not lose the report
            out[stage.name] = brief(exc)
    try:
        extra = run_level_figures(run)
    except Exception as exc:
        extra = {}
        notes.append(f"figures across stages could not be drawn: {brief(exc)}")
    for name, figures in extra.items():
        current = out.get(name, [])
        if isinstance(current, list):
            out[name] = current + figures
    return out, notes


def _exported_file(run: PipelineRun) -> Path | None:
    try:
        stage = run.stage("export")
    except InvalidInputError:
        return None
    out = getattr(stage.result, "out", None)
    return Path(out) if stage.status and out is not None and Path(out).exists() else None


def _node_section(run: PipelineRun, inputs: Any, stats: Any) -> tuple[str, bool]:
    """"Where the time goes": top nodes and time by op type (a static snapshot of the latency overlay).

    ``stats`` (a ``NodeStats``) is shown as given; else, with ``inputs`` and an export that passed,
    the exported file is profiled here (3 runs, CPU defaults). Returns (html, drew a figure)."""
    if stats is None:
        onnx_file = _exported_file(run)
        if inputs is None or onnx_file is None:
            return "", False
        try:
            from workbench.core.nodes import node_stats

            stats = node_stats(onnx_file, inputs, metrics=("latency", "provider", "precision"), runs=3)
        except Exception as exc:  # the profile is extra: the rest of the report stands without it
            return (f"<section id='nodes'><h2>Where the time goes</h2><pre class='error'>could not profile the "
                    f"exported file: {esc(brief(exc))}</pre></section>"), False
    try:
        fig = _figure_html(op_time_figure(stats))
        table = top_nodes_html(stats, 10, "latency")
    except Exception as exc:
        return f"<section id='nodes'><h2>Where the time goes</h2><pre class='error'>{esc(brief(exc))}</pre></section>", False
    notes = "".join(f"<li>{esc(n)}</li>" for n in stats.notes)
    return (f"<section id='nodes'><h2>Where the time goes</h2><p class='meta'>{esc(stats._headline())}</p>"
            f"{table}{fig}{f'<ul class=meta>{notes}</ul>' if notes else ''}</section>"), True


def render_report(run: PipelineRun, *, inputs: Any = None, node_stats: Any = None) -> str:
    """The report of ``run`` as one HTML document (plotly.js inlined once, if there are figures).

    With ``inputs`` (e.g. the case's ``example_inputs``) and an export that passed, or with a
    ``node_stats`` result, the report adds "Where the time goes": the slowest nodes and time by op type.
    """
    if not isinstance(run, PipelineRun):
        raise InvalidInputError(f"Expected a PipelineRun from run_pipeline(...), received {describe(run)}.")
    figures, notes = _figures(run)
    nodes_html, node_figure = _node_section(run, inputs, node_stats)
    has_figures = node_figure or any(isinstance(f, list) and f for f in figures.values())
    verdict = "CANCELLED" if run.cancelled else ("PASS" if run.ok else f"FAIL: {len(run.failed)} stage(s) failed")
    versions = ", ".join(f"{esc(k)} {esc(v)}" for k, v in run.versions.items())
    plotly_js = f"<script type='text/javascript'>{get_plotlyjs()}</script>" if has_figures else ""
    sections = "".join(_stage_section(s, figures.get(s.name, [])) for s in run.stages)
    title = f"onnx-workbench report: {esc(run.name)}"
    notes_html = "".join(f"<pre class='error'>{esc(n)}</pre>" for n in notes)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{title}</title>"
        f"<style>{_CSS}</style>{plotly_js}</head><body>"
        f"<h1>{title} {badge(run.ok if not run.cancelled else None, verdict)}</h1>"
        f"<p class='meta'>started {esc(run.started_at)} (UTC), {fmt_time(run.duration_s)}, "
        f"{'quick' if run.quick else 'full'} budget; files in <code>{esc(str(run.work_dir))}</code><br>"
        f"{versions}</p>{_summary_table(run)}{sections}{nodes_html}{notes_html}"
        "<p class='meta'>Made by onnx-workbench.</p></body></html>"
    )


def write_report(run: PipelineRun, out: str | os.PathLike[str], *, inputs: Any = None, node_stats: Any = None) -> Path:
    """Write the HTML report of ``run`` to ``out`` (atomically) and return that path (``inputs`` and
    ``node_stats`` as in ``render_report``)."""
    if not isinstance(out, (str, os.PathLike)):
        raise InvalidInputError(f"out must be a str or Path for the .html file, received {describe(out)}.")
    target = Path(out)
    if target.is_dir():
        raise InvalidInputError(f"'{target}' is a folder. Pass a file path such as '{target / 'report.html'}'.")
    text = render_report(run, inputs=inputs, node_stats=node_stats)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
