"""Notebook 12's helpers: the tables and sentences read from hand-made load results, the recorded GPU
run, which file is served, and the naive server run for real (its two mistakes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from workbench.core.serve import LoadLevel, LoadResult
from workbench.teaching import serving


def _result(*levels: tuple[int, float, float, float | None]) -> LoadResult:
    return LoadResult(levels=[LoadLevel(concurrency=c, requests=100, ok=100, errors={}, throughput_rps=rps, p50_ms=p99 / 2,
                                        p95_ms=p99 / 1.2, p99_ms=p99, mean_batch=batch, wrong=None)
                              for c, rps, p99, batch in levels], url="http://127.0.0.1:1", duration_s=1.0, client_cpu_s=0.1)


def test_compare_servers_and_the_sentence_read_the_same_level() -> None:
    runs = {"naive": _result((1, 90.0, 12.0, None), (32, 100.0, 400.0, None)),
            "batched": _result((1, 95.0, 11.0, 1.0), (32, 450.0, 90.0, 12.5))}
    table = serving.compare_servers(runs, concurrency=32)
    assert list(table.index) == ["naive", "batched"] and list(table["requests/s"]) == [100.0, 450.0]
    assert list(table["throughput vs first"]) == [1.0, 4.5] and table.loc["batched", "mean batch"] == 12.5
    sentence = serving.describe_servers(runs, concurrency=32)
    assert "batched answered 4.5x" in sentence and "lower p99 (90 ms against 400 ms)" in sentence
    assert serving.level(runs["naive"], 8).concurrency == 1  # the highest level at or below 8


def test_describe_batching_names_the_model_that_gains_most() -> None:
    table = pd.DataFrame({"model": ["wide", "transformer"], "batch 1 (ms)": [6.0, 40.0], "batch 16 (ms)": [9.0, 600.0],
                          "batch 16 / batch 1 time": [1.5, 15.0], "items/s gain from batching": [10.7, 1.1]}).set_index("model")
    sentence = serving.describe_batching(table)
    assert "10.7x for the wide and 1.1x for the transformer" in sentence and "pays most for the wide" in sentence


def test_the_recorded_gpu_run_shows_more_tokens_for_about_the_same_time() -> None:
    table = serving.gpu_batching()
    assert list(table["tokens per call"]) == [32, 1024, 16384]
    assert table["us per token"].is_monotonic_decreasing


def test_tuned_or_export_prefers_the_tune_result(tmp_path: Path) -> None:
    export = tmp_path / "model.onnx"
    path, note = serving.tuned_or_export(tmp_path / "tuned.json", export)
    assert path == export and "no tune result" in note
    tuned = tmp_path / "tuned.json"
    tuned.write_text(json.dumps({"onnx_model": str(tmp_path / "model.int8.onnx"), "chosen": "int8 · all", "config": {}}))
    path, note = serving.tuned_or_export(tuned, export)
    assert path == tuned and "int8 · all" in note and "model.int8.onnx" in note


@pytest.mark.slow
def test_the_naive_server_answers_200_with_an_error_inside(export_zoo: Any) -> None:
    """The seed article's second mistake, run: a request that fails in the model gets a 200."""
    onnx_model = export_zoo("mlp", "torchscript").out
    with serving.naive_server(onnx_model) as naive:
        reply = httpx.post(f"{naive.url}/v1/predict", json={"inputs": {"x": [[1.0, 2.0]]}}, timeout=10)
        good = httpx.post(f"{naive.url}/v1/predict", json={"inputs": {"x": [[0.5] * 16]}}, timeout=10)
    assert reply.status_code == 200 and reply.json() == [{"error": "Inference failed"}, 500]
    assert good.status_code == 200 and len(good.json()["outputs"]["y"][0]) == 4
    assert not naive.running
