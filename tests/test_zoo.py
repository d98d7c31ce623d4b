from __future__ import annotations

import pytest
import torch

import workbench as wb


@pytest.mark.parametrize("name", wb.zoo.names())
def test_zoo_models_run_and_make_inputs(name):
    zm = wb.zoo.get(name, smoke=True)
    assert not zm.model.training
    assert len(zm.example_inputs) == len(zm.spec.input_names)
    with torch.inference_mode():
        out = zm.model(*zm.example_inputs)
    outs = out if isinstance(out, tuple) else (out,)
    assert len(outs) == len(zm.spec.output_names)
    other = zm.make_inputs(batch=3)
    assert all(t.shape[0] == 3 for t in other)
    with torch.inference_mode():
        zm.model(*other)


def test_full_text_classifier_matches_the_seed():
    zm = wb.zoo.get("text_classifier")
    m = zm.model
    assert m.embed.num_embeddings == 30000 and m.embed.embedding_dim == 256
    assert len(m.encoder.layers) == 4 and m.encoder.layers[0].self_attn.num_heads == 8
    assert m.classifier.out_features == 10 and zm.example_inputs[0].shape == (2, 128)


def test_image_classifier_keeps_channels_static():
    zm = wb.zoo.get("image_classifier")
    assert zm.example_inputs[0].shape == (2, 3, 224, 224)
    assert 1 not in zm.spec.dynamic_axes["pixel_values"]


def test_unknown_name():
    with pytest.raises(wb.InvalidInputError, match="No zoo model named 'resnet'.*text_classifier"):
        wb.zoo.get("resnet")
