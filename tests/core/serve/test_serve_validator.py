"""InputValidator: the graph's own signature, every problem listed with expected vs received."""

from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench.core.serve import InputSpec, InputValidator, RequestInvalid


def _validator(**kw) -> InputValidator:
    specs = [InputSpec("ids", "int64", ("batch", "seq")), InputSpec("mask", "int64", ("batch", "seq")),
             InputSpec("pixels", "float32", ("batch", 3))]
    return InputValidator(specs, **kw)


def _good(batch: int = 2, seq: int = 5) -> dict:
    return {"ids": np.ones((batch, seq), np.int64).tolist(), "mask": np.ones((batch, seq), np.int64).tolist(),
            "pixels": np.zeros((batch, 3)).tolist()}


def test_a_good_batch_and_a_single_example():
    v = _validator()
    checked = v.validate(_good())
    assert checked.rows == 2 and not checked.single and checked.feed["pixels"].dtype == np.float32
    one = v.validate({"ids": [1, 2, 3], "mask": [1, 1, 0], "pixels": [0.5, 1, 2]})
    assert one.single and one.rows == 1 and one.feed["ids"].shape == (1, 3)
    assert v.validate(_good(seq=7)).signature != checked.signature  # other shapes batch separately


@pytest.mark.parametrize("change, problem, expected, received", [
    ({"pixels": [[1, 2]] * 2}, "wrong size on axis 1", "3 (float32 [batch, 3])", "[2, 2]"),
    ({"ids": [[1.5] * 5] * 2}, "wrong dtype", "int64 [batch, seq]", "float64 [2, 5]"),
    ({"ids": [["a"] * 5] * 2}, "wrong dtype", "int64", "<U1 [2, 5]"),
    ({"mask": [[1] * 4] * 2}, "'seq' differs between inputs", "seq = 5 as in ids", "int64 [2, 4]"),
    ({"ids": [[1, 2], [3]]}, "not a rectangular array", "int64", "ragged"),
    ({"ids": [[[1] * 5] * 2] * 2}, "wrong rank", "rank 2", "[2, 2, 5]"),
    ({"ids": [[2 ** 70] * 5] * 2}, "wrong dtype", "int64", "object"),
])
def test_each_problem_says_expected_and_received(change, problem, expected, received):
    with pytest.raises(RequestInvalid) as info:
        _validator().validate({**_good(), **change})
    found = [p for p in info.value.problems if p["problem"].startswith(problem)]
    assert found, info.value.problems
    assert expected in found[0]["expected"] and received in found[0]["received"]
    assert isinstance(info.value, wb.FeedError)


def test_missing_unknown_all_listed_and_limits():
    with pytest.raises(RequestInvalid) as info:
        _validator().validate({"ids": [[1]], "extra": 1})
    kinds = sorted(p["problem"] for p in info.value.problems)
    assert kinds == ["missing input", "missing input", "unknown input"]
    limited = _validator(dim_limits={"seq": (2, 4)}, max_rows=3)
    with pytest.raises(RequestInvalid, match=r"out of limits.*expected 2\.\.4"):
        limited.validate(_good(seq=5))
    with pytest.raises(RequestInvalid, match="too many rows.*at most 3"):
        limited.validate(_good(batch=4, seq=3))
    with pytest.raises(wb.InvalidInputError, match="dim_limits"):
        _validator(dim_limits={"seq": (5, 1)})


def test_npz_is_strict_about_dtypes_and_from_model(models):
    v = InputValidator.from_model(models["affine"])
    assert v.batched and [s.name for s in v.inputs] == ["x"] and v.inputs[0].dims == ("batch", 8)
    v.validate({"x": np.zeros((2, 8), np.float64)})  # JSON-like: cast
    with pytest.raises(RequestInvalid, match="wrong dtype"):
        v.validate({"x": np.zeros((2, 8), np.float64)}, strict_dtypes=True)
