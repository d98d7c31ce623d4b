"""The checks behind the panels' validated traits."""

from __future__ import annotations

from pathlib import Path

import pytest
import traitlets

from workbench.errors import InvalidInputError
from workbench.widgets._traits import (
    OnnxFile,
    checked_size,
    checked_sizes,
    checked_tolerance,
    format_sizes,
    parse_sizes,
)


class _Holder(traitlets.HasTraits):
    onnx_model = OnnxFile("")


def test_onnx_file_takes_text_and_paths() -> None:
    holder = _Holder()
    holder.onnx_model = Path("a/b.onnx")
    assert holder.onnx_model == str(Path("a/b.onnx"))
    with pytest.raises(traitlets.TraitError, match="ONNX file"):
        holder.onnx_model = 3


def test_tolerance_and_sizes() -> None:
    assert checked_tolerance("fp16") == "fp16" and checked_tolerance([0.1, 0.2]) == (0.1, 0.2)
    with pytest.raises(traitlets.TraitError, match="Unknown tolerance 'fp64'"):
        checked_tolerance("fp64")
    assert checked_size(None, "seq") is None and checked_size(3, "seq") == 3
    for bad in (0, -1, True, 2.5):
        with pytest.raises(traitlets.TraitError, match="seq must be an int >= 1"):
            checked_size(bad, "seq")  # type: ignore[arg-type]


def test_grids_from_text_or_sequences() -> None:
    assert parse_sizes(" 8 ;2, 8", "batch sizes") == [8, 2] and format_sizes([8, 2]) == "8, 2"
    assert parse_sizes("-", "seq lengths", allow_none=True) == [None] and format_sizes([None]) == "none"
    with pytest.raises(InvalidInputError, match="'none' for a model without a sequence axis"):
        parse_sizes("x", "seq lengths", allow_none=True)
    with pytest.raises(InvalidInputError):
        parse_sizes("none", "batch sizes")
    with pytest.raises(traitlets.TraitError, match="batch sizes"):
        checked_sizes([1, None], "batch sizes")
