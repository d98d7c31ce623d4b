"""Pure formatting helpers shared by the results' text and HTML reprs (no UI library)."""

from __future__ import annotations

import html
from typing import Any, Sequence

from workbench.errors import strip_ansi


def fmt_time(seconds: float) -> str:
    """Seconds as a short human string: 850 ns, 12.3 us, 4.56 ms, 1.20 s."""
    if seconds != seconds:  # NaN
        return "nan"
    s = abs(seconds)
    if s < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if s < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if s < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def fmt_num(x: Any) -> str:
    if isinstance(x, float):
        if x != x:
            return "nan"
        if x == 0:
            return "0"
        if abs(x) >= 1e4 or abs(x) < 1e-3:
            return f"{x:.3e}"
        return f"{x:.4g}"
    return str(x)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table."""
    cells = [[str(h) for h in headers]] + [[fmt_num(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, caption: str | None = None) -> str:
    """A small HTML table with escaped cells."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(fmt_num(c))}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table class='wb-table'>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def badge(ok: bool | None, text: str | None = None) -> str:
    """A coloured pass / fail / not-run badge as HTML."""
    label = text or {True: "PASS", False: "FAIL", None: "NOT RUN"}[ok]
    colour = {True: "#1a7f37", False: "#cf222e", None: "#6e7781"}[ok]
    return (
        f"<span style='background:{colour};color:white;padding:1px 6px;border-radius:3px;"
        f"font-weight:600'>{esc(label)}</span>"
    )


def esc(value: Any) -> str:
    """``value`` as text safe inside HTML, in element text and in quoted attribute values alike
    (``html.escape(str(value), quote=True)``, after ``errors.strip_ansi`` removed terminal escape
    codes): every string from a model, a file, an exception or a warning goes through it before it
    enters a ``_repr_html_``, a report or a widget. The one escaping helper of the workbench."""
    return html.escape(strip_ansi(str(value)), quote=True)
