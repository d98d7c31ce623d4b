"""Numbers on Netron's drawing: the channel between the kernel and ``workbench-overlay.js``.

The kernel never talks to the Netron page through the notebook: the page polls its own server
(``wb-overlay.json``, same folder, allowed by the page's CSP, and it works through the Jupyter
server's proxy exactly as the model file does). An ``OverlayChannel`` holds what the page should
show (the overlay of one metric, with a colour per node and a legend) and the last "centre this
node" command; a click on a node in Netron comes back as ``wb-pick?name=<node>`` and calls
``on_pick``.

The page script decorates Netron's SVG nodes (``svg#canvas g.node``) by the DOM id Netron gives
each node, ``node-name-<ONNX node name>`` (``view.js``: ``node-${name ? `name-${name}` : `id-N`}``);
nodes without a name have no stable id and are not decorated. Every string from the model is
written with ``textContent``/``setAttribute`` there, never as markup.

The overlay follows ``NodeStats.overlay(metric)``: ``{"metric", "kind": "sequential" |
"categorical", "unit", "nodes": {name: {"value", "label", "title"}}, "legend"}``; ``paint`` adds a
colour to each node and a ``scale`` (the legend as colour swatches).
"""

from __future__ import annotations

import json
import math
import re
import threading
from typing import Any, Callable, Mapping

#: Light-to-dark sequential scale (viridis-like, reversed so that more is darker).
SEQUENTIAL = ("#fde725", "#b5de2b", "#6ece58", "#35b779", "#1f9e89", "#26828e", "#31688e", "#3e4989",
              "#482878", "#440154")
#: Categorical colours (Tableau 10).
CATEGORICAL = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
               "#9c755f", "#bab0ac")
#: Colours fixed for categories that mean the same thing in every model.
FIXED = {"int8": "#e15759", "uint8": "#e15759", "fp16": "#f28e2b", "float16": "#f28e2b", "fp32": "#4e79a7",
         "float32": "#4e79a7", "CPUExecutionProvider": "#4e79a7", "CUDAExecutionProvider": "#59a14f",
         "TensorrtExecutionProvider": "#76b7b2", "Memcpy": "#e15759"}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _sequential(nodes: Mapping[str, Mapping[str, Any]], unit: str,
                legend: Mapping[str, Any]) -> tuple[dict[str, str], list[dict[str, str]]]:
    values = {name: _number(node.get("value")) for name, node in nodes.items()}
    numbers = [v for v in values.values() if v is not None]
    if not numbers:
        return {}, []
    low, high = min(numbers), max(numbers)
    # Errors span decades, and so do node times (one slow MatMul, many 3 us Reshapes: on a linear
    # scale every other node gets the lowest colour): log when the legend says so, or when every
    # value is positive and they span more than 100x.
    scale_kind = legend.get("scale")
    use_log = low > 0 and (scale_kind == "log" or high / low > 100)
    positive = [v for v in numbers if v > 0]
    if scale_kind == "log" and positive and not use_log:  # zeros on a log scale: the lowest colour
        low, use_log = min(positive), True
    lo, hi = (math.log10(low), math.log10(high)) if use_log else (low, high)
    span = (hi - lo) or 1.0

    def colour(v: float) -> str:
        x = ((math.log10(v) if use_log and v > 0 else (lo if use_log else v)) - lo) / span
        return SEQUENTIAL[min(len(SEQUENTIAL) - 1, max(0, int(x * len(SEQUENTIAL))))]

    colours = {name: colour(v) for name, v in values.items() if v is not None}
    suffix = f" {unit}" if unit else ""
    scale = [{"label": f"{low:.3g}{suffix}", "color": SEQUENTIAL[0]},
             {"label": f"{high:.3g}{suffix}" + (" (log scale)" if use_log else ""), "color": SEQUENTIAL[-1]}]
    return colours, scale


def _categorical(nodes: Mapping[str, Mapping[str, Any]],
                 legend: Mapping[str, Any]) -> tuple[dict[str, str], list[dict[str, str]]]:
    categories: dict[str, str] = {}
    for item in legend.get("categories") or ():  # the colours core suggests, in its order
        colour = str(item.get("color", ""))
        if re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
            categories[str(item.get("name"))] = colour
    spare = iter(c for c in CATEGORICAL if c not in FIXED.values())
    for node in nodes.values():
        key = str(node.get("value"))
        if key not in categories:
            categories[key] = FIXED.get(key) or next(spare, "#999999")
    colours = {name: categories[str(node.get("value"))] for name, node in nodes.items()}
    counts: dict[str, int] = {}
    for node in nodes.values():
        counts[str(node.get("value"))] = counts.get(str(node.get("value")), 0) + 1
    return colours, [{"label": f"{key} ({counts[key]})", "color": colour}
                     for key, colour in categories.items() if key in counts]


def paint(overlay: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``overlay`` (``NodeStats.overlay(metric)``) with a ``color`` per node and a ``scale``: the
    colours of the legend (two ends of the sequential scale, or one swatch per category)."""
    if not overlay:
        return None
    nodes = {str(name): dict(node) for name, node in (overlay.get("nodes") or {}).items()}
    for node in nodes.values():  # JSON has no NaN: a missing number is null
        if isinstance(node.get("value"), float) and not math.isfinite(node["value"]):
            node["value"] = None
    kind = overlay.get("kind", "sequential")
    legend = overlay.get("legend") if isinstance(overlay.get("legend"), Mapping) else {}
    colours, scale = (_categorical(nodes, legend) if kind == "categorical"
                      else _sequential(nodes, str(overlay.get("unit") or ""), legend))
    for name, node in nodes.items():
        if name in colours:
            node["color"] = colours[name]
    painted = {key: value for key, value in overlay.items() if key != "nodes"}
    painted.update(nodes=nodes, scale=scale, kind=kind)
    return painted


class OverlayChannel:
    """What the Netron page polls (``state()``) and where its clicks arrive (``pick``). Thread-safe:
    the kernel sets it from a panel's worker, the server reads it on its request threads."""

    def __init__(self, on_pick: Callable[[str], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._revision = 0
        self._overlay: dict[str, Any] | None = None
        self._select: dict[str, Any] | None = None
        self._select_seq = 0
        self.on_pick = on_pick

    @property
    def revision(self) -> int:
        return self._revision

    @property
    def overlay(self) -> dict[str, Any] | None:
        return self._overlay

    def set_overlay(self, overlay: Mapping[str, Any] | None) -> int:
        """Show ``overlay`` (``NodeStats.overlay(metric)``; ``None`` clears it); the new revision."""
        painted = paint(overlay)
        with self._lock:
            self._overlay = painted
            self._revision += 1
            return self._revision

    def select(self, name: str | None) -> int:
        """Ask the page to select and centre node ``name`` (``None``: clear the selection)."""
        with self._lock:
            self._select_seq += 1
            self._select = {"name": name, "seq": self._select_seq}
            self._revision += 1
            return self._revision

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"revision": self._revision, "overlay": self._overlay, "select": self._select}

    def state_json(self, *, since: str | int | None = None) -> bytes:
        """``state()`` as JSON; only ``{"revision": n}`` when ``since`` is that revision (nothing new)."""
        state = self.state()
        if str(since) == str(state["revision"]):
            state = {"revision": state["revision"]}
        return json.dumps(state, allow_nan=False, default=str).encode("utf-8")

    def pick(self, name: str) -> None:
        """The user clicked node ``name`` in Netron."""
        callback = self.on_pick
        if callback is not None and name:
            callback(name)
