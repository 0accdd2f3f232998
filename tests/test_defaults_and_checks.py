"""H2O parity on inputs and defaults (issue #11): Deep Water's defaults, every parameter checked at construction,
network_definition_file with network='auto', epochs=inf, resolved 'actual' values, the hint for a numeric
response of a few integers and MXNet's binding notice kept off the terminal."""
from __future__ import annotations

import math
import os
import warnings

import numpy as np
import pandas as pd
import pytest

from conftest import installed_backends
from deepwater import DeepWaterEstimator, ParameterError, networks
from deepwater.backends.mxnet.runtime import SUBGRAPH_NOTICE, stderr_without
from deepwater.runtime import registry
from deepwater.training import parameters as table

FAST = {"gpu": False, "quiet_mode": True, "hidden": [8], "epochs": 1, "seed": 3}


def error_of(**given) -> str:
    with pytest.raises(ParameterError) as info:
        DeepWaterEstimator(**given)
    return str(info.value)


def numeric_frame(y: np.ndarray, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(size=len(y)), "b": rng.normal(size=len(y)), "y": y})


# --------------------------------------------------------------------------- Deep Water's defaults

# h2o-3's hex/deepwater/DeepWaterParameters.java (and Model.Parameters for the shared rows) as last released, but
# learning_rate: its value before h2o-3 commit d6d307b moved it to 1e-3 for TensorFlow's Adam (see the row's doc).
DEEP_WATER = {
    "learning_rate": 5e-3, "learning_rate_annealing": 1e-6, "momentum_start": 0.9, "momentum_stable": 0.9,
    "momentum_ramp": 1e4, "stopping_rounds": 5, "stopping_tolerance": 0.0, "stopping_metric": "AUTO",
    "mini_batch_size": 32, "epochs": 10.0, "clip_gradient": 10.0, "score_interval": 5.0,
    "score_training_samples": 10000, "score_validation_samples": 0, "score_duty_cycle": 0.1,
    "train_samples_per_iteration": -2, "overwrite_with_best_model": True, "standardize": True, "channels": 3,
    "gpu": True, "device_id": [0], "network": "auto", "problem_type": "auto", "distribution": "AUTO",
    "input_dropout_ratio": 0.0, "max_runtime_secs": 0.0, "seed": -1, "ignore_const_cols": True,
    "quiet_mode": False, "network_definition_file": None, "network_parameters_file": None,
    "mean_image_file": None, "weights_column": None,
}


@pytest.mark.parametrize("name, value", DEEP_WATER.items())
def test_defaults_are_deep_waters(name, value):
    assert table.PARAMETERS[name].default == value
    assert DeepWaterEstimator().params[name]["actual"] == value


def test_image_shape_zero_zero_means_the_networks_default_as_in_deep_water():
    assert DeepWaterEstimator(image_shape=[0, 0]).image_shape is None
    assert "image_shape=[0, 28]" in error_of(image_shape=[0, 28])


# --------------------------------------------------------------------------- network_definition_file

def test_a_graph_file_with_network_auto_means_network_user():
    model = DeepWaterEstimator(network_definition_file="net.json")
    assert model.network == "user"
    assert model.get_params()["network"] == "auto"  # what the user gave, for clone()


@pytest.mark.parametrize("network", ["lenet", "MLP", "resnet18"])
def test_a_graph_file_with_a_built_in_network_is_an_error_naming_both(network):
    message = error_of(network=network, network_definition_file="net.json")
    assert f"network={network.lower()!r}" in message
    assert "network_definition_file='net.json'" in message
    assert "network='user'" in message


def test_a_graph_file_set_on_a_built_in_network_is_refused_and_changes_nothing():
    model = DeepWaterEstimator(network="lenet")
    with pytest.raises(ParameterError, match="network_definition_file"):
        model.network_definition_file = "net.json"
    assert model.network == "lenet" and model.network_definition_file is None


def test_network_auto_trains_the_graph_file(blobs, tmp_path):
    pytest.importorskip("torch")
    from graph_files_torch import row_net, scripted, write

    graph = write(tmp_path, "net.pt", scripted(row_net(3, seed=0)))  # 6 inputs, 3 outputs
    frame = pd.concat([blobs[["x1", "x2"]]] * 3, axis=1).set_axis([f"c{i}" for i in range(6)], axis=1)
    frame["label"] = blobs["label"]
    model = DeepWaterEstimator(network_definition_file=graph, **FAST).train(y="label", training_frame=frame)
    assert model.summary()["network"] == "user"
    assert model.layers() == ["0", "1", "2"]  # the graph file's layers, not a built-in MLP's


# --------------------------------------------------------------------------- checked at construction

def test_an_unknown_backend_is_refused_at_construction_listing_the_known_ones():
    message = error_of(backend="jax")
    assert message.startswith("backend='jax'")
    for known in ("auto", "torch", "tensorflow", "mxnet"):
        assert repr(known) in message


def test_backend_names_are_checked_without_importing_a_framework(monkeypatch):
    # A known backend whose framework is missing is not a construction error: it fails when it is used.
    monkeypatch.setattr(registry, "BUILTIN_BACKENDS", {**registry.BUILTIN_BACKENDS,
                                                       "ghost": "deepwater_no_such_module:Ghost"})
    assert DeepWaterEstimator(backend="ghost").backend == "ghost"
    assert DeepWaterEstimator(backend="TensorFlow").backend == "tensorflow"


def test_an_unknown_network_is_refused_at_construction_listing_the_networks():
    message = error_of(network="resnet999")
    assert message.startswith("network='resnet999'")
    for name in networks.NETWORKS:
        assert repr(name) in message


def test_set_params_checks_names_too_and_keeps_the_old_value():
    model = DeepWaterEstimator(backend="torch", network="lenet")
    with pytest.raises(ParameterError, match="backend='jax'"):
        model.set_params(backend="jax")
    with pytest.raises(ParameterError, match="network='resnet999'"):
        model.network = "resnet999"
    assert (model.backend, model.network) == ("torch", "lenet")


def test_a_gpu_id_this_machine_may_lack_is_accepted_until_train():
    assert DeepWaterEstimator(gpu=True, device_id=5).device_id == [5]


@pytest.mark.parametrize("value, shown", [(-1, "device_id[0]=-1"), ([0, -2], "device_id[1]=-2"),
                                          (1.5, "device_id[0]=1.5"), ("0", "'0'"), (True, "True")])
def test_a_negative_or_non_integer_device_id_is_an_error(value, shown):
    message = error_of(device_id=value)
    assert message.startswith("device_id")
    assert shown in message
    assert "integer" in message or "list" in message


# --------------------------------------------------------------------------- epochs=inf

def test_infinite_epochs_need_a_time_limit():
    message = error_of(epochs=math.inf)
    assert "epochs=inf" in message and "max_runtime_secs" in message
    model = DeepWaterEstimator(epochs=math.inf, max_runtime_secs=1)
    with pytest.raises(ParameterError, match="max_runtime_secs"):
        model.max_runtime_secs = 0


def test_infinite_epochs_train_until_the_time_limit(blobs):
    model = DeepWaterEstimator(**{**FAST, "epochs": math.inf, "max_runtime_secs": 2, "stopping_rounds": 0})
    model.train(y="label", training_frame=blobs)
    summary = model.summary()
    assert summary["stop_reason"] == "max_runtime_secs=2 reached"
    assert summary["epochs"] > 1
    assert model.scoring_history()["samples"].iloc[-1] == summary["samples"]


# --------------------------------------------------------------------------- params: default and actual

def test_params_hold_the_given_values_before_training():
    params = DeepWaterEstimator(epochs=3).params
    assert params["epochs"] == {"default": 10.0, "actual": 3.0}
    assert params["backend"]["actual"] == "auto"
    assert params["network"]["actual"] == "auto"
    assert params["seed"]["actual"] == -1


def test_params_hold_what_training_resolved(blobs):
    model = DeepWaterEstimator(**{**FAST, "seed": -1}).train(y="label", training_frame=blobs)
    params, summary = model.params, model.summary()
    assert params["backend"] == {"default": "auto", "actual": summary["backend"]}
    assert params["backend"]["actual"] == installed_backends()[0]
    assert params["network"]["actual"] == "mlp"
    assert params["seed"]["actual"] == summary["seed"] >= 0
    assert params["problem_type"]["actual"] == "dataset"
    assert params["distribution"]["actual"] == "multinomial"
    assert params["epochs"]["actual"] == 1.0
    assert model.get_params()["seed"] == -1  # the parameter itself is unchanged: the next train() draws again


# --------------------------------------------------------------------------- a numeric response of few integers

@pytest.mark.parametrize("y", [np.arange(90) % 2, (np.arange(90) % 5 + 1).astype(float)])
def test_a_numeric_response_of_few_integers_trains_a_regression_with_a_hint(y):
    with pytest.warns(UserWarning, match=r"frame\['y'\] = frame\['y'\]\.astype\('category'\)") as caught:
        model = DeepWaterEstimator(**FAST).train(y="y", training_frame=numeric_frame(y))
    hints = [w for w in caught if "astype('category')" in str(w.message)]
    assert len(hints) == 1 and "\n" not in str(hints[0].message)
    assert hints[0].filename == __file__  # points at the user's train() call
    assert "regression" in model.summary()["response"]
    assert list(model.predict(numeric_frame(y))) == ["predict"]


@pytest.mark.parametrize("y", [np.linspace(0, 1, 90), np.arange(90) % 30], ids=["continuous", "many integers"])
def test_other_numeric_responses_train_without_the_hint(y):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        DeepWaterEstimator(**FAST).train(y="y", training_frame=numeric_frame(y))


def test_a_categorical_response_trains_a_classification_without_the_hint():
    frame = numeric_frame(np.arange(90) % 2)
    frame["y"] = frame["y"].astype("category")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model = DeepWaterEstimator(**FAST).train(y="y", training_frame=frame)
    assert "classification" in model.summary()["response"]


# --------------------------------------------------------------------------- MXNet's log noise

@pytest.mark.skipif("mxnet" not in installed_backends(), reason="mxnet is not installed")
def test_mxnet_binding_notice_never_reaches_stderr(blobs, capfd):
    model = DeepWaterEstimator(backend="mxnet", **FAST).train(y="label", training_frame=blobs)
    for rows in (300, 10, 11):  # each new batch size binds a new executor
        model.predict(blobs.iloc[:rows])
    captured = capfd.readouterr()
    assert "MXNET_SUBGRAPH_BACKEND" not in captured.err + captured.out


def test_the_stderr_filter_keeps_every_other_line(capfd):
    with stderr_without(SUBGRAPH_NOTICE):
        os.write(2, b"first\n[12:00:00] graph_executor.cc:60: " + SUBGRAPH_NOTICE + b", subgraph not in use\nlast\n")
    assert capfd.readouterr().err == "first\nlast\n"
