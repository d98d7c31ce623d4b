"""``wb.tune`` end to end on smoke models: structure, the gate, pruning, budget, cancel, save, no-gain verdict.

Timings on the shared CI cores are noise: no test asserts a speed. The no-gain test hands the tuner an ONNX
file that computes the model's output plus zero times a lot of wasted matrix products (hundreds of times
eager's work), so every candidate is slower than eager by a margin no noise closes.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import workbench as wb
from workbench.core._format import esc
from workbench.core.tune import Reference, ShapeTiming

STATUSES = {"chosen", "passed", "rejected", "pruned", "failed"}


def _broken_copy(source: Path, out: Path) -> Path:
    """The same graph with every float weight scaled by 3: runs fine, wrong answers."""
    model = onnx.load(str(source))
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size > 16:
            init.CopyFrom(numpy_helper.from_array(arr * 3.0, init.name))
    onnx.save(model, str(out))
    return out


@pytest.fixture(scope="module")
def tc_tuned(tmp_path_factory, export_zoo, tc_smoke):
    """One tune of the smoke text classifier (seq 16, batch 1 and 2), with a broken and an unloadable candidate."""
    folder = tmp_path_factory.mktemp("tune-tc")
    source = export_zoo("text_classifier", "torchscript").out  # the rewrite's export follows the spec: fast
    case = replace(tc_smoke, spec=tc_smoke.spec.replace(exporter="torchscript", opset=17))
    broken = _broken_copy(export_zoo("text_classifier").out, folder / "broken.onnx")  # runs at every batch
    garbage = folder / "garbage.onnx"
    garbage.write_bytes(b"not an onnx file")
    extra = [wb.Candidate("broken weights", broken, wb.SessionConfig(intra_op_threads=1)),
             wb.Candidate("garbage file", garbage, wb.SessionConfig())]
    events: list[tuple[str, str]] = []
    seen: list[wb.CandidateResult] = []
    result = wb.tune(case, source, batch_sizes=[1, 2], seq_lens=[16], budget_s=40, threads=1,
                     references=("torch int8",),
                     progress=lambda s, m: events.append((s, m)), on_candidate=seen.append, candidates=extra,
                     work_dir=folder / "work", out=folder / "chosen.onnx")
    return result, events, seen, folder


@pytest.mark.slow
def test_tune_result_structure(tc_tuned):
    result, events, seen, folder = tc_tuned
    assert isinstance(result, wb.TuneResult) and result.grid == [(1, 16), (2, 16)] and result.tolerance == "int8"
    assert not result.cancelled and result.threads >= 1
    names = [c.name for c in result.candidates]
    assert len(names) == len(set(names)) and {c.status for c in result.candidates} <= STATUSES
    assert {"fp32 · all · t1", "fp32 fused · all · t1"} <= set(names) and result.threads == 1
    fused = next(c for c in result.candidates if "fused" in c.name and c.candidate.precision == "fp32")
    assert fused.candidate.recipe["fused"].startswith("Attention 2")  # the rewrite made attention fuse
    if not any("stage 'int8' skipped" in n for n in result.notes):  # a very loaded machine may spend the budget
        assert any(c.candidate.precision == "int8" and c.passed for c in result.candidates)
    for c in result.candidates:
        assert c.passed == (c.status in ("chosen", "passed", "pruned"))
        if c.passed:
            assert c.max_abs_error is not None and c.max_abs_error < 0.1 and c.top1_agreement is not None
            assert all(isinstance(t, ShapeTiming) and t.p50_ms > 0 and t.p95_ms >= t.p50_ms for t in c.timings)
    assert [r.name for r in result.references] == ["eager", "torch int8"]
    assert all(isinstance(r, Reference) for r in result.references)
    assert {s for s, _ in events} >= {"prepare", "graph", "final", "done"}
    assert {r.name for r in seen} == set(names)
    assert result.verdict and result.verdict in repr(result)


@pytest.mark.slow
def test_broken_candidates_are_kept_rejected_and_never_chosen(tc_tuned):
    result = tc_tuned[0]
    broken, garbage = result.candidate("broken weights"), result.candidate("garbage file")
    assert broken.status == "rejected" and "accuracy gate failed at int8" in broken.error
    assert broken.max_abs_error > 0.05 and not broken.passed and not broken.timings
    assert garbage.status == "failed" and "could not run" in garbage.error
    assert result.chosen is not broken and result.chosen is not garbage
    assert all(c is None or c.passed for c in result.chosen_per_shape.values())


@pytest.mark.slow
def test_search_prunes_and_the_choice_follows_the_rules(tc_tuned):
    result = tc_tuned[0]
    pruned = [c for c in result.candidates if c.status == "pruned"]
    assert pruned or any("stage 'int8' skipped" in n for n in result.notes)
    assert all(c.note and c.note.startswith(("pruned after", "not among")) for c in pruned)
    assert bool(result) == (result.chosen is not None)
    if result.chosen is not None:  # chosen only when clearly faster somewhere and slower nowhere
        chosen = result.chosen
        assert chosen.status == "chosen" and chosen.passed and chosen.candidate.shapes is None
        assert all(t.speedup.value >= 1 and t.speedup.verdict != "slower" for t in chosen.timings)
        assert any(t.speedup.verdict == "faster" for t in chosen.timings)
        assert result.config == chosen.candidate.config and result.onnx_model == tc_tuned[3] / "chosen.onnx"
        assert result.onnx_model.read_bytes() == chosen.candidate.onnx_model.read_bytes()
        assert result.speedup() is not None and result.speedup("eager", 1, 16) is chosen.timing((1, 16)).speedup
        assert result.verdict.startswith(f"Use '{chosen.name}'")
    else:
        assert "keep PyTorch" in result.verdict
    front = result.pareto()
    assert front and all(c.passed for c in front)
    assert [c.latency_ms for c in front] == sorted(c.latency_ms for c in front)


@pytest.mark.slow
def test_save_reads_back_as_a_session_config(tc_tuned, tmp_path):
    result = tc_tuned[0]
    path = result.save(tmp_path / "tuned.json")
    data = json.loads(path.read_text())
    assert {"onnx_model", "config", "verdict", "candidates", "references", "grid"} <= set(data)
    if result.chosen is not None:
        assert wb.SessionConfig.from_json(path) == result.config
        assert data["onnx_model"] == str(result.onnx_model)
    else:
        with pytest.raises(wb.InvalidInputError, match="holds no chosen config"):
            wb.SessionConfig.from_json(path)
    frame = result.to_pandas()
    assert {"name", "status", "batch", "seq", "p50_ms", "speedup", "low", "high", "max_abs_error"} <= set(frame.columns)
    assert set(frame["status"]) <= STATUSES | {"reference"}
    html = result._repr_html_()
    assert esc(result.verdict) in html and esc(result.candidates[0].name) in html
    with pytest.raises(wb.InvalidInputError, match="should end in .json"):
        result.save(tmp_path / "tuned.txt")


def _padded(source: Path, out: Path, copies: int = 30, width: int = 256) -> Path:
    """``source``'s graph whose output also gets 0 * sum(x @ A @ B_i for i < copies): same answer, far slower."""
    model = onnx.load(str(source))
    graph = model.graph
    x, y = graph.input[0].name, graph.output[0].name
    rng = np.random.default_rng(0)
    features = graph.input[0].type.tensor_type.shape.dim[1].dim_value
    graph.initializer.extend([numpy_helper.from_array(rng.standard_normal((features, width)).astype(np.float32) * 0.1, "pad_a"),
                              numpy_helper.from_array(np.zeros((1,), np.float32), "pad_zero")])
    nodes = [helper.make_node("MatMul", [x, "pad_a"], ["pad_h"])]
    total = None
    for i in range(copies):
        graph.initializer.append(numpy_helper.from_array(
            rng.standard_normal((width, width)).astype(np.float32) * 0.01, f"pad_b{i}"))
        nodes.append(helper.make_node("MatMul", ["pad_h", f"pad_b{i}"], [f"pad_m{i}"]))
        if total is not None:
            nodes.append(helper.make_node("Add", [total, f"pad_m{i}"], [f"pad_s{i}"]))
        total = f"pad_m{i}" if total is None else f"pad_s{i}"
    nodes += [helper.make_node("ReduceMean", [total], ["pad_r"], keepdims=1),
              helper.make_node("Mul", ["pad_r", "pad_zero"], ["pad_w"])]
    for node in graph.node:  # the original output now feeds the Add that makes the padded output
        node.output[:] = [("pad_y" if o == y else o) for o in node.output]
    nodes.append(helper.make_node("Add", ["pad_y", "pad_w"], [y]))
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return out


@pytest.mark.slow
def test_no_gain_model_keeps_pytorch(export_zoo, mlp, tmp_path):
    slow = _padded(export_zoo("mlp").out, tmp_path / "padded.onnx")
    result = wb.tune(mlp, slow, batch_sizes=[2], budget_s=12, threads=1, references=(), work_dir=tmp_path / "work")
    timed = [c for c in result.candidates if c.timings]
    assert timed, result
    assert result.chosen is None and not result and result.config is None and result.onnx_model is None
    assert result.verdict.startswith("ONNX Runtime is not faster than PyTorch eager here") and "keep PyTorch" in \
        result.verdict
    assert result.speedup() is None and all(v is None for v in result.chosen_per_shape.values())
    assert "KEEP PYTORCH" in result._repr_html_()


def test_budget_stops_the_search(mlp, export_zoo, tmp_path):
    result = wb.tune(mlp, export_zoo("mlp").out, batch_sizes=[2], budget_s=1.5, threads=1, references=(),
                     work_dir=tmp_path)
    assert result.stopped == "budget" and any("skipped: the budget was spent" in n for n in result.notes)
    assert result.elapsed_s < 60
    # However small the budget, the export itself is gated and timed: a short tune still answers whether
    # ONNX Runtime beats eager here, with that one candidate and nothing the later stages would build.
    assert [r.candidate.stage for r in result.candidates] == ["graph"]
    assert result.candidates[0].candidate.recipe.get("graph") == "as exported"
    assert (result.chosen is not None) == ("keep PyTorch" not in result.verdict)


def test_cancel_returns_what_was_found(mlp, export_zoo, tmp_path):
    stop = threading.Event()
    result = wb.tune(mlp, export_zoo("mlp").out, batch_sizes=[2], budget_s=30, threads=1, references=(),
                     cancel=stop, on_candidate=lambda r: stop.set(), work_dir=tmp_path)
    assert result.cancelled and result.stopped == "cancelled" and result.chosen is None
    assert result.candidates and result.verdict.startswith("Cancelled after")
    assert result.elapsed_s < 30


@pytest.mark.parametrize("kwargs,match", [
    ({"batch_sizes": []}, "batch_sizes must be a non-empty list"),
    ({"batch_sizes": [1], "seq_lens": [0]}, "seq_lens must be a non-empty list"),
    ({"batch_sizes": [1], "budget_s": 0}, "budget_s must be a number of seconds > 0"),
    ({"batch_sizes": [1], "tolerance": "int4"}, "Unknown tolerance 'int4'"),
    ({"batch_sizes": [1], "references": ("tvm",)}, "Unknown references"),
    ({"batch_sizes": [1], "threads": 0}, "threads must be an int >= 1"),
    ({"batch_sizes": [1], "out": "x.txt"}, "out should end in .onnx"),
    ({"batch_sizes": [1], "candidates": ["x.onnx"]}, "candidates must hold wb.Candidate"),
    ({"batch_sizes": [1], "candidates": [wb.Candidate("c", "missing.onnx", wb.SessionConfig())]}, "No ONNX file"),
])
def test_bad_arguments(mlp, export_zoo, kwargs, match):
    with pytest.raises(wb.InvalidInputError, match=match):
        wb.tune(mlp, export_zoo("mlp").out, **kwargs)


def test_a_bare_module_needs_a_way_to_make_inputs(mlp, export_zoo):
    with pytest.raises(wb.InvalidInputError, match="needs a way to make inputs"):
        wb.tune(mlp.model, export_zoo("mlp").out, batch_sizes=[1])
    with pytest.raises(wb.InvalidInputError, match="pass spec="):
        wb.tune(mlp.model, export_zoo("mlp").out, batch_sizes=[1], example_inputs=mlp.example_inputs)


def test_a_callers_candidate_is_checked_before_the_tune(export_zoo):
    """A str path becomes a Path (the search calls .stat() on it); shapes outside the grid are refused."""
    from workbench.core.tune import _check_candidate

    source = str(export_zoo("mlp").out)
    grid = [(1, None), (2, None)]
    checked = _check_candidate(wb.Candidate("c", source, wb.SessionConfig()), grid)
    assert checked.onnx_model == Path(source) and isinstance(checked.onnx_model, Path)
    static = _check_candidate(wb.Candidate("s", source, wb.SessionConfig(), shapes=[[2, None]]), grid)
    assert static.shapes == ((2, None),) and static.covers((2, None))
    for shapes in (((4, None),), (), ("x",)):
        with pytest.raises(wb.InvalidInputError, match="shapes must be None .* pairs of the grid"):
            _check_candidate(wb.Candidate("s", source, wb.SessionConfig(), shapes=shapes), grid)
