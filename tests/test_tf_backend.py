"""The TensorFlow backend: same forward pass, features, state and optimiser steps as the torch backend."""
from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("tensorflow")
pytest.importorskip("torch")

import deepwater as dw
from deepwater import networks
from deepwater.backends.tensorflow.backend import TensorflowBackend
from deepwater.backends.tensorflow.net import TensorflowNet
from deepwater.backends.torch.net import TorchNet
from deepwater.errors import ModelFileError, ParameterError
from deepwater.networks import Graph, GraphBuilder
from deepwater.runtime.registry import get_backend
from deepwater.specs import OptimizerSpec, TaskSpec

CLASSES3 = TaskSpec("classification", 3, "cross_entropy", "multinomial")
CLASSES10 = TaskSpec("classification", 10, "cross_entropy", "multinomial")
SGD = OptimizerSpec(learning_rate=0.05, learning_rate_annealing=1e-3, momentum_start=0.5, momentum_ramp=20,
                    momentum_stable=0.9, nesterov=True, l1=1e-3, l2=1e-3, clip_gradient=0.05)
ADADELTA = OptimizerSpec(adaptive_rate=True, rho=0.95, epsilon=1e-6, l1=1e-3, l2=1e-3, clip_gradient=0.05)
TOLERANCE = 1e-4


# --------------------------------------------------------------------------- graphs and data

def lenet() -> Graph:
    return networks.build_graph("lenet", (1, 28, 28), 10)


def maxout_mlp(dropout: bool = True) -> Graph:
    options = {"hidden": [24, 12], "activation": "Maxout",
               "input_dropout_ratio": 0.2 if dropout else 0.0,
               "hidden_dropout_ratios": [0.5, 0.3] if dropout else [0.0, 0.0]}
    return networks.build_graph("mlp", (10,), 3, options)


def branchy() -> Graph:
    """Conv without bias + batch norm, padded max pool, concat, add, avg pool, global pool, 1-D batch norm."""
    b = GraphBuilder((3, 11, 11))
    x = b.act("relu1", b.batch_norm("bn1", b.conv("conv1", "input", 6, 3, pad=1, bias=False), momentum=0.8), "relu")
    x = b.pool("pool1", x, "max", 3, 2, pad=1)                                  # (6, 6, 6)
    left = b.conv("left", x, 4, 1)
    right = b.act("right_act", b.conv("right", x, 2, 3, stride=1, pad=1), "tanh")
    joined = b.concat("join", [left, right])                                   # (6, 6, 6)
    x = b.add("residual", joined, x)
    x = b.pool("pool2", x, "avg", 2, 1)                                        # (6, 5, 5)
    x = b.global_pool("gpool", x, "max")
    x = b.act("sig", b.batch_norm("bn2", b.dense("fc", x, 8), epsilon=1e-3), "sigmoid")
    b.dense("output", x, 3)
    return b.graph


def batch(graph: Graph, n: int, seed: int = 0, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n,) + graph.input.shape).astype(np.float32)
    return x, rng.integers(0, classes, size=n).astype(np.int64)


def pair(graph: Graph, task: TaskSpec, spec: OptimizerSpec = SGD) -> tuple[TorchNet, TensorflowNet]:
    """A torch net and a TF net holding the same weights (torch's, copied across)."""
    torch_net = TorchNet(graph, task, spec, "cpu", 7)
    tf_net = TensorflowNet(graph, task, spec, "cpu", 3)
    tf_net.set_state(torch_net.get_state())
    return torch_net, tf_net


def max_state_difference(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


GRAPHS = {"lenet": (lenet, CLASSES10), "maxout_mlp": (maxout_mlp, CLASSES3), "branchy": (branchy, CLASSES3)}


# --------------------------------------------------------------------------- the same network as torch

@pytest.mark.parametrize("name", list(GRAPHS))
def test_predictions_and_features_match_torch(name):
    make, task = GRAPHS[name]
    graph = make()
    torch_net, tf_net = pair(graph, task)
    x, _ = batch(graph, 5, classes=task.n_outputs)
    np.testing.assert_allclose(tf_net.predict(x), torch_net.predict(x), atol=TOLERANCE)
    assert tf_net.predict(x).dtype == np.float32
    assert tf_net.layers() == torch_net.layers() == graph.layer_names()
    for layer in graph.layer_names():
        got = tf_net.features(x, layer)
        assert got.shape == (5, math.prod(graph.node(layer).shape)), layer
        np.testing.assert_allclose(got, torch_net.features(x, layer), atol=TOLERANCE, err_msg=layer)


@pytest.mark.parametrize("spec", [SGD, ADADELTA], ids=["sgd_nesterov", "adadelta"])
@pytest.mark.parametrize("name", ["lenet", "mlp", "branchy"])
def test_three_training_steps_match_torch(name, spec):
    make, task = {"lenet": (lenet, CLASSES10), "mlp": (lambda: maxout_mlp(dropout=False), CLASSES3),
                  "branchy": (branchy, CLASSES3)}[name]
    graph = make()
    torch_net, tf_net = pair(graph, task, spec)
    x, y = batch(graph, 6, seed=1, classes=task.n_outputs)
    for _ in range(3):
        assert tf_net.train_batch(x, y) == pytest.approx(torch_net.train_batch(x, y), abs=TOLERANCE)
    assert max_state_difference(tf_net.get_state(), torch_net.get_state()) < TOLERANCE
    np.testing.assert_allclose(tf_net.predict(x), torch_net.predict(x), atol=TOLERANCE)


@pytest.mark.parametrize("spec", [
    dataclasses.replace(SGD, nesterov=False),
    dataclasses.replace(SGD, momentum_start=0.0, momentum_ramp=10),   # torch skips the buffer while momentum is 0
    dataclasses.replace(SGD, momentum_start=0.0, momentum_stable=0.0, l1=0.0, clip_gradient=None),
    dataclasses.replace(ADADELTA, rho=0.99, epsilon=1e-8, l1=0.0, l2=0.0),
], ids=["momentum", "ramp_from_zero", "no_momentum", "adadelta_defaults"])
def test_optimiser_variants_match_torch(spec):
    graph = maxout_mlp(dropout=False)
    torch_net, tf_net = pair(graph, CLASSES3, spec)
    x, y = batch(graph, 8, seed=4)
    for _ in range(4):
        assert tf_net.train_batch(x, y) == pytest.approx(torch_net.train_batch(x, y), abs=TOLERANCE)
    assert max_state_difference(tf_net.get_state(), torch_net.get_state()) < TOLERANCE


@pytest.mark.parametrize("loss", ["cross_entropy", "quadratic", "absolute", "huber"])
def test_losses_with_row_weights_match_torch(loss):
    regression = loss != "cross_entropy"
    task = TaskSpec("regression", 1, loss, "gaussian") if regression else CLASSES3
    graph = networks.build_graph("mlp", (10,), task.n_outputs, {"hidden": [16]})
    torch_net, tf_net = pair(graph, task)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(12, 10)).astype(np.float32)
    y = (rng.normal(size=12) * 2).astype(np.float32) if regression else rng.integers(0, 3, size=12)
    weights = rng.uniform(0, 2, size=12).astype(np.float32)
    for w in (weights, None, weights):
        assert tf_net.train_batch(x, y, w) == pytest.approx(torch_net.train_batch(x, y, w), abs=TOLERANCE)
    assert max_state_difference(tf_net.get_state(), torch_net.get_state()) < TOLERANCE


# --------------------------------------------------------------------------- the net on its own

@pytest.mark.parametrize("name", list(GRAPHS))
def test_parameter_count_is_the_graphs(name):
    make, task = GRAPHS[name]
    graph = make()
    net = TensorflowNet(graph, task, SGD, "cpu", 0)
    assert sum(math.prod(w.shape) for w in net.model.trainable_weights) == graph.param_count()
    assert net.parameter_count() == graph.param_count()
    assert {k: v.shape for k, v in net.get_state().items()} == graph.state_shapes()


def test_layers_are_named_like_the_nodes():
    graph = branchy()
    net = TensorflowNet(graph, CLASSES3, SGD, "cpu", 0)
    names = {layer.name for layer in net.model.layers}
    assert set(graph.layer_names()) <= names


def test_a_few_steps_lower_the_loss():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=60)
    x = (np.eye(3)[y] @ rng.normal(size=(3, 10)) * 3 + rng.normal(size=(60, 10)) * 0.3).astype(np.float32)
    graph = networks.build_graph("mlp", (10,), 3, {"hidden": [16]})
    for spec, ratio in ((OptimizerSpec(learning_rate=0.05), 0.05), (OptimizerSpec(adaptive_rate=True), 0.7)):
        net = TensorflowNet(graph, CLASSES3, spec, "cpu", 0)
        losses = [net.train_batch(x, y) for _ in range(25)]
        assert losses[-1] < ratio * losses[0], spec  # ADADELTA starts slowly, as in H2O
        if not spec.adaptive_rate:
            assert (net.predict(x).argmax(axis=1) == y).mean() > 0.9


def test_same_seed_same_run():
    graph = maxout_mlp(dropout=True)
    x, y = batch(graph, 8)
    runs = []
    for seed in (5, 5, 6):
        net = TensorflowNet(graph, CLASSES3, SGD, "cpu", seed)
        runs.append((net.get_state(), [net.train_batch(x, y) for _ in range(3)], net.get_state()))
    assert max_state_difference(runs[0][0], runs[1][0]) == 0.0
    assert runs[0][1] == runs[1][1]
    assert max_state_difference(runs[0][2], runs[1][2]) == 0.0
    assert max_state_difference(runs[0][0], runs[2][0]) > 0.0


def test_dropout_only_while_training():
    graph = networks.build_graph("mlp", (10,), 3, {"hidden": [16], "input_dropout_ratio": 0.5})
    net = TensorflowNet(graph, CLASSES3, SGD, "cpu", 0)
    x, _ = batch(graph, 4)
    np.testing.assert_array_equal(net.features(x, "input_dropout"), x)
    np.testing.assert_array_equal(net.predict(x), net.predict(x))


def test_get_state_round_trip_and_copies():
    graph = branchy()
    source = TensorflowNet(graph, CLASSES3, SGD, "cpu", 1)
    x, y = batch(graph, 6)
    source.train_batch(x, y)  # moves the batch-norm statistics away from 0 and 1
    state = source.get_state()
    target = TensorflowNet(graph, CLASSES3, SGD, "cpu", 2)
    target.set_state(state)
    assert max_state_difference(target.get_state(), state) == 0.0
    np.testing.assert_array_equal(target.predict(x), source.predict(x))
    state["conv1.weight"][:] = 0.0  # get_state returns copies
    assert np.abs(source.get_state()["conv1.weight"]).max() > 0


def test_set_state_refuses_a_wrong_shape_or_name():
    graph = lenet()
    net = TensorflowNet(graph, CLASSES10, SGD, "cpu", 0)
    state = net.get_state()
    with pytest.raises(ModelFileError, match="conv1.weight"):
        net.set_state({**state, "conv1.weight": np.zeros((20, 1, 3, 3), np.float32)})
    missing = dict(state)
    del missing["fc1.bias"]
    with pytest.raises(ModelFileError, match="fc1.bias"):
        net.set_state(missing)


def test_unknown_device_and_layer():
    graph = maxout_mlp()
    with pytest.raises(ValueError, match="tpu"):
        TensorflowNet(graph, CLASSES3, SGD, "tpu", 0)
    net = TensorflowNet(graph, CLASSES3, SGD, "cpu", 0)
    with pytest.raises(ParameterError, match="nope.*use one of layers"):
        net.features(np.zeros((1, 10), np.float32), "nope")


# --------------------------------------------------------------------------- the backend

def test_backend_is_registered_and_light():
    backend = get_backend("tensorflow")
    assert isinstance(backend, TensorflowBackend)
    assert (backend.name, backend.extra) == ("tensorflow", "tensorflow")
    assert backend.available()
    devices = backend.devices()
    assert devices[0] == "cpu" and all(d.startswith("cuda:") for d in devices[1:])
    code = "import sys, deepwater.backends.tensorflow.backend; print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


FAST = {"backend": "tensorflow", "gpu": False, "quiet_mode": True, "seed": 1234}


def synthetic_frame(n: int = 150) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    codes = np.arange(n) % 3
    xy = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]])[codes] + rng.normal(scale=0.6, size=(n, 2))
    return pd.DataFrame({"x1": xy[:, 0], "x2": xy[:, 1], "label": pd.Categorical(np.array(["a", "b", "c"])[codes])})


def test_estimator_trains_the_mlp_and_predicts():
    frame = synthetic_frame()
    model = dw.DeepWaterEstimator(hidden=[16], epochs=5, mini_batch_size=16, learning_rate=0.05, **FAST)
    model.train(y="label", training_frame=frame)
    assert model.summary()["backend"] == "tensorflow"
    assert model.summary()["device"] == "cpu"
    predictions = model.predict(frame)
    assert list(predictions.columns) == ["predict", "a", "b", "c"]
    assert (predictions["predict"].astype(str) == frame["label"].astype(str)).mean() > 0.9


def png_frame(folder: Path, count: int = 16) -> pd.DataFrame:
    """Dark and light 28x28 grey PNGs."""
    rng = np.random.default_rng(0)
    uris, labels = [], []
    for i in range(count):
        label = "dark" if i % 2 == 0 else "light"
        level = 40 if label == "dark" else 215
        pixels = np.clip(level + rng.integers(-20, 21, size=(28, 28)), 0, 255).astype(np.uint8)
        path = folder / f"img{i:02d}.png"
        Image.fromarray(pixels, mode="L").save(path)
        uris.append(str(path))
        labels.append(label)
    return pd.DataFrame({"uri": uris, "label": pd.Categorical(labels)})


def test_estimator_trains_lenet_on_images_and_predicts(tmp_path):
    frame = png_frame(tmp_path)
    model = dw.DeepWaterEstimator(network="lenet", problem_type="image", image_shape=[28, 28], channels=1,
                                  epochs=4, mini_batch_size=8, learning_rate=0.05, **FAST)
    model.train(x=["uri"], y="label", training_frame=frame)
    assert model.summary()["network"] == "lenet"
    predictions = model.predict(frame)
    np.testing.assert_allclose(predictions[["dark", "light"]].sum(axis=1), 1.0, atol=1e-5)
    assert (predictions["predict"].astype(str) == frame["label"].astype(str)).mean() >= 0.9


def test_gpu_without_a_gpu_warns_and_uses_the_cpu(monkeypatch):
    monkeypatch.setattr(TensorflowBackend, "devices", lambda self: ["cpu"])
    options = {**FAST, "gpu": True}
    with pytest.warns(RuntimeWarning, match="no GPU"):
        model = dw.DeepWaterEstimator(hidden=[8], epochs=0.5, **options).train(y="label",
                                                                             training_frame=synthetic_frame(60))
    assert model.summary()["device"] == "cpu"


@pytest.mark.gpu
def test_gpu_matches_the_cpu():
    if len(TensorflowBackend().devices()) < 2:
        pytest.skip("no GPU visible to TensorFlow")
    graph = branchy()
    cpu = TensorflowNet(graph, CLASSES3, SGD, "cpu", 0)
    gpu = TensorflowNet(graph, CLASSES3, SGD, "cuda:0", 0)
    gpu.set_state(cpu.get_state())
    x, y = batch(graph, 6)
    np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), atol=TOLERANCE)
    for _ in range(3):
        cpu.train_batch(x, y)
        gpu.train_batch(x, y)
    assert max_state_difference(gpu.get_state(), cpu.get_state()) < 1e-3
