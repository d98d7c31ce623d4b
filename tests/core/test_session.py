from __future__ import annotations

import warnings

import onnxruntime as ort
import pytest

import workbench as wb
from workbench.core.session import check_providers, session_options


def test_misspelled_provider_names_the_right_spelling():
    with pytest.raises(wb.ProviderError, match="Unknown execution provider 'CudaExecutionProvider'.*Did you mean 'CUDAExecutionProvider'"):
        wb.SessionConfig(providers=("CudaExecutionProvider",)) and check_providers(["CudaExecutionProvider"])


def test_unknown_provider_lists_known_ones():
    with pytest.raises(wb.ProviderError, match="Known providers: .*CPUExecutionProvider"):
        check_providers(["Zzzzzzzzzzzzzz"])


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is available here")
def test_unavailable_provider_warns_and_names_what_runs(export_zoo):
    config = wb.SessionConfig(providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    with pytest.warns(wb.ProviderFallbackWarning, match="CUDAExecutionProvider is not available.*will run on CPUExecutionProvider"):
        session = wb.open_session(export_zoo("mlp").path, config)
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_options_follow_the_config():
    config = wb.SessionConfig(opt_level="basic", intra_op_threads=2, inter_op_threads=1,
                              execution_mode="parallel", allow_spinning=False)
    so = session_options(config)
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert so.intra_op_num_threads == 2 and so.inter_op_num_threads == 1
    assert so.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert config.label() == "CPU/basic/t2/par"


def test_default_is_what_ort_does_by_default():
    assert session_options(wb.SessionConfig()).graph_optimization_level == ort.SessionOptions().graph_optimization_level


@pytest.mark.parametrize("kwargs,match", [
    ({"opt_level": "max"}, "Unknown opt_level 'max'"),
    ({"intra_op_threads": -1}, "intra_op_threads must be an int >= 0"),
    ({"execution_mode": "async"}, "Unknown execution_mode"),
    ({"providers": ()}, "providers is empty"),
])
def test_bad_configs(kwargs, match):
    with pytest.raises(wb.InvalidInputError, match=match):
        wb.SessionConfig(**kwargs)


def test_disabled_optimizers_and_saved_graph(export_zoo, tmp_path):
    out = tmp_path / "opt.onnx"
    config = wb.SessionConfig(opt_level="all", optimized_model_path=str(out), disabled_optimizers=("GeluFusion",))
    session = wb.open_session(export_zoo("text_classifier").path, config)
    assert out.exists() and session.get_inputs()[0].name == "input_ids"


def test_open_session_rejects_bad_files_and_configs(tmp_path, export_zoo):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(wb.ModelFileError, match="could not parse|truncated"):
        wb.open_session(bad)
    with pytest.raises(wb.InvalidInputError, match="config must be a wb.SessionConfig, received dict"):
        wb.open_session(export_zoo("mlp").path, {"opt_level": "all"})
    with pytest.raises(wb.ProviderError, match="provider_options names 'cuda'"):
        wb.open_session(export_zoo("mlp").path, wb.SessionConfig(provider_options={"cuda": {}}))


def test_no_silent_warning_for_cpu(export_zoo):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wb.open_session(export_zoo("mlp").path)
