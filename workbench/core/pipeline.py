"""``run_pipeline``: the whole PyTorch -> ONNX -> ONNX Runtime tour of one model, headless.

Stages run in order (see ``STAGES``): export, summarize, compare, probe, optimize, int8, fp16,
sweep. Each becomes a ``StageResult`` with a tri-state ``status`` (True passed, False failed,
None not run); an exception inside a stage is captured as data and the stages that do not need
that stage's result still run. The stage functions live in ``pipeline_stages``.
"""

from __future__ import annotations

import html
import platform
import threading
import time
import traceback as tb
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import onnx
import onnxruntime as ort
import torch

from workbench.core._format import badge, fmt_time, text_table
from workbench.core._io import PathLike
from workbench.core.pipeline_results import Converted, OptLevels
from workbench.core.pipeline_stages import (FULL, QUICK, STAGES, Budget, Context, Outcome, Stage, Target,
                                            as_target)
from workbench.errors import InvalidInputError, describe

__all__ = ["FULL", "QUICK", "STAGES", "STAGE_NAMES", "Budget", "Converted", "OptLevels", "PipelineRun", "Stage",
           "StageResult", "Target", "as_target", "run_pipeline", "run_stage"]

#: ``progress(stage, message)``: called when a stage starts and ends, and during long stages.
Progress = Callable[[str, str], Any]
Cancel = Union[threading.Event, Callable[[], bool], None]

STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
_STATUS_TEXT = {True: "pass", False: "FAIL", None: "not run"}


@dataclass
class StageResult:
    """One stage of a pipeline run.

    ``status`` is True (ran and passed), False (raised, or its check failed) or None (not run:
    skipped, cancelled, not applicable, or a stage it needs did not pass). ``exception`` is the
    text of an exception the stage raised (None when it returned); ``summary`` a one-line account.
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


@dataclass
class PipelineRun:
    """Every stage of one ``run_pipeline`` call, in order, and where its files went.

    ``ok`` is True when no stage failed (stages not run do not count as failures, but a run whose
    export failed or that was cancelled is not ok).
    """

    name: str
    out_dir: Path
    stages: list[StageResult]
    quick: bool = False
    duration_s: float = 0.0
    started_at: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.stages) and not self.cancelled and not self.failed

    def __bool__(self) -> bool:
        return self.ok

    @property
    def failed(self) -> list[StageResult]:
        return [s for s in self.stages if s.status is False]

    def stage(self, name: str) -> StageResult:
        """The ``StageResult`` named ``name`` (one of ``STAGE_NAMES``)."""
        for s in self.stages:
            if s.name == name:
                return s
        raise InvalidInputError(f"No stage named {name!r} in this run. Stages: {[s.name for s in self.stages]}.")

    __getitem__ = stage

    def result(self, name: str) -> Any:
        """The result object of stage ``name`` (None if it did not produce one)."""
        return self.stage(name).result

    def to_pandas(self) -> Any:
        """One row per stage: stage, status, status_text, duration_s, summary, exception, warnings."""
        import pandas as pd

        return pd.DataFrame([s.row() for s in self.stages])

    def _rows(self) -> list[list[Any]]:
        return [[s.name, s.status_text, fmt_time(s.duration_s) if s.status is not None or s.duration_s else "",
                 _one_line(s.exception or s.summary, 110)] for s in self.stages]

    def text_table(self) -> str:
        return text_table(["stage", "status", "time", "summary"], self._rows())

    def _headline(self) -> str:
        verdict = "CANCELLED" if self.cancelled else ("PASS" if self.ok else f"FAIL ({len(self.failed)} failed)")
        mode = "quick" if self.quick else "full"
        return f"PipelineRun {self.name!r} {verdict}: {len(self.stages)} stages, {mode}, {fmt_time(self.duration_s)}"

    def __repr__(self) -> str:
        return f"{self._headline()}, files in {self.out_dir}\n{self.text_table()}"

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><td>{html.escape(s.name)}</td><td>{badge(s.status)}</td>"
            f"<td>{fmt_time(s.duration_s) if s.status is not None else ''}</td>"
            f"<td>{html.escape(_one_line(s.summary, 200))}</td>"
            f"<td><code>{html.escape(_one_line(s.exception or '', 300))}</code></td></tr>"
            for s in self.stages
        )
        head = "".join(f"<th>{h}</th>" for h in ("stage", "status", "time", "summary", "exception"))
        return (f"<div><b>{html.escape(self._headline())}</b><table class='wb-table'><thead><tr>{head}</tr>"
                f"</thead><tbody>{body}</tbody></table><small>files in {html.escape(str(self.out_dir))}</small></div>")


def _one_line(text: str, limit: int) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _exception_text(exc: BaseException, limit: int = 4000) -> str:
    text = f"{type(exc).__name__}: {str(exc).strip()}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_cancel(cancel: Cancel) -> Callable[[], bool]:
    if cancel is None:
        return lambda: False
    if hasattr(cancel, "is_set"):
        return cancel.is_set  # type: ignore[union-attr]
    if callable(cancel):
        return lambda: bool(cancel())
    raise InvalidInputError(f"cancel must be a threading.Event or a callable returning bool, received {describe(cancel)}.")


def _check_skip(skip: Sequence[str]) -> set[str]:
    names = [skip] if isinstance(skip, str) else list(skip)
    unknown = [n for n in names if n not in STAGE_NAMES]
    if unknown:
        raise InvalidInputError(f"skip names unknown stage(s) {unknown}. Stages are {list(STAGE_NAMES)}.")
    if "export" in names:
        raise InvalidInputError("Every other stage needs the exported model, so 'export' cannot be skipped.")
    return set(names)


def versions() -> dict[str, str]:
    """Versions of the parts the pipeline runs on, for the report."""
    return {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": ort.__version__, "platform": platform.platform(), "machine": platform.machine()}


def run_stage(stage: Stage, ctx: Context) -> StageResult:
    """Run one stage, capturing its warnings and any exception as data."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            outcome: Outcome = stage.run(ctx)
        except Exception as exc:  # captured: a failing stage does not stop the others
            result = StageResult(stage.name, False, None, _exception_text(exc), time.perf_counter() - start,
                                 summary=f"raised {type(exc).__name__}", traceback=tb.format_exc(), error=exc)
        else:
            result = StageResult(stage.name, outcome.status, outcome.result, None, time.perf_counter() - start,
                                 outcome.summary)
    seen: list[str] = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in seen:
            seen.append(text)
    result.warnings = seen
    return result


def _not_run(stage: Stage, why: str) -> StageResult:
    return StageResult(stage.name, None, summary=why)


def run_pipeline(
    target: Any,
    out_dir: PathLike,
    *,
    quick: bool = False,
    progress: Progress | None = None,
    skip: Sequence[str] = (),
    cancel: Cancel = None,
    budget: Budget | None = None,
) -> PipelineRun:
    """Run every stage of the tour on ``target`` and return the ``PipelineRun``.

    ``target`` is a ``ZooModel``, a zoo model name (built with ``smoke=quick``), or a tuple
    ``(model, example_inputs)`` / ``(model, example_inputs, spec)``. Files (the exported model,
    the optimized and converted models) are written to ``out_dir``. ``quick`` uses fewer
    repetitions and a smaller sweep grid (``QUICK`` instead of ``FULL``; ``budget`` overrides
    both). ``skip`` names stages not to run. ``progress(stage, message)`` is called as stages
    start, progress and end; ``cancel`` (an Event or a callable) is checked between stages and
    inside the sweep. Exceptions inside stages are captured in the ``StageResult``s; only bad
    arguments raise.
    """
    resolved: Target = as_target(target, smoke=quick)
    if not isinstance(out_dir, (str, Path)) and not hasattr(out_dir, "__fspath__"):
        raise InvalidInputError(f"out_dir must be a folder path (str or Path), received {describe(out_dir)}.")
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"out_dir '{folder}' exists and is not a folder. Pass a folder path for the files.")
    if budget is not None and not isinstance(budget, Budget):
        raise InvalidInputError(f"budget must be a pipeline Budget (see QUICK, FULL), received {describe(budget)}.")
    skipped = _check_skip(skip)
    is_cancelled = _check_cancel(cancel)
    if progress is not None and not callable(progress):
        raise InvalidInputError(f"progress must be a callable progress(stage, message), received {describe(progress)}.")
    folder.mkdir(parents=True, exist_ok=True)

    def report(stage: str, message: str) -> None:
        if progress is not None:
            progress(stage, message)

    ctx = Context(resolved, folder, budget or (QUICK if quick else FULL), report, is_cancelled)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    results: list[StageResult] = []
    cancelled = False
    for stage in STAGES:
        missing = [n for n in stage.needs if not ctx.results.get(n)]
        if stage.name in skipped:
            result = _not_run(stage, "skipped")
        elif cancelled or is_cancelled():
            cancelled = True
            result = _not_run(stage, "cancelled")
        elif missing:
            result = _not_run(stage, f"not run: needs {', '.join(missing)}, which did not pass")
        else:
            report(stage.name, "started")
            result = run_stage(stage, ctx)
            report(stage.name, f"{result.status_text} in {fmt_time(result.duration_s)}"
                   + (f": {_one_line(result.exception or result.summary, 160)}" if result.exception or result.summary else ""))
        ctx.results[stage.name] = result
        results.append(result)
    cancelled = cancelled or any(getattr(s.result, "cancelled", False) for s in results)
    return PipelineRun(resolved.name, folder, results, quick=quick, duration_s=time.perf_counter() - start,
                       started_at=started, versions=versions(), cancelled=cancelled)
