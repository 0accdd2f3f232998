"""One conformance suite that every backend passes, parametrized over backend x network.

The checks live in deepwater.backends.testing (public, so that a plug-in backend runs them on itself);
this suite runs each on every installed backend and network, and moves weights between every pair of
backends.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from conftest import installed_backends
from deepwater.backends import testing
from deepwater.backends.testing import CLASSIFY, NETWORKS, SGD
from deepwater.runtime.registry import get_backend

BACKENDS = installed_backends()


@pytest.fixture(scope="module")
def nets():
    """One built net per (backend, network), shared by the read-only tests."""
    cache: dict[tuple[str, str], object] = {}

    def get(backend: str, network: str):
        if (backend, network) not in cache:
            cache[(backend, network)] = testing.build(get_backend(backend), network)
        return cache[(backend, network)]

    return get


pairs = pytest.mark.parametrize("backend,network", list(itertools.product(BACKENDS, NETWORKS)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_backend_implements_the_protocol(backend):
    testing.check_protocol(get_backend(backend))


@pairs
def test_parameter_count_matches_the_graph(nets, backend, network):
    testing.check_parameter_count(nets(backend, network), network)


@pairs
def test_layer_names_and_feature_shapes_match_the_graph(nets, backend, network):
    testing.check_layers_and_features(nets(backend, network), network)


@pairs
def test_predict_gives_probabilities(nets, backend, network):
    testing.check_probabilities(nets(backend, network), network)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("network", ["mlp", "lenet", "mobilenet_v2"])
def test_scoring_in_chunks_gives_what_one_pass_gives(nets, backend, network):
    testing.check_scoring_in_chunks(nets(backend, network), network)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("network", ["mlp", "lenet", "resnet18"])
def test_empty_batches_unknown_layers_and_misfit_weights(nets, backend, network):
    net = nets(backend, network)
    testing.check_empty_batches(net, network)
    testing.check_unknown_layer(net)
    testing.check_state_misfit(net)


@pytest.mark.parametrize("backend", BACKENDS)
def test_regression_predicts_one_value(backend):
    testing.check_regression(get_backend(backend))


@pairs
def test_a_few_steps_lower_the_training_loss(backend, network):
    testing.check_training_lowers_loss(get_backend(backend), network)


@pairs
def test_a_net_given_the_training_state_takes_the_same_next_steps(backend, network):
    testing.check_training_state_continues(get_backend(backend), network)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("network", ["mlp", "lenet"])
@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_keeps_float32_weights_or_names_the_limit(backend, network, precision):
    testing.check_mixed_precision(get_backend(backend), network, precision)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("optimizer", ["ADADELTA", "ADAM", "ADAMW"])
def test_a_net_given_the_training_state_takes_the_same_next_steps_with_every_optimizer(backend, optimizer):
    """ADADELTA's accumulators, Adam's moments and step count, and AdamW's cosine schedule carry over."""
    testing.check_training_state_continues(get_backend(backend), "mlp", getattr(testing, optimizer))


@pytest.mark.parametrize("backend", BACKENDS)
def test_another_optimisers_state_is_refused(backend):
    testing.check_training_state_misfit(get_backend(backend))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", list(testing.TRAINING_RULES))
def test_optimisers_schedules_and_label_smoothing_step_as_torch_does(backend, rule):
    if "torch" not in BACKENDS:
        pytest.skip("the reference backend, torch, is not installed")
    testing.check_steps_match(get_backend(backend), get_backend("torch"), rule)


@pytest.mark.parametrize("source,target", [p for p in itertools.permutations(BACKENDS, 2)]
                         + [(b, b) for b in BACKENDS])
@pytest.mark.parametrize("network", list(NETWORKS))
def test_weights_moved_between_backends_give_the_same_predictions(nets, source, target, network):
    testing.check_weights_move(get_backend(source), nets(target, network), network)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("network", ["mlp", "lenet", "resnet18"])
def test_class_gradients_agree_with_finite_differences_and_with_torch(backend, network):
    """What model.explain() needs: a layer's values and gradients, the same on every backend for the same weights."""
    reference = testing.build(get_backend("torch"), network, seed=4) if "torch" in BACKENDS else None
    testing.check_class_gradients(testing.build(get_backend(backend), network), network, reference)


def test_a_plugin_runs_every_check_on_itself():
    """check_backend() is what a plug-in author runs: here on the torch backend with two small networks."""
    if "torch" not in BACKENDS:
        pytest.skip("torch is not installed")
    testing.check_backend(get_backend("torch"), networks=("mlp", "lenet"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_fallback_warning_says_why_there_is_no_gpu(backend, monkeypatch):
    from deepwater.runtime.devices import resolve_devices

    instance = get_backend(backend)
    monkeypatch.setattr(type(instance), "devices", lambda self: ["cpu"])
    hint = instance.gpu_hint()
    assert isinstance(hint, str) and hint
    with pytest.warns(RuntimeWarning, match=f"backend '{backend}' sees no GPU") as caught:
        assert resolve_devices(instance, True, [0]) == ["cpu"]
    assert hint in str(caught[0].message)
    assert caught[0].filename == __file__  # at the caller's line, however deep in deepwater it was raised


def _grouped_graph():
    """A small network of the ops MobileNetV2 needs, plus a grouped (not depthwise) conv and a dense head."""
    from deepwater.networks import GraphBuilder

    b = GraphBuilder((4, 9, 9))
    x = b.conv("grouped", "input", 6, kernel=3, pad=1, groups=2)
    x = b.act("grouped_relu6", x, "relu6")
    x = b.conv("depthwise", x, 6, kernel=3, stride=2, pad=1, groups=6, bias=False)
    x = b.act("depthwise_relu6", b.batch_norm("depthwise_bn", x), "relu6")
    b.dense("output", b.flatten("flatten", x), testing.CLASSES)
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
