"""Networks as layers: a backbone with a condition, inside a user's own Keras model."""

import zipfile

import h5py
import keras
import numpy as np
import pytest

from keras_gen.layers import (
    AutoregressiveHead,
    ConditionBias,
    GatedBlock,
    GatedPixelCNNBackbone,
    MaskedResidualBlock,
    PixelCNNBackbone,
    PixelRNNBackbone,
)
from keras_gen.models import PixelCNN
from tests.helpers import subpixel_jacobian

SHAPE = (5, 6, 1)
CONDITIONS = {  # kind: (backbone options, a batch of 1 condition)
    "labels": (dict(num_classes=3), np.array([2])),
    "vector": (dict(condition_kind="vector", condition_size=4), np.ones((1, 4), np.float32)),
    "spatial": (
        dict(condition_kind="spatial", condition_size=2),
        np.ones((1, 5, 6, 2), np.float32),
    ),
}


def randomized(layer, seed=0):
    """`layer` with every weight drawn afresh (condition biases start at zero)."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in layer.get_weights()])
    return layer


BACKBONES = {
    "pixelcnn": (PixelCNNBackbone, dict(filters=4, num_blocks=2)),
    "gated_pixelcnn": (GatedPixelCNNBackbone, dict(filters=4, num_layers=2)),
    "row_lstm": (PixelRNNBackbone, dict(kind="row_lstm", units=4, num_layers=1)),
    "diagonal_bilstm": (
        PixelRNNBackbone,
        dict(kind="diagonal_bilstm", units=4, num_layers=1, complete_context=True),
    ),
}


@pytest.mark.parametrize("network", sorted(BACKBONES))
@pytest.mark.parametrize("kind", sorted(CONDITIONS))
def test_a_conditioned_backbone_is_causal_and_reads_its_condition(network, kind):
    options, condition = CONDITIONS[kind]
    backbone_class, sizes = BACKBONES[network]
    backbone = backbone_class(**sizes, **options)
    backbone.build((None,) + SHAPE)
    randomized(backbone)
    jacobian = subpixel_jacobian(
        lambda images: backbone(images, np.repeat(condition, images.shape[0], axis=0)), SHAPE
    )
    assert jacobian[np.triu(np.ones_like(jacobian, dtype=bool))].max() == 0.0
    assert jacobian[np.tril(np.ones_like(jacobian, dtype=bool), -1)].max() > 0.0
    images = np.zeros((1,) + SHAPE, np.float32)
    other = condition * 0 + (1 if kind == "labels" else -1)
    assert (
        np.abs(np.asarray(backbone(images, condition)) - np.asarray(backbone(images, other))).max()
        > 1e-3
    )


def test_a_backbone_and_head_make_a_users_functional_decoder(tmp_path):
    images, z = keras.Input(SHAPE), keras.Input((4,))
    features = PixelCNNBackbone(filters=4, num_blocks=2, condition_kind="vector", condition_size=4)(
        images, z
    )
    logits = AutoregressiveHead(hidden_filters=4, output_channels=1)(features)
    decoder = keras.Model([images, z], logits)
    decoder.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = (rng.random((8,) + SHAPE) < 0.3).astype(np.float32)
    latents = rng.normal(size=(8, 4)).astype(np.float32)
    decoder.fit([2 * x - 1, latents], x, epochs=2, batch_size=4, verbose=0)
    decoder.save(tmp_path / "decoder.keras")
    loaded = keras.saving.load_model(tmp_path / "decoder.keras", safe_mode=True)
    np.testing.assert_allclose(
        loaded([2 * x - 1, latents]), decoder([2 * x - 1, latents]), atol=1e-6
    )
    backbone = loaded.layers[2]
    assert isinstance(backbone, PixelCNNBackbone) and backbone.condition_kind == "vector"
    assert backbone.blocks[0].condition_bias.transform.kernel.shape == (4, 2)


def test_pixelcnn_keeps_its_weights_where_files_written_before_the_backbone_have_them(tmp_path):
    model = PixelCNN(image_shape=SHAPE, filters=4, num_blocks=1, head_filters=4, num_classes=3)
    model.save(tmp_path / "model.keras")
    with (
        zipfile.ZipFile(tmp_path / "model.keras") as archive,
        archive.open("model.weights.h5") as f,
    ):
        with h5py.File(f) as weights:
            groups = set()
            weights.visit(groups.add)
    for path in (
        "input_conv/vars",
        "blocks/masked_residual_block/class_bias/embedding/vars",
        "head_out/vars",
    ):
        assert path in groups, sorted(groups)
    assert not any(
        group.startswith(("network/", "output_head/"))
        and group.endswith("vars")
        and not group.endswith(("network/vars", "output_head/vars"))
        for group in groups
    )


def test_a_block_takes_labels_or_another_condition_not_both():
    with pytest.raises(ValueError, match="num_classes or condition_kind, not both"):
        MaskedResidualBlock(4, num_classes=3, condition_kind="vector", condition_size=2)
    with pytest.raises(ValueError, match="num_classes or condition_kind, not both"):
        GatedBlock(4, num_classes=3, condition_kind="spatial", condition_size=2)
    with pytest.raises(ValueError, match="num_classes or condition_kind, not both"):
        PixelRNNBackbone(num_classes=3, condition_kind="vector", condition_size=2)
    with pytest.raises(ValueError, match="condition kind must be one of"):
        ConditionBias("text", 4, 2)


@pytest.mark.parametrize("kind", ["row_lstm", "diagonal_bilstm"])
def test_the_pixelrnn_backbone_is_causal(kind):
    backbone = PixelRNNBackbone(
        kind, units=4, num_layers=1, complete_context=kind == "diagonal_bilstm"
    )
    backbone.build((None,) + SHAPE)
    randomized(backbone)
    jacobian = subpixel_jacobian(backbone, SHAPE)
    assert jacobian[np.triu(np.ones_like(jacobian, dtype=bool))].max() == 0.0
    assert jacobian[np.tril(np.ones_like(jacobian, dtype=bool), -1)].max() > 0.0
