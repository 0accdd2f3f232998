"""H2O's binomial metrics: the threshold table and its accessors checked against scikit-learn on fixed scores,
predict() and the default confusion matrix at the threshold that maximises F1, binomial-only metrics refused
for other models, and the table through save_model/load_model."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

import deepwater as dw
from deepwater.analysis.metrics import THRESHOLD_TABLE_COLUMNS, ModelMetrics
from deepwater.errors import ParameterError
from deepwater.storage import saved_models as model_files

CLASSES = ["no", "yes"]
FAST = {"hidden": [8], "gpu": False, "quiet_mode": True, "seed": 5, "learning_rate": 0.05, "epochs": 2}


def scores(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class codes and two-class probabilities that rank the classes well but not perfectly, with ties."""
    rng = np.random.default_rng(seed)
    codes = (rng.random(n) < 0.35).astype(np.int64)
    p1 = np.clip(0.25 + 0.3 * codes + rng.normal(scale=0.2, size=n), 0.0, 1.0).round(2)
    return codes, np.stack([1.0 - p1, p1], axis=1)


def binary_frame(n: int, seed: int) -> pd.DataFrame:
    """Two overlapping classes, 30% 'yes': the threshold that maximises F1 is far from 0.5."""
    rng = np.random.default_rng(seed)
    positive = rng.random(n) < 0.3
    return pd.DataFrame({"x1": rng.normal(size=n) + positive, "x2": rng.normal(size=n) - 0.5 * positive,
                         "label": pd.Categorical(np.where(positive, "yes", "no"))})


@pytest.fixture(scope="module")
def metrics() -> tuple[ModelMetrics, np.ndarray, np.ndarray]:
    codes, probs = scores()
    return ModelMetrics.for_classification(codes, probs, CLASSES), codes, probs[:, 1]


@pytest.fixture(scope="module")
def with_validation():
    train, valid = binary_frame(200, 0), binary_frame(120, 1)
    model = dw.DeepWaterEstimator(**FAST).train(y="label", training_frame=train, validation_frame=valid)
    return model, train, valid


def sklearn_counts(codes, p1, threshold, weights=None) -> np.ndarray:
    return skm.confusion_matrix(codes, (p1 >= threshold).astype(int), labels=[0, 1], sample_weight=weights)


# --------------------------------------------------------------------------- the table against scikit-learn

def test_the_table_has_h2os_columns_and_one_row_per_distinct_score(metrics):
    m, codes, p1 = metrics
    table = m.thresholds_and_metric_scores()
    assert tuple(table.columns) == THRESHOLD_TABLE_COLUMNS
    np.testing.assert_array_equal(table["threshold"], np.sort(np.unique(p1))[::-1])
    np.testing.assert_array_equal(table["idx"], np.arange(len(table)))
    assert all(table[c].dtype == np.int64 for c in ("tns", "fns", "fps", "tps"))


def test_every_row_of_the_table_equals_sklearn_at_its_threshold(metrics):
    m, codes, p1 = metrics
    for row in m.thresholds_and_metric_scores().itertuples():
        predicted = (p1 >= row.threshold).astype(int)
        (tn, fp), (fn, tp) = sklearn_counts(codes, p1, row.threshold)
        assert (row.tns, row.fps, row.fns, row.tps) == (tn, fp, fn, tp)
        assert row.f1 == pytest.approx(skm.f1_score(codes, predicted))
        assert row.f2 == pytest.approx(skm.fbeta_score(codes, predicted, beta=2))
        assert row.f0point5 == pytest.approx(skm.fbeta_score(codes, predicted, beta=0.5))
        assert row.accuracy == pytest.approx(skm.accuracy_score(codes, predicted))
        assert row.precision == pytest.approx(skm.precision_score(codes, predicted))
        assert row.recall == pytest.approx(skm.recall_score(codes, predicted)) == pytest.approx(row.tpr)
        assert row.specificity == pytest.approx(skm.recall_score(codes, predicted, pos_label=0))
        assert row.absolute_mcc == pytest.approx(abs(skm.matthews_corrcoef(codes, predicted)))
        per_class = skm.recall_score(codes, predicted, average=None)
        assert row.min_per_class_accuracy == pytest.approx(per_class.min())
        assert row.mean_per_class_accuracy == pytest.approx(skm.balanced_accuracy_score(codes, predicted))
        assert row.fpr == pytest.approx(fp / (fp + tn)) and row.fnr == pytest.approx(fn / (fn + tp))


@pytest.mark.parametrize("method, column", [
    ("F1", "f1"), ("F2", "f2"), ("F0point5", "f0point5"), ("accuracy", "accuracy"),
    ("precision", "precision"), ("recall", "recall"), ("specificity", "specificity"),
])
def test_without_thresholds_a_metric_is_its_maximum_at_its_threshold(metrics, method, column):
    m, _, _ = metrics
    table = m.thresholds_and_metric_scores()
    best = table.loc[table[column].idxmax()]  # the first (highest) threshold on a tie, as H2O
    assert getattr(m, method)() == [[best["threshold"], best[column]]]
    assert m.find_threshold_by_max_metric(column) == best["threshold"]


def test_max_per_class_error_is_the_smallest_worst_class_error(metrics):
    m, _, _ = metrics
    table = m.thresholds_and_metric_scores()
    best = table.loc[table["min_per_class_accuracy"].idxmax()]
    assert m.max_per_class_error() == [[best["threshold"], pytest.approx(1.0 - best["min_per_class_accuracy"])]]


def test_given_thresholds_score_like_sklearn_even_between_the_scores(metrics):
    m, codes, p1 = metrics
    thresholds = [0.0, 0.333, 0.5, 0.871, 1.0]  # 0.333 and 0.871 are no score
    assert [t for t, _ in m.F1(thresholds)] == thresholds
    for (t, f1), (_, precision) in zip(m.F1(thresholds), m.precision(thresholds)):
        predicted = (p1 >= t).astype(int)
        assert f1 == pytest.approx(skm.f1_score(codes, predicted, zero_division=0)) or np.isnan(f1)
        assert precision == pytest.approx(skm.precision_score(codes, predicted, zero_division=0)) \
            or (np.isnan(precision) and predicted.sum() == 0)
    assert m.accuracy(0.5) == [[0.5, pytest.approx(skm.accuracy_score(codes, (p1 >= 0.5).astype(int)))]]


def test_auc_gini_and_aucpr_equal_sklearn(metrics):
    m, codes, p1 = metrics
    assert m.auc() == pytest.approx(skm.roc_auc_score(codes, p1))
    assert m.gini() == pytest.approx(2 * skm.roc_auc_score(codes, p1) - 1)
    assert m.aucpr() == pytest.approx(skm.average_precision_score(codes, p1))


def test_the_default_confusion_matrix_and_errors_are_at_the_max_f1_threshold(metrics):
    m, codes, p1 = metrics
    best = m.find_threshold_by_max_metric("f1")
    assert best != 0.5
    matrix = m.confusion_matrix()
    np.testing.assert_array_equal(matrix[CLASSES].to_numpy(), sklearn_counts(codes, p1, best))
    assert matrix.attrs["threshold"] == best
    predicted = (p1 >= best).astype(int)
    assert m.classification_error() == pytest.approx(1 - skm.accuracy_score(codes, predicted))
    assert m.mean_per_class_error() == pytest.approx(1 - skm.balanced_accuracy_score(codes, predicted))


def test_confusion_matrices_at_given_thresholds_and_metrics(metrics):
    m, codes, p1 = metrics
    low, high = m.confusion_matrix(thresholds=[0.2, 0.7])
    np.testing.assert_array_equal(low[CLASSES].to_numpy(), sklearn_counts(codes, p1, 0.2))
    np.testing.assert_array_equal(high[CLASSES].to_numpy(), sklearn_counts(codes, p1, 0.7))
    assert (low.attrs["threshold"], high.attrs["threshold"]) == (0.2, 0.7)
    by_precision = m.confusion_matrix(metrics="precision")
    assert by_precision.attrs["threshold"] == m.find_threshold_by_max_metric("precision")
    both = m.confusion_matrix(metrics=["f2"], thresholds=0.5)
    assert [t.attrs["threshold"] for t in both] == [0.5, m.find_threshold_by_max_metric("f2")]


def test_weighted_rows_weigh_in_the_counts():
    codes, probs = scores(120, seed=3)
    weights = np.random.default_rng(4).uniform(0.0, 3.0, len(codes))
    m = ModelMetrics.for_classification(codes, probs, CLASSES, weights)
    for row in m.thresholds_and_metric_scores().iloc[::10].itertuples():
        (tn, fp), (fn, tp) = sklearn_counts(codes, probs[:, 1], row.threshold, weights)
        np.testing.assert_allclose([row.tns, row.fps, row.fns, row.tps], [tn, fp, fn, tp])


def test_one_class_present_gives_nan_auc_and_the_default_threshold():
    codes = np.zeros(20, dtype=np.int64)
    p1 = np.linspace(0.05, 0.95, 20)
    m = ModelMetrics.for_classification(codes, np.stack([1 - p1, p1], axis=1), CLASSES)
    assert np.isnan(m.auc()) and np.isnan(m.aucpr())
    assert m.find_threshold_by_max_metric("f1") == 0.5  # F1 is undefined everywhere: H2O's 0.5
    assert m.specificity() == [[0.95, 0.95]]  # at the highest score one row of 20 is called positive


# --------------------------------------------------------------------------- refusals

BINOMIAL_ONLY = [("gini", ()), ("aucpr", ()), ("F1", ()), ("F2", ()), ("F0point5", ()), ("precision", ()),
                 ("recall", ()), ("specificity", ()), ("max_per_class_error", ()), ("accuracy", (0.5,)),
                 ("find_threshold_by_max_metric", ("f1",)), ("thresholds_and_metric_scores", ()),
                 ("metric", ("f1",))]


@pytest.mark.parametrize("method, args", BINOMIAL_ONLY)
def test_binomial_metrics_of_three_classes_say_they_need_two(method, args):
    codes = np.arange(30) % 3
    m = ModelMetrics.for_classification(codes, np.eye(3)[codes] * 0.8 + 0.2 / 3, ["a", "b", "c"])
    with pytest.raises(ParameterError, match="needs a response with two classes.*a model with 3 classes"):
        getattr(m, method)(*args)
    with pytest.raises(ParameterError, match="two classes"):
        m.confusion_matrix(thresholds=[0.5])
    assert m.accuracy() == 1.0  # a number for more classes, as before


def test_binomial_metrics_of_regression_say_they_need_two_classes():
    m = ModelMetrics.for_regression(np.arange(5.0), np.arange(5.0) + 0.1, "gaussian")
    with pytest.raises(ParameterError, match="two classes.*regression"):
        m.F1()


@pytest.mark.parametrize("thresholds", [1.5, -0.1, [0.2, "x"], [], "0.5", True, float("nan")])
def test_bad_thresholds_are_named(metrics, thresholds):
    m, _, _ = metrics
    with pytest.raises(ParameterError, match="thresholds="):
        m.F1(thresholds)


def test_unknown_metric_names_are_named(metrics):
    m, _, _ = metrics
    with pytest.raises(ParameterError, match="metric='auc'"):
        m.find_threshold_by_max_metric("auc")
    with pytest.raises(ParameterError, match="metrics='f3'"):
        m.confusion_matrix(metrics="f3")
    assert m.find_threshold_by_max_metric("Sensitivity") == m.find_threshold_by_max_metric("recall")


# --------------------------------------------------------------------------- the estimator

def test_predict_labels_use_the_validation_max_f1_threshold(with_validation):
    model, train, valid = with_validation
    threshold = model.model_performance(valid=True).find_threshold_by_max_metric("f1")
    training_threshold = model.model_performance(train=True).find_threshold_by_max_metric("f1")
    predictions = model.predict(valid)
    p_yes = predictions["yes"].to_numpy()
    assert (np.where(p_yes >= threshold, "yes", "no") == predictions["predict"].astype(str)).all()
    # the test tells the validation threshold from argmax and from the training threshold
    assert ((p_yes >= threshold) != (p_yes >= 0.5)).any()
    assert ((p_yes >= threshold) != (p_yes >= training_threshold)).any()
    # the validation confusion matrix is that of predict()'s labels on the validation frame
    matrix = model.model_performance(valid=True).confusion_matrix()
    crosstab = pd.crosstab(valid["label"], predictions["predict"]).reindex(index=CLASSES, columns=CLASSES,
                                                                          fill_value=0)
    np.testing.assert_array_equal(matrix[CLASSES].to_numpy(), crosstab.to_numpy())


def test_without_validation_predict_uses_the_training_threshold():
    train = binary_frame(200, 0)
    model = dw.DeepWaterEstimator(**FAST).train(y="label", training_frame=train)
    threshold = model.model_performance(train=True).find_threshold_by_max_metric("f1")
    predictions = model.predict(train)
    expected = np.where(predictions["yes"].to_numpy() >= threshold, "yes", "no")
    assert (expected == predictions["predict"].astype(str)).all()
    matrix = model.model_performance(train=True).confusion_matrix()
    assert int(matrix.loc["no", "yes"] + matrix.loc["yes", "yes"]) == int((expected == "yes").sum())


def test_the_threshold_table_survives_save_and_load(with_validation, tmp_path):
    model, _, valid = with_validation
    loaded = dw.load_model(dw.save_model(model, tmp_path))
    for part in ({"valid": True}, {"train": True}):
        pd.testing.assert_frame_equal(loaded.model_performance(**part).thresholds_and_metric_scores(),
                                      model.model_performance(**part).thresholds_and_metric_scores())
    pd.testing.assert_frame_equal(loaded.predict(valid), model.predict(valid))


def test_a_record_saved_without_the_table_still_loads(with_validation):
    model, _, _ = with_validation
    record = model_files.record_of(model.model_performance(valid=True))
    del record["curve"]  # as saved before binomial metrics
    old = model_files.metrics_from_record(record)
    assert old.logloss() == model.model_performance(valid=True).logloss()
    assert old.confusion_matrix().equals(model.model_performance(valid=True).confusion_matrix())
    assert old.default_threshold() == 0.5
    with pytest.raises(ParameterError, match="earlier deepwater"):
        old.F1()
