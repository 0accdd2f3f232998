"""MNIST MLP [200, 200] Rectifier, batch 128: deepwater vs a hand-written PyTorch loop, side by side.

Both train the same network with the same optimiser (SGD, Nesterov momentum 0.9, H2O's rate
annealing, element-wise gradient clipping) on the same standardised inputs, in one process,
interleaved. Run: `python benchmarks/mlp_vs_torch.py [--epochs 10] [--repeats 2]`.
Optionally adds H2O Deep Learning 3.46 when `h2o` and Java are installed (--h2o).
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from common import alternate, write_result
from handwritten import torch_h2o_sgd
from torch import nn
from torch.nn import functional as F

import deepwater as dw

LEARNING_RATE, ANNEALING, MOMENTUM, CLIP = 0.01, 1e-6, 0.9, 10.0


def standardised(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a hand-written pipeline does: drop constant pixels, scale to mean 0 and variance 1."""
    mean, std = train.mean(axis=0), train.std(axis=0)
    keep = std > 0
    return tuple(np.ascontiguousarray(((x[:, keep] - mean[keep]) / std[keep]).astype(np.float32))
                 for x in (train, test))


def hand_written(train_pixels, y_train, test_pixels, y_test, epochs: int, batch: int, seed: int) -> tuple[float, float]:
    """The loop a PyTorch user would write for the same model; returns (test accuracy, loop seconds)."""
    x_train, x_test = standardised(train_pixels, test_pixels)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x_train.shape[1], 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(),
                          nn.Linear(200, 10))
    loop_seconds = torch_h2o_sgd(model, x_train, y_train, F.cross_entropy, epochs, batch, seed, LEARNING_RATE,
                                 ANNEALING, MOMENTUM, CLIP)
    with torch.no_grad():
        predicted = model(torch.from_numpy(x_test)).argmax(1).numpy()
    return float((predicted == y_test).mean()), loop_seconds


def with_deepwater(train, test, epochs: int, batch: int, seed: int) -> tuple[float, float]:
    """deepwater on the same frames; returns (test accuracy, seconds of its training loop incl. scoring)."""
    model = dw.DeepWaterEstimator(
        hidden=[200, 200], activation="Rectifier", epochs=epochs, mini_batch_size=batch, backend="torch", gpu=False,
        learning_rate=LEARNING_RATE, learning_rate_annealing=ANNEALING, momentum_start=MOMENTUM,
        momentum_stable=MOMENTUM, clip_gradient=CLIP, stopping_rounds=0, score_interval=1e9,
        score_training_samples=1000, seed=seed, quiet_mode=True)
    model.train(x=[c for c in train.columns if c != "label"], y="label", training_frame=train)
    return model.model_performance(test).accuracy(), model.summary()["run_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    train, test = dw.datasets.mnist()
    train["label"] = train["label"].astype("category")
    test["label"] = test["label"].astype("category")
    pixels = [c for c in train.columns if c != "label"]
    train_pixels = train[pixels].to_numpy(dtype=np.float64)
    test_pixels = test[pixels].to_numpy(dtype=np.float64)
    y_train = train["label"].cat.codes.to_numpy().astype(np.int64)
    y_test = test["label"].cat.codes.to_numpy().astype(np.int64)

    runs = alternate({
        "torch_loop": lambda: hand_written(train_pixels, y_train, test_pixels, y_test, args.epochs, args.batch,
                                           args.seed),
        "deepwater": lambda: with_deepwater(train, test, args.epochs, args.batch, args.seed),
    }, args.repeats)
    best = {name: min(t for t, _ in results) for name, results in runs.items()}
    best_loop = {name: min(r[1] for _, r in results) for name, results in runs.items()}
    median = {name: statistics.median(t for t, _ in results) for name, results in runs.items()}
    accuracy = {name: statistics.mean(r[0] for _, r in results) for name, results in runs.items()}
    ratio = best["deepwater"] / best["torch_loop"]
    loop_ratio = best_loop["deepwater"] / best_loop["torch_loop"]
    print(f"{'contender':<12}{'best s':>10}{'best loop s':>13}{'all runs (s)':>30}{'test acc':>10}")
    for name, results in runs.items():
        print(f"{name:<12}{best[name]:>10.2f}{best_loop[name]:>13.2f}{str([round(t, 2) for t, _ in results]):>30}"
              f"{accuracy[name]:>10.4f}")
    print(f"time ratio deepwater / hand-written torch loop: {ratio:.3f} end to end (best runs), "
          f"{median['deepwater'] / median['torch_loop']:.3f} (medians), {loop_ratio:.3f} training loop only "
          "(target <= 1.05)")
    path = write_result("mlp_vs_torch", {
        "settings": vars(args), "torch_threads": torch.get_num_threads(),
        "seconds": {k: [t for t, _ in v] for k, v in runs.items()}, "best_seconds": best,
        "best_loop_seconds": best_loop, "test_accuracy": accuracy, "time_ratio": ratio, "loop_time_ratio": loop_ratio,
        "median_time_ratio": median["deepwater"] / median["torch_loop"],
        "note": "End to end: standardising, training and scoring the test frame on both sides. Loop only: the "
                "hand-written epochs vs deepwater's training loop including its scorings of 1,000 rows.",
    })
    print("saved", path)


if __name__ == "__main__":
    main()
