"""model.plot(), model_performance(...).plot() and grid.plot(): their axes, labels and drawn data (Agg backend)."""
from __future__ import annotations

import builtins

import matplotlib
import numpy as np
import pytest

import deepwater as dw
from conftest import installed_backends, make_blobs, make_linear
from deepwater.errors import MissingDependencyError, ParameterError

matplotlib.use("Agg")

FAST = {"epochs": 3, "gpu": False, "quiet_mode": True, "seed": 5, "hidden": [8], "train_samples_per_iteration": 60}


def _binary(n: int, seed: int):
    frame = make_blobs(n, seed=seed)
    frame = frame[frame["label"] != "c"].copy()
    frame["label"] = frame["label"].cat.remove_unused_categories()
    return frame.reset_index(drop=True)


@pytest.fixture(scope="module", params=installed_backends())
def multinomial(request) -> dw.DeepWaterEstimator:
    model = dw.DeepWaterEstimator(backend=request.param, **FAST)
    return model.train(y="label", training_frame=make_blobs(90, seed=1), validation_frame=make_blobs(45, seed=2))


def _lines(figure) -> dict[str, np.ndarray]:
    return {line.get_label(): line.get_ydata() for line in figure.axes[0].get_lines()}


def test_model_plot_draws_training_and_validation_history_against_epochs(multinomial):
    figure = multinomial.plot()
    history = multinomial.scoring_history()
    axes = figure.axes[0]
    assert (axes.get_xlabel(), axes.get_ylabel(), axes.get_title()) == ("epochs", "classification_error",
                                                                         "Scoring History")
    lines = _lines(figure)
    assert set(lines) == {"Training", "Validation"}
    np.testing.assert_allclose(lines["Validation"], history["validation_classification_error"])
    np.testing.assert_allclose(axes.get_lines()[0].get_xdata(), history["epochs"])


def test_model_plot_takes_h2o_metric_and_timestep_names(multinomial, tmp_path):
    figure = multinomial.plot(timestep="samples", metric="logloss", save_plot_path=tmp_path / "history.png")
    assert figure.axes[0].get_xlabel() == "samples" and figure.axes[0].get_ylabel() == "logloss"
    np.testing.assert_allclose(_lines(figure)["Training"], multinomial.scoring_history()["training_logloss"])
    assert (tmp_path / "history.png").stat().st_size > 0
    with pytest.raises(ParameterError, match="metric='auc'.*classification_error"):
        multinomial.plot(metric="auc")  # a binomial metric on three classes
    with pytest.raises(ParameterError, match="timestep='minutes'.*epochs, samples, duration"):
        multinomial.plot(timestep="minutes")


def test_multinomial_performance_plot_is_the_confusion_matrix(multinomial):
    performance = multinomial.model_performance(make_blobs(60, seed=3))
    figure = performance.plot()
    axes = figure.axes[0]
    assert (axes.get_xlabel(), axes.get_ylabel(), axes.get_title()) == ("Predicted", "Actual", "Confusion Matrix")
    np.testing.assert_array_equal(axes.get_images()[0].get_array(), performance.confusion)
    assert [t.get_text() for t in axes.get_xticklabels()] == ["a", "b", "c"]
    assert sorted(float(t.get_text()) for t in axes.texts) == sorted(performance.confusion.ravel().tolist())


@pytest.mark.parametrize("backend", installed_backends())
def test_binomial_plots_the_roc_curve_and_the_default_history_metric_is_logloss(backend):
    model = dw.DeepWaterEstimator(backend=backend, **FAST).train(y="label", training_frame=_binary(120, 4))
    performance = model.model_performance(_binary(90, 5))
    roc = performance.plot()
    axes = roc.axes[0]
    assert (axes.get_xlabel(), axes.get_ylabel(), axes.get_title()) == ("False Positive Rate", "True Positive Rate",
                                                                        "ROC Curve")
    curve = axes.get_lines()[0]
    fpr, tpr = curve.get_xdata(), curve.get_ydata()
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)
    assert np.trapz(tpr, fpr) == pytest.approx(performance.auc(), abs=1e-9)
    assert curve.get_label() == f"AUC = {performance.auc():.4f}"
    pr = performance.plot(type="pr").axes[0]
    assert (pr.get_xlabel(), pr.get_ylabel()) == ("Recall", "Precision")
    history = model.plot().axes[0]
    assert history.get_ylabel() == "logloss" and history.get_title() == "Training Scoring History"
    assert [line.get_label() for line in history.get_lines()] == ["Training"]


def test_regression_performance_plot_is_a_clear_error_and_history_uses_rmse():
    model = dw.DeepWaterEstimator(**FAST).train(y="y", training_frame=make_linear(90, seed=6))
    with pytest.raises(ParameterError, match="regression.*model.plot\\(metric='rmse'\\)"):
        model.model_performance(train=True).plot()
    figure = model.plot(metric="deviance")
    assert figure.axes[0].get_ylabel() == "deviance"
    np.testing.assert_allclose(_lines(figure)["Training"], model.scoring_history()["training_mean_residual_deviance"])
    assert model.plot().axes[0].get_ylabel() == "rmse"


def test_grid_plot_has_a_bar_per_model_best_at_the_top():
    shared = {k: v for k, v in FAST.items() if k != "hidden"}
    grid = dw.H2OGridSearch(dw.DeepWaterEstimator(**shared), {"hidden": [[4], [16]], "learning_rate": [0.01, 0.1]})
    grid.train(y="label", training_frame=make_blobs(90, seed=7), validation_frame=make_blobs(45, seed=8))
    figure = grid.plot("accuracy")
    axes = figure.axes[0]
    table = grid.get_grid(sort_by="accuracy").sorted_metric_table()
    widths = [bar.get_width() for bar in axes.patches]
    np.testing.assert_allclose(widths, table["accuracy"])
    tops = [bar.get_y() for bar in axes.patches]
    assert tops == sorted(tops, reverse=True)  # the first (best) model is drawn highest
    assert axes.get_xlabel() == "accuracy"
    labels = [t.get_text() for t in axes.get_yticklabels()]
    assert f"hidden={table['hidden'][0]}, learning_rate={table['learning_rate'][0]}" in labels
    assert grid.plot().axes[0].get_xlabel() == "logloss"
    with pytest.raises(ParameterError, match="sort_by='speed'"):
        grid.plot("speed")


def test_a_missing_matplotlib_names_the_plot_extra(multinomial, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(MissingDependencyError, match=r"pip install 'deepwater\[plot\]'"):
        multinomial.plot()
