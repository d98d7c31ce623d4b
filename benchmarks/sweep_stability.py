"""Do two consecutive sweeps agree? (issue 11, done-when 0)

Runs the Latency panel's default sweep (its grid, configs, repetitions and cell budget, read from
a fresh ``LatencySweep``) of the smoke text classifier twice in a row, ``--reps`` times (default 5).
For every ONNX Runtime cell that either sweep marks as a clear difference from eager (95%
interval excludes 1), the other sweep's speed-up must lie on the same side of 1; a repetition
passes when no such cell disagrees. Prints a table and writes benchmarks/results/sweep_stability.json.

    flock /tmp/bench.lock .venv/bin/python benchmarks/sweep_stability.py [--reps 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

import workbench as wb
from workbench.core.sweep_results import EAGER, SweepResult
from workbench.widgets.sweep import LatencySweep

RESULTS = Path(__file__).resolve().parent / "results" / "sweep_stability.json"


def panel_defaults(case: wb.ModelCase, onnx_model: Path) -> dict[str, Any]:
    """The sweep the Latency panel runs when a newcomer presses Run without changing anything."""
    panel = LatencySweep.from_case(case, onnx_model)
    return dict(batch_sizes=list(panel.batch_sizes), seq_lens=list(panel.seq_lens), configs=panel.selected_configs(),
                include_eager=bool(panel.eager_box.value), warmup=int(panel.warmup.value), runs=int(panel.runs.value),
                cell_budget_s=float(panel.cell_budget.value))


def cells(result: SweepResult) -> dict[tuple[str, int, int | None], dict[str, Any]]:
    return {(r.config, r.batch, r.seq): {"speedup": r.speedup, "low": r.speedup_low, "high": r.speedup_high,
                                         "verdict": r.verdict, "rounds": r.rounds, "stopped": r.stopped}
            for r in result.rows if r.ok and r.config != EAGER and r.speedup is not None}


def disagreements(a: SweepResult, b: SweepResult) -> list[dict[str, Any]]:
    """Cells marked clear in one sweep whose speed-up in the other lies on the other side of 1."""
    first, second = cells(a), cells(b)
    out = []
    for key in sorted(set(first) | set(second), key=str):
        x, y = first.get(key), second.get(key)
        if x is None or y is None:
            out.append({"cell": key, "why": "missing in one sweep"})
            continue
        for clear, other in ((x, y), (y, x)):
            if clear["verdict"] in ("faster", "slower") and (clear["speedup"] > 1) != (other["speedup"] > 1):
                out.append({"cell": key, "a": x, "b": y})
                break
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    case = wb.zoo.get("text_classifier", smoke=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_model = wb.export(case.model, case.example_inputs, Path(tmp) / "text_classifier.onnx",
                                   spec=case.spec).out
        options = panel_defaults(case, onnx_model)
        reps = []
        for rep in range(1, args.reps + 1):
            pair, seconds = [], []
            for _ in range(2):
                t0 = time.perf_counter()
                pair.append(wb.sweep(case.model, onnx_model, input_factory=case.input_factory, **options))
                seconds.append(time.perf_counter() - t0)
            bad = disagreements(*pair)
            opposite = [d for d in bad if "a" in d and {d["a"]["verdict"], d["b"]["verdict"]} == {"faster", "slower"}]
            reps.append({
                "rep": rep, "seconds": seconds, "agree": not bad, "disagreements": bad,
                "both_clear_opposite": len(opposite),
                "clear": [sum(c["verdict"] in ("faster", "slower") for c in cells(r).values()) for r in pair],
                "unclear": [len(r.unclear) for r in pair], "errors": [len(r.errors) for r in pair],
                "cells": [{str(k): v for k, v in cells(r).items()} for r in pair],
            })
            print(f"rep {rep}: {'agree' if not bad else f'{len(bad)} DISAGREE'} "
                  f"({seconds[0]:.1f} s + {seconds[1]:.1f} s)", file=sys.stderr, flush=True)
    _print(reps, options)
    summary = {
        "what": "two consecutive default Latency-panel sweeps of the smoke text classifier: does every cell marked "
                "as a clear difference agree in sign?",
        "grid": {k: (v if k != "configs" else [c.label() for c in v]) for k, v in options.items()},
        "reps": reps, "all_agree": all(r["agree"] for r in reps), "seconds": time.perf_counter() - start,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1, default=str))
    print(f"wrote {args.out} ({summary['seconds']:.0f} s)")
    return 0 if summary["all_agree"] else 1


def _print(reps: list[dict[str, Any]], options: dict[str, Any]) -> None:
    print(f"grid: batch {options['batch_sizes']} x seq {options['seq_lens']}, configs "
          f"{[c.label() for c in options['configs']]}, runs {options['runs']}, cell budget {options['cell_budget_s']} s")
    print(f"{'rep':>3}  {'sweep s':>11}  {'clear A/B':>9}  {'unclear A/B':>11}  {'disagree':>8}  {'opposite':>8}  verdict")
    for r in reps:
        print(f"{r['rep']:>3}  {r['seconds'][0]:5.1f}/{r['seconds'][1]:<5.1f}  {r['clear'][0]:>4}/{r['clear'][1]:<4}  "
              f"{r['unclear'][0]:>5}/{r['unclear'][1]:<5}  {len(r['disagreements']):>8}  {r['both_clear_opposite']:>8}  "
              f"{'agree' if r['agree'] else 'DISAGREE'}")
    print("disagree: a cell clear in one sweep whose speed-up in the other lies on the other side of 1; "
          "opposite: clear in both, faster in one and slower in the other")
    print(f"{sum(r['agree'] for r in reps)}/{len(reps)} repetitions agree on the sign of every clear cell")


if __name__ == "__main__":
    sys.exit(main())
