"""The broken zoo: every case builds a ModelCase that carries what the doctor needs, and each
factory is importable as a CLI target."""

from __future__ import annotations

import importlib

import pytest
import torch

import workbench as wb
from workbench.doctor.codes import CODES
from workbench.zoo import broken


@pytest.mark.parametrize("case", broken.CASES, ids=broken.names())
def test_cases_build_model_cases(case: broken.BrokenCase):
    built = case.build()
    assert isinstance(built, wb.ModelCase) and built.name == case.name
    assert case.code in CODES and case.description and case.category
    assert built.spec is not None and built.example_inputs
    assert getattr(broken, case.name) is case.build  # the CLI target workbench.zoo.broken:NAME
    again = case.build()
    assert all(torch.equal(a, b) for a, b in zip(built.example_inputs, again.example_inputs) if not a.is_meta)


def test_cli_target_form():
    module, _, attr = "workbench.zoo.broken:size_one_batch".partition(":")
    made = getattr(importlib.import_module(module), attr)()
    assert isinstance(made, wb.ModelCase) and made.example_inputs[0].shape == (1, 5)


def test_cases_carry_config_and_names():
    assert broken.get("ort_gelu_approximation").build().config.config_entries
    assert broken.get("misspelled_provider").build().config.providers[0] == "CudaExecutionProvider"
    assert broken.names() == [c.name for c in broken.CASES] and len(set(broken.names())) == len(broken.CASES)
    with pytest.raises(wb.InvalidInputError, match="No broken zoo case named 'nope'"):
        broken.get("nope")
