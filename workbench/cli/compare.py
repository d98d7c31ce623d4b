"""``onnx-workbench compare``: a PyTorch model against its ONNX export under ONNX Runtime."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.cli import args as cli_args
from workbench.cli.command import Command, exit_code
from workbench.cli.loader import load_case

HELP = "compare a PyTorch model with its ONNX export under ONNX Runtime"


def add_arguments(p: argparse.ArgumentParser) -> None:
    cli_args.add_model(p)
    p.add_argument("onnx_model", metavar="ONNX_MODEL", type=Path, help="the .onnx file exported from MODEL")
    cli_args.add_tolerance(p)
    cli_args.add_sizes(p)
    cli_args.add_session(p)
    cli_args.add_smoke(p)


def run(args: argparse.Namespace) -> int:
    from workbench.core.compare import compare

    case = load_case(args.model, smoke=args.smoke)
    tolerance = cli_args.tolerance_from(args, case.tolerance)
    inputs = case.make_inputs(args.batch, args.seq)
    comparison = compare(case.model, args.onnx_model, inputs, tolerance=tolerance,
                         config=cli_args.config_from(args, case.config))
    print(repr(comparison))
    print(comparison.text_table())
    return exit_code(comparison.ok)


COMMAND = Command("compare", HELP, add_arguments, run)
