"""The recorded GPU run ships as package data, and its tables show the recorded figures unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from workbench.teaching import gpu_run

RECORD = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu" / "results" / "gpu_chapter.json"


def test_the_data_file_is_package_data_and_names_the_machine():
    data = gpu_run.load()
    assert data["machine"]["gpu"] == "NVIDIA H200" and data["machine"]["onnxruntime"] == "1.31.1"
    caption = gpu_run.caption()
    assert "NVIDIA H200" in caption and "1.31.1" in caption and "median [p10–p90]" in caption
    data["machine"]["gpu"] = "changed"  # load() hands out a copy
    assert gpu_run.load()["machine"]["gpu"] == "NVIDIA H200"


@pytest.mark.skipif(not RECORD.exists(), reason="the full record lives in the source tree only")
def test_the_trimmed_copy_keeps_the_recorded_numbers():
    full = json.loads(RECORD.read_text())
    mine = gpu_run.load()
    stats = full["cuda_graphs"]["transformer"]["timing"]["graph_1_shape_(1, 32, 512)"]["graph_replay"]
    assert mine["cuda_graphs"]["transformer"]["timing"]["graph_1_shape_(1, 32, 512)"]["graph_replay"] == {
        k: stats[k] for k in ("median_us", "p10_us", "p90_us", "runs")}
    assert mine["fp16"]["large b32 s512"]["fp16_keep_io"]["iobinding"]["median_us"] == \
        full["fp16"]["large b32 s512"]["fp16_keep_io"]["iobinding"]["median_us"]
    assert mine["provider_options"]["defaults"] == full["provider_options"]["all_default_cuda_options"]
    assert mine["machine"]["torch"] == full["versions"]["torch"]


def test_every_table_is_a_dataframe_with_rows():
    for table in (gpu_run.machine, gpu_run.dll_loading, gpu_run.providers, gpu_run.iobinding,
                  gpu_run.provider_options, gpu_run.user_stream, gpu_run.fp16, gpu_run.cuda_graphs,
                  gpu_run.graph_rules):
        frame = table()
        assert isinstance(frame, pd.DataFrame) and len(frame) >= 3, table.__name__


def test_tables_show_the_findings():
    providers = gpu_run.providers()
    assert providers.loc["TensorRT, CUDA, CPU", "get_providers()"] == "CUDAExecutionProvider, CPUExecutionProvider"
    assert providers.loc["CUDA device_id=7 (one GPU)", "get_providers()"] == "CPUExecutionProvider"
    assert "libnvinfer" in providers.loc["TensorRT, CUDA, CPU", "ORT said (stderr/log)"]
    dll = gpu_run.dll_loading()
    assert "9.14" in dll.loc["import onnxruntime only", "cuDNN"] and "nvidia/cudnn" in dll.loc["import torch first", "cuDNN"]
    assert gpu_run.iobinding().loc["b32×s512", "speedup"] == pytest.approx(2.56, abs=0.01)
    options = gpu_run.provider_options()
    assert options.loc["default", "conv first run ms"] == pytest.approx(396.04)
    assert options.loc["use_tf32_0", "max|diff| vs CPU EP (transformer)"] < 1e-5 < options.loc[
        "default", "max|diff| vs CPU EP (transformer)"]
    assert gpu_run.default_cuda_options()["cudnn_conv_algo_search"] == "EXHAUSTIVE"
    assert gpu_run.fp16().loc["fp16, keep_io_types, LayerNorm+Softmax fp32", "Cast nodes"] == 30
    assert gpu_run.fp16_converter_bug()["converter_duplicate_cast_nodes"]["count"] == 16
    graphs = gpu_run.cuda_graphs()
    assert graphs.loc[("transformer", 1), "graph replay"] == "287 [283–293] n=1000"
    misuse = gpu_run.graph_misuse()["captured_id_on_new_buffers"]
    assert misuse["new_output_written"] is False and misuse["output_has_nan"] is True
    rules = gpu_run.graph_rules()
    assert rules.loc[("shape_subgraph_no_memcpy", "disabled"), "CUDA graph session"] == "created"
    assert rules.loc[("cpu_op_with_memcpy", "default"), "CUDA graph session"] == "refused"
    assert rules.loc[("control_flow_if", "default"), "CUDA graph session"] == "refused"
    stream = gpu_run.user_stream()
    assert stream["correct 20/20"].all() and len(stream) == 3


def test_timing_format():
    assert gpu_run.timing({"median_us": 46.3, "p10_us": 45.4, "p90_us": 48.8, "runs": 1000}) == "46 [45–49] n=1000"
