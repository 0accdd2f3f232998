"""Cross-validation with H2O's parameters, outputs and rules (nfolds, fold_assignment, fold_column, keep_*)."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import deepwater as dw
from conftest import installed_backends, make_blobs, make_linear
from deepwater.errors import ParameterError
from deepwater.model import jobs

BACKENDS = installed_backends()


def model(**params) -> dw.DeepWaterEstimator:
    defaults = {"hidden": [8], "epochs": 2, "gpu": False, "quiet_mode": True, "seed": 5, "stopping_rounds": 0,
                "learning_rate": 0.05}
    return dw.DeepWaterEstimator(**{**defaults, **params})


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_blobs(90, seed=21)


@pytest.fixture(scope="module")
def cross_validated(frame):
    return model(nfolds=3, keep_cross_validation_predictions=True, keep_cross_validation_fold_assignment=True,
                 model_id="cv3").train(y="label", training_frame=frame)


def test_the_summary_has_h2os_layout_and_agrees_with_the_fold_models(cross_validated):
    summary = cross_validated.cross_validation_metrics_summary()
    assert list(summary.columns) == ["mean", "sd", "cv_1_valid", "cv_2_valid", "cv_3_valid"]
    assert {"accuracy", "err", "err_count", "logloss", "mean_per_class_error", "mse", "rmse"} <= set(summary.index)
    folds = cross_validated.cross_validation_models()
    assert [m.model_id for m in folds] == ["cv3_cv_1", "cv3_cv_2", "cv3_cv_3"]
    loglosses = [m.model_performance(valid=True).logloss() for m in folds]
    np.testing.assert_allclose(summary.loc["logloss", ["cv_1_valid", "cv_2_valid", "cv_3_valid"]], loglosses)
    assert summary.loc["logloss", "mean"] == pytest.approx(np.mean(loglosses))
    assert summary.loc["logloss", "sd"] == pytest.approx(np.std(loglosses, ddof=1))


def test_xval_metrics_are_those_of_the_holdout_predictions(cross_validated, frame):
    holdout = cross_validated.cross_validation_holdout_predictions()
    assert len(holdout) == len(frame) and list(holdout.columns) == ["predict", "a", "b", "c"]
    xval = cross_validated.model_performance(xval=True)
    accuracy = float((holdout["predict"].astype(str) == frame["label"].astype(str)).mean())
    assert xval.accuracy() == pytest.approx(accuracy)
    assert xval.nobs == len(frame)


def test_each_fold_model_predicted_only_rows_it_did_not_train_on(cross_validated, frame):
    folds = cross_validated.cross_validation_fold_assignment()["fold_assignment"].to_numpy()
    assert sorted(np.bincount(folds)) == [30, 30, 30]
    holdout = cross_validated.cross_validation_holdout_predictions()
    for k, (fold_model, per_fold) in enumerate(zip(cross_validated.cross_validation_models(),
                                                   cross_validated.cross_validation_predictions())):
        assert fold_model._fitted.outcome.samples == 2 * (folds != k).sum()
        assert (per_fold.loc[folds != k, ["a", "b", "c"]] == 0).all().all()
        np.testing.assert_allclose(per_fold.loc[folds == k, ["a", "b", "c"]], holdout.loc[folds == k, ["a", "b", "c"]])
        mine = fold_model.predict(frame[folds == k])
        np.testing.assert_allclose(mine[["a", "b", "c"]], holdout.loc[folds == k, ["a", "b", "c"]], atol=1e-6)


def test_the_main_model_trains_on_every_row_after_the_folds(cross_validated, frame):
    assert cross_validated._fitted.outcome.samples == 2 * len(frame)
    assert cross_validated.overwrite_with_best_model is False  # Deep Water's rule with nfolds


@pytest.mark.parametrize("assignment", ["Random", "Modulo", "Stratified"])
def test_the_same_seed_gives_the_same_folds_and_summary(frame, assignment):
    runs = [model(nfolds=3, fold_assignment=assignment, keep_cross_validation_fold_assignment=True, seed=seed)
            .train(y="label", training_frame=frame) for seed in (1, 1, 2)]
    folds = [r.cross_validation_fold_assignment()["fold_assignment"].to_numpy() for r in runs]
    np.testing.assert_array_equal(folds[0], folds[1])
    pd.testing.assert_frame_equal(runs[0].cross_validation_metrics_summary(), runs[1].cross_validation_metrics_summary())
    if assignment == "Modulo":
        np.testing.assert_array_equal(folds[0], np.arange(len(frame)) % 3)
    else:
        assert not np.array_equal(folds[0], folds[2])
    if assignment == "Stratified":
        labels = frame["label"].to_numpy()
        for fold in range(3):
            assert set(pd.Series(labels[folds[0] == fold]).value_counts()) == {10}


def test_a_fold_column_gives_the_folds_and_is_not_a_predictor(frame):
    with_folds = frame.assign(fold=np.arange(len(frame)) % 2)
    trained = model(keep_cross_validation_fold_assignment=True).train(y="label", training_frame=with_folds,
                                                                     fold_column="fold")
    np.testing.assert_array_equal(trained.cross_validation_fold_assignment()["fold_assignment"], with_folds["fold"])
    assert "fold" not in trained._fitted.predictors
    assert len(trained.cross_validation_models()) == 2


def test_leave_one_out_and_regression_work():
    small = make_linear(8, seed=3)
    trained = model(nfolds=8, epochs=1).train(y="y", training_frame=small)
    summary = trained.cross_validation_metrics_summary()
    assert summary.shape[1] == 10 and "mean_residual_deviance" in summary.index
    assert trained.model_performance(xval=True).nobs == 8


def test_with_early_stopping_the_main_model_trains_for_the_folds_mean_epochs(frame):
    trained = model(nfolds=2, epochs=4, stopping_rounds=1, stopping_tolerance=10.0,
                    train_samples_per_iteration=15).train(y="label", training_frame=frame)
    fold_epochs = [m.summary()["epochs"] for m in trained.cross_validation_models()]
    assert max(fold_epochs) < 4  # the fold models stopped early
    assert trained.epochs == pytest.approx(np.mean(fold_epochs))
    assert trained.stopping_rounds == 0


def test_a_validation_frame_beside_nfolds_is_scored(frame):
    trained = model(nfolds=2).train(y="label", training_frame=frame, validation_frame=make_blobs(30, seed=2))
    assert trained.model_performance(valid=True).nobs == 30


@pytest.mark.parametrize("params,train_args,message", [
    ({"nfolds": 1}, {}, "nfolds=1 is not allowed"),
    ({"nfolds": -2}, {}, "nfolds=-2 is not allowed"),
    ({"nfolds": 200}, {}, "nfolds=200 is more than the 90 rows"),
    ({"nfolds": 3}, {"fold_column": "fold"}, "fold_column='fold' and nfolds=3"),
    ({"fold_assignment": "Modulo"}, {}, "needs cross-validation"),
    ({"fold_assignment": "Sideways"}, {}, "fold_assignment='Sideways'"),
])
def test_h2os_cross_validation_errors(frame, params, train_args, message):
    with pytest.raises(ParameterError, match=message):
        model(**params).train(y="label", training_frame=frame.assign(fold=np.arange(len(frame)) % 2), **train_args)


def test_outputs_that_were_not_kept_or_not_computed_say_how_to_get_them(frame):
    plain = model().train(y="label", training_frame=frame)
    with pytest.raises(ParameterError, match="not cross-validated"):
        plain.cross_validation_metrics_summary()
    with pytest.warns(UserWarning, match="not cross-validated"):  # H2O's answer: None
        assert plain.model_performance(xval=True) is None
    unkept = model(nfolds=2, keep_cross_validation_models=False).train(y="label", training_frame=frame)
    with pytest.raises(ParameterError, match="keep_cross_validation_models=True"):
        unkept.cross_validation_models()
    with pytest.raises(ParameterError, match="keep_cross_validation_predictions=True"):
        unkept.cross_validation_holdout_predictions()
    assert not [key for key in dw.ls()["key"] if key.startswith(f"{unkept.model_id}_cv_")]  # not held either


def test_a_saved_cross_validated_model_keeps_its_summary_and_xval_metrics(cross_validated, tmp_path):
    loaded = dw.load_model(dw.save_model(cross_validated, tmp_path))
    pd.testing.assert_frame_equal(loaded.cross_validation_metrics_summary(),
                                  cross_validated.cross_validation_metrics_summary())
    assert loaded.model_performance(xval=True).logloss() == cross_validated.model_performance(xval=True).logloss()
    with pytest.raises(ParameterError, match="keep_cross_validation_models"):  # fold models are not saved with it
        loaded.cross_validation_models()


def test_a_checkpoint_restart_with_nfolds_is_refused(frame):
    first = model().train(y="label", training_frame=frame)
    with pytest.raises(ParameterError, match="nfolds=2.*checkpoint"):
        dw.DeepWaterEstimator(checkpoint=first, nfolds=2, epochs=4).train(y="label", training_frame=frame)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_validation_runs_on_every_backend(frame, backend):
    trained = model(nfolds=2, backend=backend, epochs=1).train(y="label", training_frame=frame)
    assert trained.cross_validation_metrics_summary().shape == (len(trained.cross_validation_metrics_summary()), 4)
    assert all(m.summary()["backend"] == backend for m in trained.cross_validation_models())


def test_a_fold_model_that_fails_stops_the_folds_after_it(frame, monkeypatch):
    trained, fit = [], jobs.fit

    def failing_first(job, training, validation):
        trained.append(job.model_id)
        if job.model_id.endswith("_cv_1"):
            raise ParameterError("fold 1 cannot be built")
        return fit(job, training, validation)

    monkeypatch.setattr(jobs, "fit", failing_first)
    with pytest.raises(ParameterError, match="fold 1 cannot be built"):
        model(nfolds=3, model_id="stops").train(y="label", training_frame=frame)
    assert trained == ["stops_cv_1"]


@pytest.mark.parametrize("backend", installed_backends())
def test_an_image_network_cross_validates_with_variable_importances_asked(backend):
    """variable_importances=True (given or by default) does not stop a network without importances (LeNet on
    pixel columns) from training its fold models; its varimp() says why there are none."""
    rng = np.random.default_rng(4)
    pixels = pd.DataFrame(rng.integers(0, 255, size=(40, 784)), columns=[f"C{i}" for i in range(784)])
    pixels["label"] = pd.Categorical(np.arange(40) % 2)
    lenet = model(backend=backend, network="lenet", image_shape=[28, 28], channels=1, nfolds=2)
    lenet.train(y="label", training_frame=pixels)
    assert len(lenet.cross_validation_models()) == 2
    asked = model(backend=backend, network="lenet", image_shape=[28, 28], channels=1, nfolds=2,
                  variable_importances=True).train(y="label", training_frame=pixels)
    assert len(asked.cross_validation_models()) == 2
    with pytest.raises(ParameterError, match="variable importances need an MLP"):
        asked.varimp()


def test_fold_models_do_not_warn_of_settings_the_user_never_gave(frame):
    """Fold models are handed every value of their main model: the image settings' defaults are not 'given'."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(nfolds=2).train(y="label", training_frame=frame)
