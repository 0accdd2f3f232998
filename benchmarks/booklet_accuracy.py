"""MNIST test accuracy of the Deep Water booklet's MLP and LeNet with deepwater's defaults, on each installed backend.

Only what the booklet sets is set: the MLP is hidden=[200, 200] for 10 epochs on the 784 pixel columns; LeNet is
network='lenet' for 2 epochs on 28x28 grey PNG files (channels=1, image_shape=[28, 28]). Everything else
(mini_batch_size, learning_rate, momentum, early stopping, scoring, gpu) is the parameter table's default, so this
measures the defaults. --train-rows/--test-rows take the first rows of each split (the JSON says how many were used).
Run: `python benchmarks/booklet_accuracy.py [--backends torch tensorflow mxnet] [--train-rows N] [--test-rows N]`.
"""
from __future__ import annotations

import argparse
import os
from typing import Any

import pandas as pd
from common import timed, write_result

import deepwater as dw
from deepwater.runtime.registry import installed_backends

MLP = {"hidden": [200, 200], "epochs": 10}
LENET = {"network": "lenet", "epochs": 2, "channels": 1, "image_shape": [28, 28]}


def run(backend: str, booklet: dict[str, Any], x: list[str] | None, train: pd.DataFrame, test: pd.DataFrame,
        seed: int) -> dict[str, Any]:
    """Train the booklet's model with the defaults on `train`; its test accuracy and how the run went."""
    model = dw.DeepWaterEstimator(backend=backend, seed=seed, quiet_mode=True, **booklet)
    seconds, _ = timed(lambda: model.train(x=x, y="label", training_frame=train))
    summary = model.summary()
    return {"accuracy": model.model_performance(test).accuracy(), "train_seconds": round(seconds, 1),
            "device": summary["device"], "epochs_trained": summary["epochs"], "stop_reason": summary["stop_reason"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=None, help="default: every installed backend")
    parser.add_argument("--train-rows", type=int, default=None, help="default: all 60,000")
    parser.add_argument("--test-rows", type=int, default=None, help="default: all 10,000")
    parser.add_argument("--data-dir", default=os.path.expanduser("~/.cache/deepwater/mnist"))
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    backends = args.backends or installed_backends()

    pixels_train, pixels_test = (frame.head(rows) for frame, rows in
                                 zip(dw.datasets.mnist(), (args.train_rows, args.test_rows)))
    for frame in (pixels_train, pixels_test):
        frame["label"] = frame["label"].astype("category")
    images_train, images_test = dw.datasets.mnist_images(args.data_dir, n_train=args.train_rows,
                                                         n_test=args.test_rows)
    results: dict[str, dict[str, Any]] = {}
    for backend in backends:
        results[backend] = {
            "mlp": run(backend, MLP, None, pixels_train, pixels_test, args.seed),
            "lenet": run(backend, LENET, ["uri"], images_train, images_test, args.seed),
        }
        for network, result in results[backend].items():
            print(f"{backend:<11} {network:<6} accuracy {result['accuracy']:.4f}  {result['train_seconds']:>6.1f} s  "
                  f"{result['epochs_trained']:.2f} epochs ({result['stop_reason']})", flush=True)
    data = {"train_rows": len(pixels_train), "test_rows": len(pixels_test),
            "subset": len(pixels_train) < 60000 or len(pixels_test) < 10000,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
    booklet = {"mlp": MLP, "lenet": LENET, "seed": args.seed, "everything else": "the parameter table's defaults"}
    print("saved", write_result("booklet_accuracy", {"booklet_settings": booklet, "data": data, "results": results}))


if __name__ == "__main__":
    main()
