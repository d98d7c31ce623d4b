"""The public zoo: transformers architectures from tiny configs, built lazily, reachable as ``public/<name>``."""

from __future__ import annotations

import os
import sys

import pytest
import torch

import workbench as wb
from workbench.errors import InvalidInputError, NonTensorOutputError
from workbench.zoo import public

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_names_split_and_unknown():
    assert set(public.names()) == {c.name for c in public.failing()} | {c.name for c in public.healthy()}
    assert all(c.code for c in public.failing()) and not any(c.code for c in public.healthy())
    with pytest.raises(InvalidInputError, match="No public zoo case named 'nope'"):
        public.get("nope")


def test_missing_transformers_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers now raises ImportError
    with pytest.raises(InvalidInputError, match=r"pip install 'onnx-workbench\[test\]'"):
        public.get("bert").build()


def test_zoo_accessor_builds_a_model_case():
    pytest.importorskip("transformers")
    case = wb.zoo.get("public/vit")
    assert case.name == "public/vit" and case.spec is not None and case.spec.dynamic_axes
    with torch.no_grad():
        out = case.model(*case.example_inputs)
    assert out.last_hidden_state.shape[0] == 2


def test_cache_output_gives_a_precise_error(tmp_path):
    pytest.importorskip("transformers")
    case = wb.zoo.get("public/gpt2")
    with pytest.raises(NonTensorOutputError, match="DynamicCache.*use_cache") as info:
        wb.export(case.model, case.example_inputs, tmp_path / "g.onnx", spec=case.spec)
    assert info.value.is_cache and info.value.path.startswith("output.")


def test_building_leaves_the_callers_random_state_alone():
    pytest.importorskip("transformers")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = public.get("bert").build()
    assert torch.equal(torch.rand(3), expected)  # seed 0 was for the build only
    second = public.get("bert").build()  # and the build is still seeded: the same weights
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values()))
