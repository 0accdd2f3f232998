"""The MXNet backend: the same numbers as the torch backend, the Net protocol, and the estimator on MXNet."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from deepwater import (
    DeepWaterEstimator,
    MissingDependencyError,
    ModelFileError,
    ParameterError,
)
from deepwater.backends.mxnet.backend import MXNetBackend
from deepwater.networks import GraphBuilder, build_graph
from deepwater.runtime.registry import get_backend
from deepwater.specs import OptimizerSpec, task_from_params

if not MXNetBackend().available():
    pytest.skip("mxnet is not installed", allow_module_level=True)

SGD = {"learning_rate": 0.05, "momentum_start": 0.9, "momentum_stable": 0.9, "nesterov": True,
       "l1": 1e-3, "l2": 1e-2, "clip_gradient": 0.05}
ADADELTA = {"adaptive_rate": True, "rho": 0.95, "epsilon": 1e-6, "l1": 1e-3, "l2": 1e-2, "clip_gradient": 0.5}
TOLERANCE = 1e-4


# --------------------------------------------------------------------------- helpers

def classification(n: int):
    return task_from_params("classification", n, "AUTO", "Automatic")


def regression(distribution: str):
    return task_from_params("regression", 1, distribution, "Automatic")


def mx_net(graph, task, seed=0, **optimizer):
    return MXNetBackend().build(graph, task, OptimizerSpec(**optimizer), "cpu", seed)


def torch_net(graph, task, seed=0, **optimizer):
    pytest.importorskip("torch")
    from deepwater.backends.torch.net import TorchNet

    return TorchNet(graph, task, OptimizerSpec(**optimizer), "cpu", seed)


def twins(graph, task, **optimizer):
    """A torch net and an MXNet net holding the same weights."""
    reference = torch_net(graph, task, **optimizer)
    net = mx_net(graph, task, seed=1, **optimizer)
    net.set_state(reference.get_state())
    return reference, net


def assert_states_close(a: dict, b: dict, tolerance: float = TOLERANCE) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        np.testing.assert_allclose(value, b[key], atol=tolerance, rtol=0, err_msg=key)


def small_graph():
    """Convolution without bias, batch norm (images and vectors), padded max pool, average pool, concat,
    add, global pools of both kinds and the three activations."""
    b = GraphBuilder((3, 8, 8))
    x = b.act("relu1", b.batch_norm("bn1", b.conv("conv1", "input", 4, 3, pad=1, bias=False), momentum=0.8), "relu")
    x = b.pool("pool1", x, "max", 3, 2, pad=1)
    joined = b.concat("concat", [b.conv("branch1", x, 4, 1), b.act("tanh", b.conv("branch2", x, 2, 3, pad=1), "tanh")])
    x = b.add("sum", joined, b.conv("shortcut", x, 6, 1, stride=1))
    pooled = b.add("pools", b.global_pool("gap", x, "avg"), b.global_pool("gmp", b.pool("pool2", x, "avg", 2, 2), "max"))
    x = b.act("sigmoid", b.batch_norm("bn2", pooled, epsilon=1e-3), "sigmoid")
    b.dense("output", x, 3)
    return b.graph


GRAPHS = {
    "lenet": (lambda: build_graph("lenet", (1, 28, 28), 10), (1, 28, 28), 10),
    "maxout": (lambda: build_graph("mlp", (7,), 3, {"hidden": [12, 8], "activation": "Maxout",
                                                    "hidden_dropout_ratios": [0.0, 0.0]}), (7,), 3),
    "small": (small_graph, (3, 8, 8), 3),
}


def batch(shape, classes, n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n,) + shape).astype(np.float32), rng.integers(0, classes, n).astype(np.int64)


# --------------------------------------------------------------------------- the same numbers as torch

@pytest.mark.parametrize("name", GRAPHS)
def test_predict_and_features_match_torch(name):
    make, shape, classes = GRAPHS[name]
    graph = make()
    reference, net = twins(graph, classification(classes))
    x, _ = batch(shape, classes)
    np.testing.assert_allclose(net.predict(x), reference.predict(x), atol=TOLERANCE, rtol=0)
    assert net.layers() == graph.layer_names()
    for layer in graph.layer_names():
        got = net.features(x, layer)
        assert got.dtype == np.float32 and got.shape == (len(x), int(np.prod(graph.node(layer).shape)))
        np.testing.assert_allclose(got, reference.features(x, layer), atol=TOLERANCE, rtol=0, err_msg=layer)


@pytest.mark.parametrize("optimizer", [SGD, ADADELTA], ids=["sgd", "adadelta"])
@pytest.mark.parametrize("name", GRAPHS)
def test_training_steps_match_torch(name, optimizer):
    make, shape, classes = GRAPHS[name]
    graph = make()
    reference, net = twins(graph, classification(classes), **optimizer)
    x, y = batch(shape, classes)
    for _ in range(3):
        assert net.train_batch(x, y) == pytest.approx(reference.train_batch(x, y), abs=TOLERANCE)
        # inference between steps, as scoring does, sees the new weights and running statistics
        np.testing.assert_allclose(net.predict(x), reference.predict(x), atol=TOLERANCE, rtol=0)
    assert_states_close(net.get_state(), reference.get_state())


@pytest.mark.parametrize("schedule", [
    {"nesterov": True, "momentum_start": 0.5, "momentum_ramp": 20, "momentum_stable": 0.9},
    {"nesterov": False, "momentum_start": 0.5, "momentum_ramp": 20, "momentum_stable": 0.9},
    {"nesterov": True, "momentum_start": 0.0, "momentum_ramp": 12, "momentum_stable": 0.8},
    {"nesterov": True, "momentum_start": 0.6, "momentum_ramp": 12, "momentum_stable": 0.0},
], ids=["nesterov", "classic", "from-zero", "to-zero"])
def test_annealing_and_momentum_ramp_match_torch(schedule):
    graph = build_graph("mlp", (5,), 3, {"hidden": [9, 7], "activation": "Tanh"})
    optimizer = {"learning_rate": 0.1, "learning_rate_annealing": 0.02, "clip_gradient": None, **schedule}
    reference, net = twins(graph, classification(3), **optimizer)
    for step in range(6):
        x, y = batch((5,), 3, n=4, seed=step)
        assert net.train_batch(x, y) == pytest.approx(reference.train_batch(x, y), abs=TOLERANCE)
    assert_states_close(net.get_state(), reference.get_state())


@pytest.mark.parametrize("distribution", ["gaussian", "laplace", "huber"])
def test_regression_losses_with_row_weights_match_torch(distribution):
    graph = build_graph("mlp", (4,), 1, {"hidden": [6], "activation": "Rectifier"})
    reference, net = twins(graph, regression(distribution), **SGD)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(10, 4)).astype(np.float32)
    y = (rng.normal(size=10) * 2).astype(np.float32)
    w = rng.uniform(0.0, 2.0, size=10).astype(np.float32)
    for weights in (w, None, w):
        assert net.train_batch(x, y, weights) == pytest.approx(reference.train_batch(x, y, weights), abs=TOLERANCE)
    assert_states_close(net.get_state(), reference.get_state())
    out = net.predict(x)
    assert out.shape == (10, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out, reference.predict(x), atol=TOLERANCE, rtol=0)


# --------------------------------------------------------------------------- the Net protocol

@pytest.mark.parametrize("name", GRAPHS)
def test_trainable_parameter_count_is_the_graphs(name):
    from deepwater.backends.mxnet.net import build_symbols

    make, shape, classes = GRAPHS[name]
    graph = make()
    assert mx_net(graph, classification(classes)).parameter_count() == graph.param_count()
    output = build_symbols(graph, training=False)[0][graph.output.name]
    arg_shapes, _, aux_shapes = output.infer_shape(input=(2,) + shape)
    sizes = {n: int(np.prod(s)) for n, s in zip(output.list_arguments(), arg_shapes) if n != "input"}
    assert sum(sizes.values()) == graph.param_count()
    assert len(aux_shapes) == 2 * sum(node.op == "batch_norm" for node in graph.nodes)


def test_a_few_steps_lower_the_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    net = mx_net(build_graph("mlp", (4,), 2, {"hidden": [16]}), classification(2), learning_rate=0.1)
    losses = [net.train_batch(x, y) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    probabilities = net.predict(x)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(probabilities.argmax(axis=1) == y) > 0.9


def test_batch_sizes_vary_without_mixing_up_executors():
    graph = small_graph()
    net = mx_net(graph, classification(3), learning_rate=0.01)
    x, y = batch((3, 8, 8), 3, n=10)
    full = net.predict(x)
    np.testing.assert_allclose(np.concatenate([net.predict(x[:3]), net.predict(x[3:])]), full, atol=1e-6)
    for n in (10, 7, 10, 1):
        net.train_batch(x[:n], y[:n])
    assert np.isfinite(net.predict(x)).all()
    assert net.predict(x[:0]).shape == (0, 3) and net.features(x[:0], "concat").shape == (0, 6 * 4 * 4)


def test_state_round_trip():
    graph = small_graph()
    net = mx_net(graph, classification(3), seed=3)
    state = net.get_state()
    assert {k: v.shape for k, v in state.items()} == graph.state_shapes()
    assert all(v.dtype == np.float32 for v in state.values())
    other = mx_net(graph, classification(3), seed=4)
    x, _ = batch((3, 8, 8), 3)
    assert not np.allclose(other.predict(x), net.predict(x))
    changed = {k: v + 0.5 for k, v in state.items()}
    changed["bn1.running_var"] = state["bn1.running_var"] * 2.0
    other.set_state(changed)
    assert_states_close(other.get_state(), changed, tolerance=0)
    other.set_state(state)
    np.testing.assert_array_equal(other.predict(x), net.predict(x))
    state["conv1.weight"][...] = 7.0  # get_state returns copies
    assert not np.any(net.get_state()["conv1.weight"] == 7.0)


def test_set_state_with_a_wrong_shape_or_name_is_refused():
    graph = build_graph("lenet", (1, 28, 28), 10)
    net = mx_net(graph, classification(10))
    state = net.get_state()
    with pytest.raises(ModelFileError):
        net.set_state({**state, "fc1.weight": np.zeros((3, 3), np.float32)})
    with pytest.raises(ModelFileError):
        net.set_state({k: v for k, v in state.items() if k != "output.bias"})


def test_features_of_an_unknown_layer_is_refused():
    net = mx_net(build_graph("lenet", (1, 28, 28), 10), classification(10))
    with pytest.raises(ParameterError) as info:
        net.features(np.zeros((2, 1, 28, 28), np.float32), "conv9")
    assert "conv9" in str(info.value) and "conv1" in str(info.value)


def test_dropout_only_while_training():
    graph = build_graph("mlp", (6,), 2, {"hidden": [32], "input_dropout_ratio": 0.5, "hidden_dropout_ratios": [0.5]})
    net = mx_net(graph, classification(2))
    x, y = batch((6,), 2, n=16)
    np.testing.assert_array_equal(net.predict(x), net.predict(x))
    np.testing.assert_array_equal(net.features(x, "input_dropout"), x)
    losses = {round(net.train_batch(x, y), 6) for _ in range(4)}
    assert len(losses) > 1


# --------------------------------------------------------------------------- the estimator on MXNet

MLP_OPTIONS = {"backend": "mxnet", "gpu": False, "quiet_mode": True, "hidden": [16], "mini_batch_size": 32,
               "learning_rate": 0.05, "epochs": 4, "seed": 7}


def test_estimator_trains_the_mlp_on_mxnet(blobs, blobs_valid):
    model = DeepWaterEstimator(**MLP_OPTIONS).train(y="label", training_frame=blobs, validation_frame=blobs_valid)
    summary = model.summary()
    assert summary["backend"] == "mxnet" and summary["network"] == "mlp"
    predictions = model.predict(blobs_valid)
    assert list(predictions.columns) == ["predict", "a", "b", "c"]
    assert np.mean(predictions["predict"].astype(str) == blobs_valid["label"].astype(str)) > 0.9


def test_estimator_on_mxnet_is_reproducible(blobs):
    options = {**MLP_OPTIONS, "activation": "RectifierWithDropout", "epochs": 1}
    first = DeepWaterEstimator(**options).train(y="label", training_frame=blobs).predict(blobs)
    second = DeepWaterEstimator(**options).train(y="label", training_frame=blobs).predict(blobs)
    pd.testing.assert_frame_equal(first, second)


def test_estimator_trains_lenet_on_png_images_on_mxnet(image_frame):
    model = DeepWaterEstimator(backend="mxnet", gpu=False, network="lenet", problem_type="image", image_shape=[28, 28],
                               channels=1, epochs=4, mini_batch_size=8, learning_rate=0.05, quiet_mode=True, seed=5)
    model.train(x=["uri"], y="label", training_frame=image_frame)
    summary = model.summary()
    assert summary["backend"] == "mxnet" and summary["input_shape"] == (1, 28, 28)
    predictions = model.predict(image_frame)
    assert list(predictions.columns) == ["predict", "dark", "light"]
    np.testing.assert_allclose(predictions[["dark", "light"]].sum(axis=1), 1.0, atol=1e-5)
    assert np.mean(predictions["predict"].astype(str) == image_frame["label"].astype(str)) >= 0.9


# --------------------------------------------------------------------------- packaging and imports

def test_registry_finds_the_backend():
    backend = get_backend("mxnet")
    assert backend.name == "mxnet" and backend.extra == "mxnet"
    assert backend.devices()[0] == "cpu"
    assert all(d.startswith("cuda:") for d in backend.devices()[1:])


def test_missing_mxnet_names_the_extra(blobs, monkeypatch):
    monkeypatch.setattr(MXNetBackend, "available", lambda self: False)
    with pytest.raises(MissingDependencyError) as info:
        DeepWaterEstimator(**MLP_OPTIONS).train(y="label", training_frame=blobs)
    assert "deepwater[mxnet]" in str(info.value)


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter with extra environment variables."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=120, check=False)


def test_importing_the_backend_does_not_import_mxnet():
    done = run_python("""
        import sys
        import deepwater
        import deepwater.backends.mxnet.backend as backend
        assert backend.MXNetBackend().available()
        assert "mxnet" not in sys.modules, "mxnet imported"
        print("ok")
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_broken_mxnet_install_raises_missing_dependency(tmp_path):
    fake = tmp_path / "mxnet"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise OSError('libmxnet.so: cannot open shared object file')\n")
    done = run_python("""
        from deepwater.backends.mxnet.backend import MXNetBackend
        from deepwater.errors import MissingDependencyError
        from deepwater.networks import build_graph
        from deepwater.specs import OptimizerSpec, task_from_params
        backend = MXNetBackend()
        assert backend.available()
        try:
            backend.build(build_graph("mlp", (3,), 2, {"hidden": [4]}),
                          task_from_params("classification", 2, "AUTO", "Automatic"), OptimizerSpec(), "cpu", 0)
        except MissingDependencyError as error:
            print(error)
    """, PYTHONPATH=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "libmxnet.so" in done.stdout and "pip install 'deepwater[mxnet]'" in done.stdout


def test_building_a_net_keeps_torchs_thread_count():
    done = run_python("""
        import numpy as np
        import torch
        torch.set_num_threads(2)
        from deepwater.backends.mxnet.backend import MXNetBackend
        from deepwater.networks import build_graph
        from deepwater.specs import OptimizerSpec, task_from_params
        net = MXNetBackend().build(build_graph("mlp", (3,), 2, {"hidden": [4]}),
                                   task_from_params("classification", 2, "AUTO", "Automatic"), OptimizerSpec(), "cpu", 0)
        net.train_batch(np.zeros((4, 3), np.float32), np.zeros(4, np.int64))
        net.predict(np.zeros((4, 3), np.float32))
        print(torch.get_num_threads())
    """, OMP_NUM_THREADS="2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "2"
