"""Core calls on worker threads (issue 9 §3): exports serialized with every run of the model, warnings
routed by thread, process-wide values (torch's thread count, logger levels, warning filters) restored."""

from __future__ import annotations

import copy
import logging
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor

import workbench as wb

LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "torch.fx.experimental.symbolic_shapes", "onnxscript")
WAIT_S = 120  # only ever reached when something hangs


def _process_state() -> tuple[Any, ...]:
    return (torch.get_num_threads(), {n: logging.getLogger(n).level for n in LOGGERS}, list(warnings.filters),
            warnings.showwarning, warnings._showwarnmsg)  # type: ignore[attr-defined]


def _run_at_once(jobs: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run every job on its own thread, all released together; the results, or the first errors raised."""
    barrier = threading.Barrier(len(jobs))
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}

    def work(name: str, job: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[name] = job()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors[name] = exc

    threads = [threading.Thread(target=work, args=item, name=item[0]) for item in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, {k: f"{type(e).__name__}: {wb.brief(e)}" for k, e in errors.items()}
    return results


def _other_weights(model: nn.Module) -> nn.Module:
    other = copy.deepcopy(model)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.5)
    return other


@pytest.mark.slow  # ~8 s: three real exports among the eight threads
def test_eight_threads_export_compare_benchmark_summarize_at_once(mlp: wb.ModelCase, tmp_path: Path) -> None:
    model, x = mlp.model, mlp.example_inputs
    ref = wb.export(model, x, tmp_path / "ref.onnx", spec=mlp.spec).out
    ts_spec = mlp.spec.replace(exporter="torchscript", opset=17)
    ref_ts = wb.export(model, x, tmp_path / "ref_ts.onnx", spec=ts_spec).out
    other = _other_weights(model)
    before = _process_state()
    start = time.perf_counter()
    results = _run_at_once({
        "export": lambda: wb.export(model, x, tmp_path / "a.onnx", spec=mlp.spec, use_cache=False),
        "export_other": lambda: wb.export(other, x, tmp_path / "b.onnx", spec=mlp.spec, use_cache=False),
        "compare": lambda: wb.compare(model, ref, mlp.make_inputs(batch=3)),
        "compare_ts": lambda: wb.compare(model, ref_ts, [mlp.make_inputs(batch=b, seed=b) for b in (1, 4)]),
        "export_ts": lambda: wb.export(model, x, tmp_path / "c.onnx", spec=ts_spec, use_cache=False),
        "bench_eager": lambda: wb.benchmark(model, x, warmup=2, runs=20, threads=1),
        "bench_ort": lambda: wb.benchmark(ref, x, warmup=2, runs=20),
        "summarize": lambda: wb.summarize(ref_ts),
    })
    elapsed = time.perf_counter() - start
    assert _process_state() == before
    assert not any(results[name].cached for name in ("export", "export_other", "export_ts"))
    for name, exported in (("export", model), ("export_other", other), ("export_ts", model)):
        assert wb.compare(exported, results[name].out, mlp.make_inputs(batch=3)), name
    assert results["compare"] and results["compare_ts"] and results["compare_ts"].samples == 2
    assert len(results["bench_eager"].raw_times) == 20 and results["bench_eager"].threads == 1
    assert len(results["bench_ort"].raw_times) == 20
    assert [i.name for i in results["summarize"].inputs] == ["x"] and results["summarize"].checker_ok
    print(f"8 threads at once: {elapsed:.1f} s")


def test_two_threads_export_to_the_same_out(mlp: wb.ModelCase, tmp_path: Path) -> None:
    out = tmp_path / "same.onnx"
    models = {"first": mlp.model, "second": _other_weights(mlp.model)}
    results = _run_at_once({name: (lambda m=m: wb.export(m, mlp.example_inputs, out, spec=mlp.spec, use_cache=False))
                            for name, m in models.items()})
    assert all(r.out == out for r in results.values())
    onnx.checker.check_model(onnx.load(str(out)))
    x = mlp.make_inputs(batch=3)
    matches = [name for name, m in models.items() if wb.compare(m, out, x)]
    assert len(matches) == 1  # the file is one of the two exports, whole
    assert wb.export(models[matches[0]], mlp.example_inputs, out, spec=mlp.spec).cached  # and its record fits it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.onnx", "same.onnx.wbexport.json"]


def test_the_cache_record_is_written_under_a_name_of_its_own(mlp: wb.ModelCase, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    busy = tmp_path / "m.onnx.wbexport.json.tmp"  # what another export writing its record holds at this moment
    busy.mkdir()
    result = wb.export(mlp.model, mlp.example_inputs, out, spec=mlp.spec.replace(exporter="torchscript", opset=17))
    assert wb.export(mlp.model, mlp.example_inputs, out, spec=result.spec).cached
    assert busy.is_dir()


class _Paused(nn.Module):
    """Stops inside the exporter's trace until ``resume`` is set, so a test can act while an export is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.exporting, self.resume = threading.Event(), threading.Event()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_tracing() or isinstance(x, FakeTensor):  # inside the exporter's trace
            warnings.warn("raised by the model during its export", UserWarning)
            self.exporting.set()
            self.resume.wait(WAIT_S)
        return self.fc(x)


class _Strict(UserWarning):
    pass


class _Note(UserWarning):
    pass


def _start_export(model: _Paused, out: Path, results: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        try:
            results["export"] = wb.export(model, (torch.randn(2, 4),), out, use_cache=False)
        except BaseException as exc:  # noqa: BLE001
            results["error"] = exc
        finally:
            model.resume.set()

    thread = threading.Thread(target=run)
    thread.start()
    assert model.exporting.wait(WAIT_S), results.get("error")
    return thread


def test_warnings_of_other_threads_are_neither_taken_nor_swallowed(tmp_path: Path, monkeypatch) -> None:
    warnings.simplefilter("error", _Strict)
    shown: list[str] = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *a, **k: shown.append(str(message)))
    filters = list(warnings.filters)
    model, results = _Paused().eval(), {}
    thread = _start_export(model, tmp_path / "p.onnx", results)
    try:
        with pytest.raises(_Strict):  # this thread's "error" filter still applies while the export records
            warnings.warn("must still raise here", _Strict)
        warnings.warn("a note of the main thread", _Note)
    finally:
        model.resume.set()
        thread.join(WAIT_S)
    assert "error" not in results, results.get("error")
    caught = results["export"].warnings
    assert any("raised by the model during its export" in w for w in caught)
    assert not any("main thread" in w or "must still raise" in w for w in caught)
    assert "a note of the main thread" in shown  # shown once the export's output capture closed
    assert warnings.filters == filters


def test_a_model_run_waits_for_the_export_of_that_model(tmp_path: Path) -> None:
    model, results = _Paused().eval(), {}
    x = torch.randn(3, 4)
    expected = model.fc(x).detach().numpy()
    thread = _start_export(model, tmp_path / "p.onnx", results)
    ran: dict[str, Any] = {}

    def run_model() -> None:
        try:
            ran["benchmark"] = wb.benchmark(model, (x,), warmup=0, runs=2)
        except BaseException as exc:  # noqa: BLE001
            ran["error"] = exc

    runner = threading.Thread(target=run_model)
    runner.start()
    runner.join(0.5)
    assert "benchmark" not in ran  # the module's run waits while its weights are fake tensors
    model.resume.set()
    thread.join(WAIT_S)
    runner.join(WAIT_S)
    assert "error" not in results and "error" not in ran, (results.get("error"), ran.get("error"))
    assert len(ran["benchmark"].raw_times) == 2
    assert all(type(p) is nn.Parameter for p in model.parameters())
    np.testing.assert_allclose(model.fc(x).detach().numpy(), expected)


def test_compare_beside_an_export_of_the_same_model(tmp_path: Path) -> None:
    model, results = _Paused().eval(), {}
    model.resume.set()  # no pause: only the first call of the trace signals
    ref = wb.export(model, (torch.randn(2, 4),), tmp_path / "ref.onnx").out
    model.exporting.clear()
    model.resume.clear()
    thread = _start_export(model, tmp_path / "p.onnx", results)
    compared: dict[str, Any] = {}

    def run_compare() -> None:
        try:
            compared["result"] = wb.compare(model, ref, (torch.randn(2, 4),))
        except BaseException as exc:  # noqa: BLE001
            compared["error"] = exc

    runner = threading.Thread(target=run_compare)
    runner.start()
    runner.join(0.5)
    model.resume.set()
    thread.join(WAIT_S)
    runner.join(WAIT_S)
    assert "error" not in compared, wb.brief(compared["error"])
    assert compared["result"], compared["result"]


def test_torch_thread_count_is_restored_when_benchmarks_overlap(monkeypatch) -> None:
    """Where torch's thread pool is process-wide (builds without OpenMP), two overlapping blocks that save and
    restore the count restore it in the wrong order; a fake process-wide count shows it on every build."""
    count = {"value": 2}
    monkeypatch.setattr(torch, "get_num_threads", lambda: count["value"])
    monkeypatch.setattr(torch, "set_num_threads", lambda n: count.__setitem__("value", n))
    first_in, second_in, first_done = threading.Event(), threading.Event(), threading.Event()

    def first() -> Any:
        def call() -> None:
            first_in.set()
            second_in.wait(2)  # the old code let the second block start here, inside the first

        try:
            return wb.benchmark(call, warmup=0, runs=1, threads=1)
        finally:
            first_done.set()

    def second() -> Any:
        def call() -> None:
            second_in.set()
            first_done.wait(2)  # ... and leave after the first, restoring the first block's count

        first_in.wait(WAIT_S)
        return wb.benchmark(call, warmup=0, runs=1, threads=3)

    results = _run_at_once({"first": first, "second": second})
    assert count["value"] == 2
    assert results["first"].threads == 1 and results["second"].threads == 3


def test_logger_levels_survive_overlapping_overrides() -> None:
    from workbench.core.export import _QUIET_LOGS

    logger = logging.getLogger("torch.onnx")
    level = logger.level
    first, second = _QUIET_LOGS.override(logging.ERROR), _QUIET_LOGS.override(logging.ERROR)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)  # not the reverse order of entering, as on two threads
    assert logger.level == logging.ERROR
    second.__exit__(None, None, None)
    assert logger.level == level


def test_torch_lock_is_reentrant_and_refuses_a_deadlocking_upgrade() -> None:
    from workbench.core._locks import TorchLock

    lock = TorchLock()
    with lock.exclusive(), lock.shared(), lock.exclusive():
        assert lock.held() == "exclusive"
    with lock.shared(), lock.exclusive():  # the only reader may take it alone
        assert lock.held() == "exclusive"
    assert lock.held() is None
    both_in = threading.Barrier(2)
    outcome: list[str] = []

    def reader() -> None:
        with lock.shared():
            both_in.wait(WAIT_S)
            try:
                with lock.exclusive():  # the first to ask waits for the other reader to leave
                    outcome.append("upgraded")
            except RuntimeError:  # the second would wait for the first: refused instead of a deadlock
                outcome.append("refused")

    _run_at_once({"one": reader, "two": reader})
    assert sorted(outcome) == ["refused", "upgraded"]
