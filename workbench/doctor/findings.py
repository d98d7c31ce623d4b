"""What the doctor reports: ``Finding`` (code, cause, evidence, fix, retry) and ``Diagnosis``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from workbench.core._format import badge, esc, fmt_num, fmt_time, html_table
from workbench.doctor.attempt import STAGE_NAMES
from workbench.doctor.codes import code_info
from workbench.errors import strip_ansi

if TYPE_CHECKING:
    from workbench.core.compare import Comparison
    from workbench.core.export import ExportResult
    from workbench.core.probe import ProbeReport
    from workbench.doctor.attempt import Attempt, Setting
    from workbench.doctor.bisect import Bisection
    from workbench.doctor.divergence import Divergence

Severity = Literal["error", "warning", "info"]
_STATUS = {True: "pass", False: "FAIL", None: "-"}


@dataclass
class Retry:
    """A fix the doctor applied by itself, and whether everything passed with it.

    ``ok`` is True when the whole check (export, summarize with the ONNX checker, session,
    comparison on the example and on other values, shape probes) passed with the change and the
    finding did not come back; False when it did not (``detail`` says where it failed); None when
    it was not run.
    """

    action: str
    change: dict[str, Any] = field(default_factory=dict)
    ok: bool | None = None
    detail: str = ""
    duration_s: float = 0.0
    tried: list[str] = field(default_factory=list)
    #: one line per setting tried: "<what was changed> -> PASSES|still fails: <where>"
    outcomes: list[str] = field(default_factory=list)
    settings: list[tuple[str, Setting]] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.action, self.detail = strip_ansi(self.action), strip_ansi(self.detail)
        self.tried = [strip_ansi(t) for t in self.tried]

    def __bool__(self) -> bool:
        return self.ok is True

    def describe(self) -> str:
        verdict = {True: "PASSES", False: "still fails", None: "not run"}[self.ok]
        text = f"{self.action} -> {verdict}"
        if self.detail:
            text += f": {self.detail}"
        if len(self.outcomes) > 1:
            text += " (tried before: " + "; ".join(self.outcomes[:-1]) + ")"
        elif len(self.tried) > 1:
            text += f" (tried before: {'; '.join(self.tried[:-1])}, which did not pass)"
        return strip_ansi(text)  # ``detail`` is set after the retry ran


@dataclass
class Finding:
    """One problem: a stable ``code``, the cause in plain words, the evidence, the fix and a retry.

    ``evidence`` keys the doctor uses: ``signature`` (error type and first line), ``stage``,
    ``op``, ``node``, ``op_type``, ``module``, ``module_type``, ``location`` (file:line),
    ``source`` (that line), ``input``, ``axis``, ``symbol``, ``example_size``, ``sizes``,
    ``max_abs``, ``optimizer``, ``level``, ``provider``.
    """

    code: str
    title: str
    cause: str
    evidence: dict[str, Any]
    fix: str
    retry: Retry | None = None
    severity: Severity = "error"

    def __post_init__(self) -> None:
        """Text from torch or ONNX Runtime (a cause, the evidence) is kept without terminal escape codes."""
        self.title, self.cause, self.fix = strip_ansi(self.title), strip_ansi(self.cause), strip_ansi(self.fix)
        self.evidence = {k: strip_ansi(v) if isinstance(v, str) else v for k, v in self.evidence.items()}

    @property
    def category(self) -> str:
        return code_info(self.code).category

    @property
    def node(self) -> str | None:
        return self.evidence.get("node")

    @property
    def module(self) -> str | None:
        return self.evidence.get("module")

    @property
    def location(self) -> str | None:
        return self.evidence.get("location")

    def where(self) -> str:
        """``module 'a.b' (Cls) at file:line: source`` when the evidence names the model's line, else ''."""
        location = self.evidence.get("location")
        if not location:
            return ""
        module = self.evidence.get("module")
        head = f"module {module!r} ({self.evidence.get('module_type', '?')}) at " if module else ""
        source = self.evidence.get("source")
        return f"{head}{location}" + (f": {source}" if source else "")

    def evidence_text(self, limit: int = 240) -> str:
        parts = []
        for key, value in self.evidence.items():
            if key == "traceback":
                continue
            text = value if isinstance(value, str) else fmt_num(value) if isinstance(value, float) else repr(value)
            text = " ".join(str(text).split())
            parts.append(f"{key}={text[:limit]}{'...' if len(text) > limit else ''}")
        return "; ".join(parts)

    def row(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "category": self.category, "title": self.title,
                "module": self.module, "node": self.node, "location": self.location, "cause": self.cause,
                "fix": self.fix, "retry": self.retry.action if self.retry is not None else None,
                "retry_ok": self.retry.ok if self.retry is not None else None}

    def text(self) -> str:
        lines = [f"[{self.code}] {self.title} ({self.severity})",
                 f"  cause:    {self.cause}"]
        if self.where():
            lines.append(f"  where:    {self.where()}")
        lines += [f"  evidence: {self.evidence_text()}",
                 "  fix:      " + self.fix.replace("\n", "\n            ")]
        if self.retry is not None:
            lines.append(f"  retry:    {self.retry.describe()}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        where = self.module or self.node or self.location
        return f"Finding({self.code} {self.title!r}{f' at {where!r}' if where else ''}, {self.severity})"

    def _repr_html_(self) -> str:
        return _finding_html(self)


@dataclass
class Diagnosis:
    """The doctor's verdict on one model: stage results, findings with fixes and retries, raw results.

    ``ok`` is True only when export, summarize (the ONNX checker), session, the comparison on the
    example and on inputs with other values, and the shape probes all passed (or did not apply)
    and no finding is an error. ``first_divergent_node`` and ``node_errors`` feed graph overlays.
    ``out`` is the exported ONNX file, ``work_dir`` the folder of every file the doctor wrote.
    """

    model_name: str
    setting: Setting
    stages: dict[str, bool | None]
    findings: list[Finding]
    attempt: Attempt | None = field(default=None, repr=False)
    divergence: Divergence | None = field(default=None, repr=False)
    bisection: Bisection | None = field(default=None, repr=False)
    work_dir: Path | None = None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return all(v is not False for v in self.stages.values()) and not self.errors and self.stages.get("export") is True

    def __bool__(self) -> bool:
        return self.ok

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.findings]

    def finding(self, code: str) -> Finding | None:
        """The first finding with ``code``, or None."""
        return next((f for f in self.findings if f.code == code), None)

    @property
    def export(self) -> ExportResult | None:
        return self.attempt.export if self.attempt is not None else None

    @property
    def out(self) -> Path | None:
        """The exported ONNX file (None when the export failed)."""
        return self.export.out if self.export is not None else None

    @property
    def comparison(self) -> Comparison | None:
        return self.attempt.comparison if self.attempt is not None else None

    @property
    def probe(self) -> ProbeReport | None:
        return self.attempt.probe if self.attempt is not None else None

    @property
    def first_divergent_node(self) -> str | None:
        return self.divergence.first_divergent_node if self.divergence is not None else None

    @property
    def divergence_onnx_model(self) -> Path | None:
        """The ONNX file ``first_divergent_node`` and ``node_errors`` name nodes of."""
        return self.divergence.onnx_model if self.divergence is not None else None

    @property
    def node_errors(self) -> dict[str, float]:
        """ONNX node name -> max abs error against PyTorch (nodes with a PyTorch counterpart)."""
        return self.divergence.node_errors if self.divergence is not None else {}

    @property
    def retried(self) -> list[Finding]:
        return [f for f in self.findings if f.retry is not None and f.retry.ok is not None]

    def to_pandas(self) -> Any:
        """One row per finding."""
        import pandas as pd

        columns = list(Finding("WB001", "", "", {}, "").row())
        return pd.DataFrame([f.row() for f in self.findings], columns=columns)

    def _headline(self) -> str:
        s = self.setting
        exporter = s.spec.exporter if s.spec else "dynamo"
        opset = s.spec.opset if s.spec else 18
        verdict = "OK" if self.ok else "FAIL"
        n = len(self.findings)
        return (f"Diagnosis of {self.model_name} ({exporter}, opset {opset}, {s.config.label()}, "
                f"{s.tolerance_name}): {verdict}, {n} finding{'s' if n != 1 else ''} in {fmt_time(self.duration_s)}")

    def stage_line(self) -> str:
        return "  " + "  ".join(f"{name}: {_STATUS[self.stages.get(name)]}" for name in STAGE_NAMES)

    def text(self) -> str:
        """The full text report."""
        lines = [self._headline(), self.stage_line()]
        for f in self.findings:
            lines += ["", f.text()]
        if self.divergence is not None and self.divergence.first is not None:
            lines += ["", repr(self.divergence)]
        if self.bisection is not None:
            lines += ["", repr(self.bisection)]
        if self.work_dir is not None:
            lines += ["", f"files: {self.work_dir}"]
        return strip_ansi("\n".join(lines))

    def __repr__(self) -> str:
        lines = [self._headline(), self.stage_line()]
        for f in self.findings:
            retry = f"  retry: {'PASSES' if f.retry.ok else 'still fails' if f.retry.ok is False else 'not run'}" \
                if f.retry is not None else ""
            where = f.module or f.node or f.location
            lines.append(f"  [{f.code}] {f.title}" + (f" at {where}" if where else "") + retry)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        stages = html_table(list(STAGE_NAMES), [[_STATUS[self.stages.get(n)] for n in STAGE_NAMES]])
        body = "".join(_finding_html(f) for f in self.findings)
        extra = ""
        if self.divergence is not None and self.divergence.first is not None:
            extra += self.divergence._repr_html_()
        if self.bisection is not None:
            extra += self.bisection._repr_html_()
        return (f"<div class='wb-diagnosis'><b>{esc(self._headline())}</b> {badge(self.ok)}"
                f"{stages}{body}{extra}</div>")


def _finding_html(f: Finding) -> str:
    colour = {"error": "#cf222e", "warning": "#9a6700", "info": "#6e7781"}[f.severity]
    evidence = [[k, " ".join(str(v).split())[:400]] for k, v in f.evidence.items() if k != "traceback"]
    retry = ""
    if f.retry is not None:
        retry = (f"<p><b>retry</b> {badge(f.retry.ok, {True: 'PASSES', False: 'STILL FAILS', None: 'NOT RUN'}[f.retry.ok])} "
                 f"{esc(f.retry.action)}{': ' + esc(f.retry.detail) if f.retry.detail else ''}</p>")
        if len(f.retry.outcomes) > 1:
            retry += "<details><summary>every retry tried</summary><ul>" + "".join(
                f"<li>{esc(o)}</li>" for o in f.retry.outcomes) + "</ul></details>"
    return (f"<div style='border-left:4px solid {colour};padding-left:8px;margin:8px 0'>"
            f"<b>[{esc(f.code)}] {esc(f.title)}</b> <i>{esc(f.severity)}</i>"
            f"<p><b>cause</b> {esc(f.cause)}</p>"
            + (f"<p><b>where</b> <code>{esc(f.where())}</code></p>" if f.where() else "")
            + html_table(["evidence", ""], evidence)
            + f"<p><b>fix</b></p><pre>{esc(f.fix)}</pre>{retry}</div>")
