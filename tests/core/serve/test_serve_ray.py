"""The Ray Serve engine on a local single-node cluster: the same endpoints and the same correctness check."""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import workbench as wb

pytest.importorskip("ray.serve")


def _fixed_batch_model(path: Path) -> Path:
    """x float32 [1, 8] -> y = 2x [1, 8]: exported with batch 1, so requests must never be stacked."""
    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y"])], "fixed",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], [two])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


def _burst(url: str, xs: list[np.ndarray]) -> list[httpx.Response]:
    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.post(f"{url}/v1/predict", json={"inputs": {"x": x.tolist()}})
                                          for x in xs))

    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop of its own (see test_serve_load)
        return pool.submit(asyncio.run, send()).result()


@pytest.mark.slow
def test_ray_engine_same_endpoints_every_answer_checked(models, make_rows, tmp_path):
    with wb.serve(models["affine"], engine="ray", replicas=1, max_batch=8, max_wait_ms=5.0) as server:
        assert server.engine == "ray" and server.running and "/wb-affine-" in server.url
        meta = httpx.get(f"{server.url}/v1/metadata").json()
        assert meta["engine"] == "ray" and meta["inputs"][0]["shape"] == ["batch", 8]
        bad = httpx.post(f"{server.url}/v1/predict", json={"inputs": {"x": [[1, 2]]}})
        assert bad.status_code == 422 and bad.json()["detail"][0]["expected"].startswith("8")
        result = wb.load_test(server, [(r,) for r in make_rows(48, seed=5)], concurrency=(1, 16), duration_s=1.0,
                              verify=True)
        assert result, result
        assert result.level(16).wrong == 0 and result.level(16).ok > 16 and result.level(16).mean_batch > 1
        x = np.ones((2, 8), np.float32)
        one = httpx.post(f"{server.url}/v1/predict", json={"inputs": {"x": x.tolist()}}).json()
        np.testing.assert_allclose(one["outputs"]["y"], wb.load_session(models["affine"]).run(None, {"x": x})[0],
                                   rtol=1e-6)
        assert server.metrics()["requests"].get(200, 0) >= 1
        fixed = _fixed_batch_model(tmp_path / "fixed.onnx")
        with wb.serve(fixed, engine="ray", replicas=1, max_batch=8, max_wait_ms=20.0) as other:  # same cluster
            xs = [np.full((1, 8), k, np.float32) for k in range(8)]
            answers = _burst(other.url, xs)
            assert [r.status_code for r in answers] == [200] * 8, [r.text for r in answers]
            for x, r in zip(xs, answers):
                np.testing.assert_array_equal(r.json()["outputs"]["y"], 2 * x)
    assert not server.running
