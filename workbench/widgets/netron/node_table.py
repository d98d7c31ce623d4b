"""``NodeTable``: the nodes of an overlay as a sortable table; a click on a row selects the node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import traitlets


class NodeTable(anywidget.AnyWidget):
    """Rows of node figures (dicts with a ``name`` and one entry per column key; a number may carry
    its text as ``<key>_text``). Sorted in the browser by ``sort_by``/``descending`` (a header
    click), ``selected`` is the node of the row clicked last, or the one the kernel marks."""

    _esm = Path(__file__).with_name("node_table.js").read_text(encoding="utf-8")

    rows = traitlets.List(traitlets.Dict(), help="One dict per node.").tag(sync=True)
    columns = traitlets.List(help="[key, header] pairs shown, in order.").tag(sync=True)
    sort_by = traitlets.Unicode("value", help="The column key sorted by.").tag(sync=True)
    descending = traitlets.Bool(True, help="Largest first.").tag(sync=True)
    selected = traitlets.Unicode("", help="The selected node's name ('' for none).").tag(sync=True)
    clicks = traitlets.Int(0, help="Row clicks so far (a second click on the same row counts).").tag(sync=True)

    def sorted_rows(self) -> list[dict[str, Any]]:
        """The rows in the order the browser shows them."""
        def key(row: dict[str, Any]) -> tuple[int, Any]:
            value = row.get(self.sort_by)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return (0, value)
            return (1, "" if value is None else str(value))
        present = [r for r in self.rows if r.get(self.sort_by) is not None]
        missing = [r for r in self.rows if r.get(self.sort_by) is None]
        return sorted(present, key=key, reverse=self.descending) + missing

    def click(self, name: str) -> None:
        """What a click on ``name``'s row does (for scripts and tests)."""
        self.selected = name
        self.clicks += 1


def node_rows(stats: Any, metric: str, n: int = 15) -> tuple[list[dict[str, Any]], list[list[str]]]:
    """The rows and columns of ``stats.top(n, metric)`` (a ``NodeStats``) for a ``NodeTable``."""
    unit = {"latency": "ms", "error": "rel"}.get(metric, "")
    columns = [["name", "node"], ["op_type", "op"], ["module", "module"],
               ["value", f"{metric} ({unit})" if unit else metric], ["share", "share of time"]]
    rows = []
    for row in stats.top(n, metric):
        value = row.value(metric)
        entry: dict[str, Any] = {"name": row.name, "op_type": row.op_type, "module": row.module or "",
                                 "value": value, "share": row.share}
        if isinstance(value, float):
            entry["value_text"] = f"{value:.4f}" if metric == "latency" else f"{value:.3g}"
        if row.share is not None:
            entry["share_text"] = f"{100 * row.share:.1f}%"
        rows.append(entry)
    return rows, columns
