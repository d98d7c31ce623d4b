"""Is ``wb.benchmark()`` an honest clock? Compare its median for an ONNX Runtime session with
a bare ``time.perf_counter`` loop around ``session.run`` in the same process.

The smoke ``text_classifier`` is exported to a temporary directory; both timers share one
session and one precomputed feed. A/B are interleaved in many short rounds (the order flips
every round) so drift and other processes on a noisy machine hit both alike; the medians are
taken over all the calls of each arm. Prints the medians and the ratio
benchmark/raw; exits 1 when the ratio is outside 1 +- tolerance (3% by default).

    .venv/bin/python benchmarks/bench_overhead.py [--rounds 200] [--runs 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from workbench import zoo
from workbench.core.bench import benchmark
from workbench.core.session import SessionConfig, open_session


def export_smoke_model(work_dir: Path) -> Path:
    """The smoke text classifier as ONNX (TorchScript exporter: fast, fine for timing)."""
    case = zoo.get("text_classifier", smoke=True)
    path = work_dir / "text_classifier.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            case.model, case.example_inputs, str(path), dynamo=False, opset_version=17,
            input_names=list(case.spec.input_names), output_names=list(case.spec.output_names),
            dynamic_axes=case.spec.dynamic_axes,
        )
    return path


def raw_loop(session: ort.InferenceSession, feed: dict[str, np.ndarray], warmup: int, runs: int) -> list[float]:
    """The reference: perf_counter around session.run, nothing else."""
    run = session.run
    clock = time.perf_counter
    for _ in range(warmup):
        run(None, feed)
    times = [0.0] * runs
    for i in range(runs):
        start = clock()
        run(None, feed)
        times[i] = clock() - start
    return times


def with_benchmark(session: ort.InferenceSession, feed: dict[str, np.ndarray], warmup: int, runs: int) -> list[float]:
    return benchmark(session, feed, warmup=warmup, runs=runs).raw_times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--runs", type=int, default=10, help="timed calls per arm per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per arm per round")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--tolerance", type=float, default=0.03)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path = export_smoke_model(Path(tmp))
        session = open_session(path, SessionConfig(intra_op_threads=args.threads))
        inputs = zoo.get("text_classifier", smoke=True).example_inputs
        feed = {session.get_inputs()[0].name: inputs[0].numpy()}
        arms = {"benchmark": with_benchmark, "raw": raw_loop}
        pooled: dict[str, list[float]] = {name: [] for name in arms}
        ratios = []
        for r in range(args.rounds):
            order = list(arms) if r % 2 == 0 else list(reversed(arms))
            medians = {}
            for name in order:
                times = arms[name](session, feed, args.warmup, args.runs)
                pooled[name].extend(times)
                medians[name] = statistics.median(times)
            ratios.append(medians["benchmark"] / medians["raw"])
        del session

    bench_median = statistics.median(pooled["benchmark"])
    raw_median = statistics.median(pooled["raw"])
    ratio = bench_median / raw_median
    print(f"smoke text_classifier, ORT CPU, intra_op_threads={args.threads}, "
          f"{args.rounds} rounds x {args.runs} runs per arm, interleaved")
    print(f"  benchmark() median : {bench_median * 1e6:9.1f} us")
    print(f"  raw loop median    : {raw_median * 1e6:9.1f} us")
    print(f"  per-round ratios   : median {statistics.median(ratios):.4f}, "
          f"min {min(ratios):.4f}, max {max(ratios):.4f}")
    print(f"  ratio benchmark/raw: {ratio:.4f} ({(ratio - 1) * 100:+.2f}%), tolerance +-{args.tolerance * 100:.0f}%")
    ok = abs(ratio - 1) <= args.tolerance
    print("  PASS" if ok else "  FAIL: benchmark() disagrees with a bare perf_counter loop")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
