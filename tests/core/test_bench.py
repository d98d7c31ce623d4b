"""Measurement statistics, benchmark() on modules and sessions, and sweep() with failures and cancel."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import torch
from torch import nn

from workbench import zoo
from workbench.core.case import ModelCase
from workbench.core.bench import Measurement, benchmark
from workbench.core.flops import Peak, PeakSource, graph_flops
from workbench.core.session import SessionConfig, open_session
from workbench.core.sweep import SweepResult, sweep
from workbench.errors import FeedError, InvalidInputError, ModelFileError

FAST = {"warmup": 1, "runs": 3}
#: A sweep's cells stop at this budget (the measurement itself is tested in test_paired.py).
QUICK = {**FAST, "cell_budget_s": 0.2}


@pytest.fixture(scope="module")
def mlp() -> ModelCase:
    return zoo.get("mlp", smoke=True)


@pytest.fixture(scope="module")
def mlp_onnx(torch_export: Callable[..., Path]) -> Path:
    return torch_export("mlp")


@pytest.fixture(scope="module")
def mlp_session(mlp_onnx: Path) -> ort.InferenceSession:
    return open_session(mlp_onnx, SessionConfig(intra_op_threads=1))


def _mlp_flops(batch: int) -> int:
    return 2 * batch * (16 * 32 + 32 * 4)


class Recorder(nn.Module):
    """Counts calls and records the thread count and inference mode seen inside forward."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.seen: set[tuple[int, bool]] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.seen.add((torch.get_num_threads(), torch.is_inference_mode_enabled()))
        return x * 2


# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------


def test_statistics_match_numpy_and_are_ordered() -> None:
    rng = np.random.default_rng(0)
    times = list(rng.lognormal(-7, 0.3, size=200))
    m = Measurement("x", times)
    assert m.min <= m.p50 <= m.p90 <= m.p95 <= m.p99 <= m.max
    assert m.median == m.p50 == pytest.approx(np.median(times))
    assert m.p90 == pytest.approx(np.percentile(times, 90))
    assert m.iqr == pytest.approx(np.percentile(times, 75) - np.percentile(times, 25))
    assert m.mean == pytest.approx(np.mean(times)) and m.std == pytest.approx(np.std(times, ddof=1))
    assert m.runs == 200


def test_noise_verdict_follows_iqr_over_median() -> None:
    noisy = Measurement("n", [1.0, 2.0, 3.0, 4.0, 5.0])  # IQR 2 / median 3
    assert noisy.relative_iqr == pytest.approx(2 / 3)
    assert noisy.noisy and "WARNING: Interquartile range is 66.7% of the median" in noisy.noise
    steady = Measurement("s", [1.0] * 10 + [1.05])
    assert not steady.noisy and "steady" in steady.noise
    assert "WARNING" in repr(noisy) and "WARNING" not in repr(steady)


def test_throughput_and_gflops() -> None:
    m = Measurement("t", [0.002, 0.002, 0.002], batch_size=8, flops=4_000_000)
    assert m.throughput == pytest.approx(8 / 0.002) and m.throughput_unit == "items/s"
    assert m.gflops == pytest.approx(4_000_000 / 0.002 / 1e9)
    plain = Measurement("t", [0.002, 0.004])
    assert plain.throughput == pytest.approx(1 / 0.003) and plain.throughput_unit == "calls/s"
    assert plain.gflops is None


def test_reprs_and_pandas() -> None:
    m = Measurement("<b>", [0.001, 0.002, 0.003], batch_size=2, threads=1)
    assert "<Measurement '<b>': 3 runs, median 2.00 ms" in repr(m)
    html = m._repr_html_()
    assert "&lt;b&gt;" in html and "<table" in html and "<b>" not in html.replace("<b>&lt;", "")
    df = m.to_pandas()
    assert list(df["time_s"]) == m.raw_times and list(df["run"]) == [0, 1, 2] and set(df["label"]) == {"<b>"}
    assert m.summary()["p50"] == m.p50


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"raw_times": []}, "at least one finite time"),
        ({"raw_times": [0.1, -1.0]}, "at least one finite time"),
        ({"raw_times": [0.1], "batch_size": 0}, "batch_size must be an int >= 1"),
    ],
)
def test_measurement_rejects_nonsense(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        Measurement("bad", **kwargs)


# ---------------------------------------------------------------------------------------------
# benchmark()
# ---------------------------------------------------------------------------------------------


def test_benchmark_session_positional_and_dict(mlp: ModelCase, mlp_session: ort.InferenceSession) -> None:
    m = benchmark(mlp_session, mlp.example_inputs, warmup=1, runs=7, batch_size=2, flops=_mlp_flops(2))
    assert len(m.raw_times) == 7 and all(0 < t < 1 for t in m.raw_times)
    assert m.label == "ort:CPU" and m.threads == 1 and m.batch_size == 2
    assert m.gflops == pytest.approx(_mlp_flops(2) / m.p50 / 1e9)
    by_name = benchmark(mlp_session, {"x": mlp.example_inputs[0].numpy()}, runs=2, label="mine")
    assert by_name.label == "mine" and by_name.runs == 2


def test_benchmark_opens_a_path_or_proto_with_config(mlp: ModelCase, mlp_onnx: Path) -> None:
    m = benchmark(mlp_onnx, mlp.example_inputs, config=SessionConfig(intra_op_threads=1), **FAST)
    assert m.label == "ort:CPU" and m.threads == 1 and m.runs == 3
    by_threads = benchmark(onnx.load(str(mlp_onnx)), mlp.example_inputs, threads=2, **FAST)
    assert by_threads.threads == 2


def test_benchmark_times_any_callable(mlp: ModelCase) -> None:
    calls: list[tuple[Any, ...]] = []

    def work(*args: Any) -> None:
        calls.append(args)

    m = benchmark(work, warmup=2, runs=4)
    assert m.label == "work" and m.runs == 4 and calls == [()] * 6
    assert m.cpu_per_call is not None and m.cpu_per_call >= 0 and m.summary()["cpu_per_call"] == m.cpu_per_call
    calls.clear()
    assert benchmark(work, (1, 2), label="pair", **FAST).label == "pair" and calls[-1] == (1, 2)
    assert benchmark(lambda **kw: calls.append(tuple(kw)), {"a": 1}, **FAST).runs == 3 and calls[-1] == ("a",)


def test_benchmark_min_time_runs_until_the_budget(mlp: ModelCase, mlp_session: ort.InferenceSession) -> None:
    m = benchmark(mlp_session, mlp.example_inputs, warmup=0, min_time=0.02)
    assert sum(m.raw_times) >= 0.02 and m.runs > 1


def test_benchmark_module_sets_threads_and_inference_mode_then_restores() -> None:
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    rec = Recorder()
    m = benchmark(rec, (torch.ones(3),), warmup=2, runs=5, threads=target)
    assert rec.calls == 2 + 5 and m.runs == 5
    assert rec.seen == {(target, True)} and m.threads == target
    assert torch.get_num_threads() == before and not torch.is_inference_mode_enabled()
    assert m.label == "eager:Recorder"


def test_benchmark_module_accepts_numpy_and_dict(mlp: ModelCase) -> None:
    x = mlp.example_inputs[0].numpy()
    assert benchmark(mlp.model, (x,), **FAST).runs == 3
    assert benchmark(mlp.model, {"x": mlp.example_inputs[0]}, **FAST).runs == 3


def test_benchmark_failure_is_explained_and_threads_restored() -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    before = torch.get_num_threads()
    with pytest.raises(InvalidInputError, match="eager:Broken failed while being timed: RuntimeError: boom"):
        benchmark(Broken(), (torch.ones(1),), threads=1, **FAST)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"runs": 0}, r"runs must be an int >= 1, received 0"),
        ({"runs": 2.5}, r"runs must be an int >= 1"),
        ({"runs": 5, "min_time": 1.0}, "either runs .* or min_time .*, not both"),
        ({"min_time": -1.0}, "min_time must be a number of seconds > 0"),
        ({"warmup": -1}, "warmup must be an int >= 0"),
        ({"threads": 0}, "threads must be an int >= 1"),
    ],
)
def test_benchmark_rejects_bad_budgets(mlp: ModelCase, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        benchmark(mlp.model, mlp.example_inputs, **kwargs)


def test_benchmark_rejects_bad_targets_and_inputs(mlp: ModelCase, mlp_session: ort.InferenceSession) -> None:
    with pytest.raises(InvalidInputError, match="target must be an nn.Module, .* or a callable, received int"):
        benchmark(42, mlp.example_inputs)
    with pytest.raises(ModelFileError, match="No ONNX file"):
        benchmark("model.onnx", mlp.example_inputs)
    with pytest.raises(InvalidInputError, match="config= applies when benchmark opens the model"):
        benchmark(mlp_session, mlp.example_inputs, config=SessionConfig())
    with pytest.raises(InvalidInputError, match="config= is for ONNX models"):
        benchmark(mlp.model, mlp.example_inputs, config=SessionConfig())
    with pytest.raises(InvalidInputError, match="inputs is empty"):
        benchmark(mlp_session, ())
    with pytest.raises(InvalidInputError, match="inputs is empty"):
        benchmark(mlp.model, {})
    with pytest.raises(FeedError, match=r"Feed names \['input'\] do not match.*missing \['x'\]"):
        benchmark(mlp_session, {"input": mlp.example_inputs[0]})
    with pytest.raises(FeedError, match=r"graph takes 1 inputs \(x: .*received 2"):
        benchmark(mlp_session, (mlp.example_inputs[0], mlp.example_inputs[0]))
    with pytest.raises(FeedError, match=r"'x' expects tensor\(float\).*received float64.*astype\(np.float32\)"):
        benchmark(mlp_session, (mlp.example_inputs[0].double(),))
    with pytest.raises(FeedError, match="rank 2"):
        benchmark(mlp_session, (torch.ones(16),))
    with pytest.raises(InvalidInputError, match="cannot change"):
        benchmark(mlp_session, mlp.example_inputs, threads=2)


# ---------------------------------------------------------------------------------------------
# sweep()
# ---------------------------------------------------------------------------------------------


def test_sweep_rows_are_consistent(mlp: ModelCase, mlp_onnx: Path, tmp_path: Path) -> None:
    calls: list[tuple[int, int, str]] = []
    configs = [SessionConfig(intra_op_threads=1), SessionConfig(opt_level="disable", intra_op_threads=1)]
    result = sweep(mlp.model, mlp_onnx, batch_sizes=[1, 4], seq_lens=[None], configs=configs, input_factory=mlp.make_inputs,
                   progress=lambda *a: calls.append(a), **QUICK)
    assert isinstance(result, SweepResult) and not result.cancelled and not result.errors
    # Cell by cell: at each shape eager and every config, measured in turns.
    assert [(r.config, r.batch) for r in result.rows] == [
        ("eager", 1), ("CPU/all/t1", 1), ("CPU/disable/t1", 1), ("eager", 4), ("CPU/all/t1", 4), ("CPU/disable/t1", 4)]
    assert [c[:2] for c in calls] == [(i, 6) for i in range(1, 7)] and calls[1][2] == "CPU/all/t1 batch=1"
    for row in result.rows:
        m = result.measurement(row.config, row.batch)
        assert row.p50 == m.p50 and row.p50 <= row.p90 <= row.p95 <= row.p99
        assert row.throughput == pytest.approx(row.batch / row.p50)
        assert row.flops == _mlp_flops(row.batch) and row.gflops == pytest.approx(row.flops / row.p50 / 1e9)
        # at least 6 rounds (runs=3 -> the floor, paired.MIN_CI_ROUNDS) of 4 kept calls (block 5, first dropped)
        assert row.rounds >= 6 and m.runs == row.rounds * 4 and row.stopped in ("tight", "budget", "max_rounds")
        if row.config == "eager":
            assert row.speedup == 1.0 and row.verdict is None and row.speedup_low is None
            continue
        ratio = result.ratios[(row.config, row.batch, None)]
        assert (row.speedup, row.speedup_low, row.speedup_high) == (ratio.value, ratio.low, ratio.high)
        assert row.speedup_low <= row.speedup <= row.speedup_high and ratio.n == row.rounds
        assert row.verdict == ratio.verdict and row.clear == ratio.clear
    assert result.measurement("eager", 1).threads == 1  # eager follows the configs' thread count
    df = result.to_pandas()
    assert len(df) == 6 and {"config", "batch", "seq", "p50", "speedup", "speedup_low", "speedup_high", "verdict",
                             "gflops", "error"} <= set(df.columns)
    back = pd.read_csv(result.to_csv(tmp_path / "sweep.csv"))
    assert list(back["p50"]) == pytest.approx(list(df["p50"]))
    assert repr(result).startswith("SweepResult(6/6 cells") and "CPU/disable/t1" in repr(result)
    assert "95% CI" in repr(result)
    table = result.speedups()
    assert list(table.index) == [1, 4] and list(table.columns) == ["-"]
    assert table.loc[4, "-"] == pytest.approx(max(r.speedup for r in result.rows if r.batch == 4 and r.config != "eager"),
                                              abs=0.01)
    texts = result.speedups(with_ci=True)
    assert texts.shape == (2, 1) and all("x [" in t for t in texts["-"])
    assert result.precision == "float32"
    assert "<table" in result._repr_html_()


def test_of_peak_reads_the_matching_precision(mlp: ModelCase, mlp_onnx: Path) -> None:
    result = sweep(mlp.model, mlp_onnx, batch_sizes=[2], configs=[SessionConfig(intra_op_threads=1)],
                   input_factory=mlp.make_inputs, **QUICK)
    int8 = PeakSource("int8 gemm", "int8", 64, 1, (1e-4,))
    peak = Peak(size=64, dtype="float32", threads=1, raw_times=(1e-3, 2e-3), int8=int8)
    cells = result.of_peak(peak)
    assert list(cells.columns) == ["config", "batch", "seq", "precision", "gflops", "p50 ms", "of peak", "note"]
    assert cells["of peak"].iloc[0] == pytest.approx(cells["gflops"].iloc[0] / peak.best_gflops, abs=0.01)
    assert set(cells.precision) == {"float32"}
    as_int8 = result.of_peak(peak, precision="int8")  # what an int8 graph's sweep does by itself
    assert as_int8["of peak"].iloc[0] == pytest.approx(as_int8["gflops"].iloc[0] / int8.best, abs=0.01)
    timed = sweep(mlp.model, mlp_onnx, batch_sizes=[1], input_factory=mlp.make_inputs, warmup=1, min_time=0.02)
    assert all(r.stopped == "budget" for r in timed.rows)  # min_time: that long per target, no early stop
    tiny = Peak(size=16, dtype="float32", threads=1, raw_times=(1.0,))  # 8 kFLOP/s: every cell is above it
    above = result.of_peak(tiny)
    assert above["of peak"].isna().all() and above["note"].str.startswith("above the measured float32 peak").all()
    assert result.of_peak(tiny, precision="int8")["note"].eq("no int8 peak measured").all()
    with pytest.raises(InvalidInputError, match="peak must be a wb.Peak"):
        result.of_peak(3.0)


def test_sweep_resizes_example_inputs_along_batch_and_seq(torch_export: Callable[..., Path]) -> None:
    bert = zoo.get("bert_like", smoke=True)
    path = torch_export("bert_like")
    result = sweep(bert.model, path, batch_sizes=[1, 2], seq_lens=[4, 8], include_eager=False,
                   spec=bert.spec, example_inputs=bert.example_inputs, **QUICK)
    assert not result.errors and [(r.batch, r.seq) for r in result.rows] == [(1, 4), (1, 8), (2, 4), (2, 8)]
    names = ("input_ids", "attention_mask", "token_type_ids")
    for row in result.rows:
        assert row.speedup is None
        assert row.flops == graph_flops(path, {n: (row.batch, row.seq) for n in names}) > 0
    assert result.rows[3].flops > result.rows[1].flops > result.rows[0].flops


def test_sweep_captures_failing_config_and_shape(mlp: ModelCase, mlp_onnx: Path) -> None:
    def factory(batch: int, seq: int | None) -> tuple[torch.Tensor, ...]:
        if batch == 3:
            return (torch.randn(3, 17),)  # wrong feature size: every target fails to run it
        if batch == 5:
            raise ValueError("no inputs at batch 5")
        return mlp.make_inputs(batch=batch)

    broken = SessionConfig(provider_options={"NopeExecutionProvider": {}})
    result = sweep(mlp.model, mlp_onnx, batch_sizes=[2, 3, 5], seq_lens=[None], configs=[SessionConfig(), broken],
                   input_factory=factory, **QUICK)
    assert not result.cancelled and len(result.rows) == 9
    by_cell = {(r.config, r.batch): r for r in result.rows}
    assert by_cell[("eager", 2)].ok and by_cell[("CPU/all", 2)].ok
    assert by_cell[("CPU/all#2", 2)].error.startswith("session: ProviderError: provider_options names 'Nope")
    assert by_cell[("eager", 3)].error.startswith("run: InvalidInputError: eager failed while being timed")
    assert by_cell[("CPU/all", 3)].error.startswith("run: ")
    assert all(by_cell[(c, 5)].error == "inputs: ValueError: no inputs at batch 5" for c in ("eager", "CPU/all"))
    assert np.isnan(by_cell[("eager", 3)].p50) and by_cell[("eager", 3)].speedup is None
    assert len(result.errors) == 7 and len(result.measurements) == 2
    assert isinstance(result.exceptions[("eager", 5, None)], ValueError)
    assert "ERROR" in repr(result) and "7 failed" in repr(result)
    with pytest.raises(InvalidInputError, match="No measurement for config='eager', batch=3"):
        result.measurement("eager", 3)


def test_sweep_cancel_returns_partial_results(mlp: ModelCase, mlp_onnx: Path) -> None:
    stop = threading.Event()

    def progress(done: int, total: int, label: str) -> None:
        if done == 3:
            stop.set()

    result = sweep(mlp.model, mlp_onnx, batch_sizes=[1, 2], seq_lens=[None],
                   configs=[SessionConfig(), SessionConfig(opt_level="basic")],
                   input_factory=mlp.make_inputs, progress=progress, cancel=stop, **QUICK)
    assert result.cancelled and result.total == 6 and len(result.rows) == 3
    assert [r.config for r in result.rows] == ["eager", "CPU/all", "CPU/basic"] and not result.errors
    assert "3/6 cells, cancelled" in repr(result)
    nothing = sweep(mlp.model, mlp_onnx, batch_sizes=[1], input_factory=mlp.make_inputs, cancel=lambda: True, **FAST)
    assert nothing.cancelled and nothing.rows == []
    checks = [0]

    def fourth_check() -> bool:  # set between the blocks of the first cell: that cell is not kept
        checks[0] += 1
        return checks[0] >= 4

    midway = sweep(mlp.model, mlp_onnx, batch_sizes=[1, 2], input_factory=mlp.make_inputs, cancel=fourth_check, **QUICK)
    assert midway.cancelled and midway.rows == [] and checks[0] == 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"configs": ["CPUExecutionProvider"]}, "configs must hold wb.SessionConfig objects, received str"),
        ({"batch_sizes": []}, "batch_sizes must be a non-empty list of ints >= 1"),
        ({"seq_lens": [0]}, r"seq_lens .* Use \[None\]"),
        ({"input_factory": None}, "pass input_factory=case.make_inputs, or spec= and example_inputs="),
        ({"input_factory": None, "seq_lens": [8], "spec": "SPEC", "example_inputs": "EXAMPLES"},
         r"dynamic input axes are \['batch'\], but the sweep needs 2"),
        ({"cancel": 3}, "cancel must be a threading.Event or a callable"),
        ({"runs": 0}, "runs must be an int >= 1"),
        ({"block": 1}, "block must be an int >= 2"),
        ({"cell_budget_s": 0}, "cell_budget_s must be a number of seconds > 0"),
        ({"rel_ci": -0.1}, "rel_ci must be a number > 0"),
        ({"model": "not a module"}, "Expected a torch.nn.Module"),
    ],
)
def test_sweep_rejects_bad_arguments(mlp: ModelCase, mlp_onnx: Path, kwargs: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"model": mlp.model, "onnx_model": mlp_onnx, "batch_sizes": [1], "seq_lens": [None],
                            "configs": [SessionConfig()], "input_factory": mlp.make_inputs}
    args.update(kwargs)
    args["spec"] = mlp.spec if args.get("spec") == "SPEC" else args.get("spec")
    args["example_inputs"] = mlp.example_inputs if args.get("example_inputs") == "EXAMPLES" else None
    with pytest.raises(InvalidInputError, match=match):
        sweep(**args)
