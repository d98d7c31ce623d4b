"""Workbench: the panels wired together (export -> graph -> toggles -> diff -> sweep; tuner; server)."""

from __future__ import annotations

from pathlib import Path

import workbench as wb
from workbench.widgets import Workbench
from workbench.widgets.dashboard import TAB_TITLES
from workbench.widgets.netron import live_servers

WAIT_S = 90


def test_export_feeds_every_panel(mlp: wb.ModelCase, mlp_spec: wb.ExportSpec, tmp_path: Path) -> None:
    bench = Workbench(mlp.model, mlp.example_inputs, spec=mlp_spec, out=tmp_path / "mlp.onnx")
    try:
        assert [bench.tabs.get_title(i) for i in range(len(TAB_TITLES))] == list(TAB_TITLES)
        assert bench.graph.state == "idle" and bench.diff.state == "idle" and bench.sweep.state == "idle"
        assert bench.export.wait(WAIT_S)  # the form has read the model's outputs
        bench.export.export_button.click()
        assert bench.export.wait(WAIT_S) and bench.export.state == "done", bench.export.error
        exported = str(tmp_path / "mlp.onnx")
        assert bench.onnx_model == exported
        assert bench.graph.onnx_model == bench.diff.onnx_model == bench.sweep.onnx_model == exported
        assert bench.tuner.onnx_model == bench.serve.onnx_model == exported
        assert bench.wait(WAIT_S)
        assert bench.graph.state == "done" and bench.graph.netron.port > 0
        assert bench.diff.state == "done" and bench.diff.comparison.ok

        bench.toggles.opt_level.value = "basic"
        assert bench.diff.config.opt_level == "basic"
        assert bench.sweep.extra_config == bench.toggles.config == bench.serve.config
        assert bench.wait(WAIT_S) and "CPU/basic" in bench.diff.verdict.value

        redraws = bench.diff.redraws
        bench.export.exporter.value, bench.export.opset.value = "torchscript", 16  # same path, new file
        bench.export.export()
        assert bench.export.wait(WAIT_S) and bench.export.result.opset == 16
        assert bench.wait(WAIT_S) and bench.diff.redraws > redraws
        assert bench.graph.summary.opsets[""] == 16

        bench.select("latency")
        assert bench.tabs.selected_index == 3
    finally:
        bench.close()
    assert live_servers() == []


def test_from_case_takes_the_cases_parts(tmp_path: Path) -> None:
    case = wb.zoo.get("text_classifier", smoke=True)
    case = wb.ModelCase(case.name, case.model, case.example_inputs, case.spec, case.input_factory, tolerance="fp16",
                        config=wb.SessionConfig(opt_level="basic"))
    bench = Workbench.from_case(case, out=tmp_path / "tc.onnx")
    try:
        assert bench.export.out_field.value == str(tmp_path / "tc.onnx")
        assert bench.toggles.config == bench.diff.config == wb.SessionConfig(opt_level="basic")
        assert bench.diff.tolerance == "fp16" and list(bench.diff.sliders) == ["batch", "seq"]
        assert bench.sweep.seq_lens == [case.example_sizes()[1], 2 * case.example_sizes()[1]]
        assert bench.wait(WAIT_S) and bench.export.axes.output_names() == tuple(case.spec.output_names)
    finally:
        bench.close()


def test_traits_and_their_controls_follow_each_other(mlp: wb.ModelCase, mlp_spec: wb.ExportSpec,
                                                     tmp_path: Path) -> None:
    bench = Workbench(mlp.model, mlp.example_inputs, spec=mlp_spec, out=tmp_path / "mlp.onnx")
    try:
        assert bench.tab == "export" and bench.tabs.selected_index == 0
        bench.tab = "latency"  # Python moves the tab bar
        assert bench.tabs.selected_index == 3
        bench.tab = "serve"
        assert bench.tabs.selected_index == 5
        bench.tabs.selected_index = 4
        assert bench.tab == "tune"
        bench.tabs.selected_index = 2  # a click on a tab moves the trait
        assert bench.tab == "compare"
        bench.select("graph")
        assert bench.tabs.selected_index == 1 and bench.tab == "graph"

        config = wb.SessionConfig(opt_level="extended", intra_op_threads=2)
        bench.diff.config = config  # the diff's config set from Python: its controls (the toggles) follow
        assert bench.toggles.config == config and bench.toggles.opt_level.value == "extended"
        assert bench.toggles.intra_op_threads.value == 2 and bench.sweep.extra_config == config
        bench.toggles.opt_level.value = "basic"  # and the controls move the diff
        assert bench.diff.config.opt_level == "basic" and bench.sweep.extra_config.opt_level == "basic"
        assert "CPU/basic" in bench.sweep.extra_box.description

        bench.sweep.batch_sizes = [3, 5]
        assert bench.sweep.batch_field.value == "3, 5"
    finally:
        assert bench.wait(WAIT_S)
        bench.close()


def test_the_graph_overlay_follows_the_toggles_and_the_export(mlp: wb.ModelCase, mlp_spec: wb.ExportSpec,
                                                             tmp_path: Path) -> None:
    """Issue 12: the Graph tab's overlay is measured at the export's inputs under the toggles' config,
    against the model (for the error), and measured again when the config or the file changes."""
    bench = Workbench(mlp.model, mlp.example_inputs, spec=mlp_spec, out=tmp_path / "mlp.onnx")
    try:
        assert bench.graph.model is mlp.model and bench.graph.inputs is bench.export.example_inputs
        bench.export.export()
        assert bench.export.wait(WAIT_S) and bench.export.state == "done", bench.export.error
        bench.graph.overlay = "latency"
        assert bench.wait(WAIT_S) and bench.graph.stats is not None and bench.graph.node_table.rows
        first = bench.graph.stats
        bench.toggles.opt_level.value = "disable"
        assert bench.graph.config == bench.toggles.config and bench.graph.config.opt_level == "disable"
        assert bench.wait(WAIT_S) and bench.graph.stats is not first and "disable" in bench.graph.stats.config
        second = bench.graph.stats
        bench.export.opset.value = 16
        bench.export.export()  # a new file at the same path: measured again
        assert bench.export.wait(WAIT_S) and bench.wait(WAIT_S)
        assert bench.graph.stats is not None and bench.graph.stats is not second
        bench.graph.overlay = "error"  # the dashboard has the model: the error is measured
        assert bench.wait(WAIT_S) and "error" not in bench.graph.stats.skipped
    finally:
        bench.close()
