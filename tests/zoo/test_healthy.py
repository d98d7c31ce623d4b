"""The healthy zoo: every model runs on its example and on inputs from ``make_inputs``."""

from __future__ import annotations

import pytest
import torch

import workbench as wb
from workbench.zoo import healthy


@pytest.mark.parametrize("name", wb.zoo.names())
def test_zoo_models_run_and_make_inputs(name):
    case = wb.zoo.get(name, smoke=True)
    assert isinstance(case, wb.ModelCase) and case.name == name and case.description
    assert not case.model.training
    assert len(case.example_inputs) == len(case.spec.input_names)
    with torch.inference_mode():
        out = case.model(*case.example_inputs)
    outs = out if isinstance(out, tuple) else (out,)
    assert len(outs) == len(case.spec.output_names)
    other = case.make_inputs(batch=3)
    assert all(t.shape[0] == 3 for t in other)
    assert [t.shape[1:] for t in other] == [t.shape[1:] for t in case.example_inputs]
    assert case.make_inputs() is case.example_inputs
    assert all(torch.equal(a, b) for a, b in zip(case.make_inputs(batch=3), other))  # seeded: repeatable
    with torch.inference_mode():
        case.model(*other)


def test_sequence_models_make_other_lengths():
    for name in ("text_classifier", "bert_like"):
        case = wb.zoo.get(name, smoke=True)
        assert case.example_sizes()[1] is not None
        ids = case.make_inputs(batch=1, seq=7)[0]
        assert ids.shape == (1, 7)
    mask = wb.zoo.get("bert_like", smoke=True).make_inputs(batch=4, seq=10)[1]
    assert mask.dtype == torch.int64 and bool((mask.sum(dim=1) >= 5).all())


def test_full_text_classifier_matches_the_seed():
    case = wb.zoo.get("text_classifier")
    m = case.model
    assert m.embed.num_embeddings == 30000 and m.embed.embedding_dim == 256
    assert len(m.encoder.layers) == 4 and m.encoder.layers[0].self_attn.num_heads == 8
    assert m.classifier.out_features == 10 and case.example_inputs[0].shape == (2, 128)


def test_image_classifier_keeps_channels_static():
    case = wb.zoo.get("image_classifier")
    assert case.example_inputs[0].shape == (2, 3, 224, 224)
    assert 1 not in case.spec.dynamic_axes["pixel_values"]


def test_unknown_name_and_keyword_only_smoke():
    with pytest.raises(wb.InvalidInputError, match="No zoo model named 'resnet'.*text_classifier"):
        wb.zoo.get("resnet")
    with pytest.raises(TypeError):
        wb.zoo.get("mlp", True)  # type: ignore[misc]
    assert set(healthy.FACTORIES) == set(wb.zoo.names())


def test_weight_bound_mlp_is_1024_4096_4096_10():
    case = wb.zoo.get("weight_bound_mlp")
    layers = [(m.in_features, m.out_features) for m in (case.model.fc1, case.model.fc2, case.model.fc3)]
    assert layers == [(1024, 4096), (4096, 4096), (4096, 10)]
    assert sum(p.numel() for p in case.model.parameters()) * 4 > 32 * 2**20  # more weights than the L3 cache
    assert case.make_inputs(batch=1)[0].shape == (1, 1024) and 0 in case.spec.dynamic_axes["x"]
    assert wb.zoo.get("weight_bound_mlp", smoke=True).model.fc2.in_features == 256
