"""Helpers of notebook 12 (serving): the measurements it shows, put side by side in small tables.

What they measure comes from ``workbench``'s core (``wb.benchmark``, ``wb.serve``, ``wb.load_test``);
this module only sizes the runs for smoke mode and lays the numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

#: The batch sizes compared offline: one request alone, and what a batching server stacks.
BATCHES = (1, 16)


@dataclass(frozen=True)
class LoadSettings:
    """How much notebook 12 measures: the load test's levels and seconds per level, and the offline runs."""

    levels: tuple[int, ...]
    duration_s: float
    runs: int
    warmup: int


SMOKE_LOAD = LoadSettings(levels=(1, 8, 32), duration_s=0.7, runs=10, warmup=2)
FULL_LOAD = LoadSettings(levels=(1, 8, 32, 64), duration_s=5.0, runs=50, warmup=5)


def load_settings() -> LoadSettings:
    """``SMOKE_LOAD`` in smoke mode (CI set), else ``FULL_LOAD``."""
    from workbench.teaching import tutorial

    return SMOKE_LOAD if tutorial.SMOKE else FULL_LOAD


def tuned_or_export(tune_file: str | Path, export: str | Path) -> tuple[Path, str]:
    """What to serve: the tune result notebook 11 saved (``TuneResult.save``: the chosen model and config,
    which ``wb.serve`` reads from the JSON) where it exists, else the plain export with the default config;
    and a sentence saying which."""
    import json

    path = Path(tune_file)
    if path.is_file():
        chosen = json.loads(path.read_text(encoding="utf-8"))
        model = Path(str(chosen.get("onnx_model", ""))).name
        return path, f"serving what notebook 11 chose: {chosen.get('chosen')} ({model})"
    return Path(export), f"no tune result at {path} (notebook 11 saves one when it chooses): serving {Path(export).name}"


def measure_batching(models: Mapping[str, tuple[Any, Any, int | None]], *, runs: int, warmup: int,
                     batches: Sequence[int] = BATCHES) -> pd.DataFrame:
    """Offline, without a server: the median time of one call at each batch size, for each
    ``label -> (ModelCase, onnx_model, seq)``, and what batching buys per item."""
    from workbench.core.bench import benchmark
    from workbench.core.session import open_session

    rows = []
    small, large = min(batches), max(batches)
    for label, (case, onnx_model, seq) in models.items():
        session = open_session(onnx_model)
        ms = {b: benchmark(session, case.make_inputs(batch=b, seq=seq), runs=runs, warmup=warmup).median * 1e3
              for b in batches}
        row: dict[str, Any] = {"model": label}
        row.update({f"batch {b} (ms)": round(ms[b], 3) for b in batches})
        row[f"batch {large} / batch {small} time"] = round(ms[large] / ms[small], 2)
        row["items/s gain from batching"] = round((large / ms[large]) / (small / ms[small]), 1)
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def gpu_batching() -> pd.DataFrame:
    """The recorded H200 run (``gpu_run``): the same transformer at 32, 1,024 and 16,384 tokens a call,
    inputs and outputs bound on the GPU; the time per call hardly moves until the GPU is busy."""
    from workbench.teaching import gpu_run

    rows = []
    for size, stats in gpu_run.load()["iobinding"].items():
        batch, seq = (int(part[1:]) for part in size.split(" ")[1:3])
        us = float(stats["iobinding_torch_preallocated"]["median_us"])
        rows.append({"shape": f"{batch}\u00d7{seq}", "tokens per call": batch * seq, "time per call (ms)": round(us / 1e3, 3),
                     "us per token": round(us / (batch * seq), 2)})
    return pd.DataFrame(rows).set_index("shape")


def level(result: Any, concurrency: int) -> Any:
    """The level of a ``LoadResult`` at ``concurrency`` (the highest level below it where it did not run)."""
    runs = sorted(result.levels, key=lambda lv: lv.concurrency)
    below = [lv for lv in runs if lv.concurrency <= concurrency]
    return below[-1] if below else runs[0]


def compare_servers(results: Mapping[str, Any], *, concurrency: int) -> pd.DataFrame:
    """Throughput, p50/p99 and failures at ``concurrency`` for each ``label -> LoadResult``, and each
    throughput against the first result's."""
    rows = []
    base: float | None = None
    for label, result in results.items():
        lv = level(result, concurrency)
        base = lv.throughput_rps if base is None else base
        rows.append({"server": label, "concurrency": lv.concurrency, "requests/s": round(lv.throughput_rps, 1),
                     "p50 (ms)": round(lv.p50_ms, 2) if lv.ok else None, "p99 (ms)": round(lv.p99_ms, 2) if lv.ok else None,
                     "failed": int(sum(lv.errors.values())) if lv.errors else 0,
                     "mean batch": None if lv.mean_batch is None else round(float(lv.mean_batch), 1),
                     "throughput vs first": round(lv.throughput_rps / base, 2) if base else None})
    return pd.DataFrame(rows).set_index("server")


def naive_server(onnx_model: Any) -> Any:
    """The seed article's server (``naive_server.naive_app``: THE WRONG WAY) running on 127.0.0.1 in the
    background, as a ``Server`` (``url``, ``stop()``, a context manager) that ``wb.load_test`` can drive."""
    from workbench.core.serve.server import run_app
    from workbench.teaching.naive_server import naive_app

    return run_app(naive_app(onnx_model), host="127.0.0.1", port=0, onnx_model=onnx_model,
                   settings={"max_batch": 1}, engine="naive (the seed article's)")


def health_under_load(server: Any, inputs: Mapping[str, Any], *, concurrency: int, duration_s: float,
                      every_s: float = 0.05) -> tuple[Any, pd.Series]:
    """A load test of ``server`` at ``concurrency`` and, meanwhile, ``GET /v1/health`` every ``every_s``:
    the ``LoadResult`` and the health answers' times (ms)."""
    import threading
    import time

    import httpx

    from workbench.core.serve import load_test

    box: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: box.update(result=load_test(
        server, inputs, concurrency=(concurrency,), duration_s=duration_s)), daemon=True)
    worker.start()
    times: list[float] = []
    with httpx.Client(timeout=30.0) as client:
        time.sleep(min(0.2, duration_s / 4))  # let the load build up
        while worker.is_alive() and len(times) < 1000:
            start = time.perf_counter()
            client.get(f"{server.url}/v1/health")
            times.append((time.perf_counter() - start) * 1e3)
            time.sleep(every_s)
    worker.join()
    return box["result"], pd.Series(times, name="health ms").describe(percentiles=[0.5, 0.99])[["count", "50%", "99%", "max"]]


def side_by_side(onnx_model: Any, inputs: Mapping[str, Any], *, concurrency: int,
                 duration_s: float) -> tuple[dict[str, Any], pd.DataFrame]:
    """The seed article's server, ``wb.serve`` without batching and ``wb.serve`` batching up to 16, each
    load-tested at ``concurrency`` in turn (one server at a time, each stopped after) while ``/v1/health``
    is polled: the ``LoadResult`` per server, and the health answers' times (ms) per server."""
    from workbench.core.serve import serve

    starts = {"naive (seed article)": lambda: naive_server(onnx_model),
              "wb.serve max_batch=1": lambda: serve(onnx_model, max_batch=1),
              "wb.serve max_batch=16": lambda: serve(onnx_model, max_batch=16)}
    runs: dict[str, Any] = {}
    health: dict[str, pd.Series] = {}
    for label, start in starts.items():
        with start() as server:
            runs[label], health[label] = health_under_load(server, inputs, concurrency=concurrency,
                                                           duration_s=duration_s)
    table = pd.DataFrame(health).T.rename(columns={"count": "health checks", "50%": "health p50 (ms)",
                                                   "99%": "health p99 (ms)", "max": "health max (ms)"})
    return runs, table.round(1)


def describe_batching(table: pd.DataFrame) -> str:
    """A sentence read from ``measure_batching``'s table: how much batching multiplies each model's items/s."""
    gain = table.columns[-1]
    parts = [f"{value:g}x for the {model}" for model, value in table[gain].items()]
    best = table[gain].idxmax()
    return (f"Running {max(BATCHES)} requests as one batch multiplies the items per second by " + " and ".join(parts)
            + f" in this run: batching pays most for the {best}.")


def describe_servers(runs: Mapping[str, Any], *, concurrency: int) -> str:
    """A sentence read from ``side_by_side``'s results: the last server against the first, at ``concurrency``."""
    labels = list(runs)
    first, last = level(runs[labels[0]], concurrency), level(runs[labels[-1]], concurrency)
    if not first.throughput_rps or not last.ok:
        return "One of the servers answered no request in this run: look at the errors in the table."
    ratio = last.throughput_rps / first.throughput_rps
    tail = "lower" if last.p99_ms < first.p99_ms else "higher"
    return (f"In this run {labels[-1]} answered {ratio:.1f}x the requests per second of the {labels[0]} "
            f"({last.throughput_rps:,.0f} against {first.throughput_rps:,.0f}), with a {tail} p99 "
            f"({last.p99_ms:,.0f} ms against {first.p99_ms:,.0f} ms), running batches of {last.mean_batch or 1:.1f} "
            "requests on average.")
