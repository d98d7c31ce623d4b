"""``onnx-workbench tour``: every pipeline stage on one model, and one HTML report; then a short tune
(``onnx-workbench tune`` with a small budget: the fastest accurate config against PyTorch)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from workbench.cli.command import Command, exit_code, say
from workbench.cli.loader import FORMS, load_case
from workbench.errors import WorkbenchError

HELP = "export, check, optimize, quantize, time and tune a model; write an HTML report"
#: The tune stage's budget (s), batch sizes and references beside eager: quick (smoke) and full.
TUNE_QUICK = (15.0, [1], ("torch int8",))
TUNE_FULL = (60.0, [1, 8], ("torch.compile", "torch int8"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    from workbench.core.pipeline import STAGE_NAMES

    stages = [s for s in STAGE_NAMES if s != "export"] + ["tune"]
    p.add_argument("--model", default="text_classifier", metavar="MODEL",
                   help=f"the PyTorch model: {FORMS}; default text_classifier")
    p.add_argument("--quick", action="store_true", help="smoke-sized zoo model, fewer repetitions, small sweep, "
                                                        f"{TUNE_QUICK[0]:g} s tune")
    p.add_argument("--work-dir", default=Path("workbench-tour"), type=Path, metavar="DIR",
                   help="folder for the exported, optimized, converted and tuned models (default ./workbench-tour)")
    p.add_argument("--out", type=Path, metavar="PATH",
                   help="where the HTML report is written (default WORK_DIR/report.html)")
    p.add_argument("--skip", nargs="+", default=[], choices=stages, metavar="STAGE",
                   help=f"stages not to run: {', '.join(stages)}")


def tune_stage(case: Any, onnx_model: Path, work_dir: Path, *, quick: bool) -> Any:
    """The tour's last stage: a short ``wb.tune`` of the export at the example's sequence length (quick:
    batch 1 only, without torch.compile, whose compiling would take most of the budget); the chosen
    config goes to WORK_DIR/tune.json. Returns the ``TuneResult``."""
    from workbench.cli.tune import tune_case

    budget_s, batch_sizes, references = TUNE_QUICK if quick else TUNE_FULL
    result = tune_case(case, onnx_model, batch_sizes=batch_sizes, seq_lens=[case.example_sizes()[1]],
                       budget_s=budget_s, tolerance="int8", work_dir=work_dir / "tune", references=references)
    print(repr(result))
    if result.chosen is not None:
        print(f"tune: {result.save(work_dir / 'tune.json')}")
    return result


def run(args: argparse.Namespace) -> int:
    from workbench.core.pipeline import run_pipeline
    from workbench.report import write_report

    case = load_case(args.model, smoke=args.quick)
    start = time.perf_counter()

    def progress(stage: str, message: str) -> None:
        say(f"[{time.perf_counter() - start:6.1f}s] {stage}: {message}")

    pipeline_skip = [s for s in args.skip if s != "tune"]
    result = run_pipeline(case, args.work_dir, quick=args.quick, progress=progress, skip=pipeline_skip)
    report = write_report(result, args.out or Path(args.work_dir) / "report.html", inputs=case.example_inputs)
    print(repr(result))
    print(f"report: {report.resolve()}")
    exported, tuned = result.stage("export"), True
    if "tune" not in args.skip and exported.status and exported.result is not None:
        case.spec = exported.result.spec
        say(f"[{time.perf_counter() - start:6.1f}s] tune: started (skip it with --skip tune)")
        try:
            tune_stage(case, Path(exported.result.out), Path(args.work_dir), quick=args.quick)
        except WorkbenchError as exc:  # the pipeline's report stands; the tune's failure is said and counted
            say(f"[{time.perf_counter() - start:6.1f}s] tune: failed: {exc}")
            tuned = False
    return exit_code(result.ok and tuned)


COMMAND = Command("tour", HELP, add_arguments, run)
