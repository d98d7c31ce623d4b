"""The Tuner's HTML: the table of candidates (live and final) and the verdict box. Every string that
comes from a model, a file or an exception goes through ``esc`` (or ``clipped_html``)."""

from __future__ import annotations

from typing import Any, Sequence

from workbench.core._format import esc
from workbench.viz.tune import mean_p50_ms
from workbench.widgets._base import clipped_html

_STATUS_COLOR = {"chosen": "#1a7f37", "passed": "#0969da", "rejected": "#cf222e", "pruned": "#6e7781",
                 "failed": "#cf222e"}
_ORDER = {"chosen": 0, "passed": 1, "rejected": 2, "pruned": 3, "failed": 4}


def _shape_label(batch: int, seq: int | None) -> str:
    return f"{batch}\u00d7{seq}" if seq is not None else f"b{batch}"


def _num(value: float | None, fmt: str = ".3g") -> str:
    return "-" if value is None else format(value, fmt)


def _speedup_cell(timing: Any) -> str:
    ratio = getattr(timing, "speedup", None) if timing is not None else None
    if ratio is None:
        return "<td>-</td>"
    weight = "font-weight: 600;" if ratio.clear and ratio.value > 1 else ""
    colour = "" if ratio.clear else "color: #6e7781;"
    return (f"<td style='{weight}{colour}' title='{esc(str(ratio))}, {esc(ratio.verdict)}'>"
            f"{ratio.value:.2f}\u00d7{'' if ratio.clear else ' ?'}</td>")


def candidates_table_html(candidates: Sequence[Any], grid: Sequence[tuple[int, int | None]], *,
                          total_note: str = "") -> str:
    """One row per candidate (chosen first, then passed, rejected, pruned, failed; fastest first
    within each): name, status, precision, p50 per shape, speed-up over eager per shape (a '?' where
    the interval contains 1), max |error|, top-1 agreement, size, and why it was rejected or failed."""
    shapes = [tuple(s) for s in grid]
    head = ["candidate", "status", "precision", *[f"p50 {_shape_label(*s)} (ms)" for s in shapes],
            *[f"vs eager {_shape_label(*s)}" for s in shapes], "max |err|", "top-1", "MiB", "note"]
    rows = []
    for c in sorted(candidates, key=lambda c: (_ORDER.get(c.status, 9), mean_p50_ms(c.timings) or float("inf"))):
        by_shape = {(t.batch, t.seq): t for t in c.timings}
        p50 = "".join(f"<td>{_num(getattr(by_shape.get(s), 'p50_ms', None))}</td>" for s in shapes)
        speed = "".join(_speedup_cell(by_shape.get(s)) for s in shapes)
        top1 = "-" if c.top1_agreement is None else f"{100 * c.top1_agreement:.1f}%"
        why = c.error or getattr(c, "note", None)
        note = clipped_html(why, 120) if why else ""
        colour = _STATUS_COLOR.get(c.status, "#6e7781")
        rows.append(f"<tr class='wb-tune-row wb-tune-{esc(c.status)}'><td style='text-align: left;'>"
                    f"{esc(c.candidate.name)}</td><td style='color: {colour};'>{esc(c.status)}</td>"
                    f"<td>{esc(c.candidate.precision)}</td>{p50}{speed}<td>{_num(c.max_abs_error, '.2e')}</td>"
                    f"<td>{top1}</td><td>{c.size_bytes / 2**20:.2f}</td><td style='text-align: left;'>{note}</td></tr>")
    header = "".join(f"<th>{esc(h)}</th>" for h in head)
    summary = f"{len(candidates)} candidate(s)" + (f" \u00b7 {esc(total_note)}" if total_note else "")
    return (f"<div class='wb-tune-summary' style='margin: 4px 0;'>{summary}</div>"
            f"<div style='overflow-x: auto;'><table class='wb-tune-table' style='font-size: 12px; white-space: nowrap;'>"
            f"<thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def verdict_html(result: Any) -> str:
    """The tune's verdict in a box: green when a configuration was chosen, amber when PyTorch stays."""
    chosen = result.chosen
    colour, bg = ("#1a7f37", "#dafbe1") if chosen is not None else ("#9a6700", "#fff8c5")
    lines = [f"<b>{esc(result.verdict)}</b>"]
    if chosen is not None:
        lines.append(f"Chosen: <code>{esc(chosen.candidate.name)}</code> \u00b7 config "
                     f"<code>{esc(chosen.candidate.config.label())}</code> \u00b7 file "
                     f"<code>{esc(getattr(result.onnx_model, 'name', result.onnx_model))}</code>")
    per_shape = {k: v for k, v in (result.chosen_per_shape or {}).items() if v is not None}
    if per_shape and any(v is not chosen for v in per_shape.values()):
        best = ", ".join(f"{_shape_label(*k)}: {esc(v.candidate.name)}" for k, v in per_shape.items())
        lines.append(f"Fastest per shape: {best}")
    lines.append(f"{len(result.candidates)} candidates in {result.elapsed_s:.0f} s of a {result.budget_s:.0f} s budget, "
                 f"accuracy gate {esc(result.tolerance)}" + (" (cancelled)" if result.cancelled else ""))
    return (f"<div class='wb-tune-verdict' style='border-left: 4px solid {colour}; background: {bg}; "
            f"padding: 6px 10px; margin: 4px 0;'>{'<br>'.join(lines)}</div>")
