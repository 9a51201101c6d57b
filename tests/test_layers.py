"""Keras' own layer test harness on every keras_gen layer: config round trip, training, and mixed precision."""

import numpy as np
import pytest
from keras.src.testing import TestCase

from keras_gen.layers import (
    AutoregressiveHead,
    CategoricalCode,
    ClassBias,
    ConditionBias,
    DiagonalBiLSTM,
    DiagonalLSTM,
    GatedBlock,
    GatedPixelCNNBackbone,
    MaskedConv2D,
    MaskedResidualBlock,
    PixelCNNBackbone,
    PixelRNNBackbone,
    RowLSTM,
)

FEATURES = (2, 4, 5, 6)  # batch, H, W, channels
LAYERS = {
    "masked_conv_a": (
        MaskedConv2D,
        dict(filters=6, kernel_size=3, mask_type="A", color_channels=3),
        FEATURES,
    ),
    "masked_residual_block": (
        MaskedResidualBlock,
        dict(filters=6, kernel_size=3, color_channels=3),
        FEATURES,
    ),
    "row_lstm": (RowLSTM, dict(units=6, kernel_size=3, color_channels=3), FEATURES),
    "diagonal_lstm": (DiagonalLSTM, dict(units=6, color_channels=3, mirrored=True), FEATURES),
    "diagonal_bilstm": (DiagonalBiLSTM, dict(units=6, color_channels=3), FEATURES),
    "gated_block": (
        GatedBlock,
        dict(filters=6, kernel_size=3, color_channels=3),
        (FEATURES, FEATURES),
    ),
    "categorical_code": (CategoricalCode, dict(categories=3), (2, 5)),
    "pixelcnn_backbone": (
        PixelCNNBackbone,
        dict(filters=6, num_blocks=2, kernel_size=3, color_channels=3),
        (2, 4, 5, 3),
    ),
    "gated_pixelcnn_backbone": (
        GatedPixelCNNBackbone,
        dict(filters=6, num_layers=2, kernel_size=3, color_channels=3),
        (2, 4, 5, 3),
    ),
    "pixelrnn_backbone": (
        PixelRNNBackbone,
        dict(
            kind="diagonal_bilstm", units=6, num_layers=1, color_channels=3, complete_context=True
        ),
        (2, 4, 5, 3),
    ),
    "condition_bias": (ConditionBias, dict(kind="vector", size=3, channels=4), (2, 3)),
    "autoregressive_head": (
        AutoregressiveHead,
        dict(hidden_filters=6, output_channels=12, color_channels=3),
        FEATURES,
    ),
}


class KerasLayerTest(TestCase):
    pass


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_keras_layer_harness_with_mixed_precision(name):
    layer_cls, init_kwargs, input_shape = LAYERS[name]
    # CategoricalCode returns indices, which no dtype policy changes.
    KerasLayerTest().run_layer_test(
        layer_cls,
        init_kwargs,
        input_shape=input_shape,
        run_mixed_precision_check=layer_cls is not CategoricalCode,
    )


def test_class_bias_follows_its_layer_policy():
    layer = ClassBias(3, 4, dtype="mixed_float16")
    output = layer(np.array([0, 2]))
    assert output.shape == (2, 1, 1, 4) and output.dtype == "float16"
    assert layer.embedding.dtype_policy.name == "mixed_float16"


def test_head_stepper_is_the_head_at_one_position():
    head = AutoregressiveHead(hidden_filters=6, output_channels=12, color_channels=3)
    features = np.random.default_rng(0).normal(size=FEATURES).astype(np.float32)
    full = np.asarray(head(features))
    step = head.stepper()
    for row, col in [(0, 0), (2, 3), (3, 4)]:
        np.testing.assert_allclose(
            np.asarray(step(features[:, row, col])), full[:, row, col], rtol=1e-5, atol=1e-6
        )


def test_head_sublayers_follow_its_policy():
    head = AutoregressiveHead(
        hidden_filters=6, output_channels=3, color_channels=3, dtype="mixed_bfloat16"
    )
    assert head.hidden.dtype_policy.name == head.out.dtype_policy.name == "mixed_bfloat16"
