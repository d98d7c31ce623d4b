"""ModelCase: the one model record and the one input maker; as_case."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import workbench as wb
from workbench.core.case import as_case


class TwoInputs(nn.Module):
    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return ids.float() * mask


SPEC = wb.ExportSpec(dynamic_axes={"ids": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"}})


def _case(**kwargs: object) -> wb.ModelCase:
    example = (torch.randint(0, 50, (2, 8)), torch.ones(2, 8, dtype=torch.int64))
    return wb.ModelCase("two", TwoInputs().eval(), example, **kwargs)  # type: ignore[arg-type]


def test_make_inputs_resizes_the_example_along_the_spec_axes():
    case = _case(spec=SPEC)
    assert case.symbols == ["batch", "seq"] and case.input_names == ("ids", "mask")
    assert case.example_sizes() == (2, 8)
    assert case.make_inputs() is case.example_inputs
    ids, mask = case.make_inputs(batch=3, seq=5, seed=1)
    assert ids.shape == mask.shape == (3, 5) and ids.dtype == torch.int64
    assert 0 <= int(ids.min()) and int(ids.max()) < 50 and bool((mask == 1).all())
    assert case.make_inputs(batch=4)[0].shape == (4, 8)  # seq left at the example's
    assert torch.equal(case.make_inputs(3, 5, seed=1)[0], ids)  # same seed, same values


def test_make_inputs_uses_the_factory_with_the_example_sizes_filled_in():
    calls: list[dict[str, object]] = []

    def factory(**kwargs: object) -> tuple[torch.Tensor, ...]:
        calls.append(kwargs)
        b, s = int(kwargs["batch"]), int(kwargs["seq"])  # type: ignore[arg-type]
        return (torch.zeros(b, s, dtype=torch.int64), torch.ones(b, s, dtype=torch.int64))

    case = _case(spec=SPEC, input_factory=factory)
    assert case.make_inputs(batch=5)[0].shape == (5, 8)
    assert calls == [{"batch": 5, "seq": 8, "seed": 0}]


def test_without_dynamic_axes_the_example_is_returned():
    case = _case()
    assert case.symbols == [] and case.example_sizes() == (None, None)
    assert case.make_inputs(batch=7) == case.example_inputs


def test_zoo_models_are_cases():
    case = wb.zoo.get("text_classifier", smoke=True)
    assert isinstance(case, wb.ModelCase)
    assert case.make_inputs(batch=3, seq=5)[0].shape == (3, 5)


def test_as_case_and_validation():
    model = TwoInputs().eval()
    example = (torch.zeros(1, 2, dtype=torch.int64), torch.ones(1, 2))
    case = as_case((model, example, SPEC))
    assert case.name == "twoinputs" and case.spec is SPEC and case.model is model
    assert as_case(case) is case and as_case(case, name="other").name == "other"
    with pytest.raises(wb.InvalidInputError, match="Expected a wb.ModelCase or a tuple"):
        as_case("mlp")
    with pytest.raises(wb.InvalidInputError, match="Expected a torch.nn.Module"):
        wb.ModelCase("x", "model", example)  # type: ignore[arg-type]
    with pytest.raises(wb.InvalidInputError, match="Unknown tolerance"):
        _case(tolerance="fp8")
    with pytest.raises(wb.InvalidInputError, match="input_factory must be callable"):
        _case(input_factory=3)
    assert "ModelCase('two', TwoInputs" in repr(_case(spec=SPEC))
