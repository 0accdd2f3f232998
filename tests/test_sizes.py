"""Sizes that cannot fit in memory are refused from the Graph's shapes, before any framework allocates them."""
from __future__ import annotations

import resource

import pandas as pd
import pytest

import deepwater as dw
from conftest import installed_backends
from deepwater import ParameterError, networks
from deepwater.networks import FLOAT32_BYTES
from deepwater.runtime import memory
from deepwater.runtime.build import build_net
from deepwater.runtime.memory import memory_bytes
from deepwater.runtime.registry import get_backend
from deepwater.specs import OptimizerSpec, TaskSpec

BACKENDS = installed_backends()
GIGABYTE = 10**9
GROWTH_LIMIT_KB = 2 * 1024 * 1024  # ru_maxrss is in KiB on Linux: the process peak may not grow by 2 GiB
TASK = TaskSpec("classification", 2, "cross_entropy", "bernoulli")
SGD = OptimizerSpec(momentum_start=0.9, momentum_stable=0.9)


def peak_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def never_built(monkeypatch: pytest.MonkeyPatch, backend: str) -> list[object]:
    """A list that records every backend.build() call of `backend` (each of which fails the test)."""
    calls: list[object] = []
    monkeypatch.setattr(type(get_backend(backend)), "build", lambda self, *args, **kwargs: calls.append(args))
    return calls


def needs_more_than_this_machine(needed: int) -> None:
    available = memory_bytes(["cpu"])
    if available is None or available >= needed:
        pytest.skip(f"this machine's memory ({available} bytes) is not known or holds {needed} bytes")


def params(**given: object) -> dict[str, object]:
    """The estimator's full parameters with `given` changed."""
    return dw.DeepWaterEstimator(**given)._params


@pytest.mark.parametrize("backend", BACKENDS)
def test_huge_hidden_layers_are_refused_before_the_net_is_built(backend: str, blobs: pd.DataFrame,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    needs_more_than_this_machine(120 * GIGABYTE)
    calls, before = never_built(monkeypatch, backend), peak_rss_kb()
    model = dw.DeepWaterEstimator(network="mlp", hidden=[100000, 100000], backend=backend, gpu=False, epochs=1)
    with pytest.raises(ParameterError, match=r"hidden=\[100000, 100000\] needs 1\d\d\.\d GB") as error:
        model.train(x=["x1", "x2", "colour"], y="label", training_frame=blobs)
    assert "of memory: use smaller hidden layers" in str(error.value)
    assert calls == [] and peak_rss_kb() - before < GROWTH_LIMIT_KB


@pytest.mark.parametrize("network", ["lenet", "resnet18"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_huge_images_are_refused_before_the_net_is_built(backend: str, network: str, image_frame: pd.DataFrame,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    needs_more_than_this_machine(500 * GIGABYTE)
    calls, before = never_built(monkeypatch, backend), peak_rss_kb()
    model = dw.DeepWaterEstimator(network=network, image_shape=[20000, 20000], backend=backend, gpu=False, epochs=1)
    with pytest.raises(ParameterError, match=r"image_shape=\[20000, 20000\] needs \d+\.\d GB") as error:
        model.train(x="uri", y="label", training_frame=image_frame)
    assert f"network={network!r}" in str(error.value) and "use a smaller image_shape" in str(error.value)
    assert calls == [] and peak_rss_kb() - before < GROWTH_LIMIT_KB


def test_the_message_names_the_bytes_the_memory_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "memory_bytes", lambda devices: 24 * GIGABYTE)
    graph = networks.build_graph("mlp", (784,), 10, {"hidden": [100000, 100000]})
    adadelta = OptimizerSpec(adaptive_rate=True)
    with pytest.raises(ParameterError) as error:
        memory.check_memory(graph, "mlp", (784,), params(hidden=[100000, 100000]), adadelta, ["cpu"])
    assert str(error.value) == (
        "hidden=[100000, 100000] needs 161.3 GB for the weights of network='mlp', their gradients and optimizer "
        "state (float32); this machine has 24.0 GB of memory: use smaller hidden layers (for 784 input values).")


def test_a_huge_mini_batch_is_refused_with_the_size_that_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "memory_bytes", lambda devices: 24 * GIGABYTE)
    graph = networks.build_graph("resnet18", (3, 224, 224), 2)
    huge = params(mini_batch_size=100000)
    with pytest.raises(ParameterError, match=r"^mini_batch_size=100000 needs \d+\.\d GB .* image_shape=\[224, 224\].*"
                                             r"use mini_batch_size=\d+ or less, or a smaller image_shape\.$"):
        memory.check_memory(graph, "resnet18", (3, 224, 224), huge, SGD, ["cpu"], rows=200000)
    memory.check_memory(graph, "resnet18", (3, 224, 224), huge, SGD, ["cpu"], rows=24)  # batches of 24 fit
    memory.check_memory(graph, "resnet18", (3, 224, 224), huge, SGD, ["cpu"])  # rows unknown: one row must fit


def test_gpus_are_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    graph = networks.build_graph("lenet", (3, 20000, 20000), 2)
    memory.check_memory(graph, "lenet", (3, 20000, 20000), params(), SGD, ["cuda:0"])
    with pytest.raises(ParameterError, match="image_shape"):
        memory.check_memory(graph, "lenet", (3, 20000, 20000), params(), SGD, ["cpu"])


def test_the_estimate_comes_from_shapes_alone() -> None:
    before = peak_rss_kb()
    for network in ("lenet", "resnet", "vgg16", "inception_bn"):
        estimate = networks.build_graph(network, (3, 20000, 20000), 2).memory_estimate()
        assert estimate.batch_bytes(1) > 100 * GIGABYTE
    assert peak_rss_kb() - before < GROWTH_LIMIT_KB


def test_scoring_on_the_cpu_cuts_only_batches_of_big_feature_maps() -> None:
    big = networks.build_graph("mobilenet_v2", (3, 224, 224), 10)
    small = networks.build_graph("mobilenet_v2", (3, 64, 64), 10)
    mlp = networks.build_graph("mlp", (784,), 10, {"hidden": [200, 200]})
    assert memory.cpu_scoring_rows(big) < memory.cpu_scoring_rows(small) < 256 <= memory.cpu_scoring_rows(mlp)
    for graph in (big, small, mlp):
        rows = memory.cpu_scoring_rows(graph)
        assert rows * graph.largest_output() * FLOAT32_BYTES <= memory.CPU_SCORING_BYTES
        assert (rows + 1) * graph.largest_output() * FLOAT32_BYTES > memory.CPU_SCORING_BYTES


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_net_built_on_the_cpu_scores_in_those_cuts(backend: str) -> None:
    _, _, net = build_net("lenet", None, backend, (1, 28, 28), TASK, params(gpu=False), seed=1)
    assert net.scoring_rows == memory.cpu_scoring_rows(networks.build_graph("lenet", (1, 28, 28), 2))


def test_the_optimizer_slots() -> None:
    assert memory.optimizer_slots(OptimizerSpec(adaptive_rate=True)) == 2
    assert memory.optimizer_slots(SGD) == 1
    assert memory.optimizer_slots(OptimizerSpec(momentum_start=0.0, momentum_stable=0.0)) == 0


def test_the_machine_memory_is_read() -> None:
    available = memory_bytes(["cpu", "cpu:1"])
    assert available is None or available > 0
    assert memory_bytes(["cuda:0"]) is None


@pytest.mark.parametrize(("network", "input_shape"), [("mlp", (784,)), ("resnet18", (3, 224, 224))])
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_estimate_agrees_with_the_framework(backend: str, network: str, input_shape: tuple[int, ...]) -> None:
    graph = networks.build_graph(network, input_shape, 10, {"hidden": [200, 200]})
    net = get_backend(backend).build(graph, TaskSpec("classification", 10, "cross_entropy", "multinomial"), SGD,
                                     "cpu", 0)
    framework_bytes = net.parameter_count() * networks.FLOAT32_BYTES
    estimate = graph.memory_estimate()
    assert framework_bytes / 2 <= estimate.state_values * networks.FLOAT32_BYTES <= framework_bytes * 2
    assert estimate.weight_bytes(1) == (estimate.state_values + 2 * estimate.param_values) * networks.FLOAT32_BYTES
