"""Deep Water's own LeNet graph files (network='user') trained on all 60,000 MNIST PNGs.

Two files written by the original Deep Water: the MXNet symbol symbol_lenet-cpp.json (trained with deepwater's
loss and SGD) and the TF1 MetaGraph lenet_28x28x1_10.meta (trained through its own train_op: Adam over four
towers, fed deepwater's learning rate). Each trains through DeepWaterEstimator and the script reports the
test accuracy on the 10,000 test images (Deep Water's target: >= 0.97). Run:
`python benchmarks/user_lenet_graphs.py [--graphs mxnet tensorflow] [--fixtures PATH] [--data-dir DIR]`.
"""
from __future__ import annotations

import argparse
import os

from common import timed, write_result

import deepwater as dw

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "fixtures",
                        "h2o-deepwater")
# backend -> (graph file under the fixtures, epochs, learning rate)
GRAPHS = {"mxnet": ("mxnet/symbol_lenet-cpp.json", 3, 0.05),
          "tensorflow": ("tensorflow/lenet_28x28x1_10.meta", 2, 1e-3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", nargs="+", choices=sorted(GRAPHS), default=sorted(GRAPHS))
    parser.add_argument("--fixtures", default=FIXTURES, help="the h2o-deepwater fixtures folder")
    parser.add_argument("--data-dir", default=os.path.expanduser("~/.cache/deepwater/mnist"))
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    _, (train, test) = timed(lambda: dw.datasets.mnist_images(args.data_dir))
    results = []
    for backend in args.graphs:
        file, epochs, rate = GRAPHS[backend]
        model = dw.DeepWaterEstimator(
            backend=backend, network="user", network_definition_file=os.path.join(args.fixtures, file),
            problem_type="image", image_shape=[28, 28], channels=1, epochs=epochs, mini_batch_size=64,
            learning_rate=rate, score_training_samples=1000, stopping_rounds=0, seed=args.seed, gpu=True,
            quiet_mode=True)
        train_seconds, _ = timed(lambda: model.train(x=["uri"], y="label", training_frame=train))
        accuracy = model.model_performance(test).accuracy()
        summary = model.summary()
        print(f"{file}: test accuracy {accuracy:.4f} (target >= 0.97) after {epochs} epochs on "
              f"{summary['backend']}:{summary['device']}, train() took {train_seconds:.1f} s", flush=True)
        results.append({"graph": file, "epochs": epochs, "learning_rate": rate, "device": summary["device"],
                        "train_seconds": train_seconds, "test_accuracy": accuracy})
    print("saved", write_result("user_lenet_graphs", {"settings": vars(args), "results": results}))


if __name__ == "__main__":
    main()
