"""ORT optimization levels and the transformer optimizer on the smoke zoo models."""

from __future__ import annotations

import os
import platform
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from workbench import zoo
from workbench.core import optimize as opt_mod
from workbench.core.gate import accuracy_gate
from workbench.core._files import model_bytes
from workbench.core.graph import op_histogram
from workbench.core.optimize import OptimizeResult, optimize, optimize_levels
from workbench.core.transformer import (
    TransformerOptimizeResult,
    transformer_model_types,
    transformer_optimize,
)
from workbench.errors import InvalidInputError, ModelFileError


@pytest.fixture(scope="module")
def bert_ts(torch_export: Callable[..., Path]) -> Path:
    return torch_export("bert_like", "torchscript")


@pytest.fixture(scope="module")
def bert_dynamo(torch_export: Callable[..., Path]) -> Path:
    return torch_export("bert_like", "dynamo")


@pytest.fixture(scope="module")
def text_ts(torch_export: Callable[..., Path]) -> Path:
    return torch_export("text_classifier", "torchscript")


@pytest.fixture(scope="module")
def mlp_ts(torch_export: Callable[..., Path]) -> Path:
    return torch_export("mlp", "torchscript")


@pytest.fixture(scope="module")
def bert_ts_levels(bert_ts: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, OptimizeResult]:
    return optimize_levels(bert_ts, tmp_path_factory.mktemp("levels"))


def _bert_inputs() -> tuple[torch.Tensor, ...]:
    return zoo.get("bert_like", smoke=True).make_inputs(batch=2, seq=12, seed=1)


# ---------------------------------------------------------------- levels


def test_all_fuses_and_shrinks_bert_vs_disable(bert_ts: Path, bert_ts_levels: dict[str, OptimizeResult]) -> None:
    disable, all_ = bert_ts_levels["disable"], bert_ts_levels["all"]
    assert disable.before == op_histogram(onnx.load(str(bert_ts)))
    assert all_.nodes_after < disable.nodes_after
    fused = {"com.microsoft::FusedMatMul", "com.microsoft::BiasGelu", "com.microsoft::FusedGemm"}
    assert fused <= set(all_.after) and not fused & set(disable.after)
    # ONNX Runtime turns Constant nodes into initializers even at 'disable'.
    assert disable.diff == {"Constant": -disable.before["Constant"]}
    assert all_.diff["com.microsoft::BiasGelu"] == 2 and all_.diff["Erf"] == -2
    assert all_.hardware_specific and not bert_ts_levels["extended"].hardware_specific
    for result in bert_ts_levels.values():
        assert result.path.is_file() and result.after == op_histogram(onnx.load(str(result.path)))
        assert result.nodes_after == sum(result.after.values())


def test_optimized_graph_computes_the_same(bert_ts: Path, bert_ts_levels: dict[str, OptimizeResult]) -> None:
    gate = accuracy_gate(bert_ts, bert_ts_levels["all"].path, _bert_inputs(), tolerance="fp32")
    assert gate, gate


def test_all_reduces_text_classifier_nodes(text_ts: Path, tmp_path: Path) -> None:
    disable = optimize(text_ts, tmp_path / "d.onnx", opt_level="disable")
    all_ = optimize(text_ts, tmp_path / "a.onnx", opt_level="all")
    assert all_.nodes_after < disable.nodes_after < disable.nodes_before
    assert all_.providers == ["CPUExecutionProvider"]


@pytest.mark.slow  # the dynamo export takes 10-20 s on 2 cores
def test_dynamo_external_data_is_counted_and_output_is_self_contained(bert_dynamo: Path, tmp_path: Path) -> None:
    assert Path(str(bert_dynamo) + ".data").is_file(), "the dynamo exporter is expected to write external data"
    result = optimize(bert_dynamo, tmp_path / "sub" / "dyn.onnx", opt_level="extended")
    assert result.bytes_before == bert_dynamo.stat().st_size + Path(str(bert_dynamo) + ".data").stat().st_size
    saved = onnx.load(str(result.path), load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in saved.graph.initializer)
    assert result.bytes_after == result.path.stat().st_size
    assert {"com.microsoft::SkipLayerNormalization", "com.microsoft::FusedMatMul"} <= set(result.after)
    assert result.nodes_after < result.nodes_before
    ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])


def test_table_and_reprs(bert_ts_levels: dict[str, OptimizeResult]) -> None:
    result = bert_ts_levels["all"]
    df = result.to_pandas()
    assert list(df.columns) == ["op", "before", "after", "delta"]
    assert (df["after"] - df["before"] == df["delta"]).all()
    assert df.set_index("op").loc["com.microsoft::BiasGelu", "delta"] == 2
    assert df["delta"].ne(0).iloc[0], "changed ops come first"
    text = repr(result)
    assert "level='all'" in text and "com.microsoft::BiasGelu +2" in text and "NCHWc" in text
    html = result._repr_html_()
    assert "<table" in html and "BiasGelu" in html and "NCHWc" in html
    assert "NCHWc" not in repr(OptimizeResult(result.source, result.path, "extended", Counter(), Counter(), 0, 0))
    assert "BiasGelu" in result.text_table()


def test_level_all_adds_nchwc_layout_ops_to_a_conv_model(torch_export: Callable[..., Path], tmp_path: Path) -> None:
    image = torch_export("image_classifier")
    extended = optimize(image, tmp_path / "e.onnx", opt_level="extended")
    all_ = optimize(image, tmp_path / "a.onnx", opt_level="all")
    assert extended.nchwc_ops == 0 and extended.added == {"com.microsoft::FusedConv": 1}
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("ONNX Runtime's NCHWc layout transformer targets x86 vector widths")
    # Blocked-layout ops tuned to this CPU: the saved graph is for the same kind of hardware only.
    assert all_.nchwc_ops >= 2 and all_.after["com.microsoft.nchwc::Conv"] == 1
    assert "NCHWc ops in this graph" in repr(all_)


# ---------------------------------------------------------------- transformer optimizer


def test_transformer_optimize_torchscript_bert_fuses_everything(bert_ts: Path, tmp_path: Path) -> None:
    result = transformer_optimize(bert_ts, model_type="bert", num_heads=4, hidden_size=64, out=tmp_path / "bert.opt.onnx")
    assert isinstance(result, TransformerOptimizeResult)
    assert result.fused_ops == {"EmbedLayerNormalization": 1, "Attention": 2, "BiasGelu": 2,
                                "SkipLayerNormalization": 4}
    assert result.fully_optimized is True and not result.notes
    for op, n in result.fused_ops.items():
        assert result.after[f"com.microsoft::{op}"] == n
    assert result.nodes_after < result.nodes_before / 4
    assert accuracy_gate(bert_ts, result.path, _bert_inputs(), tolerance="fp32")
    assert "Attention 2" in repr(result) and "fused op" in result._repr_html_()
    assert list(result.to_pandas().columns) == ["op", "before", "after", "delta"]


@pytest.mark.slow  # the dynamo export takes 10-20 s on 2 cores
def test_transformer_optimize_dynamo_bert_fuses_less(bert_dynamo: Path, tmp_path: Path) -> None:
    result = transformer_optimize(bert_dynamo, out=tmp_path / "bert-dyn.opt.onnx")
    # Observed with torch 2.13 / onnxruntime 1.31.1: embeddings, LayerNorms and GELUs fuse, the
    # attention subgraph of the dynamo export does not (the TorchScript export's does).
    assert result.fused_ops["EmbedLayerNormalization"] == 1
    assert result.fused_ops["SkipLayerNormalization"] == 4
    assert result.fused_ops["BiasGelu"] == 2
    assert result.fused.get("Attention", 0) == 0 and result.after["com.microsoft::Attention"] == 0
    assert result.fully_optimized is False
    assert any("attention did not fuse" in n for n in result.notes)
    saved = onnx.load(str(result.path), load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in saved.graph.initializer)
    assert result.bytes_before == model_bytes(bert_dynamo) > bert_dynamo.stat().st_size
    assert accuracy_gate(bert_dynamo, result.path, _bert_inputs(), tolerance="fp32")


def test_transformer_optimize_text_classifier(text_ts: Path, tmp_path: Path) -> None:
    result = transformer_optimize(text_ts, model_type="bert", out=tmp_path / "tc.onnx")
    # nn.MultiheadAttention's graph matches no attention pattern; only Add + LayerNorm fuse.
    assert result.fused_ops == {"SkipLayerNormalization": 4}
    assert result.diff["LayerNormalization"] == -4 and result.after["com.microsoft::SkipLayerNormalization"] == 4
    assert result.fully_optimized is False
    example = zoo.get("text_classifier", smoke=True).example_inputs
    assert accuracy_gate(text_ts, result.path, example, tolerance="fp32")


def test_transformer_optimize_default_out_and_no_fusion(mlp_ts: Path) -> None:
    result = transformer_optimize(mlp_ts)
    assert result.path == mlp_ts.with_name("mlp-torchscript.bert-opt.onnx") and result.path.is_file()
    assert not result.fused_ops and any("no fusion" in n for n in result.notes)
    result.path.unlink()


def test_transformer_use_gpu_without_gpu_warns(mlp_ts: Path, tmp_path: Path) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a GPU provider is available")
    with pytest.warns(UserWarning, match="no GPU provider"):
        result = transformer_optimize(mlp_ts, out=tmp_path / "g.onnx", opt_level="extended", use_gpu=True)
    assert any("use_gpu=True" in n for n in result.notes)


# ---------------------------------------------------------------- errors and writes


def test_unknown_level_and_model_type(mlp_ts: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"Unknown opt_level 'fast'.*'disable', 'basic', 'extended', 'layout', 'all'.*'basic' is the level"):
        optimize(mlp_ts, tmp_path / "x.onnx", opt_level="fast")
    with pytest.raises(InvalidInputError, match=r"Unknown model_type 'bertt'.*'bert'"):
        transformer_optimize(mlp_ts, model_type="bertt", out=tmp_path / "x.onnx")
    assert "gpt2" in transformer_model_types()
    with pytest.raises(InvalidInputError, match="opt_level must be None"):
        transformer_optimize(mlp_ts, opt_level=3, out=tmp_path / "x.onnx")
    with pytest.raises(InvalidInputError, match="num_heads must be an int >= 0"):
        transformer_optimize(mlp_ts, num_heads=-1, out=tmp_path / "x.onnx")
    assert not list(tmp_path.iterdir())


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="No ONNX file"):
        optimize(tmp_path / "missing.onnx", tmp_path / "o.onnx", opt_level="all")
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="empty"):
        optimize(empty, tmp_path / "o.onnx", opt_level="all")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(ModelFileError):
        transformer_optimize(corrupt, out=tmp_path / "o.onnx")
    assert not (tmp_path / "o.onnx").exists()


def test_out_paths(mlp_ts: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="refusing to overwrite"):
        optimize(mlp_ts, mlp_ts, opt_level="basic")
    with pytest.raises(InvalidInputError, match="refusing to overwrite"):
        transformer_optimize(mlp_ts, out=str(mlp_ts.parent / "." / mlp_ts.name))
    with pytest.raises(InvalidInputError, match="is a directory"):
        optimize(mlp_ts, tmp_path, opt_level="basic")
    with pytest.raises(InvalidInputError, match="must be a path"):
        optimize(mlp_ts, 3, opt_level="basic")  # type: ignore[arg-type]
    nested = tmp_path / "a" / "b" / "mlp.onnx"
    result = optimize(mlp_ts, nested, opt_level="extended")
    assert result.path == nested and nested.is_file()
    assert result.after == Counter({"com.microsoft::FusedGemm": 1, "Gemm": 1})
    default = optimize(mlp_ts, opt_level="basic")
    assert default.path == mlp_ts.with_name("mlp-torchscript.opt-basic.onnx")
    default.path.unlink()


def test_failed_write_leaves_no_file(mlp_ts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "w" / "mlp.onnx"

    def half_written(model: object, config: opt_mod.SessionConfig) -> None:
        Path(str(config.optimized_model_path)).write_bytes(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(opt_mod, "open_session", half_written)
    with pytest.raises(RuntimeError, match="disk full"):
        optimize(mlp_ts, out, opt_level="all")
    assert not out.exists() and not list(out.parent.iterdir())


def test_failed_transformer_save_leaves_no_file(mlp_ts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime.transformers.optimizer as ort_optimizer

    class HalfSaved:
        def get_fused_operator_statistics(self) -> dict[str, int]:
            return {}

        def save_model_to_file(self, path: str, **kwargs: object) -> None:
            Path(path).write_bytes(b"partial")
            raise OSError("no space left")

    monkeypatch.setattr(ort_optimizer, "optimize_model", lambda *a, **k: HalfSaved())
    with pytest.raises(OSError, match="no space"):
        transformer_optimize(mlp_ts, out=tmp_path / "t.onnx")
    assert not list(tmp_path.iterdir())


def test_optimized_output_of_level_all_runs(mlp_ts: Path, tmp_path: Path) -> None:
    result = optimize(mlp_ts, tmp_path / "m.onnx", opt_level="all")
    sess = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    ref = ort.InferenceSession(str(mlp_ts), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], ref, rtol=1e-5, atol=1e-6)
    assert os.path.getsize(result.path) == result.bytes_after
