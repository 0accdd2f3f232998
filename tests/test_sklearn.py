"""deepwater.sklearn: scikit-learn's own estimator checks, and the estimators inside Pipeline, GridSearchCV,
cross_val_score and StackingClassifier, on numpy arrays, frames with categorical columns, and image URIs."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs as sk_blobs
from sklearn.ensemble import StackingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from conftest import make_blobs
from deepwater.sklearn import DeepWaterClassifier, DeepWaterRegressor

SMALL = {"hidden": (16,), "epochs": 20, "gpu": False, "seed": 1, "learning_rate": 0.05}


@pytest.mark.parametrize("estimator", [DeepWaterClassifier(**SMALL), DeepWaterRegressor(**SMALL)],
                         ids=["classifier", "regressor"])
def test_scikit_learns_estimator_checks_all_pass(estimator):
    results = check_estimator(estimator, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert failed == [] and len(results) > 40


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
