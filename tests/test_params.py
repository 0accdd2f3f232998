"""The parameter table: names, defaults, checks and error messages."""
from __future__ import annotations

import pytest

from deepwater import DeepWaterEstimator, ParameterError
from deepwater.specs import OptimizerSpec, task_from_params
from deepwater.training import parameters as table


def error_of(**given) -> str:
    with pytest.raises(ParameterError) as info:
        DeepWaterEstimator(**given)
    return str(info.value)


def test_unknown_parameter_suggests_the_close_name():
    message = error_of(epoch=3)
    assert "'epoch'" in message
    assert "epochs" in message


def test_unknown_parameter_far_from_any_name_points_to_the_table():
    message = error_of(zzzqqq=1)
    assert "'zzzqqq'" in message
    assert "PARAMETERS" in message


def test_parameter_error_is_a_value_error():
    with pytest.raises(ValueError):
        DeepWaterEstimator(epochs="ten")


@pytest.mark.parametrize("name, value, shown", [
    ("activation", "Relu", "'Relu'"),
    ("epochs", -1, "-1"),
    ("mini_batch_size", 0, "0"),
    ("channels", 2, "2"),
    # a bad list item is reported as the item: name[index]=value
    ("hidden_dropout_ratios", [0.5, 1.0], "hidden_dropout_ratios[1]=1.0"),
    ("hidden_dropout_ratios", [-0.1], "hidden_dropout_ratios[0]=-0.1"),
    ("image_shape", [28], "[28]"),
    ("image_shape", [28, 28, 3], "[28, 28, 3]"),
    ("distribution", "poisson", "'poisson'"),
    ("gpu", "yes", "'yes'"),
    ("mini_batch_size", 2.5, "2.5"),
    ("seed", -2, "-2"),
    ("learning_rate", 0, "0"),
    ("device_id", [], "[]"),
    ("hidden", [], "[]"),
])
def test_bad_value_names_parameter_and_value(name, value, shown):
    message = error_of(**{name: value})
    assert message.startswith(name)
    assert shown in message


def test_bad_activation_lists_the_allowed_values():
    message = error_of(activation="Relu")
    for allowed in table.ACTIVATIONS:
        assert repr(allowed) in message


@pytest.mark.parametrize("value", [True, False, 1.0, "32"])
def test_integer_parameter_refuses_bool_and_strings_but_takes_whole_floats(value):
    if value == 1.0 and not isinstance(value, bool):
        assert DeepWaterEstimator(mini_batch_size=value).mini_batch_size == 1
        assert isinstance(DeepWaterEstimator(mini_batch_size=value).mini_batch_size, int)
    else:
        with pytest.raises(ParameterError):
            DeepWaterEstimator(mini_batch_size=value)


def test_defaults_follow_the_design():
    model = DeepWaterEstimator()
    assert model.mini_batch_size == 32
    assert model.epochs == 10
    assert model.channels == 3
    assert model.gpu is True
    assert model.device_id == [0]
    assert model.network == "auto"
    assert model.hidden == [200, 200]
    assert model.backend == "auto"
    assert model.problem_type == "auto"


def test_default_lists_are_not_shared_between_models():
    first = DeepWaterEstimator()
    first.hidden.append(7)
    assert DeepWaterEstimator().hidden == [200, 200]
    assert table.PARAMETERS["hidden"].default == [200, 200]


def test_params_property_shows_default_and_actual():
    model = DeepWaterEstimator(epochs=3, hidden=[5, 6])
    shown = model.params
    assert set(shown) == set(table.PARAMETERS)
    assert shown["epochs"] == {"default": 10.0, "actual": 3.0}
    assert shown["hidden"] == {"default": [200, 200], "actual": [5, 6]}
    assert shown["mini_batch_size"] == {"default": 32, "actual": 32}


def test_choices_are_case_insensitive_and_return_the_canonical_spelling():
    model = DeepWaterEstimator(activation="tanhwithdropout", distribution="GAUSSIAN", stopping_metric="auc",
                               loss="quadratic", problem_type="IMAGE", bad_images="Skip")
    assert model.activation == "TanhWithDropout"
    assert model.distribution == "gaussian"
    assert model.stopping_metric == "AUC"
    assert model.loss == "Quadratic"
    assert model.problem_type == "image"
    assert model.bad_images == "skip"


def test_scalars_are_accepted_for_list_parameters():
    model = DeepWaterEstimator(hidden=50, device_id=1)
    assert model.hidden == [50]
    assert model.device_id == [1]


def test_resolve_returns_every_parameter():
    values = table.resolve({"epochs": 2})
    assert set(values) == set(table.PARAMETERS)
    assert values["epochs"] == 2.0
    assert values["l1"] == table.PARAMETERS["l1"].default


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        DeepWaterEstimator().not_a_parameter  # noqa: B018


def test_repr_of_untrained_model_shows_given_parameters():
    text = repr(DeepWaterEstimator(epochs=2))
    assert "epochs=2" in text
    assert "not trained" in text


# --------------------------------------------------------------------------- optimisers and schedules

def test_an_optimizer_that_contradicts_adaptive_rate_names_both():
    message = error_of(optimizer="adam", adaptive_rate=True)
    assert "optimizer='adam'" in message and "adaptive_rate=True" in message and "optimizer='adadelta'" in message
    assert DeepWaterEstimator(optimizer="adadelta", adaptive_rate=True).optimizer == "adadelta"


def test_weight_decay_is_adamws_alone():
    message = error_of(optimizer="adam", weight_decay=0.01)
    assert "weight_decay=0.01" in message and "'adamw'" in message
    assert DeepWaterEstimator(optimizer="AdamW", weight_decay=0.01).optimizer == "adamw"


def test_a_schedule_to_the_end_of_the_run_needs_finite_epochs():
    message = error_of(lr_schedule="cosine", epochs=float("inf"), max_runtime_secs=10)
    assert "lr_schedule='cosine'" in message and "epochs=inf" in message


def test_label_smoothing_needs_classes():
    assert "autoencoder=True" in error_of(label_smoothing=0.1, autoencoder=True)
    with pytest.raises(ParameterError, match=r"label_smoothing=0.1 .* regression"):
        task_from_params("regression", 0, "AUTO", "Automatic", 0.1)
    assert task_from_params("classification", 3, "AUTO", "Automatic", 0.1).label_smoothing == 0.1


@pytest.mark.parametrize("name,value", [("optimizer", "rmsprop"), ("lr_schedule", "linear"), ("label_smoothing", 1.0),
                                        ("lr_step_gamma", 0.0), ("lr_step_epochs", 0), ("warmup_epochs", -1)])
def test_optimiser_parameters_refuse_values_outside_their_range(name, value):
    assert f"{name}={value!r}" in error_of(**{name: value})


def test_the_optimiser_defaults_keep_h2os_rule():
    model = DeepWaterEstimator()
    assert (model.optimizer, model.lr_schedule, model.warmup_epochs, model.label_smoothing) == ("auto", "h2o", 0, 0)
    spec = OptimizerSpec.from_params(table.resolve({}), rows=100)
    assert spec.method == "sgd" and spec.rate(1000) == pytest.approx(5e-3 / (1 + 1e-6 * 1000))
    assert OptimizerSpec.from_params(table.resolve({"adaptive_rate": True})).method == "adadelta"
