from __future__ import annotations

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.core.compare import OutputDiff
from workbench.core.feeds import build_feed


def test_pass_on_several_shapes(export_zoo, tc_smoke):
    samples = [tc_smoke.make_inputs(batch=b, seq=s, seed=i) for i, (b, s) in enumerate([(1, 16), (4, 8), (2, 7)])]
    result = wb.compare(tc_smoke.model, export_zoo("text_classifier").out, samples)
    assert result and result.samples == 3 and len(result.outputs) == 3
    assert result.input_shapes == [[(1, 16)], [(4, 8)], [(2, 7)]]
    assert 0 < result.max_abs < 1e-4
    assert result.providers == ["CPUExecutionProvider"]
    df = result.to_pandas()
    assert list(df["verdict"]) == ["ok"] * 3 and "PASS" in repr(result) and "PASS" in result._repr_html_()


def test_drifted_weights_fail_and_point_at_the_worst_element(export_zoo, mlp):
    changed = wb.zoo.get("mlp", smoke=True).model
    with torch.no_grad():
        changed.fc2.bias[3] += 0.5
    result = wb.compare(changed, export_zoo("mlp").out, mlp.make_inputs(batch=5))
    assert not result
    out = result.outputs[0]
    assert out.mismatches == 5 and out.total == 20 and out.mismatch_pct == 25.0
    assert out.worst_index[1] == 3
    assert out.max_abs == pytest.approx(0.5, rel=1e-3)
    assert "FAIL" in repr(result) and "worst at" in repr(result)


def test_tolerances():
    expected = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    actual = expected + np.float32(5e-4)
    assert not wb.compare_arrays([expected], [actual], tolerance="fp32")
    assert wb.compare_arrays([expected], [actual], tolerance="fp16")
    assert wb.compare_arrays([expected], [actual], tolerance=(0.0, 1e-3))
    assert not wb.compare_arrays([expected], [actual], tolerance=(0.0, 1e-4))
    with pytest.raises(wb.InvalidInputError, match="Unknown tolerance 'fp8'.*fp32"):
        wb.compare_arrays([expected], [actual], tolerance="fp8")
    with pytest.raises(wb.InvalidInputError, match="received \\(1, 2, 3\\)"):
        wb.compare_arrays([expected], [actual], tolerance=(1, 2, 3))


def test_nan_and_inf_are_reported():
    expected = np.array([1.0, np.nan, np.inf, 4.0])
    same = OutputDiff.from_arrays("y", expected, expected.copy(), 1e-4, 1e-5)
    assert same.ok and same.expected_nonfinite == 2 and same.max_abs == 0
    worse = OutputDiff.from_arrays("y", expected, np.array([np.nan, np.nan, np.inf, 4.0]), 1e-4, 1e-5)
    assert not worse.ok and worse.actual_nonfinite == 3 and worse.max_abs == np.inf
    assert "non-finite values: expected 2, got 3" in worse.describe()


def test_shape_mismatch_is_a_failure_not_a_crash():
    diff = OutputDiff.from_arrays("y", np.zeros((2, 3)), np.zeros((3, 2)), 1e-4, 1e-5)
    assert not diff and "expected shape (2, 3), got (3, 2)" in diff.describe()


def test_feed_is_checked_against_the_graph(export_zoo):
    session = wb.open_session(export_zoo("text_classifier").out)
    good = torch.randint(0, 10, (2, 8))
    with pytest.raises(wb.FeedError, match=r"expects tensor\(int64\).*received float32"):
        build_feed(session, (good.float(),))
    with pytest.raises(wb.FeedError, match=r"expects rank 2 \['batch', 'seq'\], received rank 1"):
        build_feed(session, (good[0],))
    with pytest.raises(wb.FeedError, match=r"unknown \['ids'\], missing \['input_ids'\]"):
        build_feed(session, {"ids": good})
    with pytest.raises(wb.FeedError, match="takes 1 inputs.*received 2"):
        build_feed(session, (good, good))
    assert build_feed(session, {"input_ids": good})["input_ids"].dtype == np.int64


def test_static_dims_are_checked(export_zoo):
    session = wb.open_session(export_zoo("mlp").out)
    with pytest.raises(wb.FeedError, match="static size 16 on axis 1"):
        build_feed(session, (torch.randn(2, 15),))


def test_bad_arguments(export_zoo, mlp):
    path = export_zoo("mlp").out
    with pytest.raises(wb.InvalidInputError, match="Expected a torch.nn.Module"):
        wb.compare("model", path, mlp.example_inputs)
    with pytest.raises(wb.InvalidInputError, match="inputs must be a tensor, a tuple"):
        wb.compare(mlp.model, path, "x")
    with pytest.raises(wb.ModelFileError, match="No ONNX file"):
        wb.compare(mlp.model, path.with_name("nope.onnx"), mlp.example_inputs)
    with pytest.raises(wb.InvalidInputError, match="Unknown tolerance"):
        wb.compare(mlp.model, path, mlp.example_inputs, tolerance="exact")


def test_training_mode_warns(export_zoo):
    model = wb.zoo.get("mlp", smoke=True).model.train()
    with pytest.warns(UserWarning, match="training mode"):
        wb.compare(model, export_zoo("mlp").out, (torch.randn(2, 16),))


def test_smallest_passing_tolerance_rejudges_the_same_arrays():
    expected = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    close = wb.compare_arrays([expected], [expected + np.float32(5e-4)])
    assert not close and close.smallest_passing_tolerance() == "fp16"
    assert close.at("fp16") and close.at("fp16").tolerance == "fp16" and not close.at((0.0, 1e-5))
    assert wb.compare_arrays([expected], [expected]).smallest_passing_tolerance() == "fp32"
    assert wb.compare_arrays([expected], [expected + 1]).smallest_passing_tolerance() is None
    assert close.smallest_passing_tolerance(["int8", "fp16"]) == "int8"
    assert close.smallest_passing_tolerance({"tight": (0.0, 1e-6), "loose": (0.0, 1e-3)}) == "loose"
