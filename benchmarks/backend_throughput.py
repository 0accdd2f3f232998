"""Training throughput: deepwater on each backend vs a hand-written loop in that framework, side by side.

The booklet's MLP [200, 200] on MNIST pixel columns, LeNet on MNIST PNG files and ResNet-18 on 32x32x3 PNG files (random pixels: only speed is measured).
deepwater reads the PNG URIs (decoded once, then from its cache); the hand-written loop gets the same
images already decoded in memory. Both use batch 64 and SGD with Nesterov momentum 0.9. deepwater's
speed is that of its cached epochs (after the first, which decodes), the hand loop's that of its
epochs after a warm-up epoch. For ResNet-18 the hand loop trains the framework model that the backend
compiled (torch module / Keras model), so the comparison isolates the training loop and data path.

Runs alternate: hand, deepwater, hand, deepwater, ..., hand (--repeats deepwater runs). Each deepwater run is
compared with the mean of the hand runs just before and after it, and the median of those ratios is
reported, so that a slow spell of a shared machine lands on both sides of a ratio.

Run: `python benchmarks/backend_throughput.py [--backends torch tensorflow] [--networks mlp lenet resnet18]
[--repeats 3]`.
"""
from __future__ import annotations

import argparse
import os

import handwritten
import numpy as np
import pandas as pd
from common import write_result
from lenet_images import epoch_speeds
from PIL import Image

import deepwater as dw
from deepwater.networks import build_graph
from deepwater.runtime.registry import get_backend
from deepwater.specs import OptimizerSpec, TaskSpec

BATCH, CLASSES = 64, 10
SHAPES = {"mlp": (1, 28, 28), "lenet": (1, 28, 28), "resnet18": (3, 32, 32)}


def image_frame(network: str, rows: int, data_dir: str) -> pd.DataFrame:
    """PNG files and labels: MNIST digits for the MLP and LeNet, random 32x32 RGB images for ResNet-18."""
    if network in ("mlp", "lenet"):
        train, _ = dw.datasets.mnist_images(os.path.join(data_dir, "mnist"), n_train=rows, n_test=0)
        return train
    folder = os.path.join(data_dir, "random32")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    uris = []
    for i in range(rows):
        path = os.path.join(folder, f"{i}.png")
        pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
        if not os.path.exists(path):
            Image.fromarray(pixels).save(path)
        uris.append(path)
    labels = rng.integers(0, CLASSES, size=rows)
    return pd.DataFrame({"uri": uris, "label": pd.Categorical(labels, categories=range(CLASSES))})


def decoded(frame: pd.DataFrame, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The frame's images as uint8 (N, C, H, W) and its labels as int64, decoded the plain way."""
    mode = "L" if channels == 1 else "RGB"
    arrays = [np.asarray(Image.open(u).convert(mode)) for u in frame["uri"]]
    images = np.stack(arrays)
    images = images[:, None] if channels == 1 else images.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images), frame["label"].cat.codes.to_numpy().astype(np.int64)


def pixel_frame(images: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """The decoded images as a dataset frame of pixel columns (what the booklet's MLP trains on)."""
    frame = pd.DataFrame(images.reshape(len(images), -1).astype(np.float32), copy=False)
    frame.columns = [f"C{i + 1}" for i in range(frame.shape[1])]
    frame["label"] = pd.Categorical(labels, categories=range(CLASSES))
    return frame


def deepwater_speed(backend: str, network: str, frame: pd.DataFrame, epochs: int) -> float:
    channels, height, width = SHAPES[network]
    image = {"hidden": [200, 200]} if network == "mlp" else {
        "network": network, "problem_type": "image", "image_shape": [height, width], "channels": channels}
    model = dw.DeepWaterEstimator(
        backend=backend, **image,
        epochs=1 + epochs, mini_batch_size=BATCH, learning_rate=handwritten.LEARNING_RATE,
        learning_rate_annealing=0.0, momentum_start=handwritten.MOMENTUM, momentum_stable=handwritten.MOMENTUM,
        clip_gradient=None, train_samples_per_iteration=len(frame), score_training_samples=BATCH,
        stopping_rounds=0, overwrite_with_best_model=False, gpu=False, seed=1, quiet_mode=True)
    model.train(y="label", training_frame=frame)
    return float(np.mean(epoch_speeds(model.scoring_history())[1:]))


def handwritten_speed(backend: str, network: str, images: np.ndarray, labels: np.ndarray, epochs: int) -> float:
    channels = SHAPES[network][0]
    if network == "mlp":
        model = {"torch": lambda: handwritten.torch_mlp(28 * 28, CLASSES),
                 "tensorflow": lambda: handwritten.keras_mlp((28, 28, 1), CLASSES),
                 "mxnet": lambda: handwritten.gluon_mlp(CLASSES)}[backend]()
        channels_last = True
    elif network == "lenet":
        model = {"torch": lambda: handwritten.torch_lenet(channels, CLASSES),
                 "tensorflow": lambda: handwritten.keras_lenet(channels, CLASSES),
                 "mxnet": lambda: handwritten.gluon_lenet(CLASSES)}[backend]()
        channels_last = True
    else:
        graph = build_graph(network, SHAPES[network], CLASSES)
        net = get_backend(backend).build(graph, TaskSpec("classification", CLASSES, "cross_entropy", "multinomial"),
                                         OptimizerSpec(), "cpu", 1)
        model = {"torch": lambda: net.module, "tensorflow": lambda: net.model}[backend]()
        channels_last = False  # the compiled Keras model takes channels-first input
    if backend == "torch":
        return handwritten.torch_loop(model, images, labels, BATCH, epochs)
    if backend == "tensorflow":
        return handwritten.tf_loop(model, images, labels, BATCH, epochs, channels_last)
    return handwritten.gluon_loop(model, images, labels, BATCH, epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["torch", "tensorflow", "mxnet"])
    parser.add_argument("--networks", nargs="+", default=["mlp", "lenet", "resnet18"])
    parser.add_argument("--lenet-rows", type=int, default=10000, help="MNIST images for the MLP and LeNet")
    parser.add_argument("--resnet-rows", type=int, default=1000, help="random 32x32 images for ResNet-18")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the first")
    parser.add_argument("--repeats", type=int, default=3, help="deepwater runs, each between two hand-written runs")
    parser.add_argument("--data-dir", default=os.path.expanduser("~/.cache/deepwater/benchmarks"))
    args = parser.parse_args()

    results = []
    for network in args.networks:
        rows = args.resnet_rows if network == "resnet18" else args.lenet_rows
        frame = image_frame(network, rows, args.data_dir)
        images, labels = decoded(frame, SHAPES[network][0])
        if network == "mlp":
            frame = pixel_frame(images, labels)
        for backend in args.backends:
            if network == "resnet18" and backend == "mxnet":
                continue  # the hand-written loop needs a Gluon ResNet; see the note in the result
            hands = [handwritten_speed(backend, network, images, labels, args.epochs)]
            ours = []
            for _ in range(args.repeats):
                ours.append(deepwater_speed(backend, network, frame, args.epochs))
                hands.append(handwritten_speed(backend, network, images, labels, args.epochs))
            ratios = [o / ((before + after) / 2) for o, before, after in zip(ours, hands, hands[1:])]
            ratio = float(np.median(ratios))
            results.append({"network": network, "backend": backend, "rows": len(frame),
                            "deepwater_images_per_s": ours, "handwritten_images_per_s": hands,
                            "ratios": ratios, "ratio": ratio})
            print(f"{network:<9}{backend:<11} deepwater {np.median(ours):8.0f} img/s   hand-written "
                  f"{np.median(hands):8.0f} img/s (medians)   ratios {', '.join(f'{r:.3f}' for r in ratios)}"
                  f"   median ratio {ratio:.3f}", flush=True)
    print("saved", write_result("backend_throughput", {"settings": vars(args), "results": results}))


if __name__ == "__main__":
    main()
