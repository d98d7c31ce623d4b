"""``diagnose``: export, check, compare and probe a model, name what goes wrong, and verify the fixes."""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

from torch import nn

from workbench.core.compare import Tolerance, resolve_tolerance
from workbench.core.inputs import as_input_tuple, check_module, forward_arity
from workbench.core.session import SessionConfig
from workbench.core.spec import ExportSpec
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
from workbench.doctor.rules_setup import (
    axes_key_findings,
    device_findings,
    provider_findings,
    training_findings,
)
from workbench.doctor.rules_shapes import probe_findings
from workbench.errors import ExportError, InvalidInputError, SpecError

RunRule = Callable[[Context], "list[Finding]"]
#: Rules over an attempt, in the order their findings are reported.
RUN_RULES: tuple[RunRule, ...] = (export_findings, checker_findings, session_findings, compare_findings,
                                  values_findings, probe_findings, placement_findings)


def _internal(step: str, exc: BaseException) -> Finding:
    return Finding("WB001", f"The doctor's {step} step failed",
                   f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
                   {"step": step, "traceback": traceback.format_exc(limit=8)},
                   "This is a bug in the doctor; the other steps still ran. Please report it with the model.",
                   severity="warning")


def _input_names(model: nn.Module, setting: Setting) -> list[str]:
    if setting.spec is not None and setting.spec.input_names:
        return list(setting.spec.input_names)
    return forward_arity(model)[2][: len(setting.inputs)]


def examine(model: nn.Module, setting: Setting, workdir: Path, *, deep: bool = True) -> tuple[list[Finding], Context]:
    """Run one attempt under ``setting`` and every rule over it; never raises for the model's problems."""
    findings: list[Finding] = []
    setup: list[tuple[str, Callable[[], list[Finding]]]] = [
        ("device", lambda: device_findings(model, setting, _input_names(model, setting))),
        ("training", lambda: training_findings(model, setting)),
        ("providers", lambda: provider_findings(setting)),
        ("dynamic_axes", lambda: axes_key_findings(model, setting)),
    ]
    for step, rule in setup:
        try:
            findings += rule()
        except Exception as exc:
            findings.append(_internal(step, exc))
    try:
        attempt = run_attempt(model, setting, workdir)
    except Exception as exc:  # a bug in the doctor's own attempt: report it, keep the setup findings
        attempt = Attempt(setting)
        findings.append(_internal("attempt", exc))
    ctx = Context(model, setting, attempt, workdir, deep=deep, findings=findings)
    for rule in RUN_RULES:
        try:
            findings += rule(ctx)
        except Exception as exc:
            findings.append(_internal(rule.__name__, exc))
    return findings, ctx


def run_retries(model: nn.Module, findings: list[Finding], workdir: Path) -> None:
    """Run each finding's retry settings in order until one passes; record the verdict truthfully.

    A retry passes when its whole attempt passes and re-examining it finds no error (and not the
    same code again).
    """
    cache: dict[str, tuple[list[Finding], Attempt]] = {}
    for finding in findings:
        retry = finding.retry
        if retry is None or not retry.settings:
            continue
        start = time.perf_counter()
        for label, setting in retry.settings:
            key = setting.key()
            if key not in cache:
                try:
                    found, ctx = examine(model, setting, workdir, deep=False)
                    cache[key] = (found, ctx.attempt)
                except Exception as exc:  # pragma: no cover - examine guards its own steps
                    retry.tried.append(label)
                    retry.ok, retry.detail = False, f"the retry itself failed: {type(exc).__name__}: {exc}"
                    continue
            found, attempt = cache[key]
            retry.tried.append(label)
            blocking = [f for f in found if f.severity == "error" or f.code == finding.code]
            retry.action = label
            if attempt.ok and not blocking:
                retry.ok, retry.detail = True, attempt.failure()
                break
            retry.ok = False
            retry.detail = attempt.failure() if not attempt.ok else \
                "; ".join(f"[{f.code}] {f.title}" for f in blocking[:3])
        retry.duration_s = time.perf_counter() - start


def diagnose(
    model: nn.Module,
    example_inputs: Any,
    spec: ExportSpec | None = None,
    *,
    config: SessionConfig | None = None,
    tolerance: Tolerance = "fp32",
    retry: bool = True,
    workdir: str | os.PathLike[str] | None = None,
    name: str | None = None,
) -> Diagnosis:
    """Export ``model``, check it, compare it with PyTorch and probe its dynamic axes; explain what fails.

    Returns a ``Diagnosis`` whose ``findings`` name each problem (a stable code), its cause, the
    evidence (error signature, node, module, source line, shapes or values) and a fix. Where a fix can
    be applied automatically (other example sizes, the other exporter, a higher opset, eval mode, a
    provider spelling, disabling an optimizer, the fp16 tolerance) the doctor re-runs with it and
    ``finding.retry.ok`` says whether everything then passes (``retry=False`` skips that).

    Never raises for a problem of the model; raises ``InvalidInputError`` for arguments of the wrong
    kind (not a module, inputs not tensors, unknown tolerance). Files go to ``workdir`` (default: a
    new temporary folder, kept so the graphs can be inspected).
    """
    start = time.perf_counter()
    check_module(model)
    inputs = as_input_tuple(example_inputs)
    resolve_tolerance(tolerance)
    if spec is not None and not isinstance(spec, ExportSpec):
        raise SpecError(f"spec must be a wb.ExportSpec or None, received {type(spec).__name__}.")
    config = config or SessionConfig()
    if not isinstance(config, SessionConfig):
        raise InvalidInputError(f"config must be a wb.SessionConfig or None, received {type(config).__name__}.")
    folder = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="wb-doctor-"))
    folder.mkdir(parents=True, exist_ok=True)
    setting = Setting(spec, config, tolerance, inputs)
    findings, ctx = examine(model, setting, folder, deep=True)
    if retry:
        run_retries(model, findings, folder)
    stages = dict(ctx.attempt.stages)
    diagnosis = Diagnosis(name or type(model).__name__, setting, stages, findings, ctx.attempt,
                          ctx.divergence, ctx.bisection, folder, time.perf_counter() - start)
    if isinstance(ctx.attempt.export_error, ExportError):
        ctx.attempt.export_error.diagnosis = diagnosis
    return diagnosis
