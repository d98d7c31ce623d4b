"""``onnx-workbench bench``: time an ONNX file on generated inputs, or a PyTorch model eager
against ONNX Runtime (exported to --work-dir first; re-runs reuse the export)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from workbench.cli import args as cli_args
from workbench.cli.command import EXIT_OK, Command, exit_code, say
from workbench.cli.loader import FORMS, load_case

HELP = "time an ONNX file, or a PyTorch model eager vs ONNX Runtime"
#: Sizes of an ONNX file's symbolic dims when --batch/--seq are not given.
DEFAULT_BATCH, DEFAULT_SEQ = 1, 32


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL_OR_ONNX",
                   help=f"an .onnx file, or the PyTorch model ({FORMS}), exported then timed eager and with "
                        "ONNX Runtime")
    cli_args.add_sizes(p)
    p.add_argument("--runs", type=cli_args.positive_int, default=50, help="timed runs (default 50)")
    p.add_argument("--warmup", type=int, default=10, help="untimed warm-up runs (default 10)")
    cli_args.add_session(p)
    cli_args.add_smoke(p)
    cli_args.add_work_dir(p, default=cli_args.cache_work_dir("bench"),
                          what="where a MODEL is exported (re-runs reuse the export)")


def dim_sizes(session: Any, batch: int | None, seq: int | None) -> dict[str, int]:
    """Sizes for an ONNX file's symbolic dims: the first symbol is the batch, the second the sequence."""
    symbols: list[str] = []
    for arg in session.get_inputs():
        symbols.extend(d for d in arg.shape if isinstance(d, str) and d not in symbols)
    return dict(zip(symbols, (batch or DEFAULT_BATCH, seq or DEFAULT_SEQ)))


def _bench_onnx(args: argparse.Namespace) -> int:
    import onnx

    from workbench.core.bench import benchmark
    from workbench.core.gate import generate_inputs
    from workbench.core.session import open_session

    session = open_session(args.model, cli_args.config_from(args, None))
    proto = onnx.load(args.model, load_external_data=False)
    inputs = generate_inputs(session, proto, dim_sizes=dim_sizes(session, args.batch, args.seq))
    say(f"timing {args.model} on generated inputs {({k: list(v.shape) for k, v in inputs.items()})} ...")
    m = benchmark(session, inputs, warmup=args.warmup, runs=args.runs, label=Path(args.model).name,
                  batch_size=args.batch)
    print(repr(m))
    return EXIT_OK


def _bench_model(args: argparse.Namespace) -> int:
    from workbench.core.export import export
    from workbench.core.sweep import sweep

    case = load_case(args.model, smoke=args.smoke)
    config = cli_args.config_from(args, case.config)
    out = Path(args.work_dir) / f"{case.name}{'-smoke' if args.smoke else ''}.onnx"
    say(f"exporting {case.name} to {out} (cached across runs) ...")
    exported = export(case.model, case.example_inputs, out, spec=case.spec)
    case.spec = exported.spec  # the checked spec: make_inputs resizes along its dynamic axes
    inputs = case.make_inputs(args.batch, args.seq)
    batch = int(inputs[0].shape[0]) if inputs[0].dim() else 1
    say(f"timing eager and ONNX Runtime ({config.label()}) on {[list(t.shape) for t in inputs]} ...")
    result = sweep(case.model, exported.out, batch_sizes=[batch], seq_lens=[args.seq], configs=[config],
                   input_factory=lambda **_: inputs, spec=exported.spec, warmup=args.warmup, runs=args.runs,
                   threads=config.intra_op_threads or None)
    print(repr(result))
    return exit_code(not result.errors)


def run(args: argparse.Namespace) -> int:
    return _bench_onnx(args) if args.model.endswith(".onnx") else _bench_model(args)


COMMAND = Command("bench", HELP, add_arguments, run)
