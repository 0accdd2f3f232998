"""Networks defined once over the graph builder, and their torch compilation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from deepwater import ModelFileError, ParameterError, networks
from deepwater.networks import (
    GraphBuilder,
    ShapeError,
    build_graph,
    smallest_image_size,
)
from deepwater.specs import OptimizerSpec, TaskSpec, task_from_params

torch = pytest.importorskip("torch")
from deepwater.backends.torch.net import TorchNet

LENET_LAYERS = ["conv1", "tanh1", "pool1", "conv2", "tanh2", "pool2", "flatten", "fc1", "tanh3", "output"]


def conv_out(side: int, kernel: int, stride: int = 1) -> int:
    return (side - kernel) // stride + 1


def lenet_params_by_hand(c: int, h: int, w: int, n: int) -> int:
    """conv: out*in*k*k + out; dense: out*in + out."""
    conv1 = 20 * c * 5 * 5 + 20
    h, w = conv_out(conv_out(h, 5), 2, 2), conv_out(conv_out(w, 5), 2, 2)
    conv2 = 50 * 20 * 5 * 5 + 50
    h, w = conv_out(conv_out(h, 5), 2, 2), conv_out(conv_out(w, 5), 2, 2)
    fc1 = 500 * (50 * h * w) + 500
    return conv1 + conv2 + fc1 + (n * 500 + n)


def mlp_params_by_hand(k: int, hidden: list[int], n: int, pieces: int = 1) -> int:
    total, width = 0, k
    for units in hidden:
        total += pieces * units * width + pieces * units
        width = units
    return total + n * width + n


def lenet_smallest_side() -> int:
    for side in range(1, 200):
        h = side
        ok = True
        for kernel, stride in [(5, 1), (2, 2), (5, 1), (2, 2)]:
            if h < kernel:
                ok = False
                break
            h = conv_out(h, kernel, stride)
        if ok:
            return side
    raise AssertionError("no size fits")


def classification(n: int) -> TaskSpec:
    return task_from_params("classification", n, "AUTO", "Automatic")


def make_net(graph, n_outputs=3, seed=0, **optimizer) -> TorchNet:
    return TorchNet(graph, classification(n_outputs), OptimizerSpec(**optimizer), "cpu", seed)


def torch_param_count(net: TorchNet) -> int:
    return sum(p.numel() for p in net.module.parameters())


# --------------------------------------------------------------------------- parameter counts and names

@pytest.mark.parametrize("shape, n", [((1, 28, 28), 10), ((3, 16, 16), 2), ((3, 32, 20), 5)])
def test_lenet_parameter_count(shape, n):
    graph = build_graph("lenet", shape, n)
    expected = lenet_params_by_hand(*shape, n)
    assert graph.param_count() == expected
    assert torch_param_count(make_net(graph, n)) == expected


@pytest.mark.parametrize("hidden, activation, pieces", [
    ([5, 4], "Rectifier", 1),
    ([7], "Tanh", 1),
    ([6, 3], "Maxout", 2),
    ([6, 3], "MaxoutWithDropout", 2),
])
def test_mlp_parameter_count(hidden, activation, pieces):
    graph = build_graph("mlp", (11,), 3, {"hidden": hidden, "activation": activation})
    expected = mlp_params_by_hand(11, hidden, 3, pieces)
    assert graph.param_count() == expected
    assert torch_param_count(make_net(graph)) == expected


def test_param_shapes_follow_the_torch_layout():
    graph = build_graph("lenet", (3, 28, 28), 4)
    shapes = graph.param_shapes()
    assert shapes["conv1.weight"] == (20, 3, 5, 5)
    assert shapes["conv2.weight"] == (50, 20, 5, 5)
    assert shapes["fc1.weight"] == (500, 50 * 4 * 4)
    assert shapes["output.bias"] == (4,)
    module_shapes = {k.removeprefix("layers."): tuple(v.shape) for k, v in make_net(graph, 4).module.state_dict().items()}
    assert module_shapes == shapes


def test_lenet_layer_names_and_shapes():
    graph = build_graph("lenet", (1, 28, 28), 10)
    assert graph.layer_names() == LENET_LAYERS
    assert graph.node("conv1").shape == (20, 24, 24)
    assert graph.node("pool1").shape == (20, 12, 12)
    assert graph.node("conv2").shape == (50, 8, 8)
    assert graph.node("pool2").shape == (50, 4, 4)
    assert graph.node("flatten").shape == (800,)
    assert graph.node("output").shape == (10,)
    assert make_net(graph, 10).layers() == LENET_LAYERS


def test_mlp_layer_names():
    graph = build_graph("mlp", (4,), 2, {"hidden": [8, 6], "activation": "RectifierWithDropout",
                                         "input_dropout_ratio": 0.1})
    assert graph.layer_names() == ["input_dropout", "fc1", "act1", "dropout1", "fc2", "act2", "dropout2", "output"]
    assert graph.node("dropout1").attrs["rate"] == 0.5  # H2O's default for *WithDropout
    plain = build_graph("mlp", (4,), 2, {"hidden": [8], "activation": "Tanh"})
    assert plain.layer_names() == ["fc1", "act1", "output"]
    assert plain.node("act1").attrs["kind"] == "tanh"
    maxout = build_graph("mlp", (4,), 2, {"hidden": [8], "activation": "Maxout"})
    assert maxout.layer_names() == ["fc1", "maxout1", "output"]
    assert maxout.node("fc1").shape == (16,) and maxout.node("maxout1").shape == (8,)


def test_mlp_hidden_dropout_ratios_are_used_per_layer():
    graph = build_graph("mlp", (4,), 2, {"hidden": [8, 6], "activation": "Tanh", "hidden_dropout_ratios": [0.2, 0.0]})
    assert graph.node("dropout1").attrs["rate"] == 0.2
    assert "dropout2" not in graph.layer_names()


def test_mlp_hidden_dropout_ratios_length_must_match():
    with pytest.raises(ParameterError) as info:
        build_graph("mlp", (4,), 2, {"hidden": [8, 6], "hidden_dropout_ratios": [0.2]})
    assert "hidden_dropout_ratios" in str(info.value)


def test_mlp_on_images_flattens_first():
    graph = build_graph("mlp", (3, 4, 5), 2, {"hidden": [7]})
    assert graph.layer_names()[0] == "flatten"
    assert graph.param_count() == mlp_params_by_hand(60, [7], 2)


# --------------------------------------------------------------------------- image sizes

def test_smallest_image_size_for_lenet():
    smallest = lenet_smallest_side()
    assert smallest_image_size(networks.get("lenet"), 1, 10) == smallest
    assert smallest_image_size(networks.get("lenet"), 3, 2) == smallest
    build_graph("lenet", (1, smallest, smallest), 10)
    build_graph("lenet", (1, smallest, smallest + 7), 10)
    with pytest.raises(ParameterError) as info:
        build_graph("lenet", (1, smallest - 1, smallest - 1), 10)
    message = str(info.value)
    assert f"[{smallest}, {smallest}]" in message
    assert f"image_shape=[{smallest - 1}, {smallest - 1}]" in message
    with pytest.raises(ParameterError):
        build_graph("lenet", (1, smallest, smallest - 1), 10)


def test_lenet_needs_images():
    with pytest.raises(ParameterError) as info:
        build_graph("lenet", (20,), 3)
    assert "mlp" in str(info.value)


def test_builder_shape_checks():
    builder = GraphBuilder((3, 6, 6))
    builder.conv("c", "input", filters=2, kernel=3)
    with pytest.raises(ShapeError):
        builder.conv("too_big", "c", filters=2, kernel=5)
    with pytest.raises(ShapeError):
        builder.dense("d", "c", 4)  # needs flatten first
    with pytest.raises(ValueError):
        builder.conv("c", "input", filters=2, kernel=3)  # duplicate name
    flat = builder.flatten("f", "c")
    assert builder.shape(flat) == (2 * 4 * 4,)
    with pytest.raises(ValueError):
        builder.maxout("m", flat, pieces=3)  # 32 units do not split into 3


# --------------------------------------------------------------------------- registry of networks

def test_network_lookup():
    assert networks.get("LeNet").name == "lenet"
    with pytest.raises(ParameterError) as info:
        networks.get("resnet9000")
    assert "'resnet9000'" in str(info.value)
    assert "'mlp'" in str(info.value) and "'lenet'" in str(info.value)


def test_auto_network_choice():
    assert networks.resolve_auto("auto", is_image=False) == "mlp"
    chosen = networks.resolve_auto("AUTO", is_image=True)
    assert networks.NETWORKS[chosen].needs_image
    assert networks.resolve_auto("MLP", is_image=True) == "mlp"


# --------------------------------------------------------------------------- torch net

def test_features_shape_matches_every_node():
    graph = build_graph("lenet", (1, 16, 16), 3)
    net = make_net(graph)
    x = np.random.default_rng(0).random((4, 1, 16, 16), dtype=np.float32)
    for layer in graph.layer_names():
        features = net.features(x, layer)
        assert features.shape == (4, math.prod(graph.node(layer).shape)), layer


def test_features_of_the_mlp_layers():
    graph = build_graph("mlp", (6,), 3, {"hidden": [5, 4], "activation": "Maxout"})
    net = make_net(graph)
    x = np.random.default_rng(1).normal(size=(7, 6)).astype(np.float32)
    for layer in graph.layer_names():
        assert net.features(x, layer).shape == (7, math.prod(graph.node(layer).shape))
    # maxout is the max over consecutive pairs of the dense layer before it
    dense = net.features(x, "fc1")
    np.testing.assert_allclose(net.features(x, "maxout1"), dense.reshape(7, 5, 2).max(axis=2), rtol=1e-6)


def test_output_features_are_the_logits_of_predict():
    graph = build_graph("mlp", (6,), 3, {"hidden": [5]})
    net = make_net(graph)
    x = np.random.default_rng(2).normal(size=(9, 6)).astype(np.float32)
    logits = net.features(x, "output").astype(np.float64)
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(net.predict(x), softmax, rtol=1e-5, atol=1e-7)


def test_features_of_an_unknown_layer_is_an_error():
    net = make_net(build_graph("mlp", (6,), 3, {"hidden": [5]}))
    with pytest.raises((KeyError, ValueError)):
        net.features(np.zeros((2, 6), dtype=np.float32), "no_such_layer")


def test_same_seed_same_initial_weights_and_different_seed_differs():
    graph = build_graph("mlp", (6,), 3, {"hidden": [5]})
    a, b, c = make_net(graph, seed=3), make_net(graph, seed=3), make_net(graph, seed=4)
    for key, value in a.get_state().items():
        np.testing.assert_array_equal(value, b.get_state()[key])
    assert not np.array_equal(a.get_state()["fc1.weight"], c.get_state()["fc1.weight"])


def test_state_round_trip_gives_identical_predictions():
    graph = build_graph("lenet", (1, 16, 16), 2)
    rng = np.random.default_rng(5)
    x = rng.random((6, 1, 16, 16), dtype=np.float32)
    y = rng.integers(0, 2, size=6)
    trained = make_net(graph, 2, seed=1, learning_rate=0.05)
    for _ in range(3):
        trained.train_batch(x, y)
    state = trained.get_state()
    assert set(state) == set(graph.param_shapes())
    assert all(state[k].shape == s for k, s in graph.param_shapes().items())

    fresh = make_net(graph, 2, seed=2)
    assert not np.allclose(fresh.predict(x), trained.predict(x))
    fresh.set_state(state)
    np.testing.assert_array_equal(fresh.predict(x), trained.predict(x))
    np.testing.assert_array_equal(fresh.features(x, "fc1"), trained.features(x, "fc1"))


def test_get_state_returns_copies():
    net = make_net(build_graph("mlp", (6,), 3, {"hidden": [5]}))
    x = np.ones((2, 6), dtype=np.float32)
    before = net.predict(x)
    state = net.get_state()
    state["fc1.weight"][:] = 1000.0
    np.testing.assert_array_equal(net.predict(x), before)


def test_set_state_with_a_wrong_shape_is_a_model_file_error():
    graph = build_graph("mlp", (6,), 3, {"hidden": [5]})
    net = make_net(graph)
    state = net.get_state()
    state["fc1.weight"] = np.zeros((4, 6), dtype=np.float32)
    with pytest.raises(ModelFileError) as info:
        net.set_state(state)
    assert "fc1.weight" in str(info.value)


def test_set_state_with_missing_or_extra_names_is_a_model_file_error():
    net = make_net(build_graph("mlp", (6,), 3, {"hidden": [5]}))
    state = net.get_state()
    missing = {k: v for k, v in state.items() if k != "output.bias"}
    with pytest.raises(ModelFileError) as info:
        net.set_state(missing)
    assert "output.bias" in str(info.value)
    extra = {**state, "fc9.weight": np.zeros((1, 1), dtype=np.float32)}
    with pytest.raises(ModelFileError) as info:
        net.set_state(extra)
    assert "fc9.weight" in str(info.value)


def test_state_of_another_network_does_not_load():
    small = make_net(build_graph("mlp", (6,), 3, {"hidden": [5]}))
    other = make_net(build_graph("mlp", (6,), 3, {"hidden": [5, 5]}))
    before = small.get_state()
    with pytest.raises(ModelFileError):
        small.set_state(other.get_state())
    for key, value in small.get_state().items():
        np.testing.assert_array_equal(value, before[key])  # a failed load changes nothing


def test_zero_weight_rows_do_not_change_a_step():
    graph = build_graph("mlp", (6,), 3, {"hidden": [5]})
    rng = np.random.default_rng(6)
    x = rng.normal(size=(8, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=8)
    junk_x = rng.normal(size=(5, 6)).astype(np.float32) * 100
    junk_y = rng.integers(0, 3, size=5)
    plain = make_net(graph, seed=9, learning_rate=0.1)
    weighted = make_net(graph, seed=9, learning_rate=0.1)
    loss_plain = plain.train_batch(x, y)
    loss_weighted = weighted.train_batch(np.concatenate([x, junk_x]), np.concatenate([y, junk_y]),
                                         np.concatenate([np.ones(8), np.zeros(5)]).astype(np.float32))
    assert loss_weighted == pytest.approx(loss_plain, rel=1e-5)
    for key, value in plain.get_state().items():
        np.testing.assert_allclose(weighted.get_state()[key], value, rtol=1e-5, atol=1e-7)


def test_training_steps_reduce_the_loss_on_a_fixed_batch():
    graph = build_graph("mlp", (6,), 3, {"hidden": [16]})
    rng = np.random.default_rng(7)
    x = rng.normal(size=(30, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    net = make_net(graph, learning_rate=0.1)
    first = net.train_batch(x, y)
    for _ in range(30):
        last = net.train_batch(x, y)
    assert last < 0.5 * first


def test_regression_net_outputs_one_column():
    graph = build_graph("mlp", (6,), 1, {"hidden": [4]})
    task = task_from_params("regression", 0, "AUTO", "Automatic")
    net = TorchNet(graph, task, OptimizerSpec(), "cpu", 0)
    out = net.predict(np.zeros((3, 6), dtype=np.float32))
    assert out.shape == (3, 1)
    assert isinstance(net.train_batch(np.zeros((3, 6), dtype=np.float32), np.zeros(3, dtype=np.float32)), float)
