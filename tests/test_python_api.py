"""Training and evaluation from Python, without the command line."""

import json
import math

from keras_gen import data, evaluation, training

TINY = {"filters": 4, "num_blocks": 1, "head_filters": 4}


def test_train_resume_and_evaluate_from_python(mock_dataset, tmp_path):
    source = data.Source("binarized_mnist", batch_size=8, take=16, manual_dir=mock_dataset)
    run = tmp_path / "run"
    model = training.train(
        "pixelcnn", source, str(run), epochs=1, options=TINY, validation_split="none", verbose=0
    )
    assert int(model.optimizer.iterations) == 2 and (run / "model.keras").is_file()
    model = training.train(
        "pixelcnn",
        source,
        str(run),
        epochs=2,
        resume=True,
        learning_rate=1e-4,
        validation_split="none",
        verbose=0,
    )
    assert (
        int(model.optimizer.iterations) == 4
        and abs(float(model.optimizer.learning_rate) - 1e-4) < 1e-9
    )
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 2
    assert not (run / "backup").exists()
    figures = evaluation.evaluate(str(run / "model.keras"), source, verbose=0)
    # tfds' mock data is not binary, so only the figures' presence and finiteness are checked here.
    assert {"nll", "bits_per_dim", "seconds"} <= set(figures)
    assert all(math.isfinite(figures[name]) for name in ("nll", "bits_per_dim"))
