"""``onnx-workbench doctor MODEL``: diagnose a model's export and print the findings.

MODEL is ``module:factory`` or ``path/to/file.py:factory`` (the factory returns a ZooModel, a
``BrokenModel``, or ``(model, example_inputs[, spec])``), ``zoo:NAME`` or ``gallery:NAME``.
Exit code 0 when the diagnosis is ok, 1 otherwise, 2 for bad usage.

The console script wires it in with ``register(Command("doctor", HELP, add_arguments, run))``
(``workbench.cli``); the doctor does not import the CLI package, which pulls in the report and
viz layers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from workbench.core._loader import import_module_or_file
from workbench.core.session import OPT_LEVELS, SessionConfig
from workbench.core.spec import ExportSpec
from workbench.errors import InvalidInputError, describe

HELP = "export, check, compare and probe a model; name what breaks, prescribe and verify the fix"
MODEL_FORMS = "module:factory, path/to/file.py:factory, zoo:NAME or gallery:NAME"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=f"the model: {MODEL_FORMS}")
    p.add_argument("--exporter", choices=("dynamo", "torchscript"), help="override the spec's exporter")
    p.add_argument("--opset", type=int, help="override the spec's opset")
    p.add_argument("--dynamic", action="append", default=[], metavar="NAME:DIM:SYMBOL",
                   help="a dynamic axis (repeatable), replacing the spec's, e.g. input_ids:0:batch")
    p.add_argument("--tolerance", help="fp32 (default), fp16, int8 or RTOL,ATOL")
    p.add_argument("--provider", action="append", default=[], metavar="NAME",
                   help="an execution provider, in priority order (repeatable)")
    p.add_argument("--opt-level", choices=tuple(OPT_LEVELS), help="ONNX Runtime graph optimization level")
    p.add_argument("--no-retry", action="store_true", help="do not apply and verify the automatic fixes")
    p.add_argument("--workdir", help="where the exported files go (default: a new temporary folder)")
    p.add_argument("--html", metavar="PATH", help="also write the diagnosis as HTML")


def load(text: str) -> Any:
    """A ``BrokenModel`` for the model argument (see the module docstring)."""
    from workbench import zoo
    from workbench.doctor import gallery

    if text.startswith("gallery:"):
        return gallery.get(text[len("gallery:"):]).build()
    if text.startswith("zoo:") or text in zoo.names():
        made: Any = zoo.get(text.removeprefix("zoo:"), smoke=True)
    elif ":" in text:
        module_text, _, attr = text.rpartition(":")
        if not module_text or not attr.isidentifier():
            raise InvalidInputError(f"Cannot read {text!r} as module:factory; e.g. mypkg.models:build_model.")
        factory = getattr(import_module_or_file(module_text), attr, None)
        if not callable(factory):
            raise InvalidInputError(f"{module_text!r} has no callable {attr!r}; name a factory function.")
        made = factory()
    else:
        raise InvalidInputError(f"Cannot load the model {text!r}: expected {MODEL_FORMS}.")
    if isinstance(made, gallery.BrokenModel):
        return made
    if hasattr(made, "model") and hasattr(made, "example_inputs"):
        return gallery.BrokenModel(getattr(made, "name", type(made.model).__name__), made.model,
                                   tuple(made.example_inputs), getattr(made, "spec", None))
    if isinstance(made, (tuple, list)) and len(made) in (2, 3):
        spec = made[2] if len(made) == 3 else None
        inputs = made[1] if isinstance(made[1], (tuple, list)) else (made[1],)
        return gallery.BrokenModel(type(made[0]).__name__, made[0], tuple(inputs), spec)
    raise InvalidInputError(
        f"The factory {text} must return a ZooModel, a BrokenModel or (model, example_inputs[, spec]); "
        f"it returned {describe(made)}."
    )


def _apply_options(broken: Any, args: argparse.Namespace) -> None:
    from workbench._cli_models import parse_dynamic, parse_tolerance

    spec = broken.spec or ExportSpec()
    changes: dict[str, Any] = {}
    if args.exporter:
        changes["exporter"] = args.exporter
        if args.exporter == "dynamo" and (args.opset or spec.opset) < 18:
            changes["opset"] = 18
    if args.opset:
        changes["opset"] = args.opset
    if args.dynamic:
        changes["dynamic_axes"] = parse_dynamic(args.dynamic)
    if changes:
        broken.spec = spec.replace(**changes)
    config = broken.config or SessionConfig()
    if args.provider:
        config = config.replace(providers=tuple(args.provider))
    if args.opt_level:
        config = config.replace(opt_level=args.opt_level)
    broken.config = config
    if args.tolerance:
        broken.tolerance = parse_tolerance(args.tolerance)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
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


def run(args: argparse.Namespace) -> int:
    """Print the diagnosis; 0 when ok, 1 otherwise (``InvalidInputError`` is left to the caller: usage)."""
    broken = load(args.model)
    _apply_options(broken, args)
    with _stdout_to_stderr():
        diagnosis = broken.diagnose(retry=not args.no_retry, workdir=args.workdir)
    print(diagnosis.text())
    if args.html:
        Path(args.html).write_text("<!doctype html><meta charset='utf-8'>" + diagnosis._repr_html_())
        print(f"HTML written to {args.html}", file=sys.stderr)
    return 0 if diagnosis.ok else 1


def main(argv: list[str] | None = None) -> int:
    """``python -m workbench.doctor.cli MODEL [options]``: 0 ok, 1 findings, 2 bad usage."""
    parser = argparse.ArgumentParser(prog="onnx-workbench doctor", description=HELP)
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return run(args)
    except InvalidInputError as exc:
        print(f"onnx-workbench doctor: error: {exc}", file=sys.stderr)
        return 2


#: ``(name, help, add_arguments, run)``: ``workbench.cli`` registers it as ``Command(*COMMAND)``.
COMMAND: tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]] = (
    "doctor", HELP, add_arguments, run)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
