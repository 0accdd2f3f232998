"""freeze, unfreeze_after_epochs and layer_lr_decay: the same behaviour on every backend (issue 26)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.base import clone

import deepwater as dw
from conftest import installed_backends, make_blobs
from deepwater.backends import testing
from deepwater.backends.base import layer_plan
from deepwater.errors import ParameterError
from deepwater.runtime.registry import get_backend
from deepwater.sklearn import DeepWaterClassifier
from deepwater.specs import OptimizerSpec
from deepwater.training.parameters import PARAMETERS

BACKENDS = installed_backends()
ROWS = 60
# plain SGD at a constant rate without clipping: one step moves each weight by rate * scale * gradient
PLAIN = OptimizerSpec(learning_rate=0.01, momentum_start=0.0, momentum_stable=0.0, lr_schedule="constant",
                      clip_gradient=None)
RULES = {  # every update rule, with the penalties and decays a frozen weight must not feel
    "sgd": replace(PLAIN, momentum_start=0.9, momentum_stable=0.9, l1=1e-3, l2=1e-2),
    "adam": replace(PLAIN, optimizer="adam", l2=1e-2),
    "adamw": replace(PLAIN, optimizer="adamw", weight_decay=0.1),
    "adadelta": replace(PLAIN, optimizer="adadelta", l1=1e-3),
}
LENET_BLOCKS = ["conv1", "conv2", "fc1", "output"]  # its layers with weights, each a block of its own


def trained(backend: str, network: str, spec: OptimizerSpec, steps: int = 2, rows: int = 8):
    """A net of `network` built with `spec`, its state before training, and the net after `steps` steps."""
    net = testing.build(get_backend(backend), network, optimizer=spec)
    before = net.get_state()
    x, y = testing.inputs(network, rows=rows, seed=3), np.arange(rows) % testing.CLASSES
    for _ in range(steps):
        net.train_batch(x, y)
    return net, before


def moved(before: dict, after: dict, layer: str) -> bool:
    """True when any array of `layer` changed."""
    return any(not np.array_equal(before[k], after[k]) for k in before if k.rsplit(".", 1)[0] == layer)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", list(RULES))
def test_frozen_weights_stay_bit_identical_while_the_others_train(backend, rule):
    net, before = trained(backend, "lenet", replace(RULES[rule], freeze=2))
    after = net.get_state()
    assert not moved(before, after, "conv1") and not moved(before, after, "conv2")
    assert moved(before, after, "fc1") and moved(before, after, "output")


@pytest.mark.parametrize("backend", BACKENDS)
def test_freeze_by_pattern_and_by_name_picks_the_same_layers(backend):
    by_pattern, before = trained(backend, "lenet", replace(RULES["sgd"], freeze=("conv*",)), steps=1)
    by_name, _ = trained(backend, "lenet", replace(RULES["sgd"], freeze=("conv1", "conv2")), steps=1)
    for name, value in by_pattern.get_state().items():
        np.testing.assert_array_equal(value, by_name.get_state()[name], err_msg=name)
    assert not moved(before, by_pattern.get_state(), "conv2") and moved(before, by_pattern.get_state(), "fc1")


def test_a_negative_count_leaves_that_many_blocks_at_the_output_to_train():
    graph = testing.graph_for("mobilenet_v2")
    everything = layer_plan(graph, replace(PLAIN, freeze=("conv1*", "block*", "conv_last*")))
    assert layer_plan(graph, replace(PLAIN, freeze=-1)).frozen == everything.frozen  # only the output layer trains
    assert "conv_last" not in layer_plan(graph, replace(PLAIN, freeze=-2)).frozen
    with pytest.raises(ParameterError, match=r"freeze=-60 counts more blocks .*\(-1: all but the output block\)"):
        layer_plan(graph, replace(PLAIN, freeze=-60))


def test_a_name_is_one_layer_and_a_prefix_stops_at_a_separator():
    plan = layer_plan(testing.graph_for("resnet18"), replace(PLAIN, freeze=("stage2", "conv1")))
    assert plan.frozen == {"conv1"} | {f"stage2_block{b}_conv{c}{bn}" for b in (1, 2) for c in (1, 2)
                                                  for bn in ("", "_bn")}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_frozen_batch_norm_keeps_its_running_statistics(backend):
    # resnet18's first block is conv1 with conv1_bn: frozen, the batch norm normalises with its running
    # statistics (eval mode) and leaves them; the next block's batch norm updates its own
    net, before = trained(backend, "resnet18", replace(RULES["adam"], freeze=1))
    after = net.get_state()
    for name in ("conv1.weight", "conv1_bn.weight", "conv1_bn.bias", "conv1_bn.running_mean", "conv1_bn.running_var"):
        np.testing.assert_array_equal(after[name], before[name], err_msg=name)
    assert not np.array_equal(after["stage2_block1_conv1_bn.running_mean"],
                              before["stage2_block1_conv1_bn.running_mean"])


@pytest.mark.parametrize("backend", BACKENDS)
def test_frozen_layers_train_once_unfreeze_samples_have_passed(backend):
    # batches of 8 rows, unfrozen after 8: the first step leaves conv1 alone, the second moves it
    net, before = trained(backend, "lenet", replace(RULES["adam"], freeze=("conv1",), unfreeze_samples=8), steps=1)
    assert not moved(before, net.get_state(), "conv1")
    net.train_batch(testing.inputs("lenet", rows=8, seed=4), np.arange(8) % testing.CLASSES)
    assert moved(before, net.get_state(), "conv1")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", ["sgd", "adam"])
def test_layer_lr_decay_scales_each_block_update_by_decay_to_its_depth(backend, rule):
    # the first step of plain SGD moves a weight by rate * scale * gradient, Adam's by about rate * scale
    # (its step is normalised: scaling the gradient instead would leave the ratio at 1)
    spec = PLAIN if rule == "sgd" else replace(PLAIN, optimizer="adam")
    decay = 0.5
    plain, before = trained(backend, "lenet", spec, steps=1)
    decayed, _ = trained(backend, "lenet", replace(spec, layer_lr_decay=decay), steps=1)
    for depth, layer in enumerate(reversed(LENET_BLOCKS)):
        for name in (f"{layer}.weight", f"{layer}.bias"):
            step, scaled = plain.get_state()[name] - before[name], decayed.get_state()[name] - before[name]
            ratio = np.abs(scaled).sum() / np.abs(step).sum()
            assert ratio == pytest.approx(decay ** depth, rel=1e-3), name


# --------------------------------------------------------------------------- through the estimator

@pytest.fixture(scope="module")
def frame():
    return make_blobs(ROWS, seed=5)


def mlp(backend: str, **params) -> dw.DeepWaterEstimator:
    """A small MLP (blocks fc1, output) scored once per epoch that keeps its last weights."""
    defaults = {"hidden": [8], "epochs": 1, "gpu": False, "quiet_mode": True, "seed": 7, "backend": backend,
                "mini_batch_size": 20, "train_samples_per_iteration": ROWS, "stopping_rounds": 0,
                "overwrite_with_best_model": False, "optimizer": "adam", "learning_rate": 0.01,
                "freeze": 1, "unfreeze_after_epochs": 2}
    return dw.DeepWaterEstimator(**{**defaults, **params})


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_restart_keeps_the_freeze_and_counts_the_epochs_already_done(backend, frame, tmp_path):
    first = mlp(backend).train(y="label", training_frame=frame)
    path = dw.save_model(first, tmp_path)
    start = first._fitted.net.get_state()
    still_frozen = dw.DeepWaterEstimator(checkpoint=path, epochs=2).train(y="label", training_frame=frame)
    after_two = still_frozen._fitted.net.get_state()
    assert not moved(start, after_two, "fc1") and moved(start, after_two, "output")
    thawed = dw.DeepWaterEstimator(checkpoint=path, epochs=3).train(y="label", training_frame=frame)
    straight = mlp(backend, epochs=3).train(y="label", training_frame=frame)
    assert moved(start, thawed._fitted.net.get_state(), "fc1")
    for name, value in straight._fitted.net.get_state().items():
        np.testing.assert_allclose(thawed._fitted.net.get_state()[name], value, rtol=1e-6, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("name,value", [("freeze", 1.5), ("freeze", [""]), ("freeze", True),
                                        ("unfreeze_after_epochs", -1), ("layer_lr_decay", 0),
                                        ("layer_lr_decay", 1.5)])
def test_values_out_of_range_name_the_parameter_and_the_value(name, value):
    with pytest.raises(ParameterError, match=rf"{name}.*{value!r}".replace("[", r"\[")):
        dw.DeepWaterEstimator(**{name: value})


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_layers_and_counts_beyond_the_blocks_are_refused(backend):
    with pytest.raises(ParameterError, match=r"freeze=\['conv'\]: 'conv' is not a layer.*'conv1'"):
        trained(backend, "lenet", replace(PLAIN, freeze=("conv",)), steps=0)
    with pytest.raises(ParameterError, match=r"'tanh\*' names \['tanh1', 'tanh2', 'tanh3'\], layers without weights"):
        trained(backend, "lenet", replace(PLAIN, freeze=("tanh*",)), steps=0)
    with pytest.raises(ParameterError, match=r"freeze=5 counts more blocks than the network's 4"):
        trained(backend, "lenet", replace(PLAIN, freeze=5), steps=0)
    with pytest.raises(ParameterError, match=r"freeze=4 keeps every layer with weights fixed"):
        trained(backend, "lenet", replace(PLAIN, freeze=4), steps=0)


def test_a_user_graph_says_it_has_no_blocks(frame, tmp_path):
    graph = tmp_path / "net.onnx"
    graph.write_bytes(b"")
    with pytest.raises(ParameterError, match=r"freeze=2 .*not on a user graph file"):
        dw.DeepWaterEstimator(network="user", network_definition_file=str(graph), freeze=2).train(
            y="label", training_frame=frame)


def test_freeze_over_data_parallel_replicas_is_refused(frame):
    with pytest.raises(ParameterError, match=r"freeze=1 trains on one device for now"):
        mlp(BACKENDS[0], device_id=[0, 1]).train(y="label", training_frame=frame)


def test_the_scikit_learn_wrapper_takes_and_clones_them(frame):
    model = DeepWaterClassifier(hidden=[8], epochs=1, backend=BACKENDS[0], gpu=False, freeze=1,
                                unfreeze_after_epochs=0.5, layer_lr_decay=0.5)
    assert {k: clone(model).get_params()[k] for k in ("freeze", "unfreeze_after_epochs", "layer_lr_decay")} == \
        {"freeze": 1, "unfreeze_after_epochs": 0.5, "layer_lr_decay": 0.5}
    model.fit(frame[["x1", "x2"]], frame["label"])
    assert model.predict(frame[["x1", "x2"]]).shape == (ROWS,)


def test_unfreeze_and_the_decay_may_change_at_a_restart_but_freeze_may_not():
    assert PARAMETERS["unfreeze_after_epochs"].checkpoint_mutable and PARAMETERS["layer_lr_decay"].checkpoint_mutable
    assert not PARAMETERS["freeze"].checkpoint_mutable
