"""Does ``wb.serve`` hold under load? The done-when of issue 14, measured in one run.

1. Weight-bound MLP (zoo ``weight_bound_mlp``), batch-1 JSON requests at concurrency 32: the workbench server's
   throughput against the seed article's naive server (``teaching.naive_server``) run the same way, in blocks
   that alternate the two (each block: a 1 s warm-up level, dropped, then the measured level); median ratio with a
   bootstrap CI; p99 of each; the load generator's CPU (its thread's CPU seconds per wall second).
2. Full seed text classifier at 1x128, concurrency 32: server throughput against the offline throughput of the
   same session config at the server's typical batch size (rounded mean batch), offline and server interleaved.
3. Under that load: ``/v1/health`` latency (polled every 50 ms from another thread), every answer checked against
   an offline run of its own request (wrong, lost = no answer), and a server with a tiny queue answers 503s
   (no request left without an answer).
4. Ray Serve (``engine="ray"``, local single-node cluster): the same correctness check.

Each server runs in a child process (``--child``), as it would in production; the load generator runs here.
Run under ``flock /tmp/bench.lock``; writes ``benchmarks/results/serve_load.json``.

    .venv/bin/python benchmarks/serve_load.py [--duration 5] [--blocks 3] [--parts 1,2,3,4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serve_load.json"


#: The session config of every server and offline run (both servers "run the same way"); --config overrides it.
CONFIG: dict[str, Any] = {"allow_spinning": False}


def child(kind: str, model: str, max_queue: int) -> None:
    """Run one server in this process until stdin closes; print its URL first."""
    from workbench.core.serve.server import run_app, serve
    from workbench.core.session import SessionConfig

    config = SessionConfig(**json.loads(os.environ.get("WB_SERVE_CONFIG", "{}")))
    if kind == "naive":
        from workbench.teaching.naive_server import naive_app

        server = run_app(naive_app(model, config=config))
    else:
        server = serve(model, config=config, max_batch=16, max_wait_ms=5.0, max_queue=max_queue)
    print(server.url, flush=True)
    sys.stdin.read()  # the parent closes our stdin to stop us
    server.stop()


class Child:
    """A server in a child process: ``url``, ``cpu_s()`` (its CPU seconds so far), ``close()``."""

    def __init__(self, kind: str, model: Path, max_queue: int = 256) -> None:
        env = {**os.environ, "WB_SERVE_CONFIG": json.dumps(CONFIG)}
        self.proc = subprocess.Popen([sys.executable, __file__, "--child", kind, str(model), str(max_queue)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            raise RuntimeError(f"{kind} server did not start (exit {self.proc.poll()})")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)


def bootstrap(a: list[float], b: list[float], n: int = 2000) -> tuple[float, float, float]:
    """median(a)/median(b) and a 95% CI, resampling the blocks (paired)."""
    rng = np.random.default_rng(0)
    a_, b_ = np.asarray(a), np.asarray(b)
    idx = rng.integers(0, len(a_), (n, len(a_)))
    ratios = np.median(a_[idx], axis=1) / np.median(b_[idx], axis=1)
    return float(np.median(a_) / np.median(b_)), float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))


def export(name: str, folder: Path, batch: int = 2, seq: int | None = None) -> Path:
    import workbench as wb

    case = wb.zoo.get(name)
    out = folder / f"{name}.onnx"
    if not out.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wb.export(case.model, case.make_inputs(batch=batch, seq=seq), out, spec=case.spec)
    return out


def samples(name: str, n: int, seq: int | None = None) -> list[tuple[np.ndarray, ...]]:
    import workbench as wb

    case = wb.zoo.get(name)
    return [tuple(t.numpy() for t in case.make_inputs(batch=1, seq=seq, seed=1000 + i)) for i in range(n)]


def level_dict(level: Any) -> dict[str, Any]:
    return {k: getattr(level, k) for k in ("concurrency", "requests", "ok", "errors", "throughput_rps", "p50_ms",
                                           "p95_ms", "p99_ms", "mean_batch", "wrong", "client_cpu_s", "elapsed_s")}


def measured(url: str, inputs: Any, model: Path, duration: float, **kw: Any) -> Any:
    """A 1 s warm-up level (dropped), then the measured level at concurrency 32, verified."""
    import workbench as wb

    wb.load_test(url, inputs, concurrency=32, duration_s=1.0, onnx_model=model)
    return wb.load_test(url, inputs, concurrency=32, duration_s=duration, verify=True, onnx_model=model, **kw).levels[0]


def part1(folder: Path, duration: float, blocks: int) -> dict[str, Any]:
    model = export("weight_bound_mlp", folder)
    inputs = samples("weight_bound_mlp", 64)
    servers = {"workbench": Child("workbench", model), "naive": Child("naive", model)}
    runs: dict[str, list[Any]] = {k: [] for k in servers}
    server_cpu: dict[str, float] = {k: 0.0 for k in servers}
    try:
        for block in range(blocks):
            for kind in (["workbench", "naive"] if block % 2 == 0 else ["naive", "workbench"]):
                cpu = servers[kind].cpu_s()
                runs[kind].append(measured(servers[kind].url, inputs, model, duration))
                server_cpu[kind] += servers[kind].cpu_s() - cpu
    finally:
        for s in servers.values():
            s.close()
    ratio = bootstrap([lv.throughput_rps for lv in runs["workbench"]], [lv.throughput_rps for lv in runs["naive"]])
    out: dict[str, Any] = {"model": "weight_bound_mlp", "concurrency": 32, "blocks": blocks, "duration_s": duration,
                           "throughput_ratio": ratio}
    for kind, levels in runs.items():
        elapsed = sum(lv.elapsed_s for lv in levels)
        out[kind] = {"throughput_rps_median": float(np.median([lv.throughput_rps for lv in levels])),
                     "p99_ms_median": float(np.median([lv.p99_ms for lv in levels])),
                     "p50_ms_median": float(np.median([lv.p50_ms for lv in levels])),
                     "client_cpu_cores": sum(lv.client_cpu_s for lv in levels) / elapsed,
                     "server_cpu_cores": server_cpu[kind] / elapsed,
                     "wrong": sum(lv.wrong or 0 for lv in levels),
                     "errors": sum(sum(lv.errors.values()) for lv in levels),
                     "levels": [level_dict(lv) for lv in levels]}
    out["pass"] = bool(ratio[0] >= 3.0 and out["workbench"]["p99_ms_median"] < out["naive"]["p99_ms_median"])
    return out


def health_poller(url: str, seconds: float) -> None:
    """(A child process, so the load generator's GIL does not delay it.) GET /v1/health every 50 ms for
    ``seconds``; print the latencies in ms as JSON."""
    import httpx

    found: list[float] = []
    end = time.monotonic() + seconds
    with httpx.Client(timeout=10.0) as client:
        while time.monotonic() < end:
            start = time.perf_counter()
            client.get(f"{url}/v1/health")
            found.append((time.perf_counter() - start) * 1e3)
            time.sleep(0.05)
    print(json.dumps(found), flush=True)


def start_poller(url: str, seconds: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--health", url, str(seconds)], stdout=subprocess.PIPE,
                            text=True)


def offline_rps(model: Path, inputs: list[tuple[np.ndarray, ...]], batch: int, budget_s: float = 2.0) -> float:
    """Rows per second of session.run on the first ``batch`` of ``inputs`` stacked: the median call over
    ``budget_s`` (at least 5 calls, the first dropped), same session config as the servers."""
    import workbench as wb

    session = wb.load_session(model, wb.SessionConfig(**CONFIG))
    feed = {"input_ids": np.concatenate([s[0] for s in inputs[:batch]])}
    session.run(None, feed)
    times: list[float] = []
    end = time.perf_counter() + budget_s
    while time.perf_counter() < end or len(times) < 5:
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return batch / float(np.median(times))


def part23(folder: Path, duration: float, blocks: int) -> dict[str, Any]:
    import workbench as wb

    model = export("text_classifier", folder, batch=2, seq=128)
    inputs = samples("text_classifier", 64, seq=128)
    server = Child("workbench", model)
    levels, offline, health = [], [], []
    try:
        typical = 16  # the server's max_batch (at concurrency 32 its batches fill); then what each level reports
        for _ in range(blocks):
            before = offline_rps(model, inputs, typical)  # offline just before and just after: drift hits both alike
            poller = start_poller(server.url, duration + 1.0)  # from the warm-up level to the end of the measured one
            levels.append(measured(server.url, inputs, model, duration))
            health.extend(json.loads(poller.communicate(timeout=60)[0]))
            typical = max(1, round(levels[-1].mean_batch or typical))
            offline.append((before + offline_rps(model, inputs, typical)) / 2)
        full = Child("workbench", model, max_queue=4)
        try:
            burst = wb.load_test(full.url, inputs, concurrency=64, duration_s=2.0, verify=True, onnx_model=model,
                                 timeout_s=20.0).levels[0]
        finally:
            full.close()
    finally:
        server.close()
    ratio = bootstrap([lv.throughput_rps for lv in levels], offline)
    health_arr = np.asarray(health)
    part2 = {"model": "text_classifier (full) 1x128", "concurrency": 32, "server_rps": [lv.throughput_rps for lv in levels],
             "mean_batch": [lv.mean_batch for lv in levels], "offline_rps_at_mean_batch": offline,
             "ratio_server_over_offline": ratio, "pass": bool(ratio[0] >= 0.85),
             "client_cpu_cores": sum(lv.client_cpu_s for lv in levels) / sum(lv.elapsed_s for lv in levels)}
    part3 = {"health_ms": {"n": len(health), "p50": float(np.percentile(health_arr, 50)),
                           "p99": float(np.percentile(health_arr, 99)), "max": float(health_arr.max())},
             "answers_checked": sum(lv.ok for lv in levels), "wrong": sum(lv.wrong or 0 for lv in levels),
             "lost": sum(lv.errors.get(0, 0) for lv in levels), "errors": [lv.errors for lv in levels],
             "full_queue": level_dict(burst)}
    part3["pass"] = bool(part3["health_ms"]["max"] < 50 and part3["wrong"] == 0 and part3["lost"] == 0
                         and not any(lv.errors for lv in levels) and burst.errors.get(503, 0) > 0
                         and burst.errors.get(0, 0) == 0 and burst.wrong == 0)
    return {"part2": part2, "part3": part3}


def part4(folder: Path, duration: float) -> dict[str, Any]:
    import workbench as wb

    model = export("text_classifier", folder, batch=2, seq=128)
    inputs = samples("text_classifier", 64, seq=128)
    start = time.perf_counter()
    with wb.serve(model, engine="ray", replicas=1, max_batch=16) as server:
        started = time.perf_counter() - start
        level = measured(server.url, inputs, model, duration)
    return {"engine": "ray", "start_s": started, "level": level_dict(level),
            "pass": bool(level.ok > 0 and level.wrong == 0 and not level.errors)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs=3, metavar=("KIND", "MODEL", "MAX_QUEUE"), help=argparse.SUPPRESS)
    parser.add_argument("--health", nargs=2, metavar=("URL", "SECONDS"), help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured level")
    parser.add_argument("--blocks", type=int, default=3)
    parser.add_argument("--parts", default="1,2,3,4")
    parser.add_argument("--config", default=json.dumps(CONFIG), help="SessionConfig fields as JSON")
    parser.add_argument("--out", default=str(RESULTS), help="the JSON written")
    args = parser.parse_args()
    CONFIG.clear()
    CONFIG.update(json.loads(args.config))
    if args.health:
        health_poller(args.health[0], float(args.health[1]))
        return 0
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    import torch

    torch.set_num_threads(1)  # the inputs are made with torch here: no OpenMP pool left spinning beside ORT
    from workbench.core._workdirs import user_cache_dir

    folder = user_cache_dir("bench-serve")
    parts = set(args.parts.split(","))
    result: dict[str, Any] = {"cpu_count": os.cpu_count(), "config": CONFIG, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if "1" in parts:
        result["part1"] = part1(folder, args.duration, args.blocks)
    if parts & {"2", "3"}:
        result.update(part23(folder, args.duration, args.blocks))
    if "4" in parts:
        result["part4"] = part4(folder, args.duration)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    summary(result)
    return 0 if all(v.get("pass") for k, v in result.items() if k.startswith("part")) else 1


def summary(result: dict[str, Any]) -> None:
    p1 = result.get("part1")
    if p1:
        r = p1["throughput_ratio"]
        print(f"1. weight-bound MLP, c=32: workbench {p1['workbench']['throughput_rps_median']:.0f} rps "
              f"(p99 {p1['workbench']['p99_ms_median']:.1f} ms) vs naive {p1['naive']['throughput_rps_median']:.0f} rps "
              f"(p99 {p1['naive']['p99_ms_median']:.1f} ms): {r[0]:.2f}x [{r[1]:.2f}, {r[2]:.2f}] (>= 3x) "
              f"client CPU {p1['workbench']['client_cpu_cores']:.2f}/{p1['naive']['client_cpu_cores']:.2f} cores "
              f"-> {'PASS' if p1['pass'] else 'FAIL'}")
    p2 = result.get("part2")
    if p2:
        r = p2["ratio_server_over_offline"]
        print(f"2. text classifier 1x128, c=32: server {np.median(p2['server_rps']):.1f} rps, offline at batch "
              f"{p2['mean_batch']} {np.median(p2['offline_rps_at_mean_batch']):.1f} rps: {r[0]:.2f} [{r[1]:.2f}, {r[2]:.2f}]"
              f" (>= 0.85) -> {'PASS' if p2['pass'] else 'FAIL'}")
    p3 = result.get("part3")
    if p3:
        h = p3["health_ms"]
        print(f"3. health p50 {h['p50']:.1f} ms max {h['max']:.1f} ms (< 50); {p3['answers_checked']} answers checked, "
              f"wrong {p3['wrong']}, lost {p3['lost']}; full queue: {p3['full_queue']['errors']} "
              f"-> {'PASS' if p3['pass'] else 'FAIL'}")
    p4 = result.get("part4")
    if p4:
        lv = p4["level"]
        print(f"4. Ray Serve: {lv['ok']} answers, wrong {lv['wrong']}, errors {lv['errors']}, "
              f"{lv['throughput_rps']:.1f} rps (start {p4['start_s']:.0f} s) -> {'PASS' if p4['pass'] else 'FAIL'}")


if __name__ == "__main__":
    sys.exit(main())
