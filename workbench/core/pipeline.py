"""``run_pipeline``: the whole PyTorch -> ONNX -> ONNX Runtime tour of one model, headless.

Stages run in order (see ``STAGES``): export, summarize, compare, probe, optimize, int8, fp16,
sweep, on the stage machinery of ``stages.py`` (shared with the doctor). Each becomes a
``StageResult`` with a tri-state ``status``; an exception inside a stage is captured as data and
the stages that do not need that stage's result still run. The stage functions live in
``pipeline_stages``. Add a stage by writing ``stage_x(ctx) -> Outcome`` there and listing it in
``STAGES``.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import onnx
import onnxruntime as ort
import torch

from workbench.core._format import badge, esc, fmt_time, text_table
from workbench.core._io import PathLike
from workbench.core.cancel import Cancel, Progress, check_cancel
from workbench.core.case import ModelCase, as_case
from workbench.core.pipeline_results import Converted, OptLevels
from workbench.core.pipeline_stages import FULL, QUICK, STAGES, Budget, Context
from workbench.core.stages import Stage, StageResult, check_skip, run_stage, run_stages
from workbench.errors import InvalidInputError, brief, describe

__all__ = ["FULL", "QUICK", "STAGES", "STAGE_NAMES", "Budget", "Converted", "OptLevels", "PipelineRun", "Stage",
           "StageResult", "run_pipeline", "run_stage"]

STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)


@dataclass
class PipelineRun:
    """Every stage of one ``run_pipeline`` call, in order, and where its files went.

    ``ok`` is True when no stage failed (stages not run do not count as failures, but a run whose
    export failed or that was cancelled is not ok).
    """

    name: str
    work_dir: Path
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
                 brief(s.exception or s.summary, 110)] for s in self.stages]

    def text_table(self) -> str:
        return text_table(["stage", "status", "time", "summary"], self._rows())

    def _headline(self) -> str:
        verdict = "CANCELLED" if self.cancelled else ("PASS" if self.ok else f"FAIL ({len(self.failed)} failed)")
        mode = "quick" if self.quick else "full"
        return f"PipelineRun {self.name!r} {verdict}: {len(self.stages)} stages, {mode}, {fmt_time(self.duration_s)}"

    def __repr__(self) -> str:
        return f"{self._headline()}, files in {self.work_dir}\n{self.text_table()}"

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><td>{esc(s.name)}</td><td>{badge(s.status)}</td>"
            f"<td>{fmt_time(s.duration_s) if s.status is not None else ''}</td>"
            f"<td>{esc(brief(s.summary, 200))}</td>"
            f"<td><code>{esc(brief(s.exception or '', 300))}</code></td></tr>"
            for s in self.stages
        )
        head = "".join(f"<th>{h}</th>" for h in ("stage", "status", "time", "summary", "exception"))
        return (f"<div><b>{esc(self._headline())}</b><table class='wb-table'><thead><tr>{head}</tr>"
                f"</thead><tbody>{body}</tbody></table><small>files in {esc(self.work_dir)}</small></div>")


def versions() -> dict[str, str]:
    """Versions of the parts the pipeline runs on, for the report."""
    return {"python": platform.python_version(), "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": ort.__version__, "platform": platform.platform(), "machine": platform.machine()}


def _check_arguments(work_dir: Any, budget: Any, skip: Sequence[str], progress: Any, cancel: Any) -> Path:
    if not isinstance(work_dir, (str, Path)) and not hasattr(work_dir, "__fspath__"):
        raise InvalidInputError(f"work_dir must be a folder path (str or Path), received {describe(work_dir)}.")
    folder = Path(work_dir)
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"work_dir '{folder}' exists and is not a folder. Pass a folder path for the files.")
    if budget is not None and not isinstance(budget, Budget):
        raise InvalidInputError(f"budget must be a pipeline Budget (see QUICK, FULL), received {describe(budget)}.")
    if "export" in check_skip(skip, STAGE_NAMES):
        raise InvalidInputError("Every other stage needs the exported model, so 'export' cannot be skipped.")
    check_cancel(cancel)
    if progress is not None and not callable(progress):
        raise InvalidInputError(f"progress must be a callable progress(stage, message), received {describe(progress)}.")
    return folder


def run_pipeline(
    case: ModelCase | tuple[Any, ...],
    work_dir: PathLike,
    *,
    quick: bool = False,
    progress: Progress | None = None,
    skip: Sequence[str] = (),
    cancel: Cancel = None,
    budget: Budget | None = None,
) -> PipelineRun:
    """Run every stage of the tour on ``case`` and return the ``PipelineRun``.

    ``case`` is a ``ModelCase`` (e.g. ``wb.zoo.get(name, smoke=quick)``) or a tuple
    ``(model, example_inputs)`` / ``(model, example_inputs, spec)``. Files (the exported model,
    the optimized and converted models) are written to ``work_dir``. ``quick`` uses fewer
    repetitions and a smaller sweep grid (``QUICK`` instead of ``FULL``; ``budget`` overrides
    both). ``skip`` names stages not to run. ``progress(stage, message)`` is called as stages
    start, progress and end; ``cancel`` (an Event or a callable) is checked between stages and
    inside the sweep. Exceptions inside stages are captured in the ``StageResult``s; only bad
    arguments raise.
    """
    resolved = as_case(case)
    folder = _check_arguments(work_dir, budget, skip, progress, cancel)
    folder.mkdir(parents=True, exist_ok=True)

    def report(stage: str, message: str) -> None:
        if progress is not None:
            progress(stage, message)

    ctx = Context(resolved, folder, budget or (QUICK if quick else FULL), report, cancel)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    results = run_stages(STAGES, ctx, skip=skip, cancel=cancel, progress=progress)
    return PipelineRun(resolved.name, folder, results, quick=quick, duration_s=time.perf_counter() - start,
                       started_at=started, versions=versions(), cancelled=any(s.cancelled for s in results))
