"""Quick start: LeNet on the MNIST digits as PNG files, on the default backend and device.

Run it with `make quickstart` (installs first) or `python examples/quickstart.py [data_dir]`.
It writes the 70,000 digits as PNG files (once), trains LeNet from their paths, and prints
the scoring history, the test confusion matrix and the test accuracy.
"""
from __future__ import annotations

import os
import sys

import pandas as pd

import deepwater as dw


def main(data_dir: str, epochs: float = 2, n_train: int | None = None, n_test: int | None = None) -> float:
    """Train LeNet on MNIST PNGs under `data_dir` (first n_train / n_test images when given); return test accuracy."""
    train, test = dw.datasets.mnist_images(data_dir, n_train=n_train, n_test=n_test)  # frames of (uri, label)
    print(f"{len(train):,} training and {len(test):,} test images under {data_dir}")
    model = dw.DeepWaterEstimator(
        network="lenet", problem_type="image", image_shape=[28, 28], channels=1,
        epochs=epochs, mini_batch_size=64, learning_rate=0.02, momentum_start=0.5, momentum_stable=0.9,
        score_validation_samples=2000, seed=1234, quiet_mode=not sys.stderr.isatty(),
    )
    model.train(x=["uri"], y="label", training_frame=train, validation_frame=test)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        history = model.scoring_history()
        print(history[["duration", "epochs", "samples", "training_speed", "training_logloss",
                       "training_classification_error", "validation_classification_error"]])
        performance = model.model_performance(test)
        print("Test confusion matrix (rows: actual digit, columns: predicted):")
        print(performance.confusion_matrix())
    summary = model.summary()
    print(f"Trained on backend {summary['backend']} ({summary['device']}), {summary['parameters']:,} parameters, "
          f"{summary['run_seconds']} s")
    print(f"Test accuracy: {performance.accuracy():.4f}")
    return performance.accuracy()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.expanduser("~"), ".cache", "deepwater", "mnist"))
