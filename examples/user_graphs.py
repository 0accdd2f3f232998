"""Your own graph files (network="user"): a LeNet written in each framework, saved in its own format,
then trained (or, for ONNX, scored) by deepwater on MNIST PNG files.

Run it with `python examples/user_graphs.py [data_dir]`. Each framework that is installed writes its graph
file the way its users would (Keras model.save, torch.jit.save, torch.export.save, torch.onnx.export,
MXNet Symbol.save) and deepwater trains it through the same estimator; see docs/guide/user-graphs.md.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import warnings
from collections.abc import Callable

import deepwater as dw

IMAGE = (1, 28, 28)


def keras_lenet(folder: str) -> str:
    """A channels-last Keras LeNet ending in softmax, saved as .keras."""
    import keras

    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Conv2D(20, 5, activation="tanh", name="conv1"),
        keras.layers.MaxPooling2D(2, name="pool1"), keras.layers.Conv2D(50, 5, activation="tanh", name="conv2"),
        keras.layers.MaxPooling2D(2, name="pool2"), keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(500, activation="tanh", name="fc1"), keras.layers.Dense(10, activation="softmax")])
    path = os.path.join(folder, "lenet.keras")
    model.save(path)
    return path


def torch_lenet():
    """LeNet as torch.nn modules, returning logits."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(1, 20, 5), nn.Tanh(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.Tanh(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 500), nn.Tanh(), nn.Linear(500, 10))


def torchscript_lenet(folder: str) -> str:
    import torch

    path = os.path.join(folder, "lenet.pt")
    torch.jit.save(torch.jit.script(torch_lenet()), path)
    return path


def exported_lenet(folder: str) -> str:
    """A torch.export program with a dynamic batch dimension (so it takes batches of any size)."""
    import torch

    batch = {0: torch.export.Dim("batch")}
    program = torch.export.export(torch_lenet(), (torch.zeros((2,) + IMAGE),), dynamic_shapes=(batch,))
    path = os.path.join(folder, "lenet.pt2")
    torch.export.save(program, path)
    return path


def onnx_lenet(folder: str, trained: dw.DeepWaterEstimator | None) -> str:
    """The TorchScript LeNet's trained weights in an untrained module, exported to ONNX for scoring."""
    import torch

    module = torch_lenet().eval()
    if trained is not None:  # the weights deepwater trained, under the module's own names
        module.load_state_dict({k: torch.from_numpy(v) for k, v in trained._fitted.net.get_state().items()})
    path = os.path.join(folder, "lenet.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros((2,) + IMAGE),), path, dynamo=True, verbose=False,
                          external_data=False, dynamic_shapes=({0: torch.export.Dim("batch")},))
    return path


def mxnet_lenet(folder: str) -> str:
    """Deep Water's MXNet LeNet: a symbol ending in SoftmaxOutput, saved as JSON."""
    from deepwater.backends.mxnet.runtime import load_mxnet

    mx = load_mxnet()
    x = mx.sym.Variable("data")
    for i, filters in enumerate((20, 50), start=1):
        x = mx.sym.Convolution(x, kernel=(5, 5), num_filter=filters, name=f"conv{i}")
        x = mx.sym.Activation(x, act_type="tanh", name=f"tanh{i}")
        x = mx.sym.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="max", name=f"pool{i}")
    x = mx.sym.Activation(mx.sym.FullyConnected(mx.sym.flatten(x), num_hidden=500, name="fc1"), act_type="tanh")
    symbol = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(x, num_hidden=10, name="fc2"), name="softmax")
    path = os.path.join(folder, "lenet-symbol.json")
    symbol.save(path)
    return path


# format -> (module that must be installed, writer)
WRITERS: dict[str, tuple[str, Callable[[str], str]]] = {
    "Keras .keras": ("keras", keras_lenet),
    "TorchScript .pt": ("torch", torchscript_lenet),
    "torch.export .pt2": ("torch", exported_lenet),
    "MXNet symbol .json": ("mxnet", mxnet_lenet),
}


def main(data_dir: str, epochs: float = 1, n_train: int | None = 10000, n_test: int | None = 2000) -> dict[str, float]:
    """Train each installed format's LeNet on MNIST PNGs, score the ONNX export; test accuracy per format."""
    train, test = dw.datasets.mnist_images(data_dir, n_train=n_train, n_test=n_test)
    settings = dict(network="user", problem_type="image", image_shape=[28, 28], channels=1, gpu=False, seed=1,
                    mini_batch_size=64, learning_rate=0.02, quiet_mode=not sys.stderr.isatty())
    accuracy: dict[str, float] = {}
    trained_torchscript = None
    with tempfile.TemporaryDirectory() as folder:
        for name, (module, write) in WRITERS.items():
            if importlib.util.find_spec(module) is None:
                print(f"{name:<20} skipped: {module} is not installed")
                continue
            model = dw.DeepWaterEstimator(network_definition_file=write(folder), epochs=epochs, **settings)
            model.train(x=["uri"], y="label", training_frame=train)
            accuracy[name] = model.model_performance(test).accuracy()
            trained_torchscript = model if name.startswith("TorchScript") else trained_torchscript
            print(f"{name:<20} backend {model.summary()['backend']:<11} layers {model.layers()[:3]}... "
                  f"test accuracy {accuracy[name]:.4f}")
        if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("torch"):
            scorer = dw.DeepWaterEstimator(network_definition_file=onnx_lenet(folder, trained_torchscript), epochs=0,
                                           **settings)
            scorer.train(x=["uri"], y="label", training_frame=train.head(256))
            accuracy["ONNX .onnx"] = scorer.model_performance(test).accuracy()
            print(f"{'ONNX .onnx':<20} backend {scorer.summary()['backend']:<11} (the TorchScript LeNet's weights, "
                  f"scored by onnxruntime) test accuracy {accuracy['ONNX .onnx']:.4f}")
    return accuracy


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.expanduser("~"), ".cache", "deepwater", "mnist"))
