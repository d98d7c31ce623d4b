"""``onnx-workbench tune``: search ONNX Runtime configurations (optimization levels, threads,
spinning, fusions, dynamic INT8, ...) for the fastest one that stays accurate, against PyTorch eager,
``torch.compile`` and PyTorch's own INT8 measured in the same run; print the table and the chosen
config and write it as JSON (``SessionConfig.from_json`` and ``onnx-workbench serve --config`` read it).

Tune needs the PyTorch model, not only an ONNX file: every candidate passes an accuracy gate against
PyTorch's outputs, and the verdict says whether ONNX Runtime beats PyTorch at all. A bare
``model.onnx`` is refused with that explanation; ``--onnx FILE`` tunes an existing export of MODEL
instead of exporting it again. (To time configurations of an ONNX file alone, with no accuracy gate,
use ``onnx-workbench bench model.onnx --opt-level ... --threads ...``.)

Exit codes: 0 a configuration was chosen (and written); 1 none beat PyTorch eager clearly (the
verdict says so; nothing is written); 2 bad usage.
"""

from __future__ import annotations

import argparse
import threading
import time
from pathlib import Path
from typing import Any

from workbench.cli import args as cli_args
from workbench.cli.command import EXIT_CHECK_FAILED, EXIT_OK, PROG, Command, say
from workbench.cli.loader import FORMS, load_case
from workbench.errors import InvalidInputError

HELP = "find the fastest ONNX Runtime config that stays accurate, against PyTorch eager, torch.compile and torch int8"
#: Why a bare ONNX file is not enough (said when one is passed as MODEL).
NEEDS_THE_MODEL = (
    "tune needs the PyTorch model, not only an ONNX file: each candidate must pass an accuracy gate against "
    "PyTorch's outputs, and the verdict compares ONNX Runtime with PyTorch eager, torch.compile and torch int8. "
    f"Pass MODEL ({FORMS}) and, to tune an existing export of it, --onnx {{onnx}}. To time ONNX Runtime configs of "
    "the file alone (no accuracy gate), use: onnx-workbench bench {onnx} --opt-level all --threads N.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL",
                   help=f"the PyTorch model: {FORMS} (a bare .onnx is refused: tune needs the model for its accuracy gate)")
    p.add_argument("--onnx", type=Path, metavar="FILE", help="an existing export of MODEL to tune (default: export "
                                                             "MODEL to --work-dir, reused across runs)")
    p.add_argument("--batch-sizes", default="1,8", metavar="B,B", help="batch sizes of the grid (default 1,8)")
    p.add_argument("--seq-lens", default=None, metavar="S,S",
                   help="sequence lengths of the grid, or 'none' (default: the example's length, if it has one)")
    p.add_argument("--budget", type=float, default=180.0, metavar="SECONDS", help="time budget of the search (default 180)")
    cli_args.add_tolerance(p, default="int8: the gate of dynamic INT8, so INT8 candidates can pass")
    p.add_argument("--out", type=Path, metavar="PATH", help="where the chosen config is written as JSON (default "
                                                           "WORK_DIR/NAME.tune.json; the chosen ONNX file goes to "
                                                           "WORK_DIR/NAME.tuned.onnx, NAME-smoke with --smoke)")
    cli_args.add_smoke(p)
    cli_args.add_work_dir(p, default=cli_args.cache_work_dir("tune"),
                          what="where MODEL is exported and the candidates' files go")


def _grid(args: argparse.Namespace, case: Any) -> tuple[list[int], list[int | None]]:
    from workbench.widgets._traits import parse_sizes

    batches = parse_sizes(args.batch_sizes, "--batch-sizes")
    if args.seq_lens is not None:
        return batches, parse_sizes(args.seq_lens, "--seq-lens", allow_none=True)  # type: ignore[return-value]
    return batches, [case.example_sizes()[1]]  # type: ignore[return-value]


def _onnx_file(args: argparse.Namespace, case: Any) -> Path:
    from workbench.core.export import export

    if args.onnx is not None:
        if not Path(args.onnx).is_file():
            raise InvalidInputError(f"--onnx: no ONNX file at '{args.onnx}'. Export MODEL first, or leave --onnx out.")
        return Path(args.onnx)
    out = Path(args.work_dir) / f"{_stem(args, case)}.onnx"
    say(f"exporting {case.name} to {out} (cached across runs) ...")
    exported = export(case.model, case.example_inputs, out, spec=case.spec)
    case.spec = exported.spec  # the checked spec: inputs of other sizes follow its dynamic axes
    return Path(exported.out)


def _stem(args: argparse.Namespace, case: Any) -> str:
    """The run's file names in WORK_DIR: the model's (tuning another model there keeps this one's files)."""
    return f"{case.name}{'-smoke' if args.smoke else ''}"


def tune_case(case: Any, onnx_model: Path, *, batch_sizes: list[int], seq_lens: list[int | None], budget_s: float,
              tolerance: Any, work_dir: Path, cancel: threading.Event | None = None, **options: Any) -> Any:
    """``wb.tune`` of a ``ModelCase``'s model and ``onnx_model``, its progress (and each candidate)
    said on stderr; the ``TuneResult``. Shared with ``onnx-workbench tour``; ``options`` go to ``wb.tune``."""
    from workbench.core.tune import tune

    start = time.perf_counter()

    def progress(stage: str, message: str) -> None:
        say(f"[{time.perf_counter() - start:6.1f}s] tune {stage}: {message}")

    def found(c: Any) -> None:
        latency = f", {c.latency_ms:.3g} ms" if c.timings else ""
        say(f"[{time.perf_counter() - start:6.1f}s] tune candidate {c.candidate.name}: {c.status}{latency}")

    return tune(case.model, onnx_model, batch_sizes=batch_sizes, seq_lens=seq_lens, input_factory=case.input_factory,
                example_inputs=case.example_inputs, spec=case.spec, tolerance=tolerance, budget_s=budget_s,
                progress=progress, on_candidate=found, cancel=cancel, work_dir=work_dir, **options)


def run(args: argparse.Namespace) -> int:
    if args.model.endswith(".onnx"):
        raise InvalidInputError(NEEDS_THE_MODEL.format(onnx=args.model))
    if not args.budget > 0:
        raise InvalidInputError(f"--budget must be seconds > 0, received {args.budget}.")
    if args.out is not None and Path(args.out).suffix != ".json":
        raise InvalidInputError(f"--out is where the chosen config is written as JSON: it should end in .json, "
                                f"received '{args.out}'.")
    case = load_case(args.model, smoke=args.smoke)
    batch_sizes, seq_lens = _grid(args, case)
    tolerance = cli_args.parse_tolerance(args.tolerance) if args.tolerance else "int8"
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    onnx_model = _onnx_file(args, case)
    stem = _stem(args, case)  # each model's own names: the JSON of one must not point at another's file
    result = tune_case(case, onnx_model, batch_sizes=batch_sizes, seq_lens=seq_lens, budget_s=args.budget,
                       tolerance=tolerance, work_dir=work_dir / f"{stem}.tune-files",
                       out=work_dir / f"{stem}.tuned.onnx")
    print(repr(result))
    if result.chosen is None:
        print(f"no config written: {result.verdict}")
        return EXIT_CHECK_FAILED
    out = args.out or work_dir / f"{stem}.tune.json"
    saved = result.save(out)
    print(f"chosen: {result.chosen.candidate.name}")
    print(f"onnx_model: {result.onnx_model}")
    print(f"config: {result.config.to_json()}")
    print(f"written: {Path(saved).resolve()} (SessionConfig.from_json reads it; {PROG} serve "
          f"{result.onnx_model} --config {saved})")
    return EXIT_OK


COMMAND = Command("tune", HELP, add_arguments, run)
