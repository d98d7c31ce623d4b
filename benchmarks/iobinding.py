"""Plain ``session.run`` (numpy feed) against IO binding, and on CUDA against CUDA graphs.

    python benchmarks/iobinding.py                      # smoke text_classifier, CPU (+ CUDA when present)
    python benchmarks/iobinding.py --full --batch 8     # the seed-sized model
    python benchmarks/iobinding.py --model bert_like --rounds 31 --json times.json

Variants of one group share one session, so only the way of calling differs. Rounds are
interleaved (A B C, B C A, C A B, ...): drift in machine load hits every variant alike. Each
round times a batch of calls with ``perf_counter``; the table gives the median time per call over
the rounds, the interquartile range, and the speedup against the group's plain ``session.run``, taken as
the median of the round-by-round ratios (paired, so drift between rounds cancels).
Outputs of every variant are checked against ``session.run`` before timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnxruntime as ort
import torch

from workbench import zoo
from workbench.core._format import fmt_time, text_table
from workbench.core.iobinding import IOBinder, cuda_available, cuda_graph_session, session_config_for, parse_device
from workbench.core.session import SessionConfig, open_session


@dataclass
class Variant:
    """One way of running the model: a zero-argument call and the group it is compared within."""

    name: str
    group: str
    call: Callable[[], object]
    outputs: Callable[[], list[np.ndarray]]


@dataclass
class VariantResult:
    """Raw per-call times (seconds, one per round) of a variant and its summary."""

    name: str
    group: str
    per_call: list[float] = field(default_factory=list)
    calls_per_round: int = 0
    round_speedups: list[float] = field(default_factory=list)  # baseline / variant, round by round

    @property
    def speedup(self) -> float:
        """Median over rounds of the paired ratio: drift between rounds cancels out."""
        return statistics.median(self.round_speedups)

    @property
    def speedup_iqr(self) -> tuple[float, float]:
        q = statistics.quantiles(self.round_speedups, n=4)
        return q[0], q[2]

    @property
    def median(self) -> float:
        return statistics.median(self.per_call)

    @property
    def iqr(self) -> float:
        q = statistics.quantiles(self.per_call, n=4)
        return q[2] - q[0]


def export_zoo(name: str, *, full: bool, batch: int | None, seq: int | None,
               folder: Path) -> tuple[Path, tuple[torch.Tensor, ...], list[str]]:
    """Export a zoo model with the TorchScript exporter; return the path, inputs at the asked size, names."""
    case = zoo.get(name, smoke=not full)
    inputs = case.make_inputs(batch=batch, seq=seq)
    path = folder / f"{name}.onnx"
    # Exported at the size it is timed at: the TorchScript exporter bakes some shapes (see the seeds' notes).
    # Not under no_grad: eval + no_grad sends nn.TransformerEncoderLayer down a fused path with no ONNX export.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(case.model, inputs, str(path), dynamo=False, opset_version=case.spec.opset,
                          input_names=list(case.spec.input_names), output_names=list(case.spec.output_names),
                          dynamic_axes={k: dict(v) for k, v in case.spec.dynamic_axes.items()})
    return path, tuple(t.contiguous() for t in inputs), list(case.spec.input_names)


def cpu_variants(path: Path, inputs: Sequence[torch.Tensor], names: list[str], threads: int) -> list[Variant]:
    """session.run with numpy, IO binding with ORT-allocated outputs, IO binding with pre-allocated outputs."""
    session = open_session(path, SessionConfig(intra_op_threads=threads))

    def plain() -> list[np.ndarray]:
        return session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})

    free = IOBinder(session)
    free.bind_inputs(tuple(inputs))
    free.bind_outputs(None)
    fixed = IOBinder(session)
    fixed.bind_inputs(tuple(inputs))
    fixed.allocate_outputs()
    return [
        Variant("session.run (numpy feed)", "cpu", plain, plain),
        Variant("IO binding, ORT-allocated outputs", "cpu", free.run, lambda: list(free.run(to_numpy=True).values())),
        Variant("IO binding, pre-allocated outputs", "cpu", fixed.run, lambda: list(fixed.run(to_numpy=True).values())),
    ]


def cuda_variants(path: Path, inputs: Sequence[torch.Tensor], names: list[str]) -> list[Variant]:
    """On CUDA: session.run with host numpy (copies each run), IO binding on device, CUDA graph replay."""
    device = parse_device("cuda:0")
    session = open_session(path, session_config_for(device))
    host = [t.numpy() for t in inputs]

    def plain() -> list[np.ndarray]:
        return session.run(None, dict(zip(names, host)))

    on_device = tuple(t.to(device.torch_device) for t in inputs)
    bound = IOBinder(session, device)
    bound.bind_inputs(on_device)
    bound.allocate_outputs()
    variants = [
        Variant("CUDA session.run (host numpy feed)", "cuda", plain, plain),
        Variant("CUDA IO binding, device tensors", "cuda", bound.run,
                lambda: list(bound.run(to_numpy=True).values())),
    ]
    try:
        graph = cuda_graph_session(path, tuple(inputs), device=device)
        graph.run()  # captures
        variants.append(Variant("CUDA IO binding + CUDA graph", "cuda", graph.run,
                                lambda: list(graph.run(to_numpy=True).values())))
    except Exception as exc:  # a model ONNX Runtime cannot capture: report and go on
        print(f"CUDA graph variant skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
    return variants


TOLERANCE = {"cpu": 1e-5, "cuda": 1e-3}  # CUDA kernels may use TF32 and other reduction orders


def check_agreement(variants: Sequence[Variant]) -> None:
    """Every variant gives the outputs of its group's first variant (plain session.run)."""
    reference: dict[str, list[np.ndarray]] = {}
    for variant in variants:
        got = [np.asarray(o) for o in variant.outputs()]
        expected = reference.setdefault(variant.group, got)
        tol = TOLERANCE[variant.group]
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol, err_msg=variant.name)


def calls_per_round(call: Callable[[], object], target_s: float) -> int:
    """How many calls make a round of about ``target_s`` seconds."""
    start = time.perf_counter()
    n = 0
    while time.perf_counter() - start < target_s / 4 or n < 3:
        call()
        n += 1
    per_call = (time.perf_counter() - start) / n
    return max(1, int(target_s / per_call))


def interleaved(variants: Sequence[Variant], rounds: int, number: int) -> list[VariantResult]:
    """Time ``number`` calls per variant per round, rotating the order each round."""
    results = {v.name: VariantResult(v.name, v.group, calls_per_round=number) for v in variants}
    for r in range(rounds):
        order = list(variants[r % len(variants):]) + list(variants[:r % len(variants)])
        for variant in order:
            call = variant.call
            start = time.perf_counter()
            for _ in range(number):
                call()
            results[variant.name].per_call.append((time.perf_counter() - start) / number)
    out = [results[v.name] for v in variants]
    for result in out:
        baseline = next(r for r in out if r.group == result.group)
        result.round_speedups = [b / t for b, t in zip(baseline.per_call, result.per_call)]
    return out


def format_table(results: Sequence[VariantResult]) -> str:
    """Median time per call, its spread, and the paired speedup against the group's session.run."""
    rows = []
    for r in results:
        lo, hi = r.speedup_iqr
        rows.append([r.name, fmt_time(r.median), f"{100 * r.iqr / r.median:.0f}%", f"{r.speedup:.2f}x",
                     f"{lo:.2f}-{hi:.2f}", f"{len(r.per_call)} x {r.calls_per_round}"])
    headers = ["variant", "median / call", "IQR / median", "speedup", "speedup IQR", "rounds x calls"]
    return text_table(headers, rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="text_classifier", choices=zoo.names())
    parser.add_argument("--full", action="store_true", help="the full-size zoo model instead of the smoke one")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: the zoo example's)")
    parser.add_argument("--seq", type=int, default=None, help="sequence length / image side (default: the example's)")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--round-ms", type=float, default=50.0, help="target time of one variant's round")
    parser.add_argument("--threads", type=int, default=0, help="ORT intra-op threads on CPU (0: ORT chooses)")
    parser.add_argument("--cpu-only", action="store_true", help="skip the CUDA variants even where CUDA exists")
    parser.add_argument("--json", type=Path, default=None, help="write raw per-call times here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(max(1, args.threads or (os.cpu_count() or 1)))
    with tempfile.TemporaryDirectory() as tmp:
        path, inputs, names = export_zoo(args.model, full=args.full, batch=args.batch, seq=args.seq, folder=Path(tmp))
        variants = cpu_variants(path, inputs, names, args.threads)
        if cuda_available() and not args.cpu_only:
            variants += cuda_variants(path, inputs, names)
        check_agreement(variants)
        number = calls_per_round(variants[0].call, args.round_ms / 1e3)
        for variant in variants:  # warm-up (CUDA graph capture already done)
            for _ in range(max(3, number // 4)):
                variant.call()
        results = interleaved(variants, args.rounds, number)
    shapes = ", ".join(f"{n}{tuple(t.shape)}:{str(t.dtype).removeprefix('torch.')}" for n, t in zip(names, inputs))
    print(f"model {args.model} ({'full' if args.full else 'smoke'}), inputs {shapes}")
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {platform.machine()} "
          f"{os.cpu_count()} cores, ORT threads {args.threads or 'auto'}, "
          f"CUDA {'yes: ' + torch.cuda.get_device_name(0) if cuda_available() else 'no'}")
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps([{**asdict(r), "median": r.median, "speedup": r.speedup}
                                         for r in results], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
