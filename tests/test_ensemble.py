"""Stacked ensembles (booklet section 10): deepwater base models with the same folds and scikit-learn
estimators, a linear metalearner by default, H2O's checks on the base models, and save/load without pickle."""
from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.svm import SVC

import deepwater as dw
from conftest import make_blobs, make_linear
from deepwater.errors import ParameterError


def base(**params) -> dw.DeepWaterEstimator:
    defaults = {"hidden": [8], "epochs": 3, "gpu": False, "quiet_mode": True, "seed": 3, "stopping_rounds": 0,
                "nfolds": 3, "fold_assignment": "Modulo", "keep_cross_validation_predictions": True,
                "learning_rate": 0.05}
    return dw.DeepWaterEstimator(**{**defaults, **params})


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_blobs(120, seed=31), make_blobs(60, seed=32)


@pytest.fixture(scope="module")
def bases(frames):
    train, _ = frames
    return [base(hidden=[8]).train(y="label", training_frame=train),
            base(hidden=[4, 4], activation="Tanh").train(y="label", training_frame=train)]


def test_an_ensemble_of_deepwater_and_sklearn_models_predicts_and_scores(frames, bases):
    train, test = frames
    ensemble = dw.H2OStackedEnsembleEstimator(base_models=bases + [RandomForestClassifier(20, random_state=0)])
    ensemble.train(y="label", training_frame=train, validation_frame=test)
    predictions = ensemble.predict(test)
    assert list(predictions.columns) == ["predict", "a", "b", "c"]
    np.testing.assert_allclose(predictions[["a", "b", "c"]].sum(axis=1), 1.0, rtol=1e-6)
    performance = ensemble.model_performance(test)
    assert performance.nobs == len(test) and performance.logloss() < 1.0
    assert ensemble.model_performance(valid=True).logloss() == pytest.approx(performance.logloss())
    assert dw.get_model(ensemble.model_id) is ensemble


def test_an_ensemble_without_a_validation_frame_has_no_validation_metrics(frames, bases):
    ensemble = dw.H2OStackedEnsembleEstimator(base_models=bases).train(y="label", training_frame=frames[0])
    with pytest.warns(UserWarning, match=r"model_performance\(valid=True\) is None: .* without a validation_frame"):
        assert ensemble.model_performance(valid=True) is None


def test_the_metalearner_learns_from_holdout_predictions(frames, bases):
    """With one base model, the level-one data are exactly its holdout probabilities (2nd and 3rd... all classes)."""
    train, _ = frames
    ensemble = dw.StackedEnsembleEstimator([bases[0]], metalearner_algorithm=LogisticRegression(C=1e6, max_iter=5000))
    ensemble.train(y="label", training_frame=train)
    holdout = bases[0].cross_validation_holdout_predictions()[["a", "b", "c"]].to_numpy()
    expected = LogisticRegression(C=1e6, max_iter=5000).fit(holdout, train["label"].cat.codes)
    np.testing.assert_allclose(ensemble._fitted["metalearner"].coef_, expected.coef_, rtol=1e-6)


def test_regression_with_a_gbm_metalearner_and_an_sklearn_member():
    train = make_linear(90, seed=4)
    members = [base(epochs=5).train(y="y", training_frame=train), Ridge()]
    ensemble = dw.StackedEnsembleEstimator(members, metalearner_algorithm="gbm", seed=1).train(y="y",
                                                                                               training_frame=train)
    assert list(ensemble.predict(train).columns) == ["predict"]
    assert ensemble.model_performance(train).rmse() < train["y"].std()


def test_a_saved_ensemble_loads_and_predicts_the_same(frames, bases, tmp_path):
    pytest.importorskip("skops")
    train, test = frames
    ensemble = dw.StackedEnsembleEstimator(bases + [RandomForestClassifier(10, random_state=0)]).train(
        y="label", training_frame=train)
    path = dw.save_model(ensemble, tmp_path)
    with zipfile.ZipFile(path) as archive:  # one file: the members' saved models and skops files inside it
        names = set(archive.namelist())
        assert {f"members/{m.model_id}/model.json" for m in bases} <= names and "sklearn/model_2.skops" in names
        archive.extractall(tmp_path / "as_a_folder")  # how an earlier version saved it
    for saved in (path, tmp_path / "as_a_folder"):
        loaded = dw.load_model(saved)
        assert isinstance(loaded, dw.StackedEnsembleEstimator)
        pd.testing.assert_frame_equal(loaded.predict(test), ensemble.predict(test), atol=1e-6)


def test_base_models_with_other_folds_another_response_or_no_predictions_are_refused(frames, bases):
    train, _ = frames
    other_folds = base(fold_assignment="Random").train(y="label", training_frame=train)
    with pytest.raises(ParameterError, match="used other folds"):
        dw.StackedEnsembleEstimator([bases[0], other_folds]).train(y="label", training_frame=train)
    no_predictions = base(keep_cross_validation_predictions=False).train(y="label", training_frame=train)
    with pytest.raises(ParameterError, match="kept no cross-validation predictions"):
        dw.StackedEnsembleEstimator([no_predictions]).train(y="label", training_frame=train)
    other_response = base().train(x=["x1", "x2"], y="colour", training_frame=train)
    with pytest.raises(ParameterError, match="predicts 'colour', not y='label'"):
        dw.StackedEnsembleEstimator([bases[0], other_response]).train(y="label", training_frame=train)
    with pytest.raises(ParameterError, match="at least one deepwater model"):
        dw.StackedEnsembleEstimator([Ridge()]).train(y="label", training_frame=train)
    with pytest.raises(ParameterError, match="metalearner_algorithm='deep'"):
        dw.StackedEnsembleEstimator(bases, metalearner_algorithm="deep")


def test_base_models_cross_validated_on_another_frame_of_as_many_rows_are_refused(frames, tmp_path):
    """H2O compares the training frames, not only their row counts."""
    train, _ = frames
    member = base(hidden=[8]).train(y="label", training_frame=train)
    other = train.assign(x1=train["x1"] + 1.0)  # the same rows in number and index, other values
    with pytest.raises(ParameterError, match=rf"base model '{member.model_id}' was cross-validated on another "
                                             r"training_frame"):
        dw.H2OStackedEnsembleEstimator(base_models=[member]).train(y="label", training_frame=other)
    saved = dw.load_model(dw.save_model(member, tmp_path))  # the digest is saved with the model
    assert saved._fitted.cross_validation.frame_digest == member._fitted.cross_validation.frame_digest


def test_a_regressor_member_of_a_classification_ensemble_is_refused(frames, bases):
    train, _ = frames
    with pytest.raises(ParameterError, match=r"base model Ridge\(\) \(base_models\[2\]\) has no predict_proba \(a "
                                             r"regressor\), but y='label' is categorical.*LogisticRegression\(\)"):
        dw.StackedEnsembleEstimator(bases + [Ridge()]).train(y="label", training_frame=train)
    with pytest.raises(ParameterError, match=r"base model SVC\(\) \(base_models\[1\]\) has no predict_proba"):
        dw.StackedEnsembleEstimator([bases[0], SVC()]).train(y="label", training_frame=train)


def test_a_deepwater_model_of_another_kind_is_refused(frames, bases):
    """A regression model on a numeric copy of the labels, under the ensemble's response name."""
    train, _ = frames
    numeric = train.assign(label=train["label"].cat.codes.astype(float))
    regression = base().train(y="label", training_frame=numeric)
    with pytest.raises(ParameterError, match=rf"base model '{regression.model_id}' \(base_models\[1\]\) is a "
                                             r"regression model, but y='label' makes the ensemble a classification"):
        dw.StackedEnsembleEstimator([bases[0], regression]).train(y="label", training_frame=train)
