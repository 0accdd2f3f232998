"""deepwater.sklearn: scikit-learn's own estimator checks, and the estimators inside Pipeline, GridSearchCV,
cross_val_score and StackingClassifier, on numpy arrays, frames with categorical columns, and image URIs;
random_state (scikit-learn's name for seed) and the determinism it gives."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_blobs as sk_blobs
from sklearn.datasets import make_regression
from sklearn.ensemble import StackingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from conftest import make_blobs
from deepwater.errors import ParameterError
from deepwater.sklearn import DeepWaterClassifier, DeepWaterRegressor

SMALL = {"hidden": (16,), "epochs": 20, "gpu": False, "random_state": 1, "learning_rate": 0.05}
# check_estimator's many fits: 5 epochs at this rate pass its score checks (accuracy > 0.83, R^2 > 0.5) for each
# random_state 0..19 with a margin (1 epoch does not); its checks set random_state=0 where they compare fits
CHECKS = {"hidden": (8,), "epochs": 5, "gpu": False, "learning_rate": 0.05, "backend": "torch"}
TORCH = {"hidden": (8,), "epochs": 3, "gpu": False, "learning_rate": 0.05, "backend": "torch"}


@pytest.mark.parametrize("random_state", [1, 2])
@pytest.mark.parametrize("model", [DeepWaterClassifier, DeepWaterRegressor], ids=["classifier", "regressor"])
def test_scikit_learns_estimator_checks_all_pass(model, random_state):
    results = check_estimator(model(**CHECKS, random_state=random_state), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert failed == [] and len(results) > 40


@pytest.fixture(scope="module")
def regression():
    return make_regression(120, n_features=5, noise=5.0, random_state=0)


@pytest.mark.parametrize("state", [7, np.random.RandomState(3), np.random.default_rng(3), None])
def test_random_state_round_trips_through_get_params_set_params_and_clone(state):
    model = DeepWaterClassifier(random_state=state)
    assert model.get_params()["random_state"] is state and clone(model).get_params()["seed"] == -1
    copied = clone(model).random_state
    if isinstance(state, (np.random.RandomState, np.random.Generator)):  # clone copies an instance, state and all
        assert type(copied) is type(state) and copied is not state and copied.random() == state.random()
    else:
        assert copied == state
    assert model.set_params(random_state=11).get_params()["random_state"] == 11
    assert clone(model).random_state == 11


@pytest.mark.parametrize("model", [DeepWaterClassifier, DeepWaterRegressor], ids=["classifier", "regressor"])
def test_two_fits_with_one_random_state_predict_alike(model, blobs, regression):
    X, y = blobs if model is DeepWaterClassifier else regression

    def outputs(**params):  # the probabilities of a classifier: its classes alone agree for any seed here
        fitted = model(**TORCH, **params).fit(X, y)
        return fitted.predict_proba(X) if model is DeepWaterClassifier else fitted.predict(X)

    first = outputs(random_state=5)
    assert np.array_equal(outputs(random_state=5), first) and np.array_equal(outputs(seed=5), first)  # = seed=5
    assert not np.allclose(outputs(random_state=6), first)


def test_a_fit_gives_the_estimator_only_the_parameters_set(regression):
    X, y = regression  # the table's image settings at their defaults: no "given, but not used" warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = DeepWaterRegressor(**TORCH, random_state=4, seed=4).fit(X, y).model_  # both, the same: fine
    assert model.get_params()["seed"] == 4 and list(model.get_params()["hidden"]) == [8]


def test_a_random_state_instance_draws_one_seed_per_fit(regression):
    X, y = regression
    for make in (np.random.RandomState, np.random.default_rng):
        model = DeepWaterRegressor(**{**TORCH, "epochs": 1}, random_state=make(0))
        seeds = [model.fit(X, y).model_.summary()["seed"] for _ in range(2)]
        again = DeepWaterRegressor(**{**TORCH, "epochs": 1}, random_state=make(0)).fit(X, y).model_.summary()["seed"]
        assert seeds[0] != seeds[1] and again == seeds[0] and 0 <= seeds[0] < 2**32


def test_a_seeded_fit_scores_by_samples_not_the_clock(regression):
    X, y = regression
    clockless = {**TORCH, "score_interval": 0.0, "score_duty_cycle": 1.0, "stopping_rounds": 0}
    seeded = DeepWaterRegressor(**clockless, random_state=0).fit(X, y).model_
    assert seeded.get_params()["train_samples_per_iteration"] == len(X) and len(seeded.scoring_history()) == 3
    unseeded = DeepWaterRegressor(**clockless).fit(X, y).model_  # seed -1: H2O's schedule, every batch here
    assert unseeded.get_params()["train_samples_per_iteration"] == -2 and len(unseeded.scoring_history()) > 3
    given = DeepWaterRegressor(**clockless, random_state=0, train_samples_per_iteration=240).fit(X, y).model_
    assert given.get_params()["train_samples_per_iteration"] == 240 and len(given.scoring_history()) == 2


@pytest.mark.parametrize("params, message", [
    ({"random_state": 1, "seed": 2}, r"random_state=1 and seed=2 both set the seed.*give one of them"),
    ({"random_state": np.random.RandomState(0), "seed": 2}, r"random_state=RandomState.* and seed=2"),
    ({"random_state": -1}, r"random_state=-1 is out of range; use an int in \[0, 2\*\*32 - 1\]"),
    ({"random_state": 2**32}, r"random_state=4294967296 is out of range"),
    ({"random_state": "zero"}, r"random_state='zero' cannot seed a fit; use None, an int"),
    ({"random_state": True}, r"random_state=True cannot seed a fit")])
def test_a_bad_random_state_names_itself_at_fit(params, message, regression):
    X, y = regression
    model = DeepWaterRegressor(**TORCH, **params)  # scikit-learn's rule: __init__ stores, fit checks
    with pytest.raises(ParameterError, match=message):
        model.fit(X, y)


@pytest.fixture(scope="module")
def blobs():
    return sk_blobs(200, centers=3, n_features=4, random_state=0)


def test_a_pipeline_in_a_grid_search_and_cross_val_score(blobs):
    X, y = blobs
    search = GridSearchCV(make_pipeline(StandardScaler(), DeepWaterClassifier(**SMALL)),
                          {"deepwaterclassifier__hidden": [(4,), (16,)]}, cv=2).fit(X, y)
    assert search.best_score_ > 0.8 and search.best_params_["deepwaterclassifier__hidden"] in [(4,), (16,)]
    scores = cross_val_score(DeepWaterClassifier(**SMALL), X, y, cv=3)
    assert len(scores) == 3 and scores.mean() > 0.8


def test_stacking_takes_predict_proba(blobs):
    X, y = blobs
    stack = StackingClassifier([("dw", DeepWaterClassifier(**SMALL)), ("lr", LogisticRegression())], cv=2).fit(X, y)
    assert stack.score(X, y) > 0.8


def test_a_frame_with_a_categorical_column_and_string_labels():
    frame = make_blobs(150, seed=5)
    X, y = frame[["x1", "x2", "colour"]], frame["label"].astype(str)
    model = DeepWaterClassifier(**SMALL).fit(X, y)
    assert list(model.classes_) == ["a", "b", "c"] and list(model.feature_names_in_) == ["x1", "x2", "colour"]
    assert model.score(X, y) > 0.8
    assert model.predict_proba(X).shape == (150, 3)
    with pytest.raises(ValueError, match="same columns"):
        model.predict(X[["x2", "x1", "colour"]])


def test_image_uris_go_through_as_a_frame(image_frame):
    model = DeepWaterClassifier(network="lenet", problem_type="image", image_shape=(28, 28), channels=1, epochs=3,
                                gpu=False, seed=1, learning_rate=0.02)
    model.fit(image_frame[["uri"]], image_frame["label"])
    assert set(model.predict(image_frame[["uri"]])) <= {"dark", "light"}
    assert model.model_.summary()["problem_type"] == "image"


def test_an_unknown_parameter_names_the_close_ones():
    with pytest.raises(ValueError, match="Did you mean hidden"):
        DeepWaterRegressor(hiden=(4,))


@pytest.mark.parametrize("model", [DeepWaterClassifier, DeepWaterRegressor], ids=["classifier", "regressor"])
@pytest.mark.parametrize("X", [np.array([["a", "b"], ["c", "d"]]), np.array([["a", 1.0], ["c", 2.0]], dtype=object),
                               [["a", "b"], ["c", "d"]]], ids=["unicode", "object", "list"])
def test_an_array_of_strings_is_a_value_error_naming_its_dtype(model, X):
    with pytest.raises(ValueError, match=r"X has dtype (<U1|object) holding strings; .* pass a pandas DataFrame"):
        model(**TORCH).fit(X, [0, 1])
    fitted = model(**TORCH).fit(np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]), [0, 1, 0])
    with pytest.raises(ValueError, match="holding strings"):
        fitted.predict(X)
