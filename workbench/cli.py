"""``onnx-workbench`` (also ``python -m workbench``): tour / export / inspect / compare / bench.

Exit codes: 0 ok; 1 a check failed (comparison, probe, gate, checker, a failed stage or export);
2 bad usage (argparse errors, and ``InvalidInputError`` from bad input: the message, no traceback).

Subcommands live in a registry: ``register(Command(name, help, add_arguments, run))``; the
doctor's command comes from ``workbench.doctor.cli.COMMAND``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from workbench._cli_models import (
    dim_sizes_for,
    inputs_for,
    load_target,
    parse_dynamic,
    parse_tolerance,
)
from workbench.doctor import cli as doctor_cli
from workbench.errors import InvalidInputError, WorkbenchError

PROG = "onnx-workbench"
EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2
MODEL_HELP = "module:factory, path/to/file.py:factory, zoo:NAME (or a zoo name)"


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, one-line help, how it adds its arguments, and what it runs."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def register(command: Command) -> Command:
    """Add a subcommand (a name already taken is replaced, so re-imports are harmless)."""
    COMMANDS[command.name] = command
    return command


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- tour


def _tour_arguments(p: argparse.ArgumentParser) -> None:
    from workbench import zoo
    from workbench.core.pipeline import STAGE_NAMES

    p.add_argument("--model", default="text_classifier",
                   help=f"zoo model ({', '.join(zoo.names())}) or {MODEL_HELP}; default text_classifier")
    p.add_argument("--quick", action="store_true", help="smoke-sized zoo model, fewer repetitions, small sweep")
    p.add_argument("--out", default="workbench-tour", type=Path, metavar="DIR",
                   help="folder for the models and report.html (default ./workbench-tour)")
    p.add_argument("--skip", nargs="+", default=[], choices=[s for s in STAGE_NAMES if s != "export"],
                   metavar="STAGE", help=f"stages not to run: {', '.join(STAGE_NAMES[1:])}")


def _run_tour(args: argparse.Namespace) -> int:
    from workbench.core.pipeline import run_pipeline
    from workbench.report import write_report

    target = load_target(args.model, smoke=args.quick)
    start = time.perf_counter()

    def progress(stage: str, message: str) -> None:
        _say(f"[{time.perf_counter() - start:6.1f}s] {stage}: {message}")

    run = run_pipeline(target, args.out, quick=args.quick, progress=progress, skip=args.skip)
    path = write_report(run, Path(args.out) / "report.html")
    print(repr(run))
    print(f"report: {path.resolve()}")
    return EXIT_OK if run.ok else EXIT_CHECK_FAILED


# ---------------------------------------------------------------- export


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("--out", required=True, type=Path, metavar="PATH", help="path of the .onnx file to write")
    p.add_argument("--exporter", choices=["dynamo", "torchscript"], help="default: the model's spec (dynamo)")
    p.add_argument("--opset", type=int, help="ONNX opset (dynamo: 18 or newer)")
    p.add_argument("--dynamic", nargs="+", metavar="NAME:DIM:SYMBOL", default=None,
                   help="dynamic axes, e.g. input_ids:0:batch input_ids:1:seq (replace the model's own)")
    p.add_argument("--smoke", action="store_true", help="smoke-sized zoo model")


def _run_export(args: argparse.Namespace) -> int:
    from workbench.core.export import export
    from workbench.core.spec import ExportSpec

    target = load_target(args.model, smoke=args.smoke)
    spec = target.spec or ExportSpec()
    changes: dict[str, object] = {}
    if args.exporter:
        changes["exporter"] = args.exporter
    if args.opset is not None:
        changes["opset"] = args.opset
    if args.dynamic is not None:
        changes["dynamic_axes"] = parse_dynamic(args.dynamic)
    if changes:
        spec = spec.replace(**changes)
    _say(f"exporting {target.name} with {spec.exporter} (opset {spec.opset}) to {args.out} ...")
    result = export(target.model, target.example_inputs, args.out, spec)
    print(repr(result))
    for warning in result.warnings:
        print(f"  warning: {warning}")
    summary = result.summary
    print(repr(summary))
    return EXIT_OK if summary.checker_ok is not False else EXIT_CHECK_FAILED


# ---------------------------------------------------------------- inspect


def _inspect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH.onnx", type=Path, help="the ONNX file")


def _run_inspect(args: argparse.Namespace) -> int:
    from workbench.core.graph import summarize

    summary = summarize(args.path)
    print(summary.text_report())
    return EXIT_OK if summary.checker_ok is not False else EXIT_CHECK_FAILED


# ---------------------------------------------------------------- compare


def _compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("path", metavar="PATH.onnx", type=Path, help="the ONNX file exported from MODEL")
    p.add_argument("--tolerance", default="fp32", help="fp32, fp16, int8, or RTOL,ATOL (default fp32)")
    p.add_argument("--batch", type=int, help="batch size of the inputs (default: the example's)")
    p.add_argument("--seq", type=int, help="sequence length of the inputs (default: the example's)")
    p.add_argument("--smoke", action="store_true", help="smoke-sized zoo model (as exported with --smoke)")


def _run_compare(args: argparse.Namespace) -> int:
    from workbench.core.compare import compare

    tolerance = parse_tolerance(args.tolerance)
    target = load_target(args.model, smoke=args.smoke)
    comparison = compare(target.model, args.path, inputs_for(target, args.batch, args.seq), tolerance)
    print(repr(comparison))
    print(comparison.text_table())
    return EXIT_OK if comparison.ok else EXIT_CHECK_FAILED


# ---------------------------------------------------------------- bench


def _bench_arguments(p: argparse.ArgumentParser) -> None:
    from workbench.core.session import OPT_LEVELS

    p.add_argument("model", metavar="MODEL_OR_ONNX", help=f"an .onnx file, or {MODEL_HELP} (exported, then timed "
                                                          "eager and with ONNX Runtime)")
    p.add_argument("--batch", type=int, default=None, help="batch size (default: the example's, or 1)")
    p.add_argument("--seq", type=int, default=None, help="sequence length (default: the example's)")
    p.add_argument("--runs", type=int, default=50, help="timed runs (default 50)")
    p.add_argument("--warmup", type=int, default=10, help="untimed warm-up runs (default 10)")
    p.add_argument("--opt-level", default="all", choices=list(OPT_LEVELS), help="ORT graph optimization level")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0: ONNX Runtime's choice)")
    p.add_argument("--smoke", action="store_true", help="smoke-sized zoo model")
    p.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "onnx-workbench",
                   help="where a MODEL is exported (re-runs reuse the export)")


def _bench_onnx(args: argparse.Namespace, config: object) -> int:
    import onnx

    from workbench.core.bench import benchmark
    from workbench.core.quantize import generate_inputs
    from workbench.core.session import open_session

    session = open_session(args.model, config)  # type: ignore[arg-type]
    proto = onnx.load(args.model, load_external_data=False)
    feed = generate_inputs(session, proto, dim_sizes=dim_sizes_for(session, args.batch, args.seq))
    shapes = {k: list(v.shape) for k, v in feed.items()}
    _say(f"timing {args.model} on generated inputs {shapes} ...")
    m = benchmark(session, feed, warmup=args.warmup, runs=args.runs, label=Path(args.model).name,
                  batch_size=args.batch)
    print(repr(m))
    return EXIT_OK


def _run_bench(args: argparse.Namespace) -> int:
    from workbench.core.export import export
    from workbench.core.session import SessionConfig
    from workbench.core.sweep import sweep

    for name in ("runs", "batch", "seq"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InvalidInputError(f"--{name} must be >= 1, received {value}.")
    config = SessionConfig(opt_level=args.opt_level, intra_op_threads=args.threads)
    if args.model.endswith(".onnx"):
        return _bench_onnx(args, config)
    target = load_target(args.model, smoke=args.smoke)
    path = Path(args.work_dir) / f"{target.name}{'-smoke' if args.smoke else ''}.onnx"
    _say(f"exporting {target.name} to {path} (cached across runs) ...")
    exported = export(target.model, target.example_inputs, path, target.spec)
    inputs = inputs_for(target, args.batch, args.seq, spec=exported.spec)
    batch = int(inputs[0].shape[0]) if inputs[0].dim() else 1
    _say(f"timing eager and ONNX Runtime ({config.label()}) on {[list(t.shape) for t in inputs]} ...")
    result = sweep(target.model, exported.path, [batch], [args.seq], [config], input_factory=lambda **_: inputs,
                   spec=exported.spec, warmup=args.warmup, runs=args.runs, threads=args.threads or None)
    print(repr(result))
    return EXIT_OK if not result.errors else EXIT_CHECK_FAILED


# ---------------------------------------------------------------- parser and main

for _command in (
    Command("tour", "export, check, optimize, quantize and time a model; write an HTML report",
            _tour_arguments, _run_tour),
    Command("export", "export a PyTorch model to ONNX", _export_arguments, _run_export),
    Command("inspect", "summarize an ONNX file (checker, opsets, inputs/outputs, ops, parameters)",
            _inspect_arguments, _run_inspect),
    Command("compare", "compare a PyTorch model with its ONNX export under ONNX Runtime",
            _compare_arguments, _run_compare),
    Command("bench", "time an ONNX file, or a PyTorch model eager vs ONNX Runtime", _bench_arguments, _run_bench),
    Command(*doctor_cli.COMMAND),
):
    register(_command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="The PyTorch -> ONNX -> ONNX Runtime workbench.")
    from workbench import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS.values():
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 a check failed, 2 bad usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return COMMANDS[args.command].run(args)
    except InvalidInputError as exc:
        _say(f"{PROG} {args.command}: error: {exc}")
        return EXIT_USAGE
    except WorkbenchError as exc:
        _say(f"{PROG} {args.command}: failed: {exc}")
        return EXIT_CHECK_FAILED
    except KeyboardInterrupt:
        _say(f"{PROG} {args.command}: interrupted")
        return 130
