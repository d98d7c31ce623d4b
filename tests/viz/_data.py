"""Small hand-made core results for the figure tests (no export, no session: fast and exact)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper

from workbench.core.bench import Measurement
from workbench.core.compare import Comparison, compare_arrays
from workbench.core.graph import ModelSummary, summarize
from workbench.core.optimize import OptimizeResult
from workbench.core.pipeline_results import Converted, OptLevels
from workbench.core.probe import ProbeCase, ProbeReport
from workbench.core.quantize import QuantizeResult
from workbench.core.sweep import SweepResult, SweepRow


def comparison(n: int = 1000, *, samples: int = 1, seed: int = 0) -> Comparison:
    """Two outputs, 'logits' (n values, errors ~1e-6) and 'pooled' (20 values, one off by 1e-3)."""
    rng = np.random.default_rng(seed)
    result: Comparison | None = None
    for s in range(samples):
        e1 = rng.standard_normal(n).astype(np.float32)
        e2 = rng.standard_normal(20).astype(np.float32)
        a1 = e1 + rng.normal(0, 1e-6, n).astype(np.float32)
        a2 = e2.copy()
        a2[3] += 1e-3
        part = compare_arrays({"logits": e1, "pooled": e2}, {"logits": a1, "pooled": a2}, tolerance="fp32", sample=s)
        if result is None:
            result = part
        else:
            result.outputs.extend(part.outputs)
    assert result is not None
    result.samples = samples
    return result


def sweep_result(*, slow_run: bool = False) -> SweepResult:
    """eager and CPU/all over batch [1, 4] x seq [16, 32], plus one failed cell; each successful cell
    has the ``Measurement`` of 8 runs (with ``slow_run``, one run of CPU/all at batch 4, seq 32 took
    50 times the others, as when another process wakes up)."""
    rows, measurements = [], {}
    for config, scale in (("eager", 4.0), ("CPU/all", 1.0)):
        for seq in (16, 32):
            for batch in (1, 4):
                p50 = scale * 1e-4 * batch * seq / 16
                times = [p50 * f for f in (0.9, 0.95, 0.98, 1.0, 1.0, 1.02, 1.05, 1.1)]
                if slow_run and (config, batch, seq) == ("CPU/all", 4, 32):
                    times[-1] = 50 * p50
                measurements[(config, batch, seq)] = Measurement(config, times, batch_size=batch)
                rows.append(SweepRow(config, batch, seq, p50=p50, p90=1.1 * p50, p95=max(times) if slow_run else 1.2 * p50,
                                     p99=1.3 * p50, mean=p50, throughput=batch / p50))
    rows.append(SweepRow("CPU/basic", 4, 32, error="run: RuntimeError: boom"))
    eager = {(r.batch, r.seq): r.p50 for r in rows if r.config == "eager"}
    for r in rows:
        if r.ok:
            r.speedup = eager[(r.batch, r.seq)] / r.p50
    return SweepResult(rows=rows, measurements=measurements, total=len(rows))


def probe_report() -> ProbeReport:
    cases = [
        ProbeCase({"batch": 2, "seq": 8}, [(2, 8)], "match", 1e-7, 1e-6),
        ProbeCase({"batch": 1, "seq": 8}, [(1, 8)], "ort_failed", message="RuntimeException: bad reshape"),
        ProbeCase({"batch": 4, "seq": 8}, [(4, 8)], "mismatch", 0.5, 0.9, "logits off"),
        ProbeCase({"batch": 2, "seq": 16}, [(2, 16)], "match", 2e-7, 1e-6),
        ProbeCase({"batch": 1, "seq": 1}, [(1, 1)], "torch_failed", message="PyTorch itself fails"),
    ]
    return ProbeReport(cases, ["batch", "seq"], {"batch": 2, "seq": 8})


def model_summary() -> ModelSummary:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    nodes = [helper.make_node("Relu", ["x"], ["r1"]), helper.make_node("Add", ["r1", "x"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)])
    return summarize(model)


def optimize_result(level: str = "all") -> OptimizeResult:
    before = Counter({"MatMul": 4, "Add": 6, "LayerNormalization": 2, "Relu": 2})
    after = Counter({"MatMul": 2, "FusedMatMul": 2, "Add": 2, "SkipLayerNormalization": 2, "Relu": 2})
    return OptimizeResult(Path("m.onnx"), Path(f"m.opt-{level}.onnx"), level, before, after, 1000, 900)


def measurement(p50: float, label: str = "m") -> Measurement:
    return Measurement(label, [p50 * f for f in (0.9, 0.95, 1.0, 1.0, 1.05, 1.5)])


def opt_levels() -> OptLevels:
    levels = OptLevels()
    for i, level in enumerate(("disable", "basic", "extended", "all")):
        levels.results[level] = optimize_result(level)
        levels.latency[level] = measurement(0.004 - 0.0005 * i, level)
    return levels


def converted(kind: str, p50: float, max_abs_error: float, tolerance: str = "int8") -> Converted:
    gate = compare_arrays([np.zeros(4, np.float32)], [np.full(4, max_abs_error, np.float32)], tolerance=tolerance)
    q = QuantizeResult(kind, Path("m.onnx"), Path(f"m.{kind}.onnx"), 4000, 1000, Counter({"MatMul": 2}),
                       Counter({"MatMulInteger": 2}), Counter({"INT8": 2}), tolerance, gate)
    return Converted(kind, q, latency=measurement(p50, kind), baseline=measurement(0.002, "fp32"))


def finite(values: object) -> list[float]:
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]  # type: ignore[attr-defined]
