"""The stage machinery shared by the pipeline and the doctor; errors.brief; the cancel type."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

import workbench as wb
from workbench.core.cancel import is_cancelled
from workbench.core.stages import Outcome, Stage, StageResult, run_stage, run_stages
from workbench.errors import brief


@dataclass
class Ctx:
    results: dict[str, StageResult] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)


def _stage(name: str, status: bool | None = True, needs: tuple[str, ...] = (), raises: bool = False) -> Stage:
    def run(ctx: Ctx) -> Outcome:
        ctx.ran.append(name)
        if raises:
            raise ValueError(f"{name} broke")
        return Outcome(status, {"seen": sorted(ctx.results)}, f"{name} done")

    return Stage(name, name.title(), run, needs=needs)


def test_run_stages_follows_needs_skip_and_fills_the_context():
    ctx = Ctx()
    events: list[tuple[str, str]] = []
    stages = [_stage("export"), _stage("summarize", needs=("export",)), _stage("compare", False, ("export",)),
              _stage("values", needs=("compare",)), _stage("probe", needs=("export",))]
    results = run_stages(stages, ctx, skip=["probe"], progress=lambda s, m: events.append((s, m)))
    assert [r.status for r in results] == [True, True, False, None, None]
    assert results[1].result == {"seen": ["export"]} and ctx.ran == ["export", "summarize", "compare"]
    assert results[3].summary == "not run: needs compare, which did not pass" and results[4].summary == "skipped"
    assert set(ctx.results) == {s.name for s in stages}
    assert ("export", "started") in events and any(m.startswith("FAIL") for s, m in events if s == "compare")
    with pytest.raises(wb.InvalidInputError, match="unknown stage"):
        run_stages(stages, Ctx(), skip=["nope"])


def test_an_exception_is_captured_as_data():
    result = run_stage(_stage("export", raises=True), Ctx())
    assert result.status is False and not result and result.exception == "ValueError: export broke"
    assert isinstance(result.error, ValueError) and "export broke" in (result.traceback or "")
    assert result.summary == "raised ValueError" and result.row()["status_text"] == "FAIL"


def test_cancel_stops_before_the_next_stage():
    stop = threading.Event()
    ctx = Ctx()

    def first(ctx: Any) -> Outcome:
        stop.set()
        return Outcome(True, None, "")

    results = run_stages([Stage("export", "", first, needs=()), _stage("summarize")], ctx, cancel=stop)
    assert results[0].ok and results[1].summary == "cancelled" and results[1].cancelled and not results[0].cancelled
    assert is_cancelled(stop) and not is_cancelled(None) and is_cancelled(lambda: True)


def test_brief_is_one_short_line():
    try:
        try:
            raise RuntimeError("\x1b[31m/onnxruntime_src/onnxruntime/core/graph.cc:12 void f(int) bad shape\nmore")
        except RuntimeError as exc:
            raise wb.ExportError("outer", stage="export", exception=exc) from exc
    except wb.ExportError as exc:
        assert brief(exc) == "RuntimeError: bad shape [via ExportError]"
    assert brief("Failed to export the model\n\n  the real reason: here") == "the real reason: here"
    assert brief("dims:\n index: 1 Got: 3") == "dims: index: 1 Got: 3"
    text = brief(ValueError("word " * 100), 40)
    assert len(text) <= 40 and text.endswith("\u2026") and text.startswith("ValueError: word")
    assert brief(None) == "" and brief(KeyError()) == "KeyError"
