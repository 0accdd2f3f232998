"""LeNet on all 60,000 MNIST training images as PNG URIs: test accuracy and images/s per epoch.

Epoch 1 decodes every PNG (on the prefetching thread pool); later epochs read the decoded-image
cache, so they should run at the network's own speed. Run:
`python benchmarks/lenet_images.py [--epochs 6] [--data-dir ~/.cache/deepwater/mnist]`.
"""
from __future__ import annotations

import argparse
import os

from common import timed, write_result

import deepwater as dw


def epoch_speeds(history) -> list[float]:
    """Images/s of each epoch, from the cumulative samples and training speed of each scoring row."""
    seconds = (history["samples"] / history["training_speed"]).tolist()
    samples = history["samples"].tolist()
    speeds, last_s, last_n = [], 0.0, 0
    for s, n in zip(seconds, samples):
        speeds.append((n - last_n) / max(s - last_s, 1e-9))
        last_s, last_n = s, n
    return speeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--data-dir", default=os.path.expanduser("~/.cache/deepwater/mnist"))
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    write_seconds, (train, test) = timed(lambda: dw.datasets.mnist_images(args.data_dir))
    model = dw.DeepWaterEstimator(
        network="lenet", problem_type="image", image_shape=[28, 28], channels=1, epochs=args.epochs,
        mini_batch_size=64, learning_rate=0.02, momentum_start=0.5, momentum_stable=0.9,
        train_samples_per_iteration=len(train), score_training_samples=1000, score_validation_samples=1000,
        stopping_rounds=0, seed=args.seed, gpu=True, quiet_mode=True)
    train_seconds, _ = timed(lambda: model.train(x=["uri"], y="label", training_frame=train, validation_frame=test))
    accuracy = model.model_performance(test).accuracy()
    speeds = epoch_speeds(model.scoring_history())
    summary = model.summary()
    for epoch, speed in enumerate(speeds, start=1):
        print(f"epoch {epoch}: {speed:,.0f} images/s")
    print(f"epoch 2 / epoch 1 speed: {speeds[1] / speeds[0]:.2f}" if len(speeds) > 1 else "")
    print(f"test accuracy {accuracy:.4f} (target >= 0.99) on {summary['backend']}:{summary['device']}, "
          f"train() took {train_seconds:.1f} s")
    path = write_result("lenet_images", {
        "settings": vars(args), "backend": summary["backend"], "device": summary["device"],
        "png_write_seconds": write_seconds, "train_seconds": train_seconds, "images_per_second": speeds,
        "test_accuracy": accuracy})
    print("saved", path)


if __name__ == "__main__":
    main()
