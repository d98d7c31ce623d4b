"""Which execution provider ran each node, read from ONNX Runtime's profiler.

The profile file is written where ``session.session_options`` points ONNX Runtime's profiler: a
fresh private folder in the per-user cache (``_workdirs.new_scratch_dir("profiles")``), never a
fixed name in the shared temp folder; ``placement`` deletes the file and that folder once read.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.core._format import html_table
from workbench.core._io import OnnxModel
from workbench.core._workdirs import cache_root
from workbench.core.feeds import build_feed
from workbench.core.ort_errors import run_errors
from workbench.core.session import SessionConfig, open_session


@dataclass(frozen=True)
class NodePlacement:
    node: str
    op_type: str
    provider: str


@dataclass
class Placement:
    """For each node that ran, its provider; and the Memcpy nodes ORT inserted between providers."""

    nodes: list[NodePlacement]
    requested: list[str]
    session_providers: list[str]
    memcpy_nodes: list[str] = field(default_factory=list)

    @property
    def memcpy_count(self) -> int:
        return len(self.memcpy_nodes)

    @property
    def by_provider(self) -> Counter[str]:
        return Counter(n.provider for n in self.nodes)

    @property
    def fell_back(self) -> list[str]:
        """Requested providers that ran no node at all (a silent fallback)."""
        used = set(self.by_provider)
        return [p for p in self.requested if p not in used and p != "CPUExecutionProvider"]

    def on(self, provider: str) -> list[NodePlacement]:
        return [n for n in self.nodes if n.provider == provider]

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.DataFrame([n.__dict__ for n in self.nodes], columns=["node", "op_type", "provider"])

    def __repr__(self) -> str:
        counts = ", ".join(f"{p}: {c}" for p, c in self.by_provider.most_common())
        text = f"Placement({len(self.nodes)} nodes; {counts}; {self.memcpy_count} Memcpy node(s))"
        if self.fell_back:
            text += f"\n  requested but ran nothing: {self.fell_back}"
        return text

    def _repr_html_(self) -> str:
        rows = [[p, c] for p, c in self.by_provider.most_common()] + [["Memcpy nodes", self.memcpy_count]]
        return "<div><b>Placement</b>" + html_table(["provider", "nodes"], rows) + "</div>"


def placement(onnx_model: OnnxModel, inputs: Any, *, config: SessionConfig | None = None) -> Placement:
    """Run ``onnx_model`` (a path or ``ModelProto``) once on ``inputs`` with profiling on and read
    each node's provider from the profile."""
    config = (config or SessionConfig()).replace(enable_profiling=True)
    session = open_session(onnx_model, config)
    feed = build_feed(session, inputs)
    with run_errors(session, feed):
        session.run(None, feed)
    nodes = parse_profile(read_profile(session))
    memcpy = [n.node for n in nodes if n.op_type.startswith("Memcpy")]
    return Placement(nodes, list(config.providers), list(session.get_providers()), memcpy)


def parse_profile(events: list[dict[str, Any]]) -> list[NodePlacement]:
    """Node placements from ORT profiler events (``cat == 'Node'`` with ``args.provider``)."""
    seen: dict[str, NodePlacement] = {}
    for event in events:
        args = event.get("args") or {}
        if event.get("cat") != "Node" or "provider" not in args:
            continue
        name = str(event.get("name", ""))
        for suffix in ("_kernel_time", "_fence_before", "_fence_after"):
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        if name not in seen:
            seen[name] = NodePlacement(name, str(args.get("op_name", "")), str(args["provider"]))
    return list(seen.values())


def read_profile(session: Any) -> list[dict[str, Any]]:
    """End ``session``'s profiling, read its events and delete the file (and its private folder)."""
    profile = session.end_profiling()
    try:
        with open(profile) as fh:
            return list(json.load(fh))
    finally:
        _remove_profile(Path(profile))


def _node_name(event: dict[str, Any]) -> str | None:
    """The node name of a ``_kernel_time`` node event, else None."""
    name = str(event.get("name", ""))
    if event.get("cat") != "Node" or not name.endswith("_kernel_time"):
        return None
    return name[: -len("_kernel_time")]


def node_durations(events: list[dict[str, Any]], *, skip_runs: int = 0) -> tuple[dict[str, list[float]], int]:
    """Node name -> kernel time in microseconds per profiled run, and the number of runs kept.

    Node events are assigned to the ``model_run`` whose time window holds them; the first
    ``skip_runs`` runs (warm-up) are dropped. A node that ran twice in one run (a loop body) adds up.
    """
    runs = sorted((float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0))) for e in events
                  if e.get("cat") == "Session" and e.get("name") == "model_run" and "ts" in e)
    kept = runs[skip_runs:] if len(runs) > skip_runs else runs
    times: dict[str, list[float]] = {}
    for event in events:
        name = _node_name(event)
        if name is None:
            continue
        ts = float(event.get("ts", 0))
        index = next((i for i, (a, b) in enumerate(kept) if a <= ts <= b), None) if kept else 0
        if index is None:
            continue
        per_run = times.setdefault(name, [0.0] * max(len(kept), 1))
        per_run[index] += float(event.get("dur", 0))
    return times, max(len(kept), 1)


def _remove_profile(profile: Path) -> None:
    """Delete a profile file, and its folder when that is a private profiles folder of the cache."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(profile)
    folder = profile.parent
    if folder.name.startswith("profiles-") and folder.parent == cache_root() / "profiles":
        with contextlib.suppress(OSError):
            folder.rmdir()
