"""The notebooks' helpers: settings in the workbench's vocabulary, folders, and tables built from
core results (they compute nothing core does not)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import pytest

import workbench as wb
from workbench.teaching import tutorial


def test_settings_speak_the_vocabulary_and_carry_no_inputs():
    fields = {f.name for f in dataclasses.fields(tutorial.Settings)}
    assert {"batch", "seq", "batch_sizes", "seq_lens"} <= fields
    assert not any("input" in name or "sweep_batches" in name or "sweep_seqs" in name for name in fields)


def test_folders_live_under_the_artifacts_root(smoke_teaching: Path):
    assert tutorial.artifacts_root() == smoke_teaching.resolve()
    assert tutorial.work_dir("nb").is_dir() and tutorial.work_dir("nb").parent == smoke_teaching.resolve()
    assert tutorial.shared("m.onnx").parent.name == "shared-smoke"


def test_setup_prints_the_mode_and_returns_the_work_dir(capsys: pytest.CaptureFixture[str]):
    folder = tutorial.setup("nb_setup")
    text = capsys.readouterr().out
    assert folder.is_dir() and "smoke mode" in text and "onnxruntime" in text


def test_tables_from_one_export(export_zoo: Callable[..., wb.ExportResult], mlp: wb.ModelCase):
    result = export_zoo("mlp", "torchscript")
    ops = tutorial.op_table({"a": result.summary, "b": result.summary.ops}, top=3)
    assert list(ops.columns) == ["a", "b"] and (ops["a"] == ops["b"]).all()
    assert tutorial.op_table({"a": result.summary, "b": result.summary}, changed=True).empty

    table = tutorial.tolerance_table(mlp.model, {"fp32": result.out}, mlp.example_inputs)
    assert list(table.columns) == ["model", "max abs", "max rel", "at fp32", "at fp16", "at int8", "tightest passing"]
    assert table.iloc[0]["tightest passing"] == "fp32" and table.iloc[0]["at fp32"] == "pass"

    files = tutorial.files(result.out.parent, result.out.name)
    assert list(files.file) == [result.out.name] and files.iloc[0].bytes > 0


def test_time_configs_times_each_config(export_zoo: Callable[..., wb.ExportResult], mlp: wb.ModelCase):
    out = export_zoo("mlp", "torchscript").out
    configs = {"one thread": wb.SessionConfig(intra_op_threads=1), "default": wb.SessionConfig()}
    table = tutorial.time_configs(out, mlp.example_inputs, configs, runs=3, warmup=1)
    assert list(table.config) == list(configs) and (table["p50 ms"] > 0).all()


def test_side_by_side_and_the_sentence_naming_slower_cells(export_zoo: Callable[..., wb.ExportResult],
                                                            mlp: wb.ModelCase):
    out = export_zoo("mlp", "torchscript").out
    grid = dict(batch_sizes=[1, 2], input_factory=mlp.input_factory, runs=3, warmup=1, include_eager=False)
    a, b = wb.sweep(mlp.model, out, **grid), wb.sweep(mlp.model, out, **grid)
    table = tutorial.side_by_side(a, b)
    assert list(table.columns) == ["fp32 p50 ms", "int8 p50 ms", "int8 / fp32"] and len(table) == 2
    sentence = tutorial.slower_cells(table)
    assert sentence.startswith("In this run int8 was")


def test_inferred_shapes_at_given_sizes(export_zoo: Callable[..., wb.ExportResult], mlp: wb.ModelCase):
    result = export_zoo("mlp", "torchscript")
    name = mlp.spec.input_names[0]
    table = tutorial.inferred_shapes(result.summary, at=wb.infer_shapes(result.out, {name: (3, 16)}))
    assert list(table.columns) == ["value", "dtype", "inferred shape", "at these input sizes"] and not table.empty
    assert all(text.startswith("[3") for text in table["at these input sizes"])
    assert all("batch" in text or "?" in text for text in table["inferred shape"])


def test_levels_with_latency_pairs_each_level_with_its_timing(export_zoo: Callable[..., wb.ExportResult],
                                                             mlp: wb.ModelCase, tmp_path: Path):
    out = export_zoo("mlp", "torchscript").out
    levels = wb.optimize_levels(out, tmp_path, opt_levels=("disable", "all"))
    timed = wb.sweep(mlp.model, out, batch_sizes=[2], configs=[wb.SessionConfig(opt_level=lv) for lv in levels],
                     input_factory=mlp.input_factory, runs=3, warmup=1, include_eager=False)
    paired = tutorial.levels_with_latency(levels, timed, 2, None)
    assert isinstance(paired, wb.OptLevels) and set(paired.latency) == {"disable", "all"}
    assert tutorial.op_table(levels).shape[1] == 2


@pytest.mark.slow
def test_the_gallery_tables():
    gallery = tutorial.gallery_table()
    assert {"opset_too_old", "training_mode"} <= set(gallery.case) and gallery.code.str.len().gt(0).all()
    rows = tutorial.diagnose_cases(["opset_too_old"], retry=False)
    assert list(rows.case) == ["opset_too_old"] and rows.iloc[0]["right place"] == "yes"
    assert "OP002" in rows.iloc[0]["found"] and rows.iloc[0]["retry"] == "-"
