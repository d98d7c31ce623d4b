"""The tuner's parts: the attention rewrite ORT fuses, PyTorch's references, result objects and names."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

import workbench as wb
from workbench.core.feeds import run_torch
from workbench.core.paired import Ratio
from workbench.core.rewrite import FusableEncoderLayer, fusable_attention
from workbench.core.session import SessionConfig
from workbench.core.tune_candidates import Variant, candidate_name, spec_from_onnx
from workbench.core.tune_references import compile_reference, torch_int8_reference
from workbench.core.tune_results import Candidate, CandidateResult, ShapeTiming, TuneResult


def test_rewrite_computes_the_same_function(tc_smoke):
    twin, info = fusable_attention(tc_smoke.model)
    assert (info.layers, info.num_heads, info.hidden_size, info.skipped) == (2, 4, 64, []) and info
    assert sum(isinstance(m, FusableEncoderLayer) for m in twin.modules()) == 2
    assert sum(isinstance(m, nn.TransformerEncoderLayer) for m in tc_smoke.model.modules()) == 2  # original kept
    assert not {id(p) for p in twin.parameters()} & {id(p) for p in tc_smoke.model.parameters()}
    x = tc_smoke.make_inputs(batch=3, seq=20, seed=4)
    expected, actual = run_torch(tc_smoke.model, x), run_torch(twin, x)
    np.testing.assert_allclose(actual[0], expected[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm_first,activation", [(False, "relu"), (True, "gelu")])
def test_rewrite_keeps_masks_norm_first_and_activation(norm_first, activation):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, activation=activation, batch_first=True,
                                       norm_first=norm_first)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    twin, info = fusable_attention(model)
    assert info.layers == 2
    x = torch.randn(3, 10, 32)
    padding = torch.zeros(3, 10, dtype=torch.bool)
    padding[0, 6:] = True
    causal = nn.Transformer.generate_square_subsequent_mask(10)
    with torch.no_grad():
        for kwargs in ({}, {"src_key_padding_mask": padding}, {"mask": causal}, {"mask": causal, "is_causal": True}):
            np.testing.assert_allclose(twin(x, **kwargs), model(x, **kwargs), rtol=1e-5, atol=1e-5, err_msg=str(kwargs))


def test_rewrite_skips_what_it_cannot_keep():
    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32), 1, enable_nested_tensor=False)
    twin, info = fusable_attention(model)
    assert not info and info.skipped == ["layers.0: batch_first=False (the rewrite keeps (batch, seq, dim) layouts)"]
    assert isinstance(twin.layers[0], nn.TransformerEncoderLayer)


@pytest.mark.slow
def test_ort_fuses_attention_only_after_the_rewrite(tc_smoke, tmp_path):
    spec = tc_smoke.spec.replace(exporter="torchscript", opset=17)
    twin, info = fusable_attention(tc_smoke.model)
    counts = {}
    for name, model in (("original", tc_smoke.model), ("rewritten", twin)):
        src = wb.export(model, tc_smoke.make_inputs(batch=2), tmp_path / f"{name}.onnx", spec=spec).out
        fused = wb.transformer_optimize(src, tmp_path / f"{name}.bert.onnx", num_heads=info.num_heads,
                                        hidden_size=info.hidden_size)
        counts[name] = fused.fused_ops.get("Attention", 0)
        if name == "rewritten":
            session = ort.InferenceSession(str(fused.path), providers=["CPUExecutionProvider"])
            x = tc_smoke.make_inputs(batch=2, seq=16, seed=3)
            got = session.run(None, {"input_ids": x[0].numpy()})[0]
            np.testing.assert_allclose(got, run_torch(tc_smoke.model, x)[0], rtol=1e-4, atol=1e-4)
            assert sum(n.op_type == "Attention" for n in fused_model_nodes(fused.path)) == 2
    assert counts == {"original": 0, "rewritten": 2}


def fused_model_nodes(path: Path) -> list:
    import onnx

    return list(onnx.load(str(path)).graph.node)


def test_torch_references(mlp):
    inputs = {(2, None): mlp.make_inputs(batch=2, seed=1)}
    expected = {s: run_torch(mlp.model, x) for s, x in inputs.items()}
    ref = torch_int8_reference(mlp.model, inputs, expected, threads=1)
    assert ref.error is None and 0 <= ref.max_abs_error < 0.1 and set(ref.calls) == {(2, None)}
    ref.calls[(2, None)]()
    no_linear = nn.Sequential(nn.ReLU())
    assert torch_int8_reference(no_linear, inputs, expected, threads=1).error.startswith("skipped: the model has no")
    late = compile_reference(mlp.model, inputs, expected, threads=1, time_left=lambda: 3.0)
    assert late.error.startswith("skipped: 3 s of the budget left") and not late.calls


def _result(name: str, status: str, speedups: dict, err: float, shapes=None) -> CandidateResult:
    cand = Candidate(name, Path(f"/x/{name}.onnx"), SessionConfig(), shapes=shapes)
    timings = [ShapeTiming(b, s, 10 / v, 12 / v, Ratio(v, v * 0.9, v * 1.1, 6)) for (b, s), v in speedups.items()]
    return CandidateResult(cand, status, timings, err, err, None, 100)


def test_result_pareto_speedup_and_names():
    a = _result("a", "chosen", {(1, 8): 2.0, (4, 8): 8.0}, 0.01)
    b = _result("b", "passed", {(1, 8): 1.0, (4, 8): 1.0}, 0.001)
    c = _result("c", "pruned", {(1, 8): 1.5, (4, 8): 1.5}, 0.02)  # slower and less accurate than a
    d = _result("d", "rejected", {}, 0.5)
    result = TuneResult([a, b, c, d], [], [(1, 8), (4, 8)], a, {(1, 8): a, (4, 8): a}, "v", 10, 5, "int8")
    assert [r.name for r in result.pareto()] == ["a", "b"]
    assert math.isclose(a.score, 4.0) and result.speedup("eager", 4, 8).value == 8.0
    combined = result.speedup()
    assert math.isclose(combined.value, 4.0) and combined.n == 6
    assert result.speedup("torch.compile") is None
    with pytest.raises(wb.InvalidInputError, match="Unknown reference 'tvm'"):
        result.speedup("tvm")
    with pytest.raises(wb.InvalidInputError, match="No candidate 'z'"):
        result.candidate("z")
    variant = Variant("int8", "int8 per-channel", Path("/x.onnx"), "int8")
    config = SessionConfig(intra_op_threads=2, allow_spinning=False)
    assert candidate_name(variant, config) == "int8 per-channel · all · t2 · no-spin"
    assert candidate_name(variant, SessionConfig(), io_binding=True) == "int8 per-channel · all · t-auto · io-binding"


def test_spec_from_onnx(export_zoo):
    import onnx

    spec = spec_from_onnx(onnx.load(str(export_zoo("text_classifier", "torchscript").out)))
    assert spec.input_names == ("input_ids",) and spec.output_names == ("logits",)
    assert set(spec.dynamic_axes["input_ids"].values()) == {"batch", "seq"}
