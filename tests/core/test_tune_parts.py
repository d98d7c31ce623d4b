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


def test_the_chosen_copy_keeps_its_external_data(tmp_path):
    """An export with external data: the copy gets its own data file and loads on its own, again and again."""
    from workbench.core.tune import _copy_chosen

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU()).eval()
    x = torch.randn(2, 32)
    spec = wb.ExportSpec(input_names=("x",), exporter="torchscript", opset=17, external_data=True)
    source = wb.export(model, (x,), tmp_path / "src" / "model.onnx", spec=spec).out
    assert list((tmp_path / "src").glob("model.onnx.*.data"))  # the export did write external data
    candidate = Candidate("fp32", Path(source), SessionConfig())
    target = tmp_path / "out" / "a.tuned.onnx"
    for _ in range(2):  # the second copy replaces the first and its data file
        assert _copy_chosen(candidate, target, tmp_path) == target
        data = list(target.parent.glob("a.tuned.onnx.*.data"))
        assert len(data) == 1 and sorted(p.name for p in target.parent.iterdir()) == sorted([target.name, data[0].name])
        session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(None, {"x": x.numpy()})[0], model(x).detach().numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_a_runner_that_raises_while_timed_fails_alone(mlp, export_zoo):
    """A candidate (or a reference) raising during the interleaved timing is marked failed; the rest are timed."""
    from workbench.core.tune_measure import TuneRun
    from workbench.core.tune_references import RefRunner, eager_reference

    class FlakyRun(TuneRun):
        def runner(self, candidate, inputs):
            call, outputs = super().runner(candidate, inputs)
            if candidate.name != "flaky":
                return call, outputs
            count = [0]

            def flaky():
                count[0] += 1
                if count[0] > 4:  # fine in the warm-up, then it breaks
                    raise RuntimeError("device lost")
                return call()

            return flaky, outputs

    source = Path(export_zoo("mlp", "torchscript").out)
    run = FlakyRun(mlp, [(2, None)], "fp32", threads=1, deadline=math.inf)
    run.prepare()
    run.refs["eager"] = eager_reference(mlp.model, run.inputs)
    run.refs["broken ref"] = RefRunner("broken ref", {(2, None): lambda: 1 / 0})
    good, flaky = (run.gate(Candidate(n, source, SessionConfig(intra_op_threads=1)), 0) for n in ("good", "flaky"))
    assert good.passed and flaky.passed
    run.measure([good, flaky], 2.0, references=["broken ref"], min_rounds=1)
    assert flaky.status == "failed" and "device lost" in flaky.error and not flaky.timings
    assert run.refs["broken ref"].error.startswith("failed while timed at batch 2: ZeroDivisionError")
    assert good.status == "passed" and good.timings and good.timings[0].speedup is not None
    assert run.results["flaky"] is flaky


def test_int8_of_a_callers_candidate_keeps_the_exports_int8(export_zoo, tmp_path):
    from workbench.core.tune_candidates import int8_variant

    source = Path(export_zoo("mlp", "torchscript").out)
    plain = Variant("plain", "fp32", source)
    extra = Variant("extra-0", "my fp32", source)
    a = int8_variant(plain, tmp_path, per_channel=False)
    b = int8_variant(extra, tmp_path, per_channel=False)
    assert a.error is None and b.error is None
    assert a.label == "int8" and b.label == "int8 of my fp32"
    assert len({a.key, b.key}) == 2 and a.path != b.path and a.path.is_file() and b.path.is_file()


def test_a_spent_budget_skips_the_fused_graph_but_times_the_export(tc_smoke, monkeypatch):
    """The note says what was skipped (the fused graph), not the 'graph' stage, which still times the export."""
    from workbench.core.tune_candidates import Traits
    from workbench.core.tune_measure import TuneRun
    from workbench.core.tune_search import Search

    run = TuneRun(tc_smoke, [(1, 8)], "int8", threads=1, deadline=0.0)  # the budget is long spent
    traits = Traits(attention=True, rewritable=2, classifier=True, vnni=None, cuda=False, cores=1, dynamic=True)
    search = Search(run, traits, Path("/nowhere"), Path("/x/model.onnx"), wb.ExportSpec(), 0.0)
    tried = []
    monkeypatch.setattr(search, "try_variants", lambda variants, stage, budget, extra: tried.extend(variants))
    search.graph_stage(())
    assert [v.key for v in tried] == ["plain"] and search.stopped == "budget"
    assert run.notes and run.notes[0].startswith("the attention-fused graph was skipped: the budget was spent")
    assert not any("stage 'graph' skipped" in n for n in run.notes)


def test_io_binding_of_the_choice_is_said_and_saved(tmp_path):
    """SessionConfig cannot carry IO binding: the verdict and the JSON say the choice was timed with it."""
    import json
    from dataclasses import replace

    from workbench.core.tune import _verdict

    for bound in (True, False):
        chosen = _result("fp32 · io-binding", "chosen", {(1, 8): 2.0}, 0.001)
        chosen.candidate = replace(chosen.candidate, io_binding=bound)
        result = TuneResult([chosen], [], [(1, 8)], chosen, {(1, 8): chosen}, "", 10, 5, "int8")
        result.verdict = _verdict(result, [chosen])
        saved = json.loads(result.save(tmp_path / "tune.json").read_text())
        assert saved["io_binding"] is bound and ("IO binding" in result.verdict) is bound
        assert wb.SessionConfig.from_json(tmp_path / "tune.json") == chosen.candidate.config
