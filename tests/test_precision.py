"""--mixed-precision auto: bfloat16 only where the hardware computes it natively."""

import warnings

import pytest

from keras_gen import cli, precision
from keras_gen.models import PixelCNN


@pytest.fixture
def cpu(monkeypatch):
    """Sets the CPU flags and GPUs that keras_gen.precision sees."""

    def set_machine(flags, gpus=()):
        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
        monkeypatch.setattr(precision, "_gpu_compute_capabilities", lambda: list(gpus))
        precision.warn_if_bfloat16_is_slow.cache_clear()

    yield set_machine
    precision.warn_if_bfloat16_is_slow.cache_clear()


@pytest.mark.parametrize(
    "flags, gpus, policy, why",
    [
        ({"avx512f"}, (), None, "neither avx512_bf16 nor AMX"),
        ({"avx512f", "avx512_bf16"}, (), "mixed_bfloat16", "the CPU has avx512_bf16"),
        ({"amx_bf16"}, (), "mixed_bfloat16", "amx_bf16"),
        ({"avx512_bf16"}, [(7, 5)], None, "compute capability 7.5, below 8.0"),
        (set(), [(8, 6)], "mixed_bfloat16", "compute capability 8.6"),
    ],
)
def test_auto_picks_bfloat16_only_where_it_is_native(cpu, flags, gpus, policy, why):
    cpu(flags, gpus)
    chosen, line = precision.resolve("auto")
    assert (
        chosen == policy
        and why in line
        and line.startswith(f"precision: {policy or 'float32'} (auto: ")
    )
    assert (
        precision.resolve("bfloat16")[0] == "mixed_bfloat16" and precision.resolve(None)[0] is None
    )


@pytest.mark.parametrize(
    "name, options, policy",
    [
        ("vae", {"num_levels": 256}, None),  # the logistic by default
        ("vae", {"num_levels": 2}, "mixed_bfloat16"),  # Bernoulli
        ("gated_pixelcnn", {"num_levels": 256, "likelihood": "logistic_mixture"}, None),
        ("gated_pixelcnn", {"num_levels": 256}, "mixed_bfloat16"),  # the 256-way softmax
        ("pixelvae", {"num_levels": 256}, "mixed_bfloat16"),
        ("dcgan", {"num_levels": 256}, "mixed_bfloat16"),  # no likelihood
    ],
)
def test_auto_keeps_float32_for_likelihoods_that_train_worse_in_bfloat16(
    cpu, name, options, policy
):
    from keras_gen import models

    cpu({"amx_bf16"})
    reason = models.get(name).float32_reason(options)
    chosen, line = precision.resolve("auto", reason)
    assert chosen == policy
    if policy is None:
        assert line == f"precision: float32 (auto: {reason})" and "bfloat16" in reason
        asked, line = precision.resolve("bfloat16", reason)
        assert asked == "mixed_bfloat16" and line.endswith(f"(asked for; {reason})")


def test_bfloat16_training_warns_once_where_it_is_emulated(cpu, binary_images):
    cpu({"avx512f"})
    model = PixelCNN(
        image_shape=(28, 28, 1), filters=4, num_blocks=1, head_filters=4, dtype="mixed_bfloat16"
    )
    model.compile_for_training()
    with pytest.warns(RuntimeWarning, match="slower than float32 here.*2.9x"):
        model.fit(binary_images, batch_size=8, epochs=1, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(binary_images, batch_size=8, epochs=1, verbose=0)  # once per process
    cpu({"avx512_bf16"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(binary_images, batch_size=8, epochs=1, verbose=0)


def test_train_prints_its_decision(cpu, mock_dataset, tmp_path, capsys):
    cpu({"avx512f"})
    assert (
        cli.main(
            [
                "train",
                "pixelcnn",
                "--dataset",
                "binarized_mnist",
                "--epochs",
                "1",
                "--batch-size",
                "16",
                "--validation-split",
                "none",
                "--manual-dir",
                mock_dataset,
                "--mixed-precision",
                "--set",
                "filters=4",
                "--set",
                "num_blocks=1",
                "--set",
                "head_filters=4",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    assert (
        "precision: float32 (auto: this CPU has neither avx512_bf16 nor AMX"
        in capsys.readouterr().out
    )
    from keras_gen import runtime

    assert runtime.load_keras(str(tmp_path / "run" / "model.keras")).dtype_policy.name == "float32"
