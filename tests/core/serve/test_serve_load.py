"""Under concurrency: batching with every answer checked, 503 back-pressure, model failure 500, dropped clients,
health while saturated, and the load generator's own rules."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import httpx
import numpy as np
import pytest

import workbench as wb


def test_batching_under_concurrency_every_answer_checked(affine_server, make_rows):
    progress: list[tuple[str, str]] = []
    seen: list[wb.core.serve.LoadLevel] = []
    result = wb.load_test(affine_server, [(r,) for r in make_rows(48, seed=3)], concurrency=(1, 16), duration_s=0.6, verify=True,
                          progress=lambda s, m: progress.append((s, m)), on_level=seen.append)
    assert result, result
    assert [lv.concurrency for lv in result.levels] == [1, 16] and progress == [("level", "1"), ("level", "16")]
    busy = result.level(16)
    assert busy.ok > 16 and busy.wrong == 0 and busy.mean_batch > 1.0  # requests really shared batches
    assert result.levels[0].mean_batch == pytest.approx(1.0)
    assert seen == result.levels and result.client_cpu_s > 0 and result.verified
    frame = result.to_pandas()
    assert list(frame["concurrency"]) == [1, 16] and "p99_ms" in frame and "Load test" in str(result)
    assert "<table" in result._repr_html_() and "LoadResult(" in repr(result)


def test_npz_load_and_shapes_in_separate_batches(models):
    rng = np.random.default_rng(4)
    samples = [{"ids": rng.integers(0, 10, (1, n)).astype(np.int64)} for n in (3, 5, 3, 7, 5, 3) * 4]
    with wb.serve(models["lookup"], max_batch=8, max_wait_ms=3.0) as server:
        result = wb.load_test(server, samples, concurrency=12, duration_s=0.6, verify=True, form="npz")
        assert result and result.levels[0].wrong == 0 and result.levels[0].ok > 12


def test_full_queue_answers_503_with_retry_after(models, make_rows):
    with wb.serve(models["slow"], max_batch=1, max_queue=2) as server:
        result = wb.load_test(server, [(r,) for r in make_rows(8, width=64)], concurrency=16, duration_s=0.8, timeout_s=20)
        level = result.levels[0]
        assert level.errors.get(503, 0) > 0 and level.ok > 0 and 0 not in level.errors  # 503s, no hang
        assert not result  # errors make the result falsy
        x = make_rows(1, width=64)[0].tolist()

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=20) as client:
                return await asyncio.gather(*(client.post(f"{server.url}/v1/predict", json={"inputs": {"x": x}})
                                              for _ in range(12)))

        # A thread of its own: the browser tests' Playwright keeps an event loop running in the main thread.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            answers = pool.submit(asyncio.run, burst()).result()
        busy = [r for r in answers if r.status_code == 503]
        assert busy and busy[0].headers["retry-after"] == "1" and "queue is full" in busy[0].json()["detail"]
        assert server.metrics()["requests"][503] >= len(busy)


def test_model_failure_is_a_500_and_the_server_keeps_serving(models):
    with wb.serve(models["lookup"], max_batch=4) as server:
        bad = httpx.post(f"{server.url}/v1/predict", json={"inputs": {"ids": [[1, 2, 99]]}})
        assert bad.status_code == 500 and bad.json()["error"] == "model failed"
        assert "out of" in bad.json()["detail"] or "indices" in bad.json()["detail"].lower()
        good = httpx.post(f"{server.url}/v1/predict", json={"inputs": {"ids": [[1, 2, 3]]}})
        assert good.status_code == 200 and good.json()["outputs"]["emb"][0][2] == [9.0, 10.0, 11.0]
        assert server.metrics()["requests"] == {500: 1, 200: 1}


def test_a_client_that_went_away_is_dropped(models, make_rows):
    with wb.serve(models["slower"], max_batch=1, max_queue=16) as server:
        x = make_rows(1, width=64)[0].tolist()
        run_s = httpx.post(f"{server.url}/v1/predict", json={"inputs": {"x": x}}, timeout=30).json()["compute_ms"] / 1e3
        blockers = [threading.Thread(target=httpx.post, args=(f"{server.url}/v1/predict",),
                                     kwargs={"json": {"inputs": {"x": x}}, "timeout": 30}) for _ in range(3)]
        for t in blockers:
            t.start()
        deadline, waiting = time.monotonic() + 10, False
        while time.monotonic() < deadline and not waiting:  # until one runs and one waits
            health = httpx.get(f"{server.url}/v1/health").json()
            waiting = bool(health["running"]) and health["queue"] >= 1
        assert waiting, "the blockers were never seen waiting"
        with pytest.raises(httpx.TimeoutException):  # waits behind >= 1 whole run, gives up after half of one
            httpx.post(f"{server.url}/v1/predict", json={"inputs": {"x": x}}, timeout=max(0.01, run_s / 2))
        for t in blockers:
            t.join(30)
        deadline = time.monotonic() + 10
        while server.metrics()["dropped"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        metrics = server.metrics()
        assert metrics["dropped"] >= 1 and metrics["batches"] == 4  # warm-up + 3 blockers: the dropped one never ran


def test_health_answers_while_saturated(models, make_rows):
    with wb.serve(models["slow"], max_batch=4, max_queue=512) as server:
        times: list[float] = []
        stop = threading.Event()

        def poll() -> None:
            with httpx.Client(timeout=10) as client:
                while not stop.is_set():
                    start = time.perf_counter()
                    assert client.get(f"{server.url}/v1/health").status_code == 200
                    times.append(time.perf_counter() - start)
                    stop.wait(0.02)

        poller = threading.Thread(target=poll)
        poller.start()
        result = wb.load_test(server, [(r,) for r in make_rows(8, width=64)], concurrency=24, duration_s=1.0)
        stop.set()
        poller.join(10)
        assert result.levels[0].ok > 0 and len(times) >= 5
        assert max(times) < 2.0  # sanity only (the benchmark measures the 50 ms); a blocked loop would stall


def test_load_test_refuses_other_hosts_and_checks_arguments(affine_server, make_rows):
    for url in ("http://example.com:8000", "http://10.0.0.1:80", "ftp://127.0.0.1:1"):
        with pytest.raises(wb.InvalidInputError, match="loopback"):
            wb.load_test(url, make_rows(1))
    with pytest.raises(wb.InvalidInputError, match="concurrency"):
        wb.load_test(affine_server, make_rows(1), concurrency=0)
    with pytest.raises(wb.InvalidInputError, match="verify=True needs"):
        wb.load_test(affine_server.url, make_rows(1), verify=True)
    cancel = threading.Event()
    cancel.set()
    assert wb.load_test(affine_server, make_rows(1), cancel=cancel).cancelled
