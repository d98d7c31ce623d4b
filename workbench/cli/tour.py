"""``onnx-workbench tour``: every pipeline stage on one model, and one HTML report."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from workbench.cli.command import Command, exit_code, say
from workbench.cli.loader import FORMS, load_case

HELP = "export, check, optimize, quantize and time a model; write an HTML report"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from workbench.core.pipeline import STAGE_NAMES

    p.add_argument("--model", default="text_classifier", metavar="MODEL",
                   help=f"the PyTorch model: {FORMS}; default text_classifier")
    p.add_argument("--quick", action="store_true", help="smoke-sized zoo model, fewer repetitions, small sweep")
    p.add_argument("--work-dir", default=Path("workbench-tour"), type=Path, metavar="DIR",
                   help="folder for the exported, optimized and converted models (default ./workbench-tour)")
    p.add_argument("--out", type=Path, metavar="PATH",
                   help="where the HTML report is written (default WORK_DIR/report.html)")
    p.add_argument("--skip", nargs="+", default=[], choices=[s for s in STAGE_NAMES if s != "export"],
                   metavar="STAGE", help=f"stages not to run: {', '.join(STAGE_NAMES[1:])}")


def run(args: argparse.Namespace) -> int:
    from workbench.core.pipeline import run_pipeline
    from workbench.report import write_report

    case = load_case(args.model, smoke=args.quick)
    start = time.perf_counter()

    def progress(stage: str, message: str) -> None:
        say(f"[{time.perf_counter() - start:6.1f}s] {stage}: {message}")

    result = run_pipeline(case, args.work_dir, quick=args.quick, progress=progress, skip=args.skip)
    report = write_report(result, args.out or Path(args.work_dir) / "report.html", inputs=case.example_inputs)
    print(repr(result))
    print(f"report: {report.resolve()}")
    return exit_code(result.ok)


COMMAND = Command("tour", HELP, add_arguments, run)
