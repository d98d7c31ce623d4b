"""The export form's and the live diff's HTML for the quick shape probes (computed by
``workbench.doctor.quick_probe``)."""

from __future__ import annotations

from typing import Any

from workbench.core._format import badge, esc
from workbench.core.probe import ProbeReport
from workbench.widgets._base import clipped_html


def probe_html(report: ProbeReport | None, finding: Any, problem: BaseException | None = None) -> str:
    """The shape probes' verdict: the doctor's finding when one fails (and the probe table folded)."""
    if problem is not None:
        return (f"<p><b>The shape probes could not run</b>: {clipped_html(f'{type(problem).__name__}: {problem}')}"
                "<br>The file runs at the example's sizes; check other sizes with <code>wb.probe_shapes</code>.</p>")
    if report is None:
        return "<p>No dynamic input axis: the graph takes only the example's sizes (no shape probes).</p>"
    sizes = "; ".join(c.label for c in report.cases)
    table = f"<details><summary>Shape probes ({esc(sizes)})</summary>{report._repr_html_()}</details>"
    if finding is None:
        return f"<p>{badge(True)} The graph also runs and matches PyTorch at {esc(sizes)} (shape probes).</p>{table}"
    return (f"<p>{badge(False)} <b>The graph does not run at every size its dynamic axes allow</b> "
            f"(shape probes at {esc(sizes)}). The doctor's finding:</p>{finding._repr_html_()}{table}")


def retried_html(retried: Any, finding: Any) -> str:
    """A line saying whether the finding's retry (this export) passes the shape probes."""
    if retried is None or retried.retry is None:
        return ""
    ok = finding is None
    return (f"<p><b>Retry</b> for [{esc(retried.code)}] {esc(retried.retry.action)}: "
            f"{badge(ok, 'PASSES' if ok else 'STILL FAILS')}</p>")
