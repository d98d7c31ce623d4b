"""``wb.tune``: find the fastest ONNX Runtime configuration that stays accurate, and show it against PyTorch.

The search (``tune_search``) builds candidates (graph variants: the export, the attention-fused graph,
dynamic INT8, FP16 on CUDA, static shapes; session knobs: optimization level, threads, spinning,
execution mode, IO binding), gates each against PyTorch on fresh inputs at every grid shape, and
times the survivors interleaved with PyTorch eager (``paired.measure_interleaved``), pruning dominated
branches after each stage. A final round times the best few beside eager, ``torch.compile`` and
torch's dynamic INT8 in the same blocks; the choice is made from that round only. A candidate is
chosen only if it is clearly faster than eager somewhere and slower nowhere; otherwise the verdict
says to keep PyTorch.
"""

from __future__ import annotations

import math
import shutil
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import onnx
from torch import nn

from workbench.core._checks import is_number
from workbench.core._files import atomic_output, external_files
from workbench.core._io import OnnxModel, PathLike, check_onnx_path, load_model
from workbench.core.cancel import Cancel, Progress, check_cancel
from workbench.core.case import InputFactory, ModelCase
from workbench.core.inputs import check_module
from workbench.core.paired import MIN_CI_ROUNDS
from workbench.core.spec import ExportSpec
from workbench.core.tolerance import Tolerance, resolve_tolerance
from workbench.core.tune_candidates import machine_traits, physical_cores, spec_from_onnx
from workbench.core.tune_measure import TuneRun
from workbench.core.tune_references import compile_reference, eager_reference, torch_int8_reference
from workbench.core.tune_results import Candidate, CandidateResult, Reference, Shape, ShapeTiming, TuneResult, \
    shape_text
from workbench.core.tune_search import Search
from workbench.errors import InvalidInputError, describe

__all__ = ["Candidate", "CandidateResult", "Reference", "ShapeTiming", "TuneResult", "tune"]

FINAL_SHARE = 0.3  # of the budget kept for the final round (references included)
FINALISTS = 3
OPTIONAL_REFERENCES = ("torch.compile", "torch int8")


def _check_sizes(values: Any, what: str, *, allow_none: bool) -> list[int | None]:
    items = list(values) if isinstance(values, (list, tuple, range)) else None
    if not items or not all((v is None and allow_none) or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)
                            for v in items):
        hint = " Use seq_lens=[None] for a model without a sequence axis." if allow_none else ""
        raise InvalidInputError(f"{what} must be a non-empty list of ints >= 1, received {values!r}.{hint}")
    return list(dict.fromkeys(items))


def _case(model: Any, example_inputs: Any, input_factory: InputFactory | None, spec: ExportSpec | None,
          grid: list[Shape]) -> ModelCase:
    """The model as a ``ModelCase`` (a case as it is, with the arguments given overriding its own)."""
    if isinstance(model, ModelCase):
        case = model
        if input_factory is not None or spec is not None or example_inputs is not None:
            case = replace(case, input_factory=input_factory or case.input_factory, spec=spec or case.spec,
                           example_inputs=example_inputs if example_inputs is not None else case.example_inputs)
        return case
    check_module(model)
    if example_inputs is None:
        if input_factory is None:
            raise InvalidInputError("tune needs a way to make inputs at each grid shape: pass "
                                    "input_factory=case.make_inputs (f(batch=, seq=, seed=)), or example_inputs= and "
                                    "spec= (resized along the spec's dynamic axes), or a wb.ModelCase as model.")
        example_inputs = input_factory(batch=grid[0][0], seq=grid[0][1], seed=0)
    if input_factory is None and spec is None:
        raise InvalidInputError("example_inputs alone cannot be resized to the grid's shapes: pass spec= (its "
                                "dynamic axes: first batch, then sequence) or input_factory=.")
    return ModelCase("tuned", model, example_inputs, spec, input_factory)


def _check_args(budget_s: Any, tolerance: Any, progress: Any, on_candidate: Any, threads: Any,
                references: Any) -> None:
    if not (is_number(budget_s) and budget_s > 0):
        raise InvalidInputError(f"budget_s must be a number of seconds > 0, received {budget_s!r}. Try 180.")
    resolve_tolerance(tolerance)
    for name, fn in (("progress", progress), ("on_candidate", on_candidate)):
        if fn is not None and not callable(fn):
            raise InvalidInputError(f"{name} must be callable or None, received {describe(fn)}.")
    if threads is not None and not (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
        raise InvalidInputError(f"threads must be an int >= 1 or None (this machine's cores), received {threads!r}.")
    unknown = [r for r in references if r not in OPTIONAL_REFERENCES]
    if unknown:
        raise InvalidInputError(f"Unknown references {unknown}; eager is always measured, the others are "
                                f"{list(OPTIONAL_REFERENCES)}.")


def _work_dir(work_dir: PathLike | None) -> Path:
    if work_dir is not None:
        folder = Path(work_dir)
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    from workbench.core._workdirs import new_scratch_dir

    return new_scratch_dir("tune", keep=3)


def tune(
    model: nn.Module | ModelCase,
    onnx_model: OnnxModel | None = None,
    *,
    batch_sizes: Sequence[int],
    seq_lens: Sequence[int | None] = (None,),
    input_factory: InputFactory | None = None,
    example_inputs: Any = None,
    spec: ExportSpec | None = None,
    tolerance: Tolerance = "int8",
    budget_s: float = 180,
    progress: Progress | None = None,
    cancel: Cancel = None,
    on_candidate: Callable[[CandidateResult], Any] | None = None,
    out: PathLike | None = None,
    work_dir: PathLike | None = None,
    threads: int | None = None,
    references: Sequence[str] = OPTIONAL_REFERENCES,
    candidates: Sequence[Candidate] = (),
) -> TuneResult:
    """Search ONNX Runtime configurations of ``onnx_model`` (the export of ``model``; None exports it) for
    the fastest that passes the accuracy gate against PyTorch at ``tolerance`` at every (batch, seq) of
    ``batch_sizes`` x ``seq_lens``, within about ``budget_s`` seconds.

    Inputs come from ``input_factory(batch=, seq=, seed=)``, or ``example_inputs`` resized along ``spec``'s
    dynamic axes (``model`` may be a ``wb.ModelCase``, which brings both). Eager PyTorch runs with
    ``threads`` torch threads (default: the CPUs this process may use), as do the candidates.
    ``references`` are measured beside eager in the final round ("torch.compile", "torch int8").
    ``candidates`` adds your own ``Candidate``s to the first stage. ``progress(stage, message)`` reports;
    ``on_candidate(result)`` gets each ``CandidateResult`` as it is gated, timed, pruned or chosen (again
    for the same name when its numbers change: the last call counts). ``cancel`` stops the search
    (``TuneResult.cancelled``, nothing chosen). The chosen file is copied to ``out`` (default
    ``<work_dir>/chosen.onnx``); candidate files go into ``work_dir`` (default: a scratch folder in the cache).
    """
    start = time.monotonic()
    grid = [(b, s) for b in _check_sizes(batch_sizes, "batch_sizes", allow_none=False)
            for s in _check_sizes(seq_lens, "seq_lens", allow_none=True)]
    _check_args(budget_s, tolerance, progress, on_candidate, threads, references)
    check_cancel(cancel)
    if out is not None and Path(out).suffix != ".onnx":
        raise InvalidInputError(f"out should end in .onnx, received {str(out)!r}.")
    extra = [_check_candidate(c, grid) for c in candidates]
    case = _case(model, example_inputs, input_factory, spec, grid)  # type: ignore[arg-type]
    folder = _work_dir(work_dir)
    run = TuneRun(case, grid, tolerance, threads or physical_cores(), start + float(budget_s), cancel, progress,
                  on_candidate)
    search = _prepare(run, _source(case, onnx_model, folder), folder, float(budget_s))
    search.run_all(extra)
    cancelled = search.stopped == "cancelled" or run.cancelled()
    if not cancelled:
        _final_round(run, references)
    result = _result(run, grid, float(budget_s), start, resolve_tolerance(tolerance)[0], cancelled or run.cancelled())
    result.stopped = "cancelled" if result.cancelled else search.stopped
    if result.chosen is not None:
        result.chosen_file = _copy_chosen(result.chosen.candidate, out, folder)
    run.say("done", result.verdict)
    return result


def _prepare(run: TuneRun, source: Path, folder: Path, budget_s: float) -> Search:
    """Inputs and PyTorch's outputs per shape, what the model and machine allow, eager, and the search."""
    proto = load_model(source, load_external_data=False)
    run.say("prepare", f"inputs and PyTorch outputs at {', '.join(map(shape_text, run.grid))}")
    run.prepare()
    traits = machine_traits(run.case.model, proto, run.expected[run.grid[0]])
    run.classifier, run.notes = traits.classifier, list(traits.notes)
    run.refs["eager"] = eager_reference(run.case.model, run.inputs)
    return Search(run, traits, folder, source, run.case.spec or spec_from_onnx(proto), FINAL_SHARE * budget_s)


def _source(case: ModelCase, onnx_model: OnnxModel | None, folder: Path) -> Path:
    if onnx_model is not None:
        return check_onnx_path(onnx_model)  # type: ignore[arg-type]
    from workbench.core.export import export

    return export(case.model, case.example_inputs, folder / "model.onnx", spec=case.spec).out


def _check_candidate(c: Any, grid: list[Shape]) -> Candidate:
    """A caller's ``Candidate`` with its file as a checked ``Path`` and its ``shapes`` (if any) in the grid."""
    if not isinstance(c, Candidate):
        raise InvalidInputError(f"candidates must hold wb.Candidate objects, received {describe(c)}.")
    path = check_onnx_path(c.onnx_model)
    shapes = c.shapes
    if shapes is not None:
        try:
            shapes = tuple((int(b), None if s is None else int(s)) for b, s in shapes)
        except (TypeError, ValueError):
            shapes = ()
        if not shapes or any(s not in grid for s in shapes):
            raise InvalidInputError(
                f"Candidate {c.name!r}: shapes must be None (it runs at every grid shape) or (batch, seq) pairs of "
                f"the grid {grid}, received {c.shapes!r}. Add the shape to batch_sizes/seq_lens or fix the candidate.")
    return replace(c, onnx_model=path, shapes=shapes)


def _final_round(run: TuneRun, references: Sequence[str]) -> None:
    """The finalists beside eager and the references, in the same blocks; the choice reads only this round."""
    ranked = [r for r in run.results.values() if r.status == "passed" and r.timings]
    ranked.sort(key=lambda r: -r.score)
    whole = [r for r in ranked if r.candidate.shapes is None][:FINALISTS]
    static = [r for r in ranked if r.candidate.shapes is not None][:1]
    for r in ranked:
        if r not in whole and r not in static:
            r.status, r.note = "pruned", f"not among the {FINALISTS} finalists ({r.score:.2f}x vs eager)"
            run.record(r)
    if "torch int8" in references:
        run.say("references", "torch.ao dynamic INT8")
        run.refs["torch int8"] = torch_int8_reference(run.case.model, run.inputs, run.expected_timing, run.threads)
    if "torch.compile" in references:
        run.say("references", "torch.compile (inductor): compiling per shape")
        run.refs["torch.compile"] = compile_reference(run.case.model, run.inputs, run.expected_timing, run.threads,
                                                      lambda: run.time_left() - 5)
    budget = max(run.time_left(), 2.0 * len(run.grid))
    run.say("final", f"final round: {len(whole) + len(static)} finalist(s) beside {', '.join(run.refs)}")
    run.measure(whole + static, budget, references=[n for n in run.refs if n != "eager"], rel_ci=0.03, stage="final",
                min_rounds=MIN_CI_ROUNDS)


def _eligible(r: CandidateResult, grid: list[Shape]) -> bool:
    """Gate passed, timed at every grid shape, never below 1.0x, clearly faster somewhere, slower nowhere."""
    if not r.passed or r.candidate.shapes is not None or len(r.timings) < len(grid):
        return False
    ratios = [t.speedup for t in r.timings if t.speedup is not None]
    return (len(ratios) == len(grid) and all(x.value >= 1.0 and x.verdict != "slower" for x in ratios)
            and any(x.verdict == "faster" for x in ratios))


def _per_shape(finalists: list[CandidateResult], grid: list[Shape]) -> dict[Shape, CandidateResult | None]:
    chosen: dict[Shape, CandidateResult | None] = {}
    for shape in grid:
        fast = [(r.timing(shape).speedup.value, r) for r in finalists  # type: ignore[union-attr]
                if r.timing(shape) is not None and r.timing(shape).speedup is not None  # type: ignore[union-attr]
                and r.timing(shape).speedup.verdict == "faster"]  # type: ignore[union-attr]
        chosen[shape] = max(fast, key=lambda x: x[0])[1] if fast else None
    return chosen


def _result(run: TuneRun, grid: list[Shape], budget_s: float, start: float, tolerance: str,
            cancelled: bool) -> TuneResult:
    finalists = [r for r in run.results.values() if r.status == "passed" and r.timings]
    eligible = [] if cancelled else sorted((r for r in finalists if _eligible(r, grid)), key=lambda r: -r.score)
    chosen = eligible[0] if eligible else None
    if chosen is not None:
        chosen.status = "chosen"
        run.record(chosen)
    result = TuneResult(list(run.results.values()), run.references(), grid, chosen,
                        {} if cancelled else _per_shape(finalists, grid), "", budget_s,
                        time.monotonic() - start, tolerance, cancelled, notes=run.notes, threads=run.threads)
    result.verdict = _verdict(result, finalists)
    return result


def _ratio_text(r: CandidateResult, reference: str) -> str:
    parts = []
    for t in r.timings:
        ratio = t.speedup if reference == "eager" else t.versus.get(reference)
        if ratio is not None:
            parts.append(f"{ratio} at {shape_text(t.shape)}")
    return ", ".join(parts)


def _verdict(result: TuneResult, finalists: list[CandidateResult]) -> str:
    if result.cancelled:
        return f"Cancelled after {len(result.candidates)} candidate(s); nothing chosen."
    chosen = result.chosen
    if chosen is None:
        if not finalists:
            return ("No candidate passed the accuracy gate and was timed within the budget; nothing chosen: keep "
                    "PyTorch (or tune again with a larger budget_s / a looser tolerance).")
        best = max(finalists, key=lambda r: r.score if math.isfinite(r.score) else 0.0)
        return (f"ONNX Runtime is not faster than PyTorch eager here: the best candidate '{best.name}' measured "
                f"{_ratio_text(best, 'eager')} against eager (speed-up with its 95% interval); keep PyTorch.")
    text = [f"Use '{chosen.name}': {_ratio_text(chosen, 'eager')} faster than PyTorch eager"]
    for ref in result.references:
        if ref.name == "eager":
            continue
        if ref.error:
            text.append(f"{ref.name}: {ref.error}")
        elif any(ref.name in t.versus for t in chosen.timings):
            text.append(f"vs {ref.name}: {_ratio_text(chosen, ref.name)}")
    if chosen.candidate.io_binding:
        text.append("measured with IO binding (session.run_with_iobinding, inputs and outputs bound once): run it "
                    "that way to get this speed; the saved config cannot carry it (\"io_binding\": true in the JSON)")
    err = chosen.max_abs_error
    text.append(f"max abs error {err:.3g} against PyTorch, within tolerance {result.tolerance}" if err is not None
                else f"within tolerance {result.tolerance}")
    return "; ".join(text) + "."


def _copy_chosen(candidate: Candidate, out: PathLike | None, folder: Path) -> Path:
    """Copy the chosen file to ``out`` (default ``<folder>/chosen.onnx``); a file with external data gets
    its own data file beside the copy, ``<out name>.<token>.data`` (the old copy's data file goes)."""
    target = Path(out) if out is not None else folder / "chosen.onnx"
    if target.suffix != ".onnx":
        raise InvalidInputError(f"out should end in .onnx, received {str(target)!r}.")
    target.parent.mkdir(parents=True, exist_ok=True)
    source = Path(candidate.onnx_model)
    if target.resolve() == source.resolve():
        return target
    old = _own_data_files(target)
    if not external_files(load_model(source, load_external_data=False), source.parent):
        with atomic_output(target) as tmp:
            shutil.copyfile(source, tmp)
    else:
        model = load_model(source)
        location = f"{target.name}.{uuid.uuid4().hex[:12]}.data"
        try:
            with atomic_output(target) as tmp:
                onnx.save_model(model, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                                location=location, size_threshold=1024)
        except BaseException:
            (target.parent / location).unlink(missing_ok=True)
            raise
        old.discard(target.parent / location)
    for stale in old:
        stale.unlink(missing_ok=True)
    return target


def _own_data_files(target: Path) -> set[Path]:
    """The data files ``target`` (an earlier copy) uses that a copy to ``target`` wrote: ``<name>.<token>.data``."""
    try:
        files = external_files(load_model(target, load_external_data=False), target.parent) if target.is_file() \
            else set()
    except Exception:  # noqa: BLE001 - an unreadable old copy: it is replaced, nothing else to tidy
        return set()
    return {f for f in files if f.parent == target.parent and f.name.startswith(target.name + ".")
            and f.suffix == ".data"}
