"""``onnx-workbench export``: a PyTorch model to an ONNX file, with its summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.cli import args as cli_args
from workbench.cli.command import Command, exit_code, say
from workbench.cli.loader import load_case

HELP = "export a PyTorch model to ONNX"


def add_arguments(p: argparse.ArgumentParser) -> None:
    cli_args.add_model(p)
    p.add_argument("--out", required=True, type=Path, metavar="PATH", help="path of the .onnx file to write")
    cli_args.add_spec(p)
    cli_args.add_smoke(p)


def run(args: argparse.Namespace) -> int:
    from workbench.core.export import export

    case = load_case(args.model, smoke=args.smoke)
    spec = cli_args.spec_from(args, case.spec)
    how = f"with {spec.exporter} (opset {spec.opset}) " if spec is not None else ""
    say(f"exporting {case.name} {how}to {args.out} ...")
    result = export(case.model, case.example_inputs, args.out, spec=spec)
    print(repr(result))
    for warning in result.warnings:
        print(f"  warning: {warning}")
    summary = result.summary
    print(repr(summary))
    return exit_code(summary.checker_ok is not False)


COMMAND = Command("export", HELP, add_arguments, run)
