"""Dynamic INT8 and FP16 conversion with their accuracy gates, on the smoke zoo models."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from workbench import zoo
from workbench.core import quantize as q_mod
from workbench.core.gate import generate_inputs
from workbench.core.quantize import (
    QuantizeResult,
    quantize_dynamic,
    resolve_reduce_range,
    to_fp16,
    untie_gemm_weights,
)
from workbench.errors import FeedError, InvalidInputError, ModelFileError


@pytest.fixture(scope="module")
def bert_ts(torch_export: Callable[..., Path]) -> Path:
    return torch_export("bert_like")


@pytest.fixture(scope="module")
def text_ts(torch_export: Callable[..., Path]) -> Path:
    return torch_export("text_classifier")


@pytest.fixture(scope="module")
def mlp_ts(torch_export: Callable[..., Path]) -> Path:
    return torch_export("mlp")


@pytest.fixture(scope="module")
def text_int8(text_ts: Path, tmp_path_factory: pytest.TempPathFactory) -> QuantizeResult:
    # The TorchScript export bakes the example's (batch, seq) into a Reshape: gate on the example.
    example = zoo.get("text_classifier", smoke=True).example_inputs
    return quantize_dynamic(text_ts, tmp_path_factory.mktemp("int8") / "tc.int8.onnx", inputs=example)


@pytest.fixture(scope="module")
def bert_fp16(bert_ts: Path, tmp_path_factory: pytest.TempPathFactory) -> QuantizeResult:
    return to_fp16(bert_ts, tmp_path_factory.mktemp("fp16") / "bert.fp16.onnx")


# ---------------------------------------------------------------- dynamic INT8


def test_int8_has_integer_ops_is_smaller_and_passes_its_gate(text_ts: Path, text_int8: QuantizeResult) -> None:
    r = text_int8
    assert r.kind == "int8-dynamic" and r.path.is_file()
    assert r.after["DynamicQuantizeLinear"] > 0 and r.after["MatMulInteger"] > 0
    assert r.before["MatMulInteger"] == 0
    assert r.bytes_before == text_ts.stat().st_size and r.bytes_after == r.path.stat().st_size
    assert r.ratio < 0.4  # most bytes are Linear weights: FP32 -> INT8 (measured 0.28)
    assert r.initializer_types["INT8"] > 0
    assert r.gate is not None and r.gate.tolerance == "int8" and r.tolerance == "int8"
    assert bool(r) and r.ok, repr(r)


def test_int8_preprocessing_falls_back_and_matters(text_int8: QuantizeResult) -> None:
    # Symbolic shape inference asserts on this TorchScript graph; the retry without it succeeds,
    # and pre-processing is what lets the attention weights (behind Transpose/Slice) be quantized.
    assert text_int8.settings["preprocess"] == "without symbolic shape inference"
    assert any("quant_pre_process (full) failed: AssertionError in _infer_Reshape" in n for n in text_int8.notes)


def test_int8_unties_shared_gemm_weights(text_ts: Path, text_int8: QuantizeResult) -> None:
    # The encoder layers of the untrained model are identical deep copies; the TorchScript exporter
    # merges equal initializers (layer 1's out_proj weight becomes Identity(layer 0's)), and
    # quant_pre_process folds the Identity, so two Gemm(transB=1) nodes share one weight.
    # onnxruntime's Gemm -> MatMul rewrite would transpose it once per user (max abs error 0.21 on
    # the logits, gate FAIL); untied first, the gate passes.
    model = onnx.load(str(text_ts))
    weights = {n.input[1] for n in model.graph.node if n.op_type == "Gemm"}
    assert any(n.op_type == "Identity" and n.input[0] in weights for n in model.graph.node)
    assert untie_gemm_weights(model) == 1
    assert untie_gemm_weights(model) == 0
    assert any("private copy" in n for n in text_int8.notes)
    assert text_int8.gate is not None and text_int8.gate.max_abs < 0.05


def test_int8_without_preprocessing_is_reported(text_ts: Path, text_int8: QuantizeResult, tmp_path: Path) -> None:
    example = zoo.get("text_classifier", smoke=True).example_inputs
    raw = quantize_dynamic(text_ts, tmp_path / "raw.onnx", inputs=example, preprocess=False)
    assert raw.settings["preprocess"] == "off"
    assert raw.after["MatMulInteger"] < text_int8.after["MatMulInteger"]
    assert raw.ratio > text_int8.ratio


def test_int8_gate_can_fail(bert_ts: Path, tmp_path: Path) -> None:
    strict = quantize_dynamic(bert_ts, tmp_path / "strict.onnx", tolerance=(0, 1e-9))
    assert not strict and strict.gate is not None and strict.gate_error is None
    assert strict.gate.failures and strict.gate.tolerance == "rtol=0, atol=1e-09"
    assert "FAIL" in repr(strict) and "FAIL" in strict._repr_html_()
    assert strict.path.is_file(), "a model that fails its gate is still written, for inspection"


def test_int8_generated_inputs_and_settings(bert_ts: Path, tmp_path: Path) -> None:
    r = quantize_dynamic(bert_ts, tmp_path / "bert.int8.onnx", per_channel=True)
    assert r, repr(r)
    assert r.settings["per_channel"] is True and r.settings["preprocess"] == "full"
    assert r.settings["reduce_range"] == resolve_reduce_range(None, "qint8")[0]
    assert r.gate is not None and r.gate.input_shapes == [[(4, 4), (4, 4), (4, 4)]]
    assert r.ratio < 0.4


def test_int8_several_samples(mlp_ts: Path, tmp_path: Path) -> None:
    make = zoo.get("mlp", smoke=True).make_inputs
    samples = [make(batch=1, seed=1), make(batch=3, seed=2), (make(batch=2, seed=3)[0].numpy(),)]
    r = quantize_dynamic(mlp_ts, tmp_path / "m.onnx", inputs=samples, weight_type="QUInt8", reduce_range=False)
    assert r.gate is not None and r.gate.samples == 3 and len(r.gate.outputs) == 3
    assert r.gate.input_shapes == [[(1, 16)], [(3, 16)], [(2, 16)]]
    assert r.settings["weight_type"] == "quint8" and r.settings["reduce_range"] is False


def test_reduce_range_resolution() -> None:
    assert resolve_reduce_range(True, "quint8") == (True, None)
    assert resolve_reduce_range(False, "qint8") == (False, None)
    assert resolve_reduce_range(None, "quint8") == (False, None)
    chosen, why = resolve_reduce_range(None, "qint8")
    assert (why is not None) == chosen


# ---------------------------------------------------------------- FP16


def test_fp16_has_float16_initializers_and_passes_its_gate(bert_ts: Path, bert_fp16: QuantizeResult) -> None:
    r = bert_fp16
    assert r.kind == "fp16" and r
    assert r.initializer_types["FLOAT16"] > 0 and r.initializer_types["FLOAT"] == 0
    saved = onnx.load(str(r.path))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in saved.graph.initializer)
    sess = ort.InferenceSession(str(r.path), providers=["CPUExecutionProvider"])
    assert [i.type for i in sess.get_outputs()] == ["tensor(float)", "tensor(float)"]  # keep_io_types
    assert 0.45 < r.ratio < 0.6
    assert r.gate is not None and r.gate.tolerance == "fp16"
    assert "PASS" in repr(r) and "<table" in r._repr_html_()
    df = r.to_pandas()
    assert list(df.columns) == ["op", "before", "after", "delta"] and (df["after"] == df["before"] + df["delta"]).all()
    assert r.added.get("Cast", 0) > 0  # keep_io_types casts float32 inputs/outputs to and from float16
    assert r.summary()["ok"] is True and r.summary()["ratio"] == r.ratio


def test_fp16_gate_can_fail(bert_ts: Path, tmp_path: Path) -> None:
    r = to_fp16(bert_ts, tmp_path / "strict.onnx", tolerance=(0, 1e-9))
    assert not r and r.gate is not None and r.gate.max_abs > 1e-9


def test_fp16_without_keep_io_types_casts_the_feed(mlp_ts: Path, tmp_path: Path) -> None:
    x = zoo.get("mlp", smoke=True).example_inputs
    r = to_fp16(mlp_ts, tmp_path / "m16.onnx", inputs=x, keep_io_types=False)
    sess = ort.InferenceSession(str(r.path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(float16)"
    assert r, repr(r)


def test_fp16_external_data_source_counts_its_weights(mlp_ts: Path, tmp_path: Path) -> None:
    src = tmp_path / "ext.onnx"
    onnx.save(onnx.load(str(mlp_ts)), str(src), save_as_external_data=True, location="ext.onnx.data",
              size_threshold=0)
    data = tmp_path / "ext.onnx.data"
    r = to_fp16(src, tmp_path / "out" / "ext16.onnx")
    assert r.bytes_before == src.stat().st_size + data.stat().st_size
    assert r.bytes_after == r.path.stat().st_size and r


# ---------------------------------------------------------------- gate inputs


def test_generated_inputs_follow_the_graph(bert_ts: Path) -> None:
    model = onnx.load(str(bert_ts), load_external_data=False)
    sess = ort.InferenceSession(str(bert_ts), providers=["CPUExecutionProvider"])
    feed = generate_inputs(sess, model, dim_sizes={"seq": 7}, seed=3)
    assert {k: v.shape for k, v in feed.items()} == {k: (4, 7) for k in ("input_ids", "attention_mask", "token_type_ids")}
    assert all(v.dtype == np.int64 for v in feed.values())
    assert (feed["attention_mask"] == 1).all()
    assert feed["token_type_ids"].max() <= 1  # narrowed to the 2-row token-type table
    assert 0 <= feed["input_ids"].min() and feed["input_ids"].max() < 100


def test_inputs_the_fp32_model_rejects_raise_before_writing(text_ts: Path, tmp_path: Path) -> None:
    out = tmp_path / "never.onnx"
    with pytest.raises(FeedError, match=r"failed on generated inputs \{'input_ids': \[4, 4\]\}.*Reshape.*pass inputs="):
        quantize_dynamic(text_ts, out)
    with pytest.raises(FeedError, match="expects tensor\\(int64\\)"):
        to_fp16(text_ts, out, inputs=(torch.zeros(2, 32, dtype=torch.int32),))
    assert not out.exists()


# ---------------------------------------------------------------- errors and writes


def test_bad_arguments(mlp_ts: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"Unknown weight_type 'int4'.*\['qint8', 'quint8'\]"):
        quantize_dynamic(mlp_ts, tmp_path / "x.onnx", weight_type="int4")
    with pytest.raises(InvalidInputError, match="Unknown tolerance 'bf16'"):
        to_fp16(mlp_ts, tmp_path / "x.onnx", tolerance="bf16")
    with pytest.raises(InvalidInputError, match="inputs must be a tensor, a tuple"):
        to_fp16(mlp_ts, tmp_path / "x.onnx", inputs="x")
    with pytest.raises(InvalidInputError, match="refusing to overwrite"):
        quantize_dynamic(mlp_ts, mlp_ts)
    with pytest.raises(InvalidInputError, match="refusing to overwrite"):
        to_fp16(mlp_ts, str(mlp_ts))
    with pytest.raises(ModelFileError, match="No ONNX file"):
        quantize_dynamic(tmp_path / "nope.onnx", tmp_path / "x.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x12\x34not onnx" * 40)
    with pytest.raises(ModelFileError):
        to_fp16(corrupt, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_missing_output_directory_is_created(mlp_ts: Path, tmp_path: Path) -> None:
    out = tmp_path / "deep" / "er" / "m.int8.onnx"
    r = quantize_dynamic(mlp_ts, out, weight_type="quint8")
    assert r.path == out and out.is_file()
    assert not [p for p in out.parent.iterdir() if p != out], "no temp files left behind"
    # Too small to shrink: the scales and zero points outweigh the saved bytes.
    assert r.ratio > 0.9


def test_failed_quantization_leaves_no_file(mlp_ts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime.quantization as ort_q

    def half_written(model_input: str, model_output: str, **kwargs: object) -> None:
        Path(model_output).write_bytes(b"partial")
        raise RuntimeError("quantizer crashed")

    monkeypatch.setattr(ort_q, "quantize_dynamic", half_written)
    out = tmp_path / "q" / "m.onnx"
    with pytest.raises(q_mod.WorkbenchError, match="quantize_dynamic failed.*quantizer crashed.*preprocess=False"):
        quantize_dynamic(mlp_ts, out)
    assert not list(out.parent.iterdir())


def test_unrunnable_converted_model_is_captured(mlp_ts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime.transformers.float16 as f16

    def drop_outputs(model: onnx.ModelProto, **kwargs: object) -> onnx.ModelProto:
        model.graph.node[-1].op_type = "NoSuchOp"
        return model

    monkeypatch.setattr(f16, "convert_float_to_float16", drop_outputs)
    r = to_fp16(mlp_ts, tmp_path / "broken.onnx")
    assert not r and r.gate is None and "could not run the converted model" in (r.gate_error or "")
    assert "GATE NOT RUN" in repr(r) and "NOT RUN" in r._repr_html_()
