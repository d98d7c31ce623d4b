"""Toggle -> redraw: how long from flipping the optimization level in ``SessionToggles`` until
``LiveDiff`` has sent its three redrawn figures, for the smoke text classifier (target: <= 1 s).

The two panels are wired as in ``Workbench`` (``toggles.value`` -> ``diff.config``). Each round
sets ``toggles.opt_level`` to the next level and waits for the redraw; the first redraw (plotly's
and torch's warm-up) is not counted. Prints every round, the median and p90, and the median of each
phase (session: ``wb.open_session``; compare: ``wb.compare``; figures: the ``workbench.viz``
functions; send: updating the FigureWidgets). Exits 1 when the median is over ``--limit``.

``--kernel`` runs the same measurement inside a real ipykernel (messages serialized and sent over
ZMQ as in a notebook). The browser's share (JupyterLab drawing three plots) is measured by the
browser test, tests/browser/test_workbench_browser.py, which prints it.

    .venv/bin/python benchmarks/live_diff_redraw.py [--rounds 12] [--kernel] [--limit 1.0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LEVELS = ("disable", "basic", "extended", "all")


def measure(rounds: int, directory: str) -> dict[str, Any]:
    """Export (dynamo, cached in ``directory``), wire the panels, flip the level ``rounds`` times."""
    import traitlets

    import workbench as wb
    from workbench.widgets import LiveDiff, SessionToggles

    case = wb.zoo.get("text_classifier", smoke=True)
    out = wb.export(case.model, case.example_inputs, Path(directory) / "text_classifier.onnx", spec=case.spec).out
    toggles = SessionToggles()
    diff = LiveDiff.from_case(case, out, config=toggles.config)
    traitlets.dlink((toggles, "config"), (diff, "config"))
    if not diff.wait(120) or diff.state != "done":
        raise RuntimeError(f"the first comparison failed: {diff.error}")
    seconds: list[float] = []
    phases: dict[str, list[float]] = {}
    for i in range(rounds):
        level = LEVELS[i % len(LEVELS)] if LEVELS[i % len(LEVELS)] != toggles.opt_level.value else "disable"
        before = diff.redraws
        start = time.perf_counter()
        toggles.opt_level.value = level
        diff.wait(60)
        elapsed = time.perf_counter() - start
        if diff.redraws != before + 1 or diff.state != "done":
            raise RuntimeError(f"round {i}: no redraw ({diff.state}: {diff.error})")
        seconds.append(elapsed)
        for name, value in diff.timings.items():
            phases.setdefault(name, []).append(value)
    diff.close()
    toggles.close()
    return {"seconds": seconds, "phases": {k: statistics.median(v) for k, v in phases.items()}}


def measure_in_kernel(rounds: int, directory: str) -> dict[str, Any]:
    """``measure`` run by a fresh ipykernel; its result comes back as JSON on stdout."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        code = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                f"import live_diff_redraw as b\n"
                f"print('RESULT' + json.dumps(b.measure({rounds}, {directory!r})))")
        out: list[str] = []
        reply = kc.execute_interactive(code, timeout=600, output_hook=lambda msg: out.append(
            msg["content"].get("text", "") if msg["msg_type"] == "stream" else ""))
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"the kernel failed: {reply['content'].get('evalue')}")
        line = next(s for s in "".join(out).splitlines() if s.startswith("RESULT"))
        return json.loads(line[len("RESULT"):])
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--kernel", action="store_true", help="measure inside a real ipykernel")
    parser.add_argument("--limit", type=float, default=1.0, help="fail when the median is over this (s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wb-redraw-") as directory:
        result = (measure_in_kernel if args.kernel else measure)(args.rounds, directory)
    seconds = sorted(result["seconds"])
    median = statistics.median(seconds)
    p90 = seconds[min(len(seconds) - 1, int(round(0.9 * (len(seconds) - 1))))]
    where = "in an ipykernel" if args.kernel else "in this process"
    print(f"toggle -> redraw {where}, smoke text classifier, {len(seconds)} rounds")
    print("  rounds (s): " + ", ".join(f"{s:.3f}" for s in result["seconds"]))
    print(f"  median {median:.3f} s, p90 {p90:.3f} s, min {seconds[0]:.3f} s, max {seconds[-1]:.3f} s")
    print("  median phases (s): " + ", ".join(f"{k} {v:.3f}" for k, v in result["phases"].items()))
    verdict = "OK" if median <= args.limit else "OVER"
    print(f"  {verdict}: median {median:.3f} s vs limit {args.limit:.2f} s")
    return 0 if median <= args.limit else 1


if __name__ == "__main__":
    sys.exit(main())
