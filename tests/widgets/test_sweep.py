"""LatencySweep: the grid, a run off the main thread with live plots, cancel, CSV, errors."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import traitlets

import workbench as wb
import workbench.widgets.sweep as sweep_module
from workbench.widgets import LatencySweep
from workbench.widgets._traits import parse_sizes

WAIT_S = 60


def test_parse_sizes() -> None:
    assert parse_sizes("1, 2;4, 2", "batch sizes") == [1, 2, 4]
    assert parse_sizes("none", "seq", allow_none=True) == [None]
    assert parse_sizes((4, 1, 4), "batch sizes") == [4, 1] and parse_sizes([None], "seq", allow_none=True) == [None]
    with pytest.raises(wb.InvalidInputError, match="comma-separated list of ints >= 1"):
        parse_sizes("1, x", "batch sizes")
    with pytest.raises(wb.InvalidInputError):
        parse_sizes("0", "batch sizes")


def _sweep(mlp: wb.ModelCase, onnx_model: Path | str, spec: wb.ExportSpec) -> LatencySweep:
    sweep = LatencySweep(mlp.model, onnx_model, spec=spec, example_inputs=mlp.example_inputs, batch_sizes=(1, 2),
                         runs=2, warmup=0)
    assert sweep.seq_lens == [None] and sweep.seq_field.value == "none"  # the MLP has no sequence axis
    assert sweep.batch_sizes == [1, 2] and sweep.batch_field.value == "1, 2"
    return sweep


def test_a_run_fills_plots_table_and_csv(mlp: wb.ModelCase, mlp_onnx: Path, mlp_spec: wb.ExportSpec,
                                         tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    partials: list[int] = []
    threads: list[str] = []
    real = sweep_module.sweep

    def spy(*args: Any, on_row: Any, **kwargs: Any) -> wb.SweepResult:
        threads.append(threading.current_thread().name)

        def record(result: wb.SweepResult) -> None:
            partials.append(len(result.rows))
            on_row(result)

        return real(*args, on_row=record, **kwargs)

    monkeypatch.setattr(sweep_module, "sweep", spy)
    monkeypatch.setattr(sweep_module, "LIVE_REDRAW_S", 0.0)  # draw after every cell
    sweep = _sweep(mlp, mlp_onnx, mlp_spec)
    sweep.level_boxes["disable"].value = True
    sweep.run_button.click()
    assert sweep.wait(WAIT_S) and sweep.state == "done", sweep.error
    result = sweep.result
    assert len(result.rows) == 6 and not result.errors and not result.cancelled  # 2 batches x (eager + 2 levels)
    assert partials == [1, 2, 3, 4, 5, 6] and threads == ["workbench-sweep"]
    assert sweep.progress.value == sweep.progress.max == 6
    configs = {t.meta["config"] for t in sweep.latency.data if t.meta and t.meta.get("kind") == "p50"}
    assert configs == {"eager", "CPU/all", "CPU/disable"}
    assert {t.name for t in sweep.speedup.data} == {"CPU/all", "CPU/disable"}
    assert "CPU/disable" in sweep.table.value
    frame = sweep.to_pandas()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 6
    sweep.csv_out.value = str(tmp_path / "out.csv")
    sweep.csv_button.click()
    assert len(pd.read_csv(tmp_path / "out.csv")) == 6 and "Saved 6 rows" in sweep.status.value


def test_the_toggles_config_is_offered_once(mlp: wb.ModelCase, mlp_onnx: Path, mlp_spec: wb.ExportSpec) -> None:
    sweep = _sweep(mlp, mlp_onnx, mlp_spec)
    assert sweep.extra_box.layout.display == "none"
    sweep.extra_config = wb.SessionConfig(opt_level="all")  # the same as the ticked "ORT all"
    assert sweep.extra_box.layout.display == "" and "CPU/all" in sweep.extra_box.description
    assert sweep.selected_configs() == [wb.SessionConfig()]
    sweep.extra_config = wb.SessionConfig(opt_level="basic", intra_op_threads=1)
    assert [c.label() for c in sweep.selected_configs()] == ["CPU/all", "CPU/basic/t1"]


def test_cancel_keeps_the_rows_so_far(mlp: wb.ModelCase, mlp_onnx: Path, mlp_spec: wb.ExportSpec,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real = sweep_module.sweep
    sweep = _sweep(mlp, mlp_onnx, mlp_spec)

    def cancel_after_two(*args: Any, cancel: threading.Event, on_row: Any, **kwargs: Any) -> wb.SweepResult:
        def record(result: wb.SweepResult) -> None:
            on_row(result)
            if len(result.rows) == 2:
                sweep.cancel_button.click()

        return real(*args, cancel=cancel, on_row=record, **kwargs)

    monkeypatch.setattr(sweep_module, "sweep", cancel_after_two)
    sweep.run()
    assert sweep.wait(WAIT_S)
    assert sweep.state == "cancelled" and sweep.result.cancelled and len(sweep.result.rows) == 2
    assert "Cancelled after 2 of 4 cells" in sweep.status.value and not sweep.run_button.disabled


def test_bad_grid_and_no_model_end_in_visible_errors(mlp: wb.ModelCase, mlp_onnx: Path,
                                                     mlp_spec: wb.ExportSpec) -> None:
    sweep = _sweep(mlp, "", mlp_spec)
    assert sweep.state == "idle" and "export one" in sweep.status.value
    sweep.run_button.click()
    assert sweep.state == "failed" and "export one first" in sweep.error
    sweep.onnx_model = mlp_onnx
    sweep.batch_field.value = "one, two"
    sweep.run()
    assert sweep.state == "failed" and "batch sizes must be" in sweep.error
    sweep.batch_field.value = "1"
    sweep.eager_box.value = False
    sweep.level_boxes["all"].value = False
    sweep.run()
    assert sweep.state == "failed" and "No config is ticked" in sweep.error
    with pytest.raises(wb.InvalidInputError, match="No sweep has run yet"):
        sweep.to_pandas()


def test_a_failing_sweep_is_shown(mlp: wb.ModelCase, mlp_onnx: Path, mlp_spec: wb.ExportSpec,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> wb.SweepResult:
        raise RuntimeError("the machine caught fire")

    monkeypatch.setattr(sweep_module, "sweep", broken)
    sweep = _sweep(mlp, mlp_onnx, mlp_spec)
    sweep.run()
    assert sweep.wait(WAIT_S)
    assert sweep.state == "failed" and "the machine caught fire" in sweep.status.value
    assert not sweep.run_button.disabled and sweep.progress.bar_style == "danger"


def test_grid_traits_are_checked_and_move_the_fields(mlp: wb.ModelCase, mlp_onnx: Path) -> None:
    case = wb.zoo.get("text_classifier", smoke=True)
    seq = case.example_sizes()[1]
    sweep = LatencySweep.from_case(case, mlp_onnx, batch_sizes="1, 4")
    assert sweep.batch_sizes == [1, 4] and sweep.seq_lens == [seq, 2 * seq]  # the example's seq and twice it
    assert sweep.seq_field.value == f"{seq}, {2 * seq}"
    sweep.batch_sizes = [2, 8, 2]
    assert sweep.batch_sizes == [2, 8] and sweep.batch_field.value == "2, 8"
    with pytest.raises(traitlets.TraitError, match="batch sizes must be a comma-separated list of ints >= 1"):
        sweep.batch_sizes = [0]
    with pytest.raises(traitlets.TraitError, match="seq lengths"):
        sweep.seq_lens = "x"
    assert sweep.batch_sizes == [2, 8] and sweep.seq_lens == [seq, 2 * seq]
    sweep.seq_field.value = "8"
    sweep.run_button.click()  # the fields are read when the sweep starts
    assert sweep.seq_lens == [8]
    sweep.cancel()
    assert sweep.wait(WAIT_S)
