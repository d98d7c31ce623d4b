"""What ``wb.tune`` returns: candidates, their timings per shape, the references and the choice.

Every speed-up is a ``Ratio`` (``core/paired.py``) measured interleaved with PyTorch eager in the
same blocks; ``ShapeTiming.versus`` holds the ratios to the other references (torch.compile, torch's
own dynamic INT8) where the candidate ran in the final round beside them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from workbench.core._format import badge, esc, fmt_bytes, html_table, text_table
from workbench.core._io import PathLike
from workbench.core.paired import Ratio
from workbench.core.session import SessionConfig
from workbench.errors import InvalidInputError

__all__ = ["Candidate", "CandidateResult", "Reference", "ShapeTiming", "TuneResult"]

Shape = tuple[int, "int | None"]
Status = Literal["chosen", "passed", "rejected", "pruned", "failed"]
REFERENCE_NAMES = ("eager", "torch.compile", "torch int8")


@dataclass(frozen=True)
class Candidate:
    """One thing to try: an ONNX file, a ``SessionConfig`` and how to run it.

    ``recipe`` says how the file and run were made (``{"graph": "attention-fused", "int8": "per-channel",
    "opt": "all", ...}``); ``io_binding`` runs it through ``run_with_iobinding``; ``shapes`` is None for a
    file that runs at every grid shape, or the one shape a static-shape file was fixed to.
    """

    name: str
    onnx_model: Path
    config: SessionConfig
    precision: str = "fp32"
    recipe: dict[str, str] = field(default_factory=dict)
    io_binding: bool = False
    shapes: tuple[Shape, ...] | None = None
    stage: str = ""

    def covers(self, shape: Shape) -> bool:
        return self.shapes is None or shape in self.shapes


@dataclass
class ShapeTiming:
    """Latency at one (batch, seq): median and 95th percentile in ms, and the speed-up vs eager."""

    batch: int
    seq: int | None
    p50_ms: float
    p95_ms: float
    speedup: Ratio | None
    versus: dict[str, Ratio] = field(default_factory=dict)
    rounds: int = 0

    @property
    def shape(self) -> Shape:
        return (self.batch, self.seq)


def shape_text(shape: Shape) -> str:
    return f"{shape[0]}x{shape[1]}" if shape[1] is not None else f"batch {shape[0]}"


@dataclass
class CandidateResult:
    """A candidate's outcome: status, timings per shape, accuracy against PyTorch, size, error.

    ``status``: "chosen", "passed" (gate passed, measured), "pruned" (gate passed, dropped by the
    search: ``note`` says why), "rejected" (accuracy gate failed) or "failed" (could not be built or run).
    """

    candidate: Candidate
    status: Status
    timings: list[ShapeTiming] = field(default_factory=list)
    max_abs_error: float | None = None
    max_rel_error: float | None = None
    top1_agreement: float | None = None
    size_bytes: int = 0
    error: str | None = None
    note: str | None = None

    @property
    def name(self) -> str:
        return self.candidate.name

    @property
    def passed(self) -> bool:
        """The accuracy gate passed (chosen, passed or pruned)."""
        return self.status in ("chosen", "passed", "pruned")

    @property
    def latency_ms(self) -> float:
        """Mean of the p50 latencies over the measured shapes (the Pareto plot's x); NaN if none."""
        values = [t.p50_ms for t in self.timings]
        return sum(values) / len(values) if values else math.nan

    @property
    def error_figure(self) -> float | None:
        """The largest absolute error against PyTorch (the Pareto plot's y)."""
        return self.max_abs_error

    @property
    def score(self) -> float:
        """Geometric mean of the speed-ups vs eager over the measured shapes (NaN if none)."""
        values = [t.speedup.value for t in self.timings if t.speedup is not None and t.speedup.value > 0]
        return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan

    def timing(self, shape: Shape) -> ShapeTiming | None:
        return next((t for t in self.timings if t.shape == tuple(shape)), None)

    def summary(self) -> dict[str, Any]:
        c = self.candidate
        return {"name": c.name, "status": self.status, "precision": c.precision, "onnx_model": str(c.onnx_model),
                "config": c.config.to_dict(), "recipe": dict(c.recipe), "io_binding": c.io_binding,
                "shapes": [list(s) for s in c.shapes] if c.shapes else None, "max_abs_error": self.max_abs_error,
                "max_rel_error": self.max_rel_error, "top1_agreement": self.top1_agreement,
                "size_bytes": self.size_bytes, "error": self.error, "note": self.note,
                "timings": [_timing_dict(t) for t in self.timings]}

    def __repr__(self) -> str:
        speed = ", ".join(f"{shape_text(t.shape)} {t.speedup}" for t in self.timings if t.speedup) or "not timed"
        tail = f": {self.error}" if self.error else (f" ({self.note})" if self.note else "")
        return f"<CandidateResult {self.name!r} {self.status}: {speed}{tail}>"


def _ratio_dict(r: Ratio | None) -> dict[str, Any] | None:
    return None if r is None else {"value": r.value, "low": r.low, "high": r.high, "n": r.n, "verdict": r.verdict}


def _timing_dict(t: ShapeTiming) -> dict[str, Any]:
    return {"batch": t.batch, "seq": t.seq, "p50_ms": t.p50_ms, "p95_ms": t.p95_ms, "speedup": _ratio_dict(t.speedup),
            "versus": {k: _ratio_dict(v) for k, v in t.versus.items()}, "rounds": t.rounds}


@dataclass
class Reference:
    """PyTorch measured beside the candidates: "eager", "torch.compile" or "torch int8" (``error``: why not)."""

    name: str
    timings: list[ShapeTiming] = field(default_factory=list)
    error: str | None = None
    max_abs_error: float | None = None
    setup_s: float = 0.0

    def timing(self, shape: Shape) -> ShapeTiming | None:
        return next((t for t in self.timings if t.shape == tuple(shape)), None)


def _combine(ratios: list[Ratio]) -> Ratio | None:
    """Ratios at several shapes as one: geometric means of the values and of the interval ends."""
    if not ratios:
        return None
    if len(ratios) == 1:
        return ratios[0]

    def gmean(xs: list[float]) -> float:
        return math.exp(sum(math.log(max(x, 1e-300)) for x in xs) / len(xs)) if all(math.isfinite(x) for x in xs) \
            else math.inf

    return Ratio(gmean([r.value for r in ratios]), gmean([r.low for r in ratios]), gmean([r.high for r in ratios]),
                 min(r.n for r in ratios), ratios[0].confidence)


@dataclass
class TuneResult:
    """The search: every candidate, the references, the choice overall and per shape, and the verdict."""

    candidates: list[CandidateResult]
    references: list[Reference]
    grid: list[Shape]
    chosen: CandidateResult | None
    chosen_per_shape: dict[Shape, CandidateResult | None]
    verdict: str
    budget_s: float
    elapsed_s: float
    tolerance: str
    cancelled: bool = False
    notes: list[str] = field(default_factory=list)
    threads: int = 0
    stopped: str = "done"
    chosen_file: Path | None = None

    @property
    def config(self) -> SessionConfig | None:
        """The chosen ``SessionConfig`` (None when nothing beat eager)."""
        return self.chosen.candidate.config if self.chosen else None

    @property
    def onnx_model(self) -> Path | None:
        """The chosen ONNX file, copied to ``out`` (None when nothing beat eager)."""
        if self.chosen is None:
            return None
        return self.chosen_file or self.chosen.candidate.onnx_model

    def __bool__(self) -> bool:
        return self.chosen is not None

    def candidate(self, name: str) -> CandidateResult:
        found = next((c for c in self.candidates if c.name == name), None)
        if found is None:
            raise InvalidInputError(f"No candidate {name!r}; the names are {[c.name for c in self.candidates]}.")
        return found

    def reference(self, name: str) -> Reference | None:
        return next((r for r in self.references if r.name == name), None)

    def pareto(self) -> list[CandidateResult]:
        """The gate-passing, timed candidates no other is both faster and more accurate than, fastest first."""
        timed = [c for c in self.candidates if c.passed and c.timings and math.isfinite(c.latency_ms)]
        front = [c for c in timed if not any(
            o is not c and o.latency_ms <= c.latency_ms and (o.max_abs_error or 0.0) <= (c.max_abs_error or 0.0)
            and (o.latency_ms < c.latency_ms or (o.max_abs_error or 0.0) < (c.max_abs_error or 0.0)) for o in timed)]
        return sorted(front, key=lambda c: c.latency_ms)

    def speedup(self, reference: str = "eager", batch: int | None = None, seq: int | None = None) -> Ratio | None:
        """The chosen candidate's speed-up over ``reference`` ("eager", "torch.compile", "torch int8") at
        (batch, seq); with batch/seq None, over the matching shapes combined (geometric means). None when
        nothing was chosen or the reference was not measured there."""
        if reference not in REFERENCE_NAMES:
            raise InvalidInputError(f"Unknown reference {reference!r}. Use one of {list(REFERENCE_NAMES)}.")
        if self.chosen is None:
            return None
        found = []
        for t in self.chosen.timings:
            if (batch is None or t.batch == batch) and (seq is None or t.seq == seq):
                r = t.speedup if reference == "eager" else t.versus.get(reference)
                if r is not None:
                    found.append(r)
        return _combine(found)

    def summary(self) -> dict[str, Any]:
        """Everything as plain JSON types (what ``save`` writes)."""
        chosen = self.chosen
        return {
            "onnx_model": str(self.onnx_model) if self.onnx_model else None,
            "config": self.config.to_dict() if self.config else None,
            # SessionConfig cannot carry IO binding: the chosen file was timed with run_with_iobinding
            "io_binding": chosen.candidate.io_binding if chosen else None,
            "verdict": self.verdict, "chosen": chosen.name if chosen else None,
            "chosen_per_shape": [{"batch": s[0], "seq": s[1], "name": c.name if c else None}
                                 for s, c in self.chosen_per_shape.items()],
            "grid": [list(s) for s in self.grid], "tolerance": self.tolerance, "budget_s": self.budget_s,
            "elapsed_s": self.elapsed_s, "cancelled": self.cancelled, "threads": self.threads, "notes": self.notes,
            "candidates": [c.summary() for c in self.candidates],
            "references": [{"name": r.name, "error": r.error, "max_abs_error": r.max_abs_error, "setup_s": r.setup_s,
                            "timings": [_timing_dict(t) for t in r.timings]} for r in self.references],
        }

    def save(self, out: PathLike) -> Path:
        """Write the result as JSON (``{"onnx_model", "config", "io_binding", "verdict", ...}``) that
        ``SessionConfig.from_json`` reads; returns the path. ``io_binding`` true: the chosen candidate was
        timed through ``session.run_with_iobinding`` (the config alone does not say so)."""
        path = Path(out)
        if path.suffix != ".json":
            raise InvalidInputError(f"out should end in .json, received {str(path)!r}.")
        path.write_text(json.dumps(self.summary(), indent=2, default=str) + "\n", encoding="utf-8")
        return path

    def to_pandas(self) -> Any:
        """One row per candidate (or reference) and shape: latency, speed-up with its interval, errors, status."""
        import pandas as pd

        rows = []
        for c in self.candidates:
            cfg = c.candidate.config
            base = {"name": c.name, "status": c.status, "precision": c.candidate.precision, "opt_level": cfg.opt_level,
                    "intra_op_threads": cfg.intra_op_threads, "allow_spinning": cfg.allow_spinning,
                    "io_binding": c.candidate.io_binding, "max_abs_error": c.max_abs_error,
                    "max_rel_error": c.max_rel_error, "top1_agreement": c.top1_agreement,
                    "size_bytes": c.size_bytes, "error": c.error or c.note}
            rows += [dict(base, **_row_timing(t)) for t in c.timings] or [dict(base, batch=None, seq=None)]
        for r in self.references:
            base = {"name": r.name, "status": "reference", "error": r.error, "max_abs_error": r.max_abs_error}
            rows += [dict(base, **_row_timing(t)) for t in r.timings] or [dict(base, batch=None, seq=None)]
        return pd.DataFrame(rows)

    def _rows(self) -> list[list[Any]]:
        rows = []
        for c in sorted(self.candidates, key=_order):
            speed = "  ".join(f"{shape_text(t.shape)} {t.speedup}" for t in c.timings if t.speedup) or "-"
            err = "-" if c.max_abs_error is None else f"{c.max_abs_error:.3g}"
            why = c.error or c.note or ""
            rows.append([c.name, c.status, speed, err, fmt_bytes(c.size_bytes) if c.size_bytes else "-", why[:120]])
        return rows

    def _reference_rows(self) -> list[list[Any]]:
        rows = []
        for r in self.references:
            lat = "  ".join(f"{shape_text(t.shape)} {t.p50_ms:.2f} ms" for t in r.timings) or "-"
            rows.append([r.name, lat, r.error or ""])
        return rows

    def _title(self) -> str:
        stop = " (cancelled)" if self.cancelled else ""
        return (f"TuneResult{stop}: {len(self.candidates)} candidates over {', '.join(map(shape_text, self.grid))} "
                f"in {self.elapsed_s:.0f} s (budget {self.budget_s:.0f} s), tolerance {self.tolerance}")

    def __repr__(self) -> str:
        lines = [self._title(), f"verdict: {self.verdict}"]
        lines.append(text_table(["candidate", "status", "speed-up vs eager", "max abs err", "size", "note"],
                                self._rows()))
        lines.append(text_table(["reference", "p50", "note"], self._reference_rows()))
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        cands = html_table(["candidate", "status", "speed-up vs eager", "max abs err", "size", "note"], self._rows())
        refs = html_table(["reference", "p50", "note"], self._reference_rows())
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        return (f"<div>{badge(bool(self), 'CHOSEN' if self else 'KEEP PYTORCH')} <b>{esc(self._title())}</b>"
                f"<p>{esc(self.verdict)}</p>{cands}{refs}<ul>{notes}</ul></div>")


def _row_timing(t: ShapeTiming) -> dict[str, Any]:
    r = t.speedup
    row = {"batch": t.batch, "seq": t.seq, "p50_ms": t.p50_ms, "p95_ms": t.p95_ms,
           "speedup": r.value if r else None, "low": r.low if r else None, "high": r.high if r else None,
           "verdict": r.verdict if r else None}
    for name, ratio in t.versus.items():
        row[f"vs {name}"] = ratio.value
    return row


_STATUS_ORDER = {"chosen": 0, "passed": 1, "pruned": 2, "rejected": 3, "failed": 4}


def _order(c: CandidateResult) -> tuple[int, float]:
    score = c.score
    return _STATUS_ORDER[c.status], -(score if math.isfinite(score) else 0.0)
