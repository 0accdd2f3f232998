"""The estimator's parameters are real: signature, docstring, attributes, get/set_params, clone, errors."""
from __future__ import annotations

import inspect
import pydoc

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

import deepwater
from deepwater import DeepWaterError, DeepWaterEstimator, MissingDependencyError, NotFittedError, ParameterError
from deepwater.training.parameters import PARAMETERS

TINY = {"hidden": [4], "backend": "torch", "gpu": False, "seed": 1, "quiet_mode": True}


@pytest.fixture
def tiny_frame() -> pd.DataFrame:
    x = np.linspace(-1.0, 1.0, 40)
    return pd.DataFrame({"x": x, "y": 2.0 * x + 0.5})


# --------------------------------------------------------------------------- signature and help()

def test_signature_lists_every_parameter_with_its_default():
    parameters = inspect.signature(DeepWaterEstimator).parameters
    assert list(parameters) == list(PARAMETERS)
    for name, row in PARAMETERS.items():
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[name].default == row.default


def test_docstring_and_help_show_every_parameter_with_its_default():
    help_text = pydoc.render_doc(DeepWaterEstimator, renderer=pydoc.plaintext)
    for name, row in PARAMETERS.items():
        assert f"{name} : default {row.default!r}" in DeepWaterEstimator.__doc__
        assert f"{name}={row.default!r}" in help_text


# --------------------------------------------------------------------------- assignment

def test_assignment_is_checked_and_recorded():
    model = DeepWaterEstimator(**TINY)
    model.epochs = 3
    assert model.epochs == 3.0
    assert model.get_params()["epochs"] == 3
    assert "epochs=3" in repr(model)
    assert "epochs" not in vars(model)


def test_assignment_takes_effect_in_train(tiny_frame):
    model = DeepWaterEstimator(epochs=10, **TINY)
    model.epochs = 0.5
    model.train(x=["x"], y="y", training_frame=tiny_frame)
    assert model.summary()["epochs"] == pytest.approx(0.5)


def test_bad_value_is_refused_and_leaves_the_parameter_as_it_was():
    model = DeepWaterEstimator(epochs=2)
    with pytest.raises(ParameterError) as info:
        model.epochs = -1
    message = str(info.value)
    assert message.startswith("epochs=-1")
    assert ">= 0" in message
    assert model.epochs == 2.0


def test_unknown_attribute_name_suggests_the_close_parameter():
    model = DeepWaterEstimator()
    with pytest.raises(ParameterError, match=r"unknown parameter 'epoch'.*epochs"):
        model.epoch = 3
    assert "epoch" not in vars(model)


def test_private_names_are_set_as_usual():
    model = DeepWaterEstimator()
    model._note = "kept"
    assert model._note == "kept"


def test_model_id_assignment_is_checked_and_carried():
    model = DeepWaterEstimator()
    model.model_id = "mine"
    assert model.model_id == "mine"
    assert model.get_params()["model_id"] == "mine"
    with pytest.raises(ParameterError, match="model_id=5"):
        model.model_id = 5


def test_network_user_needs_a_graph_file_after_assignment_too():
    model = DeepWaterEstimator()
    with pytest.raises(ParameterError, match="network_definition_file"):
        model.network = "user"
    assert model.network == "auto"
    model.set_params(network="user", network_definition_file="graph.onnx")
    assert model.network == "user"


# --------------------------------------------------------------------------- get_params / set_params

def test_get_params_gives_every_parameter_given_or_default():
    params = DeepWaterEstimator(epochs=3).get_params()
    assert list(params) == list(PARAMETERS)
    assert params["epochs"] == 3
    assert params["model_id"] is None  # a generated id is not a parameter the user gave
    assert {k: v for k, v in params.items() if k != "epochs"} == {
        name: row.default for name, row in PARAMETERS.items() if name != "epochs"}


def test_get_params_does_not_hand_out_the_table_defaults():
    DeepWaterEstimator().get_params()["hidden"].append(7)
    assert PARAMETERS["hidden"].default == [200, 200]


def test_set_params_round_trip_returns_self():
    source = DeepWaterEstimator(epochs=2, hidden=[8, 4], activation="tanh", model_id="source")
    target = DeepWaterEstimator()
    assert target.set_params(**source.get_params()) is target
    assert target.get_params() == source.get_params()
    assert target.activation == "Tanh"
    assert target.model_id == "source"


def test_set_params_refuses_unknown_names_with_the_closest_ones():
    model = DeepWaterEstimator()
    with pytest.raises(ParameterError, match=r"unknown parameter 'hiden'.*hidden"):
        model.set_params(hiden=[3])
    with pytest.raises(ParameterError, match="'bogus'"):
        model.set_params(bogus=1)


def test_set_params_changes_nothing_when_one_value_is_bad():
    model = DeepWaterEstimator(epochs=2)
    with pytest.raises(ParameterError, match=r"^hidden"):
        model.set_params(epochs=5, hidden=[])
    assert model.epochs == 2.0
    assert model.get_params()["epochs"] == 2


# --------------------------------------------------------------------------- sklearn.base.clone

def test_clone_gives_equal_parameters_and_carries_a_given_model_id():
    model = DeepWaterEstimator(epochs=2, hidden=[8, 4], model_id="mine")
    twin = clone(model)
    assert twin is not model
    assert twin.get_params() == model.get_params()
    assert twin.model_id == "mine"
    assert repr(twin) == "DeepWaterEstimator(model_id='mine', epochs=2, hidden=[8, 4]) [not trained]"  # changed only


def test_clone_of_a_generated_model_id_generates_its_own():
    model = DeepWaterEstimator(epochs=2)
    twin = clone(model)
    assert twin.model_id.startswith("DeepWater_model_")
    assert twin.model_id != model.model_id
    assert twin.get_params() == model.get_params()


# --------------------------------------------------------------------------- NotFittedError

@pytest.mark.parametrize("call", [
    lambda m, f: m.predict(f),
    lambda m, f: m.model_performance(f),
    lambda m, f: m.scoring_history(),
])
def test_using_an_untrained_model_raises_not_fitted(tiny_frame, call):
    model = DeepWaterEstimator(model_id="untrained")
    with pytest.raises(NotFittedError) as info:
        call(model, tiny_frame)
    message = str(info.value)
    assert "'untrained'" in message
    assert "call train(...) first" in message
    assert isinstance(info.value, AttributeError)
    assert isinstance(info.value, DeepWaterError)
    assert isinstance(info.value, ValueError)


def test_not_fitted_error_is_exported():
    assert "NotFittedError" in deepwater.__all__
    assert deepwater.NotFittedError is NotFittedError


# --------------------------------------------------------------------------- available()

def test_available_when_a_backend_runs():
    assert DeepWaterEstimator.available() is True


def test_not_available_when_no_backend_runs(monkeypatch):
    def no_backend(name):
        raise MissingDependencyError("No deep learning framework", "torch")

    monkeypatch.setattr("deepwater.model.estimator.get_backend", no_backend)
    assert DeepWaterEstimator.available() is False


# --------------------------------------------------------------------------- train(callbacks=...)

def test_callbacks_see_the_model_and_the_run_at_each_scoring(tiny_frame):
    seen = []
    model = DeepWaterEstimator(**TINY, epochs=3, mini_batch_size=8, train_samples_per_iteration=40)
    model.train(x=["x"], y="y", training_frame=tiny_frame,
                callbacks=[lambda m, outcome: seen.append((m, outcome.samples, len(outcome.history)))])
    history = model.scoring_history()
    assert [samples for _, samples, _ in seen] == list(history["samples"])  # one call per scoring, in order
    assert [rows for _, _, rows in seen] == list(range(1, len(history) + 1))  # the run so far
    assert all(m is model for m, _, _ in seen) and seen[-1][1] == 3 * len(tiny_frame)


def test_a_callback_that_raises_stops_training_at_that_scoring(tiny_frame):
    class Stop(Exception):
        pass

    calls = []

    def stop_at_second(model, outcome):
        calls.append(outcome.samples)
        if len(calls) == 2:
            raise Stop

    model = DeepWaterEstimator(**TINY, epochs=50, mini_batch_size=8, train_samples_per_iteration=40)
    with pytest.raises(Stop):
        model.train(x=["x"], y="y", training_frame=tiny_frame, callbacks=[stop_at_second])
    assert calls == [40, 80]
    with pytest.raises(NotFittedError):
        model.predict(tiny_frame)


@pytest.mark.parametrize("callbacks, named", [(print, "callbacks="), ([print, 3], "callbacks[1]="),
                                              ("fn", "callbacks=")])
def test_callbacks_that_are_not_a_list_of_callables_are_refused(tiny_frame, callbacks, named):
    with pytest.raises(ParameterError, match=named.replace("[", r"\[")):
        DeepWaterEstimator(**TINY, epochs=1).train(x=["x"], y="y", training_frame=tiny_frame, callbacks=callbacks)
