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
from torch import nn
from torch.nn import functional as F

import deepwater as dw
from deepwater.design import DatasetEncoder

LEARNING_RATE, ANNEALING, MOMENTUM, CLIP = 0.01, 1e-6, 0.9, 10.0


def hand_written(x_train, y_train, x_test, y_test, epochs: int, batch: int, seed: int) -> float:
    """The loop a PyTorch user would write for the same model; returns test accuracy."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(x_train.shape[1], 200), nn.ReLU(), nn.Linear(200, 200), nn.ReLU(),
                          nn.Linear(200, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, nesterov=True)
    rng = np.random.default_rng(seed)
    seen = 0
    for _ in range(epochs):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            xb, yb = torch.from_numpy(x_train[rows]), torch.from_numpy(y_train[rows])
            optimizer.param_groups[0]["lr"] = LEARNING_RATE / (1 + ANNEALING * seen)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            torch.nn.utils.clip_grad_value_(model.parameters(), CLIP)
            optimizer.step()
            loss.item()
            seen += len(rows)
    with torch.no_grad():
        predicted = model(torch.from_numpy(x_test)).argmax(1).numpy()
    return float((predicted == y_test).mean())


def with_deepwater(train, test, epochs: int, batch: int, seed: int) -> float:
    model = dw.DeepWaterEstimator(
        hidden=[200, 200], activation="Rectifier", epochs=epochs, mini_batch_size=batch, backend="torch", gpu=False,
        learning_rate=LEARNING_RATE, learning_rate_annealing=ANNEALING, momentum_start=MOMENTUM,
        momentum_stable=MOMENTUM, clip_gradient=CLIP, stopping_rounds=0, score_interval=1e9,
        score_training_samples=1000, seed=seed, quiet_mode=True)
    model.train(x=[c for c in train.columns if c != "label"], y="label", training_frame=train)
    return model.model_performance(test).accuracy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    train, test = dw.datasets.mnist()
    train["label"] = train["label"].astype("category")
    test["label"] = test["label"].astype("category")
    pixels = [c for c in train.columns if c != "label"]
    encoder = DatasetEncoder.fit(train, pixels, standardize=True, ignore_const_cols=True)
    x_train, x_test = encoder.transform(train), encoder.transform(test)
    y_train = train["label"].cat.codes.to_numpy().astype(np.int64)
    y_test = test["label"].cat.codes.to_numpy().astype(np.int64)

    runs = alternate({
        "torch_loop": lambda: hand_written(x_train, y_train, x_test, y_test, args.epochs, args.batch, args.seed),
        "deepwater": lambda: with_deepwater(train, test, args.epochs, args.batch, args.seed),
    }, args.repeats)
    best = {name: min(t for t, _ in results) for name, results in runs.items()}
    accuracy = {name: statistics.mean(a for _, a in results) for name, results in runs.items()}
    ratio = best["deepwater"] / best["torch_loop"]
    print(f"{'contender':<12}{'best s':>10}{'all runs (s)':>30}{'test acc':>10}")
    for name, results in runs.items():
        print(f"{name:<12}{best[name]:>10.2f}{str([round(t, 2) for t, _ in results]):>30}{accuracy[name]:>10.4f}")
    print(f"time ratio deepwater / hand-written torch loop: {ratio:.3f} (target <= 1.05)")
    path = write_result("mlp_vs_torch", {
        "settings": vars(args), "torch_threads": torch.get_num_threads(),
        "seconds": {k: [t for t, _ in v] for k, v in runs.items()}, "best_seconds": best,
        "test_accuracy": accuracy, "time_ratio": ratio,
        "note": "deepwater's time is the whole train() call: encoding, training, final scoring of 1000 rows.",
    })
    print("saved", path)


if __name__ == "__main__":
    main()
