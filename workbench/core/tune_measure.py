"""The tuner's measuring hands: sessions, the accuracy gate against PyTorch, and interleaved timing.

``TuneRun`` holds one tune call's state: the grid, inputs per shape for timing and *fresh* inputs (other
seeds) for the gate, PyTorch's outputs on both, the sessions opened so far (through ``load_session``,
kept for the run), and every ``CandidateResult``. ``measure`` times a group of candidates interleaved
with eager (and optionally the other references) at each shape with ``paired.measure_interleaved``.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import onnxruntime as ort

from workbench.core.cancel import Cancel, Progress, is_cancelled
from workbench.core.case import ModelCase
from workbench.core.compare import compare_arrays
from workbench.core.feeds import build_feed, run_torch
from workbench.core.loader import config_key
from workbench.core.paired import Interleaved, measure_interleaved
from workbench.core.session import load_session
from workbench.core.tolerance import Tolerance, resolve_tolerance
from workbench.core.tune_references import RefRunner, torch_context
from workbench.core.tune_results import Candidate, CandidateResult, Reference, Shape, ShapeTiming, shape_text
from workbench.errors import brief

__all__ = ["TuneRun"]

GATE_SEED = 1000  # gate inputs use seeds GATE_SEED + i: never the inputs the timings run on
TIMING_SEED = 1


@dataclass
class TuneRun:
    """One tune call's state (see the module docstring)."""

    case: ModelCase
    grid: list[Shape]
    tolerance: Tolerance
    threads: int
    deadline: float
    cancel: Cancel = None
    progress: Progress | None = None
    on_candidate: Callable[[CandidateResult], Any] | None = None
    classifier: bool = False
    inputs: dict[Shape, tuple[Any, ...]] = field(default_factory=dict)
    gate_inputs: dict[Shape, tuple[Any, ...]] = field(default_factory=dict)
    expected: dict[Shape, list[np.ndarray]] = field(default_factory=dict)
    expected_timing: dict[Shape, list[np.ndarray]] = field(default_factory=dict)
    sessions: dict[tuple[str, str], ort.InferenceSession] = field(default_factory=dict)
    results: dict[str, CandidateResult] = field(default_factory=dict)
    refs: dict[str, RefRunner] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def prepare(self) -> None:
        """Inputs for timing and for the gate at every shape, and PyTorch's outputs on both."""
        for i, (b, s) in enumerate(self.grid):
            self.inputs[(b, s)] = self.case.make_inputs(b, s, seed=TIMING_SEED)
            self.gate_inputs[(b, s)] = self.case.make_inputs(b, s, seed=GATE_SEED + i)
            self.expected[(b, s)] = run_torch(self.case.model, self.gate_inputs[(b, s)])
            self.expected_timing[(b, s)] = run_torch(self.case.model, self.inputs[(b, s)])

    # ---------------------------------------------------------------- time and reporting

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    def cancelled(self) -> bool:
        return is_cancelled(self.cancel)

    def say(self, stage: str, message: str) -> None:
        if self.progress is not None:
            self.progress(stage, message)

    def record(self, result: CandidateResult) -> CandidateResult:
        self.results[result.name] = result
        if self.on_candidate is not None:
            self.on_candidate(result)
        return result

    # ---------------------------------------------------------------- sessions and runners

    def session(self, candidate: Candidate) -> ort.InferenceSession:
        key = (str(candidate.onnx_model), config_key(candidate.config))
        if key not in self.sessions:
            self.sessions[key] = load_session(candidate.onnx_model, candidate.config)
        return self.sessions[key]

    def release(self, candidate: Candidate) -> None:
        """Forget the session of a candidate the search dropped (its memory goes once the cache lets go)."""
        self.sessions.pop((str(candidate.onnx_model), config_key(candidate.config)), None)

    def runner(self, candidate: Candidate, inputs: tuple[Any, ...]) -> tuple[Callable[[], Any], Callable[[], list]]:
        """``(call, outputs)``: a timed no-argument call, and a function returning the last outputs."""
        session = self.session(candidate)
        feed = build_feed(session, inputs)
        if not candidate.io_binding:
            last: list[Any] = []

            def call() -> Any:
                last[:] = session.run(None, feed)
                return last

            return call, lambda: list(last)
        return _bound_runner(session, feed)

    # ---------------------------------------------------------------- the accuracy gate

    def gate(self, candidate: Candidate, size_bytes: int) -> CandidateResult:
        """Run ``candidate`` on the fresh gate inputs at every shape it covers and compare with PyTorch."""
        result = CandidateResult(candidate, "passed", size_bytes=size_bytes)
        name, rtol, atol = resolve_tolerance(self.tolerance)
        shapes = [s for s in self.grid if candidate.covers(s)]
        worst_abs = worst_rel = 0.0
        agree, rows, failures = 0, 0, []
        try:
            for shape in shapes:
                call, outputs = self.runner(candidate, self.gate_inputs[shape])
                call()
                actual = outputs()
                cmp = compare_arrays(self.expected[shape], actual, tolerance=self.tolerance)
                worst_abs, worst_rel = max(worst_abs, cmp.max_abs), max(worst_rel, cmp.max_rel)
                if not cmp:
                    failures.append(f"{shape_text(shape)} max abs {cmp.max_abs:.3g}")
                if self.classifier:
                    same = np.argmax(self.expected[shape][0], -1) == np.argmax(np.asarray(actual[0]), -1)
                    agree, rows = agree + int(same.sum()), rows + same.size
        except Exception as exc:
            result.status, result.error = "failed", f"could not run: {type(exc).__name__}: {brief(str(exc), 300)}"
            self.release(candidate)
            return self.record(result)
        result.max_abs_error, result.max_rel_error = worst_abs, worst_rel
        result.top1_agreement = agree / rows if rows else None
        if failures:
            result.status = "rejected"
            result.error = (f"accuracy gate failed at {name} (rtol={rtol:g}, atol={atol:g}) against PyTorch on fresh "
                            f"inputs: {'; '.join(failures)}")
            self.release(candidate)
        return self.record(result)

    # ---------------------------------------------------------------- timing

    def block_for(self, runners: dict[str, Callable[[], Any]]) -> int:
        """Calls per block: about 50 ms of the slowest runner (timed once here, after a warm-up call), between
        3 and 40 (each block's first call is dropped)."""
        slowest = 0.0
        with torch_context(self.threads):
            for call in runners.values():
                call()
                start = time.perf_counter()
                call()
                slowest = max(slowest, time.perf_counter() - start)
        return int(min(40, max(3, round(0.05 / max(slowest, 1e-6)))))

    def measure(self, results: Sequence[CandidateResult], budget_s: float, *, references: Sequence[str] = (),
                rel_ci: float = 0.05, stage: str = "", min_rounds: int = 3) -> None:
        """Time ``results``' candidates interleaved with eager (and ``references``) at each shape they cover;
        each result's timings are replaced. ``budget_s`` is shared by the shapes. Screening stages rank by the
        ratio's value (3 rounds); the final round runs at least 6 (``paired.MIN_CI_ROUNDS``) for intervals.
        A candidate that raises while timed is marked "failed" (a reference gets ``error``) and the others
        are timed again without it."""
        shapes = [s for s in self.grid if any(r.candidate.covers(s) for r in results) or references]
        for shape in shapes:
            if self.cancelled():
                return
            members = [r for r in results if r.candidate.covers(shape) and r.status != "failed"]
            refs = [n for n in references if n in self.refs and shape in self.refs[n].calls and not self.refs[n].error]
            got = self._interleaved(shape, members, refs, budget_s / len(shapes), rel_ci, stage, min_rounds)
            if got is None:
                continue
            if got.rounds == 0:
                return
            timed = [n for n in got.times if n in self.refs and n != "eager"]
            for r in members:
                if r.name in got.times:
                    _put(r.timings, _timing(got, r.name, shape, timed))
            for name in got.times:
                if name in self.refs:
                    self._reference_timing(name, _timing(got, name, shape, []))

    def _interleaved(self, shape: Shape, members: list[CandidateResult], refs: list[str], budget_s: float,
                     rel_ci: float, stage: str, min_rounds: int) -> Interleaved | None:
        """One shape's interleaved measurement; a runner that raises is dropped (``_drop``) and the rest are
        measured again. None when nothing but eager is left to time."""
        while True:
            runners: dict[str, Callable[[], Any]] = {"eager": self.refs["eager"].calls[shape]}
            runners.update({name: self.refs[name].calls[shape] for name in refs})
            for r in list(members):
                try:
                    runners[r.name] = self.runner(r.candidate, self.inputs[shape])[0]
                except Exception as exc:  # noqa: BLE001 - the candidate fails, the others are timed
                    self._drop(r.name, exc, shape, members, refs)
            if len(runners) == 1:  # eager alone: nothing left to compare with it
                return None
            self.say(stage, f"timing {len(members)} candidate(s) at {shape_text(shape)} against "
                            f"{', '.join(n for n in runners if n not in {r.name for r in members})}")
            errors: dict[str, Exception] = {}
            settled = _settled(_guarded(runners, errors))
            try:
                with torch_context(self.threads):
                    return measure_interleaved(settled, reference="eager", block=self.block_for(settled),
                                               min_rounds=min_rounds, max_rounds=40, budget_s=max(budget_s, 0.5),
                                               rel_ci=rel_ci, cancel=self.cancel)
            except Exception:
                failed = next(iter(errors), None)
                if failed is None or failed == "eager":
                    raise
                self._drop(failed, errors[failed], shape, members, refs)

    def _drop(self, label: str, exc: Exception, shape: Shape, members: list[CandidateResult], refs: list[str]) -> None:
        """``label`` raised at ``shape``: a candidate is marked "failed" (its timings go), a reference gets ``error``."""
        why = f"failed while timed at {shape_text(shape)}: {type(exc).__name__}: {brief(str(exc), 300)}"
        if label in refs:
            refs.remove(label)
            self.refs[label].error = why
            return
        r = next(r for r in members if r.name == label)
        members.remove(r)
        r.status, r.error, r.timings = "failed", why, []
        self.release(r.candidate)
        self.record(r)

    def _reference_timing(self, name: str, timing: ShapeTiming) -> None:
        _put(self.refs[name].timings, timing)

    def references(self) -> list[Reference]:
        """The references as result objects (eager first)."""
        return [Reference(r.name, list(r.timings), r.error, r.max_abs_error, r.setup_s)
                for r in self.refs.values()]


SETTLE_S = 0.01


def _settled(runners: dict[str, Callable[[], Any]]) -> dict[str, Callable[[], Any]]:
    """The runners, each pausing ``SETTLE_S`` before the first call of its block (a call ``measure_interleaved``
    drops): ONNX Runtime's worker threads spin for a while after a run and would slow whatever runs next; the
    pause lets them park. ``measure_interleaved`` shuffles the order each round, so no runner always follows
    the same one; the pause keeps a spinning predecessor from slowing even the blocks it does precede."""
    state: dict[str, str | None] = {"last": None}

    def wrap(label: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        def call() -> Any:
            if state["last"] != label:
                state["last"] = label
                time.sleep(SETTLE_S)
            return fn()

        return call

    return {label: wrap(label, fn) for label, fn in runners.items()}


def _guarded(runners: dict[str, Callable[[], Any]], errors: dict[str, Exception]) -> dict[str, Callable[[], Any]]:
    """The runners, each noting in ``errors`` the exception it raises (then raising it): who failed."""
    def wrap(label: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        def call() -> Any:
            try:
                return fn()
            except Exception as exc:
                errors.setdefault(label, exc)
                raise

        return call

    return {label: wrap(label, fn) for label, fn in runners.items()}


def _put(timings: list[ShapeTiming], timing: ShapeTiming) -> None:
    timings[:] = [t for t in timings if t.shape != timing.shape] + [timing]
    timings.sort(key=lambda t: (t.batch, t.seq or 0))


def _timing(got: Interleaved, label: str, shape: Shape, versus: list[str]) -> ShapeTiming:
    speedup = None if label == "eager" else got.ratio(label)
    return ShapeTiming(shape[0], shape[1], got.median(label) * 1e3, got.percentile(label, 95) * 1e3, speedup,
                       versus={ref: got.ratio(label, reference=ref) for ref in versus}, rounds=got.rounds)


def _bound_runner(session: ort.InferenceSession, feed: dict[str, np.ndarray]
                  ) -> tuple[Callable[[], Any], Callable[[], list]]:
    """IO binding: inputs bound once, outputs written into buffers preallocated after one plain run."""
    first = session.run(None, feed)
    binding = session.io_binding()
    for name, value in feed.items():
        binding.bind_cpu_input(name, np.ascontiguousarray(value))
    buffers = []
    for meta, value in zip(session.get_outputs(), first):
        buf = ort.OrtValue.ortvalue_from_shape_and_type(value.shape, value.dtype, "cpu", 0)
        binding.bind_ortvalue_output(meta.name, buf)
        buffers.append(buf)
    run = functools.partial(session.run_with_iobinding, binding)
    return run, lambda: [b.numpy().copy() for b in buffers]
