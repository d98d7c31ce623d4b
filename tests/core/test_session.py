from __future__ import annotations

import warnings

import onnx
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
        session = wb.open_session(export_zoo("mlp").out, config)
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
    session = wb.open_session(export_zoo("text_classifier").out, config)
    assert out.exists() and session.get_inputs()[0].name == "input_ids"


def test_open_session_rejects_bad_files_and_configs(tmp_path, export_zoo):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(wb.ModelFileError, match="could not parse|truncated"):
        wb.open_session(bad)
    with pytest.raises(wb.InvalidInputError, match="config must be a wb.SessionConfig, received dict"):
        wb.open_session(export_zoo("mlp").out, {"opt_level": "all"})
    with pytest.raises(wb.ProviderError, match="provider_options names 'cuda'"):
        wb.open_session(export_zoo("mlp").out, wb.SessionConfig(provider_options={"cuda": {}}))


def test_no_silent_warning_for_cpu(export_zoo):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wb.open_session(export_zoo("mlp").out)


def test_load_session_is_memoized_per_file_and_config(export_zoo, tmp_path):
    import os
    import shutil

    from workbench.core.loader import SESSIONS

    path = tmp_path / "mlp.onnx"
    shutil.copy(export_zoo("mlp").out, path)
    first = wb.load_session(path)
    assert wb.load_session(str(path)) is first and wb.load_session(tmp_path / "." / "mlp.onnx") is first
    assert wb.load_session(first) is first
    basic = wb.load_session(path, wb.SessionConfig(opt_level="basic"))
    assert basic is not first and wb.load_session(path, wb.SessionConfig(opt_level="basic")) is basic
    stat = path.stat()  # a rewritten file has a new modification time
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert wb.load_session(path) is not first
    with pytest.raises(wb.ModelFileError, match="No ONNX file"):
        wb.load_session(tmp_path / "nope.onnx")
    with pytest.raises(wb.InvalidInputError, match="config must be a wb.SessionConfig"):
        wb.load_session(path, {"opt_level": "all"})
    assert len(SESSIONS) <= SESSIONS.maxsize


def test_load_session_builds_once_across_threads(export_zoo, monkeypatch):
    import threading
    import time

    from workbench.core import loader

    cache = loader.SessionCache(maxsize=2)
    built: list[int] = []
    real = loader.open_session

    def slow_open(onnx_model, config):
        built.append(1)
        time.sleep(0.2)
        return real(onnx_model, config)

    monkeypatch.setattr(loader, "open_session", slow_open)
    path = export_zoo("mlp").out
    got: list[ort.InferenceSession] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(path))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len({id(s) for s in got}) == 1 and cache.builds == 1
    for level in ("basic", "extended", "disable"):  # the LRU keeps the last two
        cache.get(path, wb.SessionConfig(opt_level=level))
    assert len(cache) == 2 and cache.builds == 4


def test_layout_level_is_ort_enable_layout(export_zoo):
    assert "layout" not in wb.OPT_LEVELS  # the default sweeps keep their four levels
    from workbench.core.session import ALL_OPT_LEVELS

    assert ALL_OPT_LEVELS == ("disable", "basic", "extended", "layout", "all")
    so = session_options(wb.SessionConfig(opt_level="layout"))
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_LAYOUT
    wb.open_session(export_zoo("mlp").out, wb.SessionConfig(opt_level="layout"))


@pytest.mark.filterwarnings("ignore:Specified provider 'TensorrtExecutionProvider'")
def test_a_provider_dropped_while_building_the_session_warns(export_zoo, monkeypatch):
    # ONNX Runtime drops an available provider that fails to start (TensorRT without its libraries, CUDA
    # options it refuses) without an exception; the session then lacks it in get_providers().
    monkeypatch.setattr("workbench.core.session.ort.get_available_providers",
                        lambda: ["TensorrtExecutionProvider", "CPUExecutionProvider"])
    config = wb.SessionConfig(providers=("TensorrtExecutionProvider", "CPUExecutionProvider"))
    with pytest.warns(wb.ProviderFallbackWarning, match="TensorrtExecutionProvider was requested.*runs on CPUExecutionProvider"):
        session = wb.open_session(export_zoo("mlp").out, config)
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_load_session_sees_a_proto_edited_in_place_and_leaves_no_lock_behind(tmp_path):
    """Reviewer's cases: the key was (id, size), so an in-place weight edit got the old session; and a
    build that raised left its per-key lock in the cache for good."""
    import numpy as np
    from onnx import helper, numpy_helper

    from workbench.core.loader import SessionCache

    weight = numpy_helper.from_array(np.array([3.0], dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("Mul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])], [weight])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 9
    cache = SessionCache()
    x = {"x": np.array([1.0], dtype=np.float32)}
    assert cache.get(proto).run(None, x)[0][0] == 3.0
    proto.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.array([9.0], dtype=np.float32), "w"))
    assert cache.get(proto).run(None, x)[0][0] == 9.0
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx at all")
    for _ in range(3):
        with pytest.raises(wb.WorkbenchError):
            cache.get(bad)
    assert not cache._building


def test_config_json_round_trip(tmp_path):
    config = wb.SessionConfig(opt_level="extended", intra_op_threads=2, inter_op_threads=1, execution_mode="parallel",
                              allow_spinning=False, disabled_optimizers=("GeluFusion",),
                              config_entries={"session.set_denormal_as_zero": "1"})
    data = config.to_dict()
    assert data["providers"] == ["CPUExecutionProvider"] and data["disabled_optimizers"] == ["GeluFusion"]
    assert wb.SessionConfig.from_json(config.to_json()) == config
    assert wb.SessionConfig.from_json(data) == config
    out = tmp_path / "config.json"
    text = config.to_json(out)
    assert out.read_text().strip() == text
    assert wb.SessionConfig.from_json(out) == config and wb.SessionConfig.from_json(str(out)) == config
    assert wb.SessionConfig.from_json({}) == wb.SessionConfig()


def test_from_json_reads_a_tune_file(tmp_path):
    import json

    path = tmp_path / "tuned.json"
    path.write_text(json.dumps({"onnx_model": "m.onnx", "verdict": "x",
                                "config": {"opt_level": "basic", "allow_spinning": False}}))
    config = wb.SessionConfig.from_json(path)
    assert config.opt_level == "basic" and not config.allow_spinning


@pytest.mark.parametrize("source,match", [
    ({"opt_levle": "all"}, r"unknown key\(s\) \['opt_levle'\]. Known keys: .*opt_level"),
    ({"intra_op_threads": "2"}, "key 'intra_op_threads' must be int, received '2'"),
    ({"intra_op_threads": True}, "key 'intra_op_threads' must be int"),
    ({"allow_spinning": 1}, "key 'allow_spinning' must be bool"),
    ({"opt_level": "max"}, "Unknown opt_level 'max'"),
    ({"providers": []}, "providers is empty"),
    ('{"opt_level": ', "not valid JSON"),
    ("[1, 2]", "expects a JSON object"),
    ("nowhere/config.json", "no JSON file at 'nowhere/config.json'"),
    (42, "expects a JSON object"),
])
def test_from_json_rejects_bad_input(source, match):
    with pytest.raises(wb.InvalidInputError, match=match):
        wb.SessionConfig.from_json(source)
