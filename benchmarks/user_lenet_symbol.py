"""Deep Water's own LeNet symbol (symbol_lenet-cpp.json, network='user') on all 60,000 MNIST PNGs.

Trains the user-defined MXNet graph through DeepWaterEstimator and reports the test accuracy on the
10,000 test images (Deep Water's target: >= 0.97). Run:
`python benchmarks/user_lenet_symbol.py [--epochs 3] [--symbol PATH] [--data-dir ~/.cache/deepwater/mnist]`.
"""
from __future__ import annotations

import argparse
import os

from common import timed, write_result

import deepwater as dw

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "fixtures", "h2o-deepwater",
                       "mxnet", "symbol_lenet-cpp.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--symbol", default=FIXTURE)
    parser.add_argument("--data-dir", default=os.path.expanduser("~/.cache/deepwater/mnist"))
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    _, (train, test) = timed(lambda: dw.datasets.mnist_images(args.data_dir))
    model = dw.DeepWaterEstimator(
        backend="mxnet", network="user", network_definition_file=args.symbol, problem_type="image",
        image_shape=[28, 28], channels=1, epochs=args.epochs, mini_batch_size=64, learning_rate=0.05,
        score_training_samples=1000, stopping_rounds=0, seed=args.seed, gpu=True, quiet_mode=True)
    train_seconds, _ = timed(lambda: model.train(x=["uri"], y="label", training_frame=train))
    accuracy = model.model_performance(test).accuracy()
    summary = model.summary()
    print(f"test accuracy {accuracy:.4f} (target >= 0.97) on {summary['backend']}:{summary['device']}, "
          f"train() took {train_seconds:.1f} s")
    path = write_result("user_lenet_symbol", {
        "settings": vars(args), "device": summary["device"], "train_seconds": train_seconds,
        "test_accuracy": accuracy})
    print("saved", path)


if __name__ == "__main__":
    main()
