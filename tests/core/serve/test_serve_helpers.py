"""The production helpers outside a server: ModelCache shared between threads, InstrumentedSession's histograms."""

from __future__ import annotations

import threading

import numpy as np
from prometheus_client import REGISTRY, generate_latest

import workbench as wb
from workbench.core.serve import InstrumentedSession, ModelCache


def test_model_cache_loads_once_for_many_threads(models):
    cache = ModelCache()
    found: list[object] = []
    threads = [threading.Thread(target=lambda: found.append(cache.get(models["affine"]))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(found) == 6 and all(s is found[0] for s in found) and cache.builds == 1
    other = cache.get(models["affine"], wb.SessionConfig(opt_level="basic"))
    assert other is not found[0] and cache.builds == 2 and "2 built" in repr(cache)


def test_instrumented_session_times_every_call_in_its_own_registry(models):
    session = ModelCache().get(models["affine"])
    first, second = InstrumentedSession(session, name="a"), InstrumentedSession(session, name="b")
    x = np.ones((2, 8), np.float32)
    outs = first.run(None, {"x": x})
    np.testing.assert_array_equal(outs[0], session.run(None, {"x": x})[0])
    first.run(None, {"x": x})
    assert first.calls == 2 and second.calls == 0 and set(first.percentiles()) == {50, 95, 99}
    text = generate_latest(first.registry).decode()
    assert 'wb_session_run_seconds_count{model="a"} 2.0' in text
    assert b"wb_session_run_seconds" not in generate_latest(REGISTRY)  # never the global registry
    assert "2 calls" in repr(first)


def test_json_bodies_decode_alike_with_or_without_the_fast_parser():
    import pytest

    from workbench.core.serve import codec
    from workbench.core.serve.validator import RequestInvalid

    body = b'{"inputs": {"x": [[0.1, -2.5e-3, 3], [1e308, 0, -0.0]]}}'
    fast = codec.decode_json(body)
    saved, codec._FAST_LOADS = codec._FAST_LOADS, None
    try:
        assert codec.decode_json(body) == fast  # json's result, the fallback's
    finally:
        codec._FAST_LOADS = saved
    assert np.isnan(codec.decode_json(b'{"inputs": {"x": [NaN, 1]}}')["x"][0])  # what orjson refuses, json takes
    with pytest.raises(RequestInvalid, match="not valid JSON"):
        codec.decode_json(b'{"inputs": ')
