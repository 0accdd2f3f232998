"""One conformance suite that every backend passes, parametrized over backend x network.

Each backend compiles the same networks.Graph; these tests check that the result is the same
network everywhere: parameter counts, layer names, feature shapes, probabilities, learning, and
weights moved from one backend to another giving the same predictions.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from conftest import installed_backends

from deepwater.networks import build_graph
from deepwater.registry import get_backend
from deepwater.specs import OptimizerSpec, TaskSpec

BACKENDS = installed_backends()
# network name -> input shape used in the suite (small, so the suite stays quick)
NETWORKS = {
    "mlp": (20,),
    "lenet": (1, 28, 28),
    "alexnet": (3, 16, 16),
    "vgg11": (3, 16, 16),
    "googlenet": (3, 16, 16),
    "inception_bn": (3, 16, 16),
    "resnet18": (3, 16, 16),
    "mobilenet_v2": (3, 32, 32),
}
CLASSES = 3
CLASSIFY = TaskSpec("classification", CLASSES, "cross_entropy", "multinomial")
REGRESS = TaskSpec("regression", 1, "quadratic", "gaussian")
SGD = OptimizerSpec(learning_rate=0.01, momentum_start=0.9, momentum_stable=0.9, learning_rate_annealing=0.0)


def _graph(network: str, n_outputs: int = CLASSES):
    return build_graph(network, NETWORKS[network], n_outputs, {"hidden": [16, 16]})


def _build(backend: str, network: str, task: TaskSpec = CLASSIFY, optimizer: OptimizerSpec = SGD, seed: int = 0):
    return get_backend(backend).build(_graph(network, task.n_outputs), task, optimizer, "cpu", seed)


def _inputs(network: str, rows: int = 4, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(rows, *NETWORKS[network])).astype(np.float32)


@pytest.fixture(scope="module")
def nets():
    """One built net per (backend, network), shared by the read-only tests."""
    cache: dict[tuple[str, str], object] = {}

    def get(backend: str, network: str):
        if (backend, network) not in cache:
            cache[(backend, network)] = _build(backend, network)
        return cache[(backend, network)]

    return get


pairs = pytest.mark.parametrize("backend,network", list(itertools.product(BACKENDS, NETWORKS)))


@pairs
def test_parameter_count_matches_the_graph(nets, backend, network):
    assert nets(backend, network).parameter_count() == _graph(network).param_count()


@pairs
def test_layer_names_and_feature_shapes_match_the_graph(nets, backend, network):
    net, graph = nets(backend, network), _graph(network)
    assert net.layers() == graph.layer_names()
    x = _inputs(network)
    for layer in ("output", graph.layer_names()[0], *[n for n in graph.layer_names() if n == "global_pool"]):
        expected = int(np.prod(graph.node(layer).shape))
        assert net.features(x, layer).shape == (len(x), expected)


@pairs
def test_predict_gives_probabilities(nets, backend, network):
    probabilities = nets(backend, network).predict(_inputs(network))
    assert probabilities.shape == (4, CLASSES)
    assert (probabilities >= 0).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_regression_predicts_one_value(backend):
    values = _build(backend, "mlp", REGRESS).predict(_inputs("mlp"))
    assert values.shape == (4, 1) and np.isfinite(values).all()


@pairs
def test_a_few_steps_lower_the_training_loss(backend, network):
    rng = np.random.default_rng(0)
    x = _inputs(network, rows=8, seed=2)
    y = rng.integers(0, CLASSES, size=len(x)).astype(np.int64)
    net = _build(backend, network, optimizer=OptimizerSpec(learning_rate=0.01, learning_rate_annealing=0.0))
    losses = [net.train_batch(x, y) for _ in range(10)]
    assert np.mean(losses[-3:]) < losses[0]


@pytest.mark.parametrize("source,target", [p for p in itertools.permutations(BACKENDS, 2)]
                         + [(b, b) for b in BACKENDS])
@pytest.mark.parametrize("network", list(NETWORKS))
def test_weights_moved_between_backends_give_the_same_predictions(nets, source, target, network):
    exporter, importer = _build(source, network, seed=3), nets(target, network)
    x = _inputs(network, seed=5)
    # a few steps move batch-norm statistics away from their initial values, so they are checked too
    y = np.arange(len(x)) % CLASSES
    for _ in range(2):
        exporter.train_batch(x, y)
    importer.set_state(exporter.get_state())
    np.testing.assert_allclose(importer.predict(x), exporter.predict(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_fallback_warning_says_why_there_is_no_gpu(backend, monkeypatch):
    from deepwater.devices import resolve_device

    instance = get_backend(backend)
    monkeypatch.setattr(type(instance), "devices", lambda self: ["cpu"])
    hint = instance.gpu_hint()
    assert isinstance(hint, str) and hint
    with pytest.warns(RuntimeWarning, match=f"backend '{backend}' sees no GPU") as caught:
        assert resolve_device(instance, True, [0]) == "cpu"
    assert hint in str(caught[0].message)


def _grouped_graph():
    """A small network of the ops MobileNetV2 needs, plus a grouped (not depthwise) conv and a dense head."""
    from deepwater.networks import GraphBuilder

    b = GraphBuilder((4, 9, 9))
    x = b.conv("grouped", "input", 6, kernel=3, pad=1, groups=2)
    x = b.act("grouped_relu6", x, "relu6")
    x = b.conv("depthwise", x, 6, kernel=3, stride=2, pad=1, groups=6, bias=False)
    x = b.act("depthwise_relu6", b.batch_norm("depthwise_bn", x), "relu6")
    b.dense("output", b.flatten("flatten", x), CLASSES)
    return b.graph


@pytest.mark.parametrize("backend", BACKENDS)
def test_grouped_convolutions_and_relu6_agree_with_torch(backend):
    if "torch" not in BACKENDS:
        pytest.skip("the reference backend, torch, is not installed")
    graph = _grouped_graph()
    assert graph.param_shapes()["grouped.weight"] == (6, 2, 3, 3)
    assert graph.param_shapes()["depthwise.weight"] == (6, 1, 3, 3)
    reference = get_backend("torch").build(graph, CLASSIFY, SGD, "cpu", 0)
    state = {k: v * 8 for k, v in reference.get_state().items()}  # large weights, so relu6 saturates
    reference.set_state(state)
    net = get_backend(backend).build(graph, CLASSIFY, SGD, "cpu", 1)
    assert net.parameter_count() == graph.param_count()
    net.set_state(state)
    x = np.random.default_rng(0).normal(scale=3.0, size=(5, 4, 9, 9)).astype(np.float32)
    activations = reference.features(x, "grouped_relu6")
    assert activations.max() == 6.0 and activations.min() == 0.0
    np.testing.assert_allclose(net.features(x, "grouped_relu6"), activations, atol=1e-4)
    np.testing.assert_allclose(net.features(x, "depthwise_relu6"), reference.features(x, "depthwise_relu6"), atol=1e-4)
    np.testing.assert_allclose(net.predict(x), reference.predict(x), atol=1e-4)
    for key, value in net.get_state().items():
        np.testing.assert_allclose(value, state[key], rtol=1e-6)
