"""MNIST anomaly detection: an autoencoder trained on the digits 0-8 only, scored on the whole test set.

For each installed backend, the same network (784 -> hidden -> 784, Rectifier, SGD with Nesterov momentum) and
seed: the AUC of the reconstruction error (Reconstruction.MSE) for telling the 9s from the other digits. Then the
time per epoch of deepwater (torch backend) against a hand-written torch autoencoder of the same shape, optimiser
and standardised inputs, interleaved in one process. The training rows are subsampled (--rows, the first rows of
the 0-8 digits of the 60,000 training images) to keep the run short; the test set is all 10,000 images.
Run: `python benchmarks/autoencoder_mnist.py [--rows 20000] [--epochs 5] [--repeats 2]`.
"""
from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from common import alternate, write_result
from handwritten import torch_h2o_sgd
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.nn import functional as F

import deepwater as dw
from deepwater.runtime.registry import installed_backends

LEARNING_RATE, ANNEALING, MOMENTUM, CLIP = 0.01, 1e-6, 0.9, 10.0


def settings(args: argparse.Namespace) -> dict:
    """The autoencoder's parameters, the same on every backend (scored once, at the end)."""
    return dict(hidden=args.hidden, activation="Rectifier", epochs=args.epochs, mini_batch_size=args.batch,
                learning_rate=LEARNING_RATE, learning_rate_annealing=ANNEALING, momentum_start=MOMENTUM,
                momentum_stable=MOMENTUM, clip_gradient=CLIP, ignore_const_cols=False, stopping_rounds=0,
                score_interval=1e9, score_training_samples=1000, seed=args.seed, gpu=False, quiet_mode=True)


def with_deepwater(backend: str, train, test, is_nine: np.ndarray, args) -> tuple[float, float]:
    """(AUC of the test reconstruction error for 9 vs the rest, seconds per epoch of the training loop)."""
    model = dw.H2OAutoEncoderEstimator(backend=backend, **settings(args))
    model.train(x=[c for c in train.columns if c != "label"], training_frame=train)
    errors = model.anomaly(test)["Reconstruction.MSE"].to_numpy()
    return float(roc_auc_score(is_nine, errors)), model.summary()["run_seconds"] / args.epochs


def hand_written(x_train: np.ndarray, x_test: np.ndarray, is_nine: np.ndarray, args) -> tuple[float, float]:
    """The torch loop a user would write for the same autoencoder; (AUC, seconds per epoch)."""
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0
    train, test = ((x - mean) / std for x in (x_train, x_test))
    train, test = np.ascontiguousarray(train, dtype=np.float32), np.ascontiguousarray(test, dtype=np.float32)
    torch.manual_seed(args.seed)
    layers, width = [], train.shape[1]
    for units in args.hidden:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    model = nn.Sequential(*layers, nn.Linear(width, train.shape[1]))
    seconds = torch_h2o_sgd(model, train, train, F.mse_loss, args.epochs, args.batch, args.seed, LEARNING_RATE,
                            ANNEALING, MOMENTUM, CLIP)
    with torch.no_grad():
        x = torch.from_numpy(test)
        errors = ((model(x) - x) ** 2).mean(dim=1).numpy()
    return float(roc_auc_score(is_nine, errors)), seconds / args.epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000, help="training rows of the digits 0-8")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", type=int, nargs="+", default=[128, 32, 128])
    parser.add_argument("--repeats", type=int, default=2, help="timing runs of each side, interleaved")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    train, test = dw.datasets.mnist()
    train = train[train["label"] != 9].head(args.rows).reset_index(drop=True)
    pixels = [c for c in train.columns if c != "label"]
    is_nine = (test["label"] == 9).to_numpy()

    backends = installed_backends()
    auc = {}
    for backend in backends:
        auc[backend], seconds = with_deepwater(backend, train, test, is_nine, args)
        print(f"{backend:<12} AUC 9 vs rest {auc[backend]:.4f}  ({seconds:.2f} s/epoch)")
    spread = max(auc.values()) - min(auc.values())
    print(f"AUC spread across backends: {spread:.4f} (target <= 0.02)")

    x_train, x_test = train[pixels].to_numpy(np.float64), test[pixels].to_numpy(np.float64)
    runs = alternate({
        "torch_loop": lambda: hand_written(x_train, x_test, is_nine, args),
        "deepwater": lambda: with_deepwater("torch", train, test, is_nine, args),
    }, args.repeats)
    per_epoch = {name: min(r[1] for _, r in results) for name, results in runs.items()}
    auc_side = {name: statistics.mean(r[0] for _, r in results) for name, results in runs.items()}
    ratio = per_epoch["deepwater"] / per_epoch["torch_loop"]
    for name in runs:
        print(f"{name:<12} best s/epoch {per_epoch[name]:.3f}  AUC {auc_side[name]:.4f}")
    print(f"time per epoch, deepwater (torch) / hand-written torch autoencoder: {ratio:.3f}")
    path = write_result("autoencoder_mnist", {
        "settings": vars(args), "torch_threads": torch.get_num_threads(), "auc_by_backend": auc,
        "auc_spread": spread, "seconds_per_epoch": per_epoch, "auc_timing_runs": auc_side,
        "time_per_epoch_ratio": ratio,
        "note": f"Trained on the first {args.rows} training images of the digits 0-8 (subsampled to keep the run "
                "short), scored on all 10,000 test images. deepwater's epoch time is its training loop including "
                "one scoring of 1,000 rows; the hand-written loop's is its epochs alone.",
    })
    print("saved", path)


if __name__ == "__main__":
    main()
