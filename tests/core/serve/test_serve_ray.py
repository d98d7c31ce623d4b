"""The Ray Serve engine on a local single-node cluster: the same endpoints and the same correctness check."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

import workbench as wb

pytest.importorskip("ray.serve")


@pytest.mark.slow
def test_ray_engine_same_endpoints_every_answer_checked(models, make_rows):
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
    assert not server.running
