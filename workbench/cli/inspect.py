"""``onnx-workbench inspect``: the summary of an ONNX file (checker, opsets, IO, ops, parameters)."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.cli.command import Command, exit_code

HELP = "summarize an ONNX file (checker, opsets, inputs/outputs, ops, parameters)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("onnx_model", metavar="ONNX_MODEL", type=Path, help="the .onnx file")


def run(args: argparse.Namespace) -> int:
    from workbench.core.graph import summarize

    summary = summarize(args.onnx_model)
    print(summary.text_report())
    return exit_code(summary.checker_ok is not False)


COMMAND = Command("inspect", HELP, add_arguments, run)
