"""The load generator's levels (``load_test`` is in ``loadgen.py``): workers on one event loop, one client."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import numpy as np

from workbench.core.cancel import Cancel, is_cancelled
from workbench.core.serve.results import LoadLevel

__all__ = ["run_level"]


class _Tally:
    def __init__(self) -> None:
        self.sent = 0
        self.latencies: list[float] = []
        self.errors: Counter[int] = Counter()
        self.rows = 0.0
        self.batch_share = 0.0  # sum over answers of rows / batch size: the number of batches they filled
        self.wrong = 0


async def _worker(make_client: Any, url: str, plan: Any, tally: _Tally, deadline: float, max_requests: int | None,
                  cancel: Cancel) -> None:
    # One transport (one keep-alive connection) per worker: httpcore's pool scans every connection for every
    # request, which at 32+ connections in one pool costs the load generator more CPU than the server.
    async with make_client() as transport:
        await _requests(transport, url, plan, tally, deadline, max_requests, cancel)


async def _requests(transport: Any, url: str, plan: Any, tally: _Tally, deadline: float, max_requests: int | None,
                    cancel: Cancel) -> None:
    import httpx

    # httpx's transport with requests built once: ``AsyncClient.post`` (request building, cookies, auth and
    # redirect handling) took a third of the load generator's CPU, which it takes from the server it measures.
    timeout = {"timeout": httpx.Timeout(plan.timeout_s).as_dict()}
    headers = {"content-type": plan.content_type}
    requests = [httpx.Request("POST", url, content=body, headers=headers, extensions=timeout) for body in plan.bodies]
    while time.perf_counter() < deadline and not is_cancelled(cancel):
        if max_requests is not None and tally.sent >= max_requests:
            return
        index = tally.sent % len(plan.bodies)
        tally.sent += 1
        start = time.perf_counter()
        try:
            response = await transport.handle_async_request(requests[index])
            content = await response.aread()
        except httpx.HTTPError:
            tally.errors[0] += 1
            continue
        elapsed = time.perf_counter() - start
        if response.status_code != 200:
            tally.errors[response.status_code] += 1
            if response.status_code == 503:
                await asyncio.sleep(0.01)
            continue
        tally.latencies.append(elapsed * 1e3)
        _count(plan, tally, index, content, response.headers)


def _count(plan: Any, tally: _Tally, index: int, content: bytes, headers: Any) -> None:
    try:
        batch, right = plan.check(index, content)
    except ValueError:
        batch, right = None, False
    if plan.npz:
        batch = int(headers.get("x-batch-size", 0)) or None
    if batch:
        tally.rows += plan.rows[index]
        tally.batch_share += plan.rows[index] / batch
    if not right:
        tally.wrong += 1


async def run_level(make_client: Any, url: str, plan: Any, concurrency: int, duration_s: float,
                    max_requests: int | None, cancel: Cancel) -> LoadLevel:
    """One level: ``concurrency`` workers until ``duration_s`` or ``max_requests``; the numbers of it."""
    tally = _Tally()
    cpu = time.thread_time()
    start = time.perf_counter()
    deadline = start + duration_s
    await asyncio.gather(*(_worker(make_client, f"{url}/v1/predict", plan, tally, deadline, max_requests, cancel)
                           for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    lat = np.asarray(tally.latencies) if tally.latencies else np.asarray([np.nan])
    p50, p95, p99 = (float(np.percentile(lat, q)) for q in (50, 95, 99))
    ok = len(tally.latencies)
    return LoadLevel(
        concurrency=concurrency, requests=tally.sent, ok=ok, errors=dict(tally.errors),
        throughput_rps=ok / elapsed if elapsed > 0 else 0.0, p50_ms=p50, p95_ms=p95, p99_ms=p99,
        mean_batch=tally.rows / tally.batch_share if tally.batch_share else None,
        wrong=tally.wrong if plan.expected is not None else None,
        client_cpu_s=time.thread_time() - cpu, elapsed_s=elapsed, latencies_ms=tally.latencies)
