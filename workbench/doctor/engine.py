"""``diagnose``: export, check, compare and probe a model, name what goes wrong, and verify the fixes;
``export_with_diagnosis``: ``export`` whose ``ExportError`` carries the diagnosis."""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator

from torch import nn

from workbench.core._locks import TORCH_LOCK
from workbench.core._workdirs import new_scratch_dir
from workbench.core.capture import CAPTURE_LOCK
from workbench.core.case import ModelCase
from workbench.core.export import ExportResult, export
from workbench.core.inputs import as_input_tuple, check_module
from workbench.core.session import SessionConfig
from workbench.core.spec import ExportSpec
from workbench.core.tolerance import Tolerance, resolve_tolerance
from workbench.doctor.attempt import Attempt, Setting, run_attempt
from workbench.doctor.context import Context
from workbench.doctor.findings import Diagnosis, Finding
from workbench.doctor.rules_export import export_findings
from workbench.doctor.rules_run import (
    checker_findings,
    compare_findings,
    placement_findings,
    session_findings,
    values_findings,
)
from workbench.doctor.rules_setup import axes_key_findings, device_findings, provider_findings, training_findings
from workbench.doctor.rules_shapes import probe_findings
from workbench.errors import ExportError, InvalidInputError, SpecError, brief, describe, strip_ansi

__all__ = ["KEEP_WORK_DIRS", "MAX_WORK_DIR_BYTES", "RUN_RULES", "SETUP_RULES", "diagnose", "examine",
           "export_with_diagnosis", "run_retries"]

#: ``diagnose`` without ``work_dir`` writes into a new folder ``doctor-XXXXXXXX`` of the per-user cache
#: (``$XDG_CACHE_HOME/onnx-workbench/doctor``) and, before making it, deletes the older ones beyond the
#: newest ``KEEP_WORK_DIRS - 1``, and the oldest while the kept ones take more than ``MAX_WORK_DIR_BYTES``:
#: the last diagnoses' graphs stay to be inspected, and the folders do not pile up one per call.
KEEP_WORK_DIRS = 8
MAX_WORK_DIR_BYTES = 512 * 2**20

SetupRule = Callable[[Setting], "list[Finding]"]
RunRule = Callable[[Context], "list[Finding]"]
#: Rules that need no export, in the order their findings are reported.
SETUP_RULES: tuple[SetupRule, ...] = (device_findings, training_findings, provider_findings, axes_key_findings)
#: Rules over an attempt, in the order their findings are reported.
RUN_RULES: tuple[RunRule, ...] = (export_findings, checker_findings, session_findings, compare_findings,
                                  values_findings, probe_findings, placement_findings)


def _internal(step: str, exc: BaseException) -> Finding:
    return Finding("WB001", f"The doctor's {step} step failed", brief(exc),
                   {"step": step, "traceback": traceback.format_exc(limit=8)},
                   "This is a bug in the doctor; the other steps still ran. Please report it with the model.",
                   severity="warning")


def _apply(rules: tuple[Callable[[Any], list[Finding]], ...], arg: Any, findings: list[Finding]) -> None:
    """Add each rule's findings; a rule that raises becomes a WB001 finding."""
    for rule in rules:
        try:
            findings += rule(arg)
        except Exception as exc:
            findings.append(_internal(rule.__name__, exc))


def examine(setting: Setting, work_dir: Path, *, deep: bool = True) -> tuple[list[Finding], Context]:
    """Run one attempt under ``setting`` and every rule over it; never raises for the model's problems."""
    findings: list[Finding] = []
    _apply(SETUP_RULES, setting, findings)
    try:
        attempt = run_attempt(setting, work_dir)
    except Exception as exc:  # a bug in the doctor's own attempt: report it, keep the setup findings
        attempt = Attempt(setting)
        findings.append(_internal("attempt", exc))
    ctx = Context(setting, attempt, work_dir, deep=deep, findings=findings)
    _apply(RUN_RULES, ctx, findings)
    return findings, ctx


def _verdict(finding: Finding, found: list[Finding], attempt: Attempt) -> tuple[bool, str]:
    blocking = [f for f in found if f.severity == "error" or f.code == finding.code]
    if attempt.ok and not blocking:
        return True, attempt.failure()
    return False, attempt.failure() if not attempt.ok else "; ".join(f"[{f.code}] {f.title}" for f in blocking[:3])


#: Codes whose fix (use_cache=False, a tensor-only wrapper, corrected output_names) exposes the model's next
#: problem: a retry of theirs that fails with another finding is followed by that finding's retries.
_STACKING = ("OUT001", "OUT002")


def _candidates(finding: Finding, work_dir: Path, cache: dict[str, tuple[list[Finding], Attempt]],
                origin: str) -> Iterator[tuple[str, Setting, bool, str]]:
    """Each retry setting of ``finding`` with its verdict; for the output codes (``_STACKING``), after one
    that fails with a new finding, that finding's retries on top of it (use_cache=False, then the other
    exporter); settings equal to the diagnosis's own (``origin``) are skipped."""
    assert finding.retry is not None
    for label, setting in finding.retry.settings:
        ok, detail, found = _judge(finding, setting, work_dir, cache)
        yield label, setting, ok, detail
        if ok:
            return
        if finding.code not in _STACKING:
            continue
        for other in found:
            if other.code == finding.code or other.retry is None or other.severity != "error":
                continue
            for sub_label, sub_setting in other.retry.settings:
                if sub_setting.key() == origin:  # back where the diagnosis started
                    continue
                sub_ok, sub_detail, _ = _judge(finding, sub_setting, work_dir, cache)
                yield f"{label}, then [{other.code}] {sub_label}", sub_setting, sub_ok, sub_detail
                if sub_ok:
                    return


def _judge(finding: Finding, setting: Setting, work_dir: Path, cache: dict[str, tuple[list[Finding], Attempt]]
           ) -> tuple[bool, str, list[Finding]]:
    key = setting.key()
    if key not in cache:
        found, ctx = examine(setting, work_dir, deep=False)
        cache[key] = (found, ctx.attempt)
    found, attempt = cache[key]
    ok, detail = _verdict(finding, found, attempt)
    return ok, detail, found


def run_retries(findings: list[Finding], work_dir: Path, origin: Setting | None = None) -> None:
    """Run each finding's retry settings in order until one passes; record the verdict truthfully.

    A retry passes when its whole attempt passes and re-examining it finds no error (and not the
    same code again). A retry that fails with a new problem is followed by that problem's retries.
    """
    cache: dict[str, tuple[list[Finding], Attempt]] = {}
    for finding in findings:
        retry = finding.retry
        if retry is None or not retry.settings:
            continue
        start = time.perf_counter()
        for label, _, ok, detail in _candidates(finding, work_dir, cache, origin.key() if origin else ""):
            label, detail = strip_ansi(label), strip_ansi(detail)
            retry.tried.append(label)
            retry.outcomes.append(f"{label} -> {'PASSES' if ok else 'still fails'}: {detail}"[:400])
            retry.action, retry.ok, retry.detail = label, ok, detail
        retry.duration_s = time.perf_counter() - start


def _case(model: Any, example_inputs: Any, spec: Any, config: Any, tolerance: Tolerance, name: str | None) -> ModelCase:
    """The arguments of ``diagnose`` as a ``ModelCase``; raises for arguments of the wrong kind."""
    check_module(model)
    inputs = as_input_tuple(example_inputs)
    resolve_tolerance(tolerance)
    if spec is not None and not isinstance(spec, ExportSpec):
        raise SpecError(f"spec must be a wb.ExportSpec or None, received {describe(spec)}.")
    config = config or SessionConfig()
    if not isinstance(config, SessionConfig):
        raise InvalidInputError(f"config must be a wb.SessionConfig or None, received {describe(config)}.")
    return ModelCase(name or type(model).__name__, model, inputs, spec, tolerance=tolerance, config=config)


def diagnose(
    model: nn.Module,
    example_inputs: Any,
    *,
    spec: ExportSpec | None = None,
    config: SessionConfig | None = None,
    tolerance: Tolerance = "fp32",
    retry: bool = True,
    work_dir: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> Diagnosis:
    """Export ``model``, check it, compare it with PyTorch and probe its dynamic axes; explain what fails.

    Returns a ``Diagnosis`` whose ``findings`` name each problem (a stable code), its cause, the
    evidence (error signature, node, module, source line, shapes or values) and a fix. Where a fix can
    be applied automatically (other example sizes, the other exporter, a higher opset, eval mode, a
    provider spelling, disabling an optimizer, the fp16 tolerance) the doctor re-runs with it and
    ``finding.retry.ok`` says whether everything then passes (``retry=False`` skips that).

    Never raises for a problem of the model; raises ``InvalidInputError`` for arguments of the wrong
    kind (not a module, inputs not tensors, unknown tolerance). Files go to ``work_dir`` (default: a
    new folder in the per-user cache, kept so the graphs can be inspected; the doctor keeps the last
    ``KEEP_WORK_DIRS`` such folders, at most ``MAX_WORK_DIR_BYTES`` together).
    """
    start = time.perf_counter()
    case = _case(model, example_inputs, spec, config, tolerance, name)
    folder = Path(work_dir) if work_dir is not None else \
        new_scratch_dir("doctor", keep=KEEP_WORK_DIRS, max_bytes=MAX_WORK_DIR_BYTES)
    folder.mkdir(parents=True, exist_ok=True)
    setting = Setting(case)
    # The doctor changes the model while it runs (eval mode, fast paths, hooks for divergence and bisection)
    # and exports it: no other thread may run or export a model meanwhile (see core/_locks.py; lock order).
    with CAPTURE_LOCK, TORCH_LOCK.exclusive():
        findings, ctx = examine(setting, folder, deep=True)
        if retry:
            run_retries(findings, folder, setting)
    diagnosis = Diagnosis(case.name, setting, ctx.attempt.stages, findings, ctx.attempt, ctx.divergence,
                          ctx.bisection, folder, time.perf_counter() - start)
    error = ctx.attempt.error("export")
    if isinstance(error, ExportError):
        error.diagnosis = diagnosis
    return diagnosis


def export_with_diagnosis(
    model: nn.Module,
    example_inputs: Any,
    out: str | os.PathLike[str],
    *,
    spec: ExportSpec | None = None,
    config: SessionConfig | None = None,
    tolerance: Tolerance = "fp32",
    retry: bool = True,
) -> ExportResult:
    """``export``; when it raises ``ExportError``, diagnose the model and raise the same error with
    ``error.diagnosis`` set (its message then ends with the diagnosis)."""
    try:
        return export(model, example_inputs, out, spec=spec)
    except ExportError as err:
        err.diagnosis = diagnose(model, example_inputs, spec=spec, config=config, tolerance=tolerance, retry=retry)
        raise
