"""MNIST test accuracy of the same MLP and LeNet on every backend, with the same settings and seed.

The networks are defined once, so each backend should reach the same accuracy (within noise).
Run: `python benchmarks/accuracy_by_backend.py [--backends torch tensorflow mxnet] [--epochs 10 2]`.
"""
from __future__ import annotations

import argparse
import os

from common import timed, write_result

import deepwater as dw


def mlp_accuracy(backend: str, epochs: float) -> tuple[float, float]:
    train, test = dw.datasets.mnist()
    for frame in (train, test):
        frame["label"] = frame["label"].astype("category")
    model = dw.DeepWaterEstimator(
        backend=backend, hidden=[200, 200], activation="Rectifier", epochs=epochs, mini_batch_size=128,
        learning_rate=0.01, learning_rate_annealing=1e-6, stopping_rounds=0, score_interval=1e9,
        score_training_samples=1000, gpu=False, seed=42, quiet_mode=True)
    seconds, _ = timed(lambda: model.train(y="label", training_frame=train))
    return model.model_performance(test).accuracy(), seconds


def lenet_accuracy(backend: str, epochs: float, data_dir: str) -> tuple[float, float]:
    train, test = dw.datasets.mnist_images(data_dir)
    model = dw.DeepWaterEstimator(
        backend=backend, network="lenet", problem_type="image", image_shape=[28, 28], channels=1, epochs=epochs,
        mini_batch_size=64, learning_rate=0.02, momentum_start=0.5, momentum_stable=0.9, stopping_rounds=0,
        score_interval=1e9, score_training_samples=1000, overwrite_with_best_model=False, gpu=False, seed=1234,
        quiet_mode=True)
    seconds, _ = timed(lambda: model.train(x=["uri"], y="label", training_frame=train))
    return model.model_performance(test).accuracy(), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["torch", "tensorflow", "mxnet"])
    parser.add_argument("--epochs", type=float, nargs=2, default=[10, 2], metavar=("MLP", "LENET"))
    parser.add_argument("--data-dir", default=os.path.expanduser("~/.cache/deepwater/mnist"))
    args = parser.parse_args()
    results = {}
    for backend in args.backends:
        mlp, mlp_s = mlp_accuracy(backend, args.epochs[0])
        lenet, lenet_s = lenet_accuracy(backend, args.epochs[1], args.data_dir)
        results[backend] = {"mlp_accuracy": mlp, "mlp_seconds": mlp_s, "lenet_accuracy": lenet,
                            "lenet_seconds": lenet_s}
        print(f"{backend:<11} MLP {mlp:.4f} ({mlp_s:.0f} s)   LeNet {lenet:.4f} ({lenet_s:.0f} s)", flush=True)
    for key in ("mlp_accuracy", "lenet_accuracy"):
        values = [r[key] for r in results.values()]
        print(f"{key}: spread {100 * (max(values) - min(values)):.2f} points (target <= 0.5)")
    print("saved", write_result("accuracy_by_backend", {"settings": vars(args), "results": results}))


if __name__ == "__main__":
    main()
