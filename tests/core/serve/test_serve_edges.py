"""Edge cases of the server: batch axes that differ or are missing, deep JSON, odd model names, bad ports,
a server that fails to start, and a disconnect watcher that ends with an error."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import socket
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import workbench as wb
from workbench.core.serve import InputSpec, InputValidator, RequestInvalid
from workbench.core.serve.codec import decode_json


def _model(path: Path, nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: list[Any] | None = None) -> Path:
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, inits or [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def _colsum_model(path: Path, out_dims: list[Any]) -> Path:
    """x float32 [batch, 8] -> s = sum over axis 0 [8]: an output without the batch axis, declared ``out_dims``."""
    axes = numpy_helper.from_array(np.array([0], dtype=np.int64), "axes")
    return _model(path, [helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0)],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
                  [helper.make_tensor_value_info("s", TensorProto.FLOAT, out_dims)], [axes])


def _flat_model(path: Path) -> Path:
    """x float32 [batch, 8] -> Reshape(x, [-1]) [batch * 8]: a dynamic first dim that is not the batch axis."""
    shape = numpy_helper.from_array(np.array([-1], dtype=np.int64), "shape")
    return _model(path, [helper.make_node("Reshape", ["x", "shape"], ["flat"])],
                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
                  [helper.make_tensor_value_info("flat", TensorProto.FLOAT, ["k"])], [shape])


def _post_many(url: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=20) as client:
            return await asyncio.gather(*(client.post(f"{url}/v1/predict", json=b) for b in bodies))

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop of its own (see test_serve_load)
        return pool.submit(asyncio.run, burst()).result()


def test_batch_axis_must_agree_between_inputs_whatever_its_name():
    v = InputValidator([InputSpec("a", "float32", ("n", 4)), InputSpec("b", "float32", (None, 2))])
    assert v.batched and v.validate({"a": np.zeros((2, 4)), "b": np.zeros((2, 2))}).rows == 2
    with pytest.raises(RequestInvalid) as info:
        v.validate({"a": np.zeros((2, 4)), "b": np.zeros((3, 2))})
    problem = next(p for p in info.value.problems if p["problem"] == "batch axis differs between inputs")
    assert "same number of rows" in problem["expected"] and problem["received"] == "a [2, 4], b [3, 2]"


def test_output_with_a_fixed_first_dim_serves_one_request_per_run(tmp_path):
    model = _colsum_model(tmp_path / "colsum.onnx", [8])
    xs = [np.full((2, 8), k, np.float32) for k in range(6)]
    with wb.serve(model, max_batch=8, max_wait_ms=50.0) as server:
        assert not httpx.get(f"{server.url}/v1/metadata").json()["batched"]
        answers = _post_many(server.url, [{"inputs": {"x": x.tolist()}} for x in xs])
    assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
    for x, r in zip(xs, answers):
        np.testing.assert_allclose(r.json()["outputs"]["s"], x.sum(axis=0))
        assert r.json()["batch_size"] == 1


def test_a_dynamic_output_that_is_not_the_batch_axis_is_a_configuration_500(tmp_path):
    model = _flat_model(tmp_path / "flat.onnx")
    with wb.serve(model, max_batch=8, max_wait_ms=1.0) as server:
        alone = httpx.post(f"{server.url}/v1/predict", json={"inputs": {"x": np.ones((3, 8)).tolist()}})
        single = httpx.post(f"{server.url}/v1/predict", json={"inputs": {"x": [1.0] * 8}})
        assert server.running and httpx.get(f"{server.url}/v1/health").status_code == 200
    for r in (alone, single):
        assert r.status_code == 500 and r.headers["content-type"] == "application/json", r.text
        body = r.json()
        assert "no batch axis" in body["error"] and "configuration" in body["error"]
        assert "not the batch axis" in body["detail"] and "model failed" not in r.text


def test_ray_groups_run_each_request_alone_when_not_batched():
    from workbench.core.serve.metrics import ServerMetrics
    from workbench.core.serve.ray_engine import run_groups

    def fixed_batch(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        assert feed["x"].shape == (1, 3), feed["x"].shape  # a model exported with batch 1
        return [feed["x"] * 2]

    items = [({"x": np.full((1, 3), k, np.float32)}, 1, "same signature", 0.0) for k in range(4)]
    results = asyncio.run(run_groups(fixed_batch, items, ServerMetrics(), batched=False))
    for k, result in enumerate(results):
        assert not isinstance(result, BaseException), result
        np.testing.assert_array_equal(result[0][0], np.full((1, 3), 2 * k))
        assert result[1].batch_size == 1


def test_deeply_nested_json_is_a_422(affine_server):
    with pytest.raises(RequestInvalid, match="not valid JSON"):
        decode_json(b"[" * 100000)
    r = httpx.post(f"{affine_server.url}/v1/predict", content=b'{"inputs": {"x": ' + b"[" * 100000,
                   headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"][0]["problem"]


def test_npz_answer_of_a_model_with_a_non_latin1_name(tmp_path, models):
    model = tmp_path / "модель.onnx"
    model.write_bytes(Path(models["affine"]).read_bytes())
    buf = io.BytesIO()
    np.savez(buf, x=np.ones((1, 8), np.float32))
    with wb.serve(model) as server:
        r = httpx.post(f"{server.url}/v1/predict", content=buf.getvalue(), headers={"content-type": "application/x-npz"})
    assert r.status_code == 200, r.text
    assert urllib.parse.unquote(r.headers["x-model"]) == "модель.onnx"


@pytest.mark.parametrize("port", [70000, -1, "8000", True, 80.0])
def test_bad_ports_are_refused(models, port):
    with pytest.raises(wb.InvalidInputError, match=r"port must be an int in \[0, 65535\]"):
        wb.serve(models["affine"], port=port)


async def _failing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app whose startup fails: uvicorn exits before it listens."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no model"})


def _uvicorn_threads() -> int:
    return sum(t.name == "wb-serve-uvicorn" and t.is_alive() for t in threading.enumerate())


def test_a_server_that_fails_to_start_closes_its_socket():
    from workbench.core.serve.server import _bind, _UvicornThread, run_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    before = _uvicorn_threads()
    with pytest.raises(wb.WorkbenchError, match="did not start"):
        run_app(_failing_app, port=port)
    assert _uvicorn_threads() == before  # the thread was joined
    again = _bind("127.0.0.1", port)  # the port is free again: the failed server's socket was closed
    never_started = _UvicornThread(_failing_app, again)
    never_started.stop(1.0)  # its thread is not alive: stop() still closes the socket
    assert again.fileno() == -1


def test_a_watcher_that_fails_is_no_disconnect():
    from workbench.core.serve.app import _drop_if_gone

    async def scenario() -> bool:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()

        async def broken_watcher() -> None:
            raise RuntimeError("receive() failed")

        watch = asyncio.ensure_future(broken_watcher())
        await asyncio.gather(watch, return_exceptions=True)
        _drop_if_gone(answer, watch)
        cancelled_watch = asyncio.ensure_future(asyncio.sleep(10))
        cancelled_watch.cancel()
        await asyncio.gather(cancelled_watch, return_exceptions=True)
        _drop_if_gone(answer, cancelled_watch)
        return answer.cancelled()

    assert asyncio.run(scenario()) is False
