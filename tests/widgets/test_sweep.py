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
                         runs=2, warmup=0, cell_budget_s=0.2)
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
    assert partials == [3, 6] and threads == ["workbench-sweep"]  # after each cell (eager + 2 levels in turns)
    assert sweep.progress.value == sweep.progress.max == 6
    configs = {t.meta["config"] for t in sweep.latency.data if t.meta and t.meta.get("kind") == "p50"}
    assert configs == {"eager", "CPU/all", "CPU/disable"}
    assert {t.name for t in sweep.speedup.data} == {"CPU/all", "CPU/disable"}
    assert "CPU/disable" in sweep.table.value and "p50 (ms)" in sweep.table.value and "95% CI" in sweep.table.value
    assert "in turns" in sweep.children[1].children[1].value and "stable verdict" in sweep.children[1].children[1].value
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


@pytest.fixture(scope="module")
def tc_onnx(export_zoo: Any) -> Path:
    """The smoke text classifier, batch and seq dynamic (dynamo: the TorchScript export runs only at the
    example's shape)."""
    return Path(export_zoo("text_classifier").out)


def _subplot_titles(sweep: LatencySweep) -> list[str]:
    return [a.text for a in sweep.latency.figure.layout.annotations]


@pytest.mark.slow
def test_the_sweep_runs_again_and_again_with_other_sizes(tc_onnx: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run 2 of the default grid (two seq lengths) failed: its first live redraw has one subplot."""
    monkeypatch.setattr(sweep_module, "LIVE_REDRAW_S", 0.0)  # redraw after every cell, as a slow sweep does
    case = wb.zoo.get("text_classifier", smoke=True)
    sweep = LatencySweep.from_case(case, tc_onnx, batch_sizes=[1, 2], seq_lens=[8, 16], runs=1, warmup=0,
                                   cell_budget_s=0.1)
    for seqs in ([8, 16], [8, 16], [8], [4, 8, 16]):
        sweep.seq_lens = seqs
        sweep.run_button.click()
        assert sweep.wait(WAIT_S) and sweep.state == "done", sweep.error
        assert not sweep.result.errors and len(sweep.result.rows) == 2 * len(seqs) * 2  # eager + CPU/all
        assert _subplot_titles(sweep) == [f"seq = {s}" for s in seqs]
        axes = [k for k in sweep.latency.figure.layout.to_plotly_json() if k.startswith("xaxis")]
        assert len(axes) == len(seqs)
        assert {t.meta["seq"] for t in sweep.latency.data} == set(seqs)


def test_the_fields_and_the_grid_traits_follow_each_other(mlp: wb.ModelCase, mlp_onnx: Path,
                                                          mlp_spec: wb.ExportSpec) -> None:
    sweep = _sweep(mlp, mlp_onnx, mlp_spec)
    assert not sweep.batch_field.continuous_update  # read on Enter or leaving the field, not on each key
    assert not sweep.seq_field.continuous_update
    sweep.batch_field.value = "4; 1"  # a person types into the field: kept as typed (no echo back)
    assert sweep.batch_sizes == [4, 1] and sweep.batch_field.value == "4; 1"
    sweep.seq_field.value = "8, 16"
    assert sweep.seq_lens == [8, 16]
    sweep.batch_field.value = "4, x"  # unreadable: said at once, the trait keeps its value
    assert sweep.state == "failed" and "batch sizes must be" in sweep.error and sweep.batch_sizes == [4, 1]
    sweep.batch_sizes = [2]  # Python moves the field, and the complaint goes
    assert sweep.batch_field.value == "2" and sweep.state == "idle" and sweep.error == ""
    sweep.seq_lens = "none"
    assert sweep.seq_field.value == "none" and sweep.seq_lens == [None]


def test_the_table_is_in_milliseconds_and_a_failure_is_cut_at_a_word() -> None:
    cause = "IndexError: index out of range in self " + "and a very long explanation " * 12
    rows = [wb.SweepRow("eager", 1, None, p50=0.0009362, p90=0.00101, p95=0.00105, p99=0.0011, throughput=1068.0),
            wb.SweepRow("CPU/all", 1, None, p50=0.0012, p90=0.0013, p95=0.0014, p99=0.0015, throughput=833.0,
                        speedup=0.78, speedup_low=0.6, speedup_high=1.1, verdict="no clear difference", noisy=True),
            wb.SweepRow("CPU/basic", 1, None, error=cause)]
    html = sweep_module.sweep_table_html(wb.SweepResult(rows=rows, total=3))
    assert "p50 (ms)" in html and "0.936" in html and "1.200" in html
    assert " us" not in html and " ms<" not in html  # one unit, said once in the header
    assert "noisy" in html and "title=" in html  # the note explains itself on hover
    assert "[0.60, 1.10]" in html and "no clear difference" in html
    shown = html.split("failed: ")[1].split("<details")[0]
    assert shown.endswith("\u2026") and shown[:-1].split()[-1] in cause.split()  # cut after a whole word
    assert "<details" in html and cause.strip() in html  # the full text a click away


def test_an_edit_of_one_field_never_rewrites_the_other(mlp: wb.ModelCase, mlp_onnx: Path,
                                                       mlp_spec: wb.ExportSpec) -> None:
    """The browser race: batch "1, 4" + Enter, seq "8, 24" + Enter, Run. The batch edit rewrote
    BOTH fields, so the seq field's edit still on its way was overwritten with the old grid."""
    sweep = _sweep(mlp, mlp_onnx, mlp_spec)
    sweep.seq_lens = [8, 16]
    writes: dict[str, list[str]] = {"batch": [], "seq": []}
    sweep.batch_field.observe(lambda c: writes["batch"].append(c["new"]), names="value")
    sweep.seq_field.observe(lambda c: writes["seq"].append(c["new"]), names="value")
    sweep.batch_field.value = "1, 4"
    assert sweep.batch_sizes == [1, 4] and writes == {"batch": ["1, 4"], "seq": []}
    sweep.seq_field.value = "8, 24"
    assert sweep.seq_lens == [8, 24] and writes == {"batch": ["1, 4"], "seq": ["8, 24"]}
    sweep.batch_sizes = [2, 3]  # from Python: only its own field moves
    assert writes == {"batch": ["1, 4", "2, 3"], "seq": ["8, 24"]}
    sweep.seq_lens = [8, 24]  # unchanged: nothing is written
    assert writes["seq"] == ["8, 24"]
