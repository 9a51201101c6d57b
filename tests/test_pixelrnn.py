import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_gen.layers import DiagonalBiLSTM, skew, unskew
from keras_gen.layers.recurrent import diagonal_order, unrolled_loops
from keras_gen.models import PixelRNN
from tests.helpers import (
    assert_causal,
    assert_export_parity,
    assert_keras_round_trip,
    subpixel_jacobian,
)

KINDS = [
    "row_lstm",
    "diagonal_bilstm",
    "complete_context",
]  # diagonal_bilstm: the paper's; complete_context: ours


MIXTURE = dict(likelihood="logistic_mixture", num_mixtures=3)
LIKELIHOODS = [{}, MIXTURE]  # the default head, and the mixture head


def tiny(kind, image_shape=(5, 5, 1), num_levels=2, **options):
    if kind == "complete_context":  # the default Diagonal BiLSTM
        kind = "diagonal_bilstm"
    elif kind == "diagonal_bilstm":  # the paper's
        options = dict(options, complete_context=False)
    return PixelRNN(
        image_shape=image_shape,
        num_levels=num_levels,
        kind=kind,
        units=6,
        head_filters=6,
        seed=0,
        **options,
    )


def index(row, col, channel=0, width=5, channels=1):
    return (row * width + col) * channels + channel


def test_skew_and_unskew_invert_each_other():
    images = tf.random.uniform((2, 4, 6, 3))
    skewed = skew(images)
    assert skewed.shape == (2, 4, 9, 3)
    for row in range(4):
        np.testing.assert_array_equal(skewed[:, row, row : row + 6], images[:, row])
        assert np.all(skewed[:, row, :row] == 0) and np.all(skewed[:, row, row + 6 :] == 0)
    np.testing.assert_array_equal(unskew(skewed, 6), images)


@pytest.mark.parametrize("mirrored", [False, True])
def test_diagonal_order_reads_the_skewed_image_column_by_column(mirrored):
    height, width = 3, 5
    raster = np.arange(1, height * width + 1).reshape(1, height, width, 1)
    if mirrored:
        raster = raster[:, :, ::-1]
    skewed = skew(tf.constant(raster)).numpy()[0, :, :, 0]
    columns = skewed.T[skewed.T > 0] - 1  # column by column, top to bottom, padding dropped
    order, spans = diagonal_order(height, width, mirrored)
    np.testing.assert_array_equal(order, columns)
    assert [last - first + 1 for first, last in spans] == list(np.count_nonzero(skewed, axis=0))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("channels, num_levels", [(1, 2), (3, 4)])
@pytest.mark.parametrize("head", LIKELIHOODS)
def test_logits_depend_only_on_earlier_subpixels(kind, channels, num_levels, head):
    model = tiny(kind, (5, 5, channels), num_levels, **head)
    assert_causal(model, model.image_shape)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("channels, num_levels", [(1, 2), (3, 4)])
def test_receptive_field_covers_every_earlier_subpixel_on_a_small_image(kind, channels, num_levels):
    model = tiny(kind, (4, 4, channels), num_levels)
    jacobian = subpixel_jacobian(model.features, model.image_shape, num_levels)
    assert jacobian[np.triu(np.ones_like(jacobian, dtype=bool))].max() == 0.0
    assert np.all(jacobian[np.tril(np.ones_like(jacobian, dtype=bool), -1)] > 0.0)


def test_row_lstm_sees_a_triangle_and_diagonal_bilstm_sees_the_whole_row_above():
    shape = (3, 12, 1)
    row_lstm = subpixel_jacobian(tiny("row_lstm", shape).features, shape)
    diagonal = subpixel_jacobian(tiny("diagonal_bilstm", shape).features, shape)
    below = index(1, 0, width=12)
    # Row LSTM: the 7x7 mask-A conv reaches 3 columns, the state-to-state conv 1 column per row.
    assert np.all(row_lstm[below, [index(0, c, width=12) for c in range(4)]] > 0)
    assert np.all(row_lstm[below, [index(0, c, width=12) for c in range(6, 12)]] == 0)
    # Diagonal BiLSTM: the right-to-left pass carries the row above, up to its second-last pixel.
    assert np.all(diagonal[below, [index(0, c, width=12) for c in range(11)]] > 0)


@pytest.mark.parametrize("channels, num_levels", [(1, 2), (3, 4)])
def test_complete_context_sees_every_earlier_subpixel_where_the_paper_version_does_not(
    channels, num_levels
):
    shape = (5, 11, channels)
    complete = tiny("complete_context", shape, num_levels)
    jacobian = subpixel_jacobian(complete.features, shape, num_levels)
    assert jacobian[np.triu(np.ones_like(jacobian, dtype=bool))].max() == 0.0
    assert np.all(jacobian[np.tril(np.ones_like(jacobian, dtype=bool), -1)] > 0.0)
    assert_causal(complete, shape)
    paper = subpixel_jacobian(
        tiny("diagonal_bilstm", shape, num_levels).features, shape, num_levels
    )
    # The paper's version: pixel (1, 0) misses the last sub-pixel of the row above.
    last_of_row_above = index(0, 10, channels - 1, width=11, channels=channels)
    assert paper[index(1, 0, width=11, channels=channels), last_of_row_above] == 0


@pytest.mark.parametrize("kind", ["row_lstm", "diagonal_bilstm"])
@pytest.mark.parametrize("image_shape", [(2, 2, 1), (1, 2, 3)])
@pytest.mark.parametrize("head", LIKELIHOODS)
def test_probabilities_of_all_images_sum_to_one(kind, image_shape, head):
    model = PixelRNN(
        image_shape=image_shape,
        kind=kind,
        units=image_shape[-1] * 2,
        head_filters=6,
        seed=0,
        **head,
    )
    subpixels = int(np.prod(image_shape))
    every_image = np.array(list(itertools.product((0, 1), repeat=subpixels)), np.uint8).reshape(
        (-1,) + image_shape
    )
    np.testing.assert_allclose(np.exp(model.log_prob(every_image).numpy()).sum(), 1.0, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("channels, num_levels", [(1, 2), (3, 4)])
@pytest.mark.parametrize("head", LIKELIHOODS)
def test_carried_state_sampler_equals_full_recompute(kind, channels, num_levels, head):
    model = tiny(kind, (5, 5, channels), num_levels, num_layers=2, **head)
    noise = model.make_noise(3, seed=4)
    plain = model.sample_levels(noise, method="plain").numpy()
    np.testing.assert_array_equal(model.sample_levels(noise, method="fast").numpy(), plain)
    known_mask = np.zeros((3, 5, 5, channels), bool)
    known_mask[:, :2] = True
    known_mask[:, 2, :3, 0] = True
    known = np.full((3, 5, 5, channels), num_levels - 1, np.uint8)
    completed = model.sample_levels(
        noise, known=known, known_mask=known_mask, method="fast"
    ).numpy()
    assert np.all(completed[known_mask] == num_levels - 1)
    np.testing.assert_array_equal(
        completed,
        model.sample_levels(noise, known=known, known_mask=known_mask, method="plain").numpy(),
    )


@pytest.mark.parametrize("kind", KINDS)
def test_fit_and_keras_round_trip(kind, tmp_path):
    model = tiny(kind)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    images = np.tile(np.eye(5, dtype=np.uint8)[None, :, :, None], (8, 1, 1, 1))
    assert_keras_round_trip(model, images, str(tmp_path / "pixelrnn.keras"))
    history = model.fit(images, epochs=10, batch_size=8, verbose=0).history
    assert history["nll"][-1] < history["nll"][0]


@pytest.mark.parametrize(
    "kind, channels, num_levels",
    [("row_lstm", 1, 2), ("diagonal_bilstm", 1, 2), ("row_lstm", 3, 4), ("complete_context", 3, 4)],
)
@pytest.mark.parametrize("head", LIKELIHOODS)
def test_export_parity(kind, channels, num_levels, head, tmp_path):
    model = tiny(kind, (4, 4, channels), num_levels, **head)
    images = np.random.default_rng(0).integers(0, num_levels, (3, 4, 4, channels)).astype(np.uint8)
    assert_export_parity(model, str(tmp_path / "export"), images)


def test_bad_options_and_input():
    with pytest.raises(ValueError, match="kind must be one of"):
        PixelRNN(kind="gru")
    with pytest.raises(ValueError, match="multiple of 3"):
        PixelRNN(image_shape=(4, 4, 3), units=8)
    from keras_gen.validation import InputError

    with pytest.raises(InputError, match=r"\(batch, 5, 5, 1\)"):
        tiny("row_lstm").log_prob(np.zeros((1, 4, 4, 1), np.uint8))


@pytest.mark.parametrize("shape", [(2, 5, 7, 6), (2, 7, 4, 6), (1, 1, 3, 6)])
def test_diagonal_graph_loop_equals_the_unrolled_loop_with_gradients(shape):
    layer = DiagonalBiLSTM(6, color_channels=3)
    features = tf.constant(np.random.default_rng(0).normal(size=shape).astype(np.float32))

    def outputs_and_gradients():
        with tf.GradientTape() as tape:
            tape.watch(features)
            outputs = layer(features)
            loss = tf.reduce_sum(outputs * tf.sin(outputs))
        return [outputs] + tape.gradient(loss, [features] + layer.trainable_weights)

    graph_loop = tf.function(outputs_and_gradients)()
    with unrolled_loops():
        unrolled = tf.function(outputs_and_gradients)()
    for a, b in zip(graph_loop, unrolled):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
