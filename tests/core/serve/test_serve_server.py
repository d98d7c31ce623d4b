"""A real server on 127.0.0.1: JSON and npz, 422s, metadata, metrics, health, stop drains."""

from __future__ import annotations

import io
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import workbench as wb


def _offline(model, x):
    return wb.load_session(model).run(None, {"x": x})


def test_json_predict_batch_and_single(affine_server, models):
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    r = httpx.post(f"{affine_server.url}/v1/predict", json={"inputs": {"x": x.tolist()}})
    assert r.status_code == 200, r.text
    body = r.json()
    y, s = _offline(models["affine"], x)
    np.testing.assert_allclose(body["outputs"]["y"], y, rtol=1e-6)
    np.testing.assert_allclose(body["outputs"]["s"], s, rtol=1e-6)
    assert body["model"] == "affine.onnx" and body["batch_size"] >= 3 and body["compute_ms"] >= 0
    one = httpx.post(f"{affine_server.url}/v1/predict", json={"inputs": {"x": x[0].tolist()}}).json()
    assert np.shape(one["outputs"]["y"]) == (4,) and np.shape(one["outputs"]["s"]) == ()
    np.testing.assert_allclose(one["outputs"]["y"], y[0], rtol=1e-6)


def test_npz_round_trip(affine_server, models):
    x = np.random.default_rng(2).standard_normal((2, 8)).astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, x=x)
    r = httpx.post(f"{affine_server.url}/v1/predict", content=buf.getvalue(),
                   headers={"content-type": "application/x-npz"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-npz"
    with np.load(io.BytesIO(r.content)) as out:
        np.testing.assert_array_equal(out["y"], _offline(models["affine"], x)[0])
    assert int(r.headers["x-batch-size"]) >= 2
    buf = io.BytesIO()
    np.savez(buf, x=x.astype(np.float64))
    bad = httpx.post(f"{affine_server.url}/v1/predict", content=buf.getvalue(),
                     headers={"content-type": "application/x-npz"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["received"] == "float64 [2, 8]"


@pytest.mark.parametrize("content, ctype, status, words", [
    (b'{"inputs": {"x": [[1, 2, 3]]}}', "application/json", 422, "wrong size on axis 1"),
    (b'{"inputs": {"x": [[1, 2, 3]], "z": 1}}', "application/json", 422, "unknown input"),
    (b'{"x": [[1]]}', "application/json", 422, 'no \\"inputs\\" object'),
    (b"not json", "application/json", 422, "not valid JSON"),
    (b"PK junk", "application/x-npz", 422, "not an npz archive"),
    (b"x=1", "text/plain", 415, "unsupported content type"),
])
def test_bad_requests_are_4xx_with_expected_and_received(affine_server, content, ctype, status, words):
    r = httpx.post(f"{affine_server.url}/v1/predict", content=content, headers={"content-type": ctype})
    assert r.status_code == status and words in r.text
    assert "expected" in r.text and "received" in r.text


def test_metadata_health_and_metrics(affine_server):
    meta = httpx.get(f"{affine_server.url}/v1/metadata").json()
    assert meta["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 8]}]
    assert [o["name"] for o in meta["outputs"]] == ["y", "s"] and meta["opset"] == {"ai.onnx": 17}
    assert meta["settings"]["max_batch"] == 8 and meta["batched"] and meta["config"]["opt_level"] == "all"
    assert meta["config"]["allow_spinning"] is False  # serve(config=None): no spinning threads
    assert httpx.get(f"{affine_server.url}/v1/health").json()["status"] == "ok"
    text = httpx.get(f"{affine_server.url}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"wb_requests", "wb_batch_size", "wb_queue_seconds", "wb_compute_seconds", "wb_session_run_seconds"} <= set(families)
    parsed = affine_server.metrics()
    assert parsed["requests"].get(200, 0) >= 1 and parsed["batches"] >= 1 and parsed["mean_batch"] >= 1
    assert "affine.onnx" in repr(affine_server) and "running" in affine_server._repr_html_()


def test_stop_drains_accepted_requests(models, make_rows):
    server = wb.serve(models["slower"], max_batch=1, max_queue=64)  # ~0.1 s a request: some wait in the queue
    answers: list[object] = []

    def send(row: np.ndarray) -> None:
        try:
            r = httpx.post(f"{server.url}/v1/predict", json={"inputs": {"x": row.tolist()}}, timeout=60)
            answers.append(r.status_code)
        except httpx.HTTPError as exc:
            answers.append(exc)

    threads = [threading.Thread(target=send, args=(row,)) for row in make_rows(6, width=64)]
    for t in threads:
        t.start()
    deadline, queued = time.monotonic() + 20, 0
    while time.monotonic() < deadline and len(answers) < 6:  # until all six are accepted and some are waiting
        health = httpx.get(f"{server.url}/v1/health").json()
        if health["queue"] + health["running"] + len(answers) >= 6 and health["queue"] >= 1:
            queued = health["queue"]
            break
        time.sleep(0.005)
    server.stop(timeout=30)
    for t in threads:
        t.join(60)
    assert queued >= 1, "no request was waiting when stop() was called: the test did not exercise the drain"
    assert not server.running and answers == [200] * 6
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{server.url}/v1/health", timeout=2)


def test_bad_settings_are_refused(models):
    with pytest.raises(wb.InvalidInputError, match="max_batch must be an int >= 1"):
        wb.serve(models["affine"], max_batch=0)
    with pytest.raises(wb.InvalidInputError, match="engine must be"):
        wb.serve(models["affine"], engine="k8s")
    with pytest.raises(wb.InvalidInputError, match="pad=True is not supported"):
        wb.serve(models["affine"], pad=True)


def test_missing_extras_name_the_pip_install(monkeypatch, models):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # an import of it now fails, as when it is not installed
    with pytest.raises(wb.WorkbenchError, match=r"pip install 'onnx-workbench\[serve\]'"):
        wb.serve(models["affine"])
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(wb.WorkbenchError, match=r"pip install 'onnx-workbench\[ray\]'"):
        wb.serve(models["affine"], engine="ray")
