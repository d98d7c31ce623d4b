"""The one stage machinery, shared by ``run_pipeline`` and the doctor's attempts.

A ``Stage`` is a name, a title, a function ``run(ctx) -> Outcome`` and the names of the stages it
needs. ``run_stage`` runs one and captures its warnings and any exception as data (the one
place that does); ``run_stages`` runs a sequence in order, honouring ``needs``, ``skip`` and
``cancel``. Stage names: export, summarize, session, compare, values, probe, optimize, int8,
fp16, sweep. A context may carry ``results: dict[str, StageResult]``; ``run_stages`` fills it
as it goes, so a stage can read the results of the stages before it.
"""

from __future__ import annotations

import time
import traceback as tb
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Sequence

from workbench.core._format import fmt_time
from workbench.core._warn_capture import capture_warnings
from workbench.core.cancel import Cancel, Progress, is_cancelled
from workbench.errors import InvalidInputError, brief

__all__ = ["CANCELLED", "Outcome", "Stage", "StageResult", "run_stage", "run_stages"]

CANCELLED = "cancelled"
SKIPPED = "skipped"
_STATUS_TEXT = {True: "pass", False: "FAIL", None: "not run"}


class Outcome(NamedTuple):
    """What a stage function returns: tri-state status, its result object and a one-line summary."""

    status: bool | None
    result: Any
    summary: str


@dataclass(frozen=True)
class Stage:
    """One step of a run. ``run(ctx)`` returns an ``Outcome``; ``needs`` must have passed first."""

    name: str
    title: str
    run: Callable[[Any], Outcome]
    needs: tuple[str, ...] = ("export",)


@dataclass
class StageResult:
    """One stage of a run.

    ``status`` is True (ran and passed), False (raised, or its check failed) or None (not run:
    skipped, cancelled, not applicable, or a stage it needs did not pass). ``exception`` is the
    short text of an exception the stage raised (``errors.brief``; None when it returned),
    ``error`` the exception itself and ``traceback`` its traceback; ``summary`` a one-line account.
    """

    name: str
    status: bool | None = None
    result: Any = None
    exception: str | None = None
    duration_s: float = 0.0
    summary: str = ""
    warnings: list[str] = field(default_factory=list, repr=False)
    traceback: str | None = field(default=None, repr=False)
    error: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.status is True

    def __bool__(self) -> bool:
        return self.ok

    @property
    def status_text(self) -> str:
        return _STATUS_TEXT[self.status]

    @property
    def cancelled(self) -> bool:
        """Not run because the run was cancelled, or its own result says it was cancelled midway."""
        return (self.status is None and self.summary == CANCELLED) or bool(getattr(self.result, "cancelled", False))

    def row(self) -> dict[str, Any]:
        """This stage as one flat row (see ``PipelineRun.to_pandas``)."""
        return {"stage": self.name, "status": self.status, "status_text": self.status_text,
                "duration_s": self.duration_s, "summary": self.summary, "exception": self.exception,
                "warnings": len(self.warnings)}

    def __repr__(self) -> str:
        text = f"StageResult({self.name!r}, {self.status_text}, {fmt_time(self.duration_s)}"
        if self.summary:
            text += f", {self.summary!r}"
        if self.exception:
            text += f", exception={self.exception[:200]!r}"
        return text + ")"


def _unique(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    seen: list[str] = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen:
            seen.append(text)
    return seen


def run_stage(stage: Stage, ctx: Any) -> StageResult:
    """Run one stage, capturing its warnings and any exception as data."""
    start = time.perf_counter()
    with capture_warnings() as caught:  # this thread's warnings only (catch_warnings is process-global)
        try:
            outcome: Outcome = stage.run(ctx)
        except Exception as exc:  # captured: a failing stage does not stop the others
            result = StageResult(stage.name, False, None, brief(exc, 1000), time.perf_counter() - start,
                                 summary=f"raised {type(exc).__name__}", traceback=tb.format_exc(), error=exc)
        else:
            result = StageResult(stage.name, outcome.status, outcome.result, None, time.perf_counter() - start,
                                 outcome.summary)
    result.warnings = _unique(caught)
    return result


def check_skip(skip: Sequence[str] | str, names: Sequence[str]) -> set[str]:
    """``skip`` as a set of stage names, each one of ``names``."""
    wanted = [skip] if isinstance(skip, str) else list(skip)
    unknown = [n for n in wanted if n not in names]
    if unknown:
        raise InvalidInputError(f"skip names unknown stage(s) {unknown}. Stages are {list(names)}.")
    return set(wanted)


def _report_end(progress: Progress | None, result: StageResult) -> None:
    if progress is None:
        return
    text = f"{result.status_text} in {fmt_time(result.duration_s)}"
    detail = result.exception or result.summary
    progress(result.name, text + (f": {brief(detail, 160)}" if detail else ""))


def run_stages(stages: Sequence[Stage], ctx: Any, *, skip: Sequence[str] | str = (), cancel: Cancel = None,
               progress: Progress | None = None) -> list[StageResult]:
    """Run ``stages`` in order on ``ctx``: a stage is not run (status None) when skipped, once
    ``cancel`` is set, or when a stage it needs did not pass. ``progress(stage, message)`` is
    called as each stage starts and ends."""
    skipped = check_skip(skip, [s.name for s in stages])
    done: dict[str, StageResult] = getattr(ctx, "results", None)
    if not isinstance(done, dict):
        done = {}
    out: list[StageResult] = []
    for stage in stages:
        missing = [n for n in stage.needs if not done.get(n)]
        if stage.name in skipped:
            result = StageResult(stage.name, None, summary=SKIPPED)
        elif is_cancelled(cancel):
            result = StageResult(stage.name, None, summary=CANCELLED)
        elif missing:
            result = StageResult(stage.name, None, summary=f"not run: needs {', '.join(missing)}, which did not pass")
        else:
            if progress is not None:
                progress(stage.name, "started")
            result = run_stage(stage, ctx)
            _report_end(progress, result)
        done[stage.name] = result
        out.append(result)
    return out
