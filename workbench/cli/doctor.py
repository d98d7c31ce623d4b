"""``onnx-workbench doctor MODEL``: diagnose a model's export and print the findings.

MODEL is any form the loader reads (``zoo:NAME``, ``module:factory``, ``file.py:factory``); the
doctor's gallery of broken models is ``workbench.zoo.broken:NAME``. The report goes to stdout (what
C++ code prints while exporting goes to stderr); exit 0 when the diagnosis is ok, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
from pathlib import Path
from typing import Iterator

from workbench.cli import args as cli_args
from workbench.cli.command import Command, exit_code, say
from workbench.cli.loader import load_case

HELP = "export, check, compare and probe a model; name what breaks, prescribe and verify the fix"


def add_arguments(p: argparse.ArgumentParser) -> None:
    cli_args.add_model(p, what="the PyTorch model (the gallery of broken models: workbench.zoo.broken:NAME)")
    cli_args.add_spec(p)
    cli_args.add_tolerance(p)
    cli_args.add_session(p)
    cli_args.add_smoke(p)
    p.add_argument("--no-retry", action="store_true", help="do not apply and verify the automatic fixes")
    cli_args.add_work_dir(p, default=None, what="where the exported files go (default: a new folder in the per-user cache "
                          "~/.cache/onnx-workbench/doctor; the last 8 are kept)")
    p.add_argument("--out", type=Path, metavar="PATH", help="also write the diagnosis as HTML to PATH")


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send what C++ code prints to stdout (the TorchScript exporter's graph dumps) to stderr, so
    stdout carries only the report."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real stdout (embedded interpreters)
        yield
        return
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def write_html(out: Path, html: str) -> None:
    """Write ``html`` to ``out`` atomically: a reader, or a kill, sees the old file or the whole new one."""
    from workbench.core._files import atomic_output

    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp:
        tmp.write_text(html, encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    from workbench.doctor.gallery import diagnose_case

    case = load_case(args.model, smoke=args.smoke)
    case = dataclasses.replace(
        case, spec=cli_args.spec_from(args, case.spec), config=cli_args.config_from(args, case.config),
        tolerance=cli_args.tolerance_from(args, case.tolerance))
    with stdout_to_stderr():
        diagnosis = diagnose_case(case, retry=not args.no_retry, work_dir=args.work_dir)
    print(diagnosis.text())
    if args.out:
        write_html(Path(args.out), "<!doctype html><meta charset='utf-8'>" + diagnosis._repr_html_())
        say(f"HTML written to {args.out}")
    return exit_code(diagnosis.ok)


COMMAND = Command("doctor", HELP, add_arguments, run)
