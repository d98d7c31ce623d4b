"""The seed article's naive server (teaching.naive_server): it runs, and its two mistakes are real."""

from __future__ import annotations

import httpx
import numpy as np

from workbench.core.serve.server import run_app
from workbench.teaching.naive_server import naive_app


def test_naive_server_answers_and_hides_failures_behind_a_200(models):
    server = run_app(naive_app(models["lookup"]), onnx_model=models["lookup"])
    try:
        good = httpx.post(f"{server.url}/v1/predict", json={"inputs": {"ids": [[1, 2]]}})
        assert good.status_code == 200 and np.asarray(good.json()["outputs"]["emb"]).shape == (1, 2, 3)
        bad = httpx.post(f"{server.url}/v1/predict", json={"inputs": {"ids": [[1, 99]]}})
        # mistake 2: `return {...}, 500` is a 200 whose body is the tuple
        assert bad.status_code == 200 and bad.json() == [{"error": "Inference failed"}, 500]
    finally:
        server.stop()
    assert not server.running
