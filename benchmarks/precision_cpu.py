"""float32 vs bfloat16 (and float32 with compile=True) on the CPU: MNIST MLP and LeNet, per backend, side by side.

Each variant trains the same network from the same seed on the same MNIST rows (LeNet on the pixel columns
as 28x28 images, booklet section 10); runs alternate (float32, bfloat16, compiled, float32, ...). Speed is the
images/s of the epochs after the first (which pays for tracing and compiling); each variant's ratio to the
float32 run of the same repeat is taken and the median of those ratios reported, with test accuracy.
MXNet trains in float32 only (precision='bfloat16' is a ParameterError there), so it is not measured.

Run: `python benchmarks/precision_cpu.py [--backends torch tensorflow] [--rows 10000] [--epochs 3] [--repeats 3]`.
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
from common import write_result
from lenet_images import epoch_speeds

import deepwater as dw

VARIANTS = {"float32": {"precision": "float32"}, "bfloat16": {"precision": "bfloat16"},
            "float32+compile": {"precision": "float32", "compile": True}}
NETWORKS = {"mlp": {"hidden": [200, 200]},
            "lenet": {"network": "lenet", "image_shape": [28, 28], "channels": 1}}


def run(backend: str, network: str, variant: str, train, test, epochs: int) -> tuple[float, float]:
    """(images/s of the epochs after the first, test accuracy) of one training."""
    model = dw.DeepWaterEstimator(
        backend=backend, epochs=epochs, mini_batch_size=64, learning_rate=0.01, stopping_rounds=0,
        train_samples_per_iteration=len(train), score_training_samples=500, overwrite_with_best_model=False,
        gpu=False, seed=1, quiet_mode=True, **NETWORKS[network], **VARIANTS[variant])
    model.train(y="label", training_frame=train)
    return float(np.mean(epoch_speeds(model.scoring_history())[1:])), model.model_performance(test).accuracy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["torch", "tensorflow"])
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--test-rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is not timed")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    train, test = dw.datasets.mnist()
    train, test = train.iloc[:args.rows].copy(), test.iloc[:args.test_rows].copy()
    for frame in (train, test):
        frame["label"] = frame["label"].astype("category")
    results = []
    for network in args.networks:
        for backend in args.backends:
            speeds: dict[str, list[float]] = {v: [] for v in args.variants}
            accuracy: dict[str, list[float]] = {v: [] for v in args.variants}
            for _ in range(args.repeats):
                for variant in args.variants:
                    speed, acc = run(backend, network, variant, train, test, args.epochs)
                    speeds[variant].append(speed)
                    accuracy[variant].append(acc)
            ratios = {v: statistics.median(s / f for s, f in zip(speeds[v], speeds["float32"]))
                      for v in args.variants}
            results.append({"network": network, "backend": backend, "images_per_s": speeds, "test_accuracy": accuracy,
                            "median_ratio_to_float32": ratios})
            print(f"{network:<6}{backend:<11}" + "   ".join(
                f"{v} {statistics.median(speeds[v]):7.0f} img/s x{ratios[v]:.2f} acc {statistics.mean(accuracy[v]):.4f}"
                for v in args.variants), flush=True)
    print("saved", write_result("precision_cpu", {"settings": vars(args), "results": results}))


if __name__ == "__main__":
    main()
