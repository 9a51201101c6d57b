"""Every autoregressive model, at its default widths, works on 32 x 32 RGB images with 256 levels."""

import keras
import numpy as np
import pytest

from keras_gen.conventions import ROUNDED_PIXELS
from keras_gen.models import GatedPixelCNN, PixelCNN, PixelRNN
from tests.helpers import assert_export_parity

RGB = dict(image_shape=(32, 32, 3), num_levels=256)
MODELS = {
    "pixelcnn": lambda: PixelCNN(**RGB, num_blocks=1, seed=0),
    "gated_pixelcnn": lambda: GatedPixelCNN(**RGB, num_layers=2, seed=0),
    "row_lstm": lambda: PixelRNN(**RGB, kind="row_lstm", num_layers=1, seed=0),
    "diagonal_bilstm": lambda: PixelRNN(**RGB, kind="diagonal_bilstm", num_layers=1, seed=0),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_default_widths_build_train_sample_and_export_in_rgb(name, tmp_path):
    model = MODELS[name]()
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    loss = model.train_on_batch(images, return_dict=True)["loss"]
    assert np.isfinite(loss) and loss > 0
    # 255 CDF steps per sub-pixel: a uniform can fall within float rounding of one, and then
    # runtimes draw neighbouring levels (seen on an AVX2 CPU: 1 of 3,072 sub-pixels). Exact
    # equality of discrete samplers is tested on the small models of the other test files.
    samples = assert_export_parity(
        model, str(tmp_path / "export"), images, batch=1, parity=ROUNDED_PIXELS
    )
    assert samples["tflite"].shape == (1, 32, 32, 3)


@pytest.mark.parametrize(
    "cls, option, value, message",
    [
        (PixelCNN, "filters", 64, "multiple of 6"),
        (GatedPixelCNN, "filters", 32, "multiple of 3"),
        (PixelRNN, "units", 32, "multiple of 3"),
        (PixelCNN, "head_filters", -4, "positive whole number"),
    ],
)
def test_explicit_widths_that_do_not_split_into_colour_groups_are_refused(
    cls, option, value, message
):
    with pytest.raises(ValueError, match=message):
        cls(**RGB, **{option: value})


def test_grey_defaults_are_unchanged():
    assert (PixelCNN().filters, GatedPixelCNN().filters, PixelRNN().units) == (64, 64, 32)
