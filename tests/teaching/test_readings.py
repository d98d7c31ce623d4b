"""The notebooks' sentences about speed say what the run measured, never a law the numbers contradict;
and a cell that teaches a warning prints it as text instead of raw stderr."""

from __future__ import annotations

import os
import warnings

import pytest

from workbench.core.measurement import Measurement
from workbench.core.sweep_results import EAGER, SweepResult, SweepRow, fill_speedups
from workbench.teaching import tutorial


def _sweep(eager: dict[tuple[int, int | None], float], ort: dict[tuple[int, int | None], float],
           *, noisy: bool = False) -> SweepResult:
    rows = [SweepRow(EAGER, b, s, p50=t, noisy=noisy) for (b, s), t in eager.items()]
    rows += [SweepRow("CPU/all", b, s, p50=t, noisy=noisy) for (b, s), t in ort.items()]
    fill_speedups(rows)
    return SweepResult(rows=rows, total=len(rows))


def test_a_speedup_that_grows_with_the_batch_is_called_growing():
    """Notebook 07 used to state that the speed-up shrinks as the batch grows, whatever the run showed."""
    result = _sweep({(1, 16): 2.0, (16, 16): 20.0}, {(1, 16): 1.0, (16, 16): 2.0})
    text = tutorial.describe_speedups(result)
    assert "from 2.00x at batch 1 to 10.00x at batch 16 (seq 16): it grew" in text
    assert "shrank" not in text and "noisy" not in text


def test_a_shrinking_speedup_and_cells_where_eager_wins_are_named():
    result = _sweep({(1, None): 3.0, (4, None): 4.0, (16, None): 8.0},
                    {(1, None): 1.0, (4, None): 2.0, (16, None): 10.0}, noisy=True)
    text = tutorial.describe_speedups(result)
    assert "from 3.00x at batch 1 to 0.80x at batch 16: it shrank." in text
    assert "So here the speed-up shrank as the batch grew from 1 to 16." in text
    assert "Eager PyTorch was faster at: batch 16 (0.80x)." in text
    assert "6 of 6 cells were flagged noisy" in text


def test_a_trend_that_differs_per_sequence_length_is_said_so():
    result = _sweep({(1, 16): 2.0, (8, 16): 2.0, (1, 64): 2.0, (8, 64): 2.0},
                    {(1, 16): 1.0, (8, 16): 0.5, (1, 64): 1.0, (8, 64): 2.0})
    text = tutorial.describe_speedups(result)
    assert "(seq 16): it grew" in text and "(seq 64): it shrank" in text
    assert "depends on the sequence length" in text


def test_an_unsteady_trend_and_a_flat_one():
    up_down = _sweep({(1, None): 2.0, (4, None): 2.0, (16, None): 2.0},
                     {(1, None): 1.0, (4, None): 4.0, (16, None): 0.5})
    assert "it grew, not steadily" in tutorial.describe_speedups(up_down)
    flat = _sweep({(1, None): 2.0, (16, None): 2.0}, {(1, None): 1.0, (16, None): 1.05})
    assert "stayed about the same" in tutorial.describe_speedups(flat)
    assert "no speed-ups" in tutorial.describe_speedups(SweepResult())


def test_a_cell_whose_interval_holds_one_is_not_called_slower():
    """A sweep cell whose best config's 95% interval holds 1 has no winner: the sentence says so."""
    result = _sweep({(1, None): 2.0, (8, None): 2.0}, {(1, None): 1.0, (8, None): 2.2})
    slow = next(r for r in result.rows if r.config != EAGER and r.batch == 8)
    slow.speedup_low, slow.speedup_high, slow.verdict = 0.7, 1.2, "no clear difference"
    text = tutorial.describe_speedups(result)
    assert "Eager PyTorch was faster" not in text
    assert "At batch 8 (0.91x) this run shows no clear difference" in text
    fast = next(r for r in result.rows if r.config != EAGER and r.batch == 1)
    fast.verdict = "faster"
    slow.verdict = "slower"
    assert "Eager PyTorch was faster at: batch 8 (0.91x)." in tutorial.describe_speedups(result)


def _m(label: str, p50: float) -> Measurement:
    m = Measurement(label=label, raw_times=[p50] * 5)
    assert m.p50 == pytest.approx(p50)
    return m


def test_latencies_are_compared_as_measured():
    text = tutorial.describe_latencies(_m("fp32", 0.002), {"int8": _m("int8", 0.004), "fp16": _m("fp16", 0.00204)})
    assert "int8 took 4 ms, 2.00x of fp32's 2 ms (slower than fp32)" in text
    assert "fp16 took 2.04 ms, 1.02x of fp32's 2 ms (about as fast as fp32)" in text


def test_configs_are_ranked_and_a_small_spread_is_called_noise():
    rows = [SweepRow("CPU/disable", 4, 32, p50=0.0021), SweepRow("CPU/all", 4, 32, p50=0.0020),
            SweepRow(EAGER, 4, 32, p50=0.001)]
    text = tutorial.describe_configs(SweepResult(rows=rows), 4, 32)
    assert text.startswith("In this run the fastest config was CPU/all (2 ms median) and the slowest CPU/disable")
    assert "within the noise" in text
    rows[0].p50 = 0.004
    assert "within the noise" not in tutorial.describe_configs(SweepResult(rows=rows), 4, 32)
    assert "fewer than two" in tutorial.describe_configs(SweepResult(rows=rows), 1, None)


def test_show_warnings_prints_warnings_and_c_output_as_plain_stdout(capfd):
    with tutorial.show_warnings():
        warnings.warn("a provider is missing", UserWarning, stacklevel=1)
        os.write(2, b"from C\n")
    seen = capfd.readouterr()
    assert seen.err == ""
    assert "UserWarning: a provider is missing" in seen.out and "from C" in seen.out


def test_usable_cpus_follow_the_cgroup_quota_and_affinity(tmp_path):
    quota = tmp_path / "cpu.max"
    quota.write_text("100000 100000\n")  # docker --cpus=1
    found = tutorial.cpus(str(quota))
    assert found["cgroup quota"] == 1.0 and found["usable"] == 1  # not os.cpu_count()
    quota.write_text("max 100000\n")
    free = tutorial.cpus(str(quota))
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert free["cgroup quota"] is None and free["usable"] == expected
    assert tutorial.cpus(str(tmp_path / "missing"))["usable"] == expected
    assert 1 <= tutorial.usable_cpus() <= (os.cpu_count() or 1)


def test_eager_fast_path_names_the_fused_operators():
    import workbench as wb

    case = wb.zoo.get("text_classifier", smoke=True)
    assert tutorial.eager_fast_path(case.model, case.example_inputs) == list(tutorial.FAST_PATH_OPS)
    mlp = wb.zoo.get("mlp", smoke=True)
    assert tutorial.eager_fast_path(mlp.model, mlp.example_inputs) == []


def test_int8_reduce_range_reports_the_quantizers_choice(monkeypatch):
    monkeypatch.setattr("workbench.core.quantize._cpu_has_vnni", lambda: False)
    monkeypatch.setattr("workbench.core.quantize.platform.machine", lambda: "x86_64", raising=False)
    choice = tutorial.int8_reduce_range()
    assert choice["reduce_range"] is True and "lacks VNNI" in choice["note"]
    monkeypatch.setattr("workbench.core.quantize._cpu_has_vnni", lambda: True)
    assert tutorial.int8_reduce_range() == {"reduce_range": False, "note": None}
