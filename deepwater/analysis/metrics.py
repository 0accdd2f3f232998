"""Model metrics computed with scikit-learn, held in an H2O-style ModelMetrics object."""
from __future__ import annotations

import math
import numbers
import os
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from deepwater.analysis import plots
from deepwater.errors import ParameterError, warn_user
from deepwater.specs import AUTOENCODER, REGRESSION

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# H2O's stopping_metric names -> our metric keys and whether larger is better
STOPPING_KEYS = {
    "logloss": ("logloss", False),
    "misclassification": ("classification_error", False),
    "mean_per_class_error": ("mean_per_class_error", False),
    "MSE": ("mse", False),
    "RMSE": ("rmse", False),
    "AUC": ("auc", True),
    "deviance": ("mean_residual_deviance", False),
}
CLASSIFICATION_ONLY = ("logloss", "misclassification", "mean_per_class_error", "AUC")
# the models a metric exists for, named where another model's metrics are asked for it
METRIC_NEEDS = {
    **dict.fromkeys(("logloss", "classification_error", "mean_per_class_error", "accuracy", "confusion_matrix"),
                    "a classification model (a categorical y)"),
    **dict.fromkeys(("auc", "aucpr"), "a binomial model (a categorical y with two classes)"),
    **dict.fromkeys(("mae", "r2", "mean_residual_deviance"), "a regression model (a numeric y)"),
}


def classification_metrics(codes: np.ndarray, probs: np.ndarray, weights: np.ndarray | None = None,
                           curve: dict[str, list[float]] | None = None) -> dict[str, float]:
    """logloss, classification_error, mean_per_class_error, mse, rmse and, for two classes, auc and aucpr.

    With two classes the errors are those of the threshold that maximises F1 on `curve` (binary_curve of
    these rows), as H2O reports them; with more, those of the most probable class.
    """
    labels = list(range(probs.shape[1]))
    onehot = np.eye(probs.shape[1], dtype=np.float64)[codes]
    mse = float(np.average(((onehot - probs) ** 2).sum(axis=1), weights=weights))
    out = {"logloss": float(skm.log_loss(codes, np.clip(probs, 1e-15, 1.0), labels=labels, sample_weight=weights))}
    if curve is None:
        predicted = probs.argmax(axis=1)
        out["classification_error"] = 1.0 - float(skm.accuracy_score(codes, predicted, sample_weight=weights))
        out["mean_per_class_error"] = _mean_per_class_error(skm.confusion_matrix(codes, predicted, labels=labels))
    else:
        best = threshold_scores(curve, [max_threshold(curve, "f1")])
        out["classification_error"] = 1.0 - float(best["accuracy"][0])
        out["mean_per_class_error"] = 1.0 - float(best["mean_per_class_accuracy"][0])
    out.update(mse=mse, rmse=math.sqrt(mse))
    if curve is not None:
        both = len(np.unique(codes)) == 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            out["auc"] = float(skm.roc_auc_score(codes, probs[:, 1], sample_weight=weights)) if both else math.nan
            out["aucpr"] = float(skm.average_precision_score(codes, probs[:, 1], sample_weight=weights)) \
                if both else math.nan
    return out


def _mean_per_class_error(matrix: np.ndarray) -> float:
    support = matrix.sum(axis=1)
    present = support > 0
    return float(np.mean(1.0 - np.diag(matrix)[present] / support[present]))


# --------------------------------------------------------------------------- two classes: H2O's threshold table

# The columns of H2O's thresholds_and_metric_scores table, in its order.
THRESHOLD_TABLE_COLUMNS = ("threshold", "f1", "f2", "f0point5", "accuracy", "precision", "recall", "specificity",
                           "absolute_mcc", "min_per_class_accuracy", "mean_per_class_accuracy",
                           "tns", "fns", "fps", "tps", "tnr", "fnr", "fpr", "tpr", "idx")
CRITERIA = THRESHOLD_TABLE_COLUMNS[1:-1]   # what metric() and find_threshold_by_max_metric() take
CRITERION_ALIASES = {"sensitivity": "tpr", "fallout": "fpr", "missrate": "fnr"}
_COUNTS = ("tns", "fns", "fps", "tps")


def binary_curve(codes: np.ndarray, scores: np.ndarray, weights: np.ndarray | None = None) -> dict[str, list[float]]:
    """True and false positives (weighted) at every distinct score, highest threshold first.

    A row is predicted positive (the second class, code 1) when its score is >= the threshold, H2O's rule.
    The counts come from scikit-learn's roc_curve; the lowest threshold predicts every row positive, so the
    last counts are the totals of positives and negatives. Lists of floats, so the curve is JSON.
    """
    w = np.ones(len(codes)) if weights is None else np.asarray(weights, dtype=np.float64)
    positives, negatives = float(w[codes == 1].sum()), float(w[codes == 0].sum())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # one class only: its rate is NaN, counts are 0
        fpr, tpr, thresholds = skm.roc_curve(codes, np.asarray(scores, dtype=np.float64), pos_label=1,
                                             sample_weight=weights, drop_intermediate=False)
    kept = np.isfinite(thresholds)  # sklearn's first threshold, +inf, predicts no row positive
    tps = np.nan_to_num(tpr[kept]) * positives
    fps = np.nan_to_num(fpr[kept]) * negatives
    if weights is None:
        tps, fps = np.rint(tps), np.rint(fps)  # counts, exactly
    return {"threshold": thresholds[kept].tolist(), "tps": tps.tolist(), "fps": fps.tolist()}


def threshold_scores(curve: dict[str, list[float]], thresholds: Sequence[float]) -> dict[str, np.ndarray]:
    """Every criterion of THRESHOLD_TABLE_COLUMNS at each of `thresholds`, any number in [0, 1]: the rows
    whose score is >= the threshold are predicted positive."""
    table = np.asarray(curve["threshold"], dtype=np.float64)
    all_tps, all_fps = np.asarray(curve["tps"], dtype=np.float64), np.asarray(curve["fps"], dtype=np.float64)
    above = np.searchsorted(-table, -np.asarray(thresholds, dtype=np.float64), side="right")  # rows >= threshold
    tp = np.where(above > 0, all_tps[above - 1], 0.0)
    fp = np.where(above > 0, all_fps[above - 1], 0.0)
    positives, negatives = all_tps[-1], all_fps[-1]
    tn, fn = negatives - fp, positives - tp
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 is NaN, as in H2O
        precision, tpr, tnr = tp / (tp + fp), tp / positives, tn / negatives
        mcc = np.where(tp * tn - fp * fn == 0, 0.0,
                       np.abs(tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)))
        return {
            "threshold": np.asarray(thresholds, dtype=np.float64),
            "f1": _f_beta(precision, tpr, 1.0), "f2": _f_beta(precision, tpr, 2.0),
            "f0point5": _f_beta(precision, tpr, 0.5),
            "accuracy": (tp + tn) / (positives + negatives), "precision": precision, "recall": tpr,
            "specificity": tnr, "absolute_mcc": np.minimum(mcc, 1.0),
            "min_per_class_accuracy": np.minimum(tpr, tnr), "mean_per_class_accuracy": (tpr + tnr) / 2.0,
            "tns": tn, "fns": fn, "fps": fp, "tps": tp,
            "tnr": tnr, "fnr": fn / positives, "fpr": fp / negatives, "tpr": tpr,
        }


def _f_beta(precision: np.ndarray, recall: np.ndarray, beta: float) -> np.ndarray:
    b2 = beta * beta
    return (1.0 + b2) * precision * recall / (b2 * precision + recall)


def max_threshold(curve: dict[str, list[float]], criterion: str) -> float:
    """The threshold of `curve` at which `criterion` is largest (the highest such threshold on a tie, NaN
    values left out); 0.5, H2O's default, when the criterion is NaN everywhere."""
    values = threshold_scores(curve, curve["threshold"])[criterion]
    if np.isnan(values).all():
        return 0.5
    return float(curve["threshold"][int(np.nanargmax(values))])


def _whole(values: np.ndarray) -> np.ndarray:
    """Counts as integers when they are whole numbers (unweighted rows), else as they are."""
    return values.astype(np.int64) if np.all(values == np.round(values)) else values


def regression_metrics(y: np.ndarray, predicted: np.ndarray, distribution: str,
                       weights: np.ndarray | None = None) -> dict[str, float]:
    """mse, rmse, mae, r2 and the mean residual deviance of `distribution`."""
    mse = float(skm.mean_squared_error(y, predicted, sample_weight=weights))
    mae = float(skm.mean_absolute_error(y, predicted, sample_weight=weights))
    if distribution == "laplace":
        deviance = mae
    elif distribution == "huber":
        deviance = float(np.average(_huber(y - predicted), weights=weights))
    else:
        deviance = mse
    r2 = float(skm.r2_score(y, predicted, sample_weight=weights)) if len(y) > 1 else float("nan")
    return {"mse": mse, "rmse": math.sqrt(mse), "mae": mae, "r2": r2, "mean_residual_deviance": deviance}


def _huber(residual: np.ndarray, delta: float = 1.0) -> np.ndarray:
    a = np.abs(residual)
    return np.where(a <= delta, 0.5 * residual ** 2, delta * (a - 0.5 * delta))


def _threshold_list(thresholds: float | Sequence[float]) -> list[float]:
    """`thresholds`, a number or a list of numbers in [0, 1], as a list of floats."""
    items = [thresholds] if isinstance(thresholds, numbers.Real) else thresholds
    if isinstance(items, (list, tuple, np.ndarray)) and len(items) and all(
            isinstance(t, numbers.Real) and not isinstance(t, bool) and 0.0 <= t <= 1.0 for t in items):
        return [float(t) for t in items]
    raise ParameterError(f"thresholds={thresholds!r}: give a number in [0, 1], a list of them, or None for the "
                         "threshold that maximises the metric.")


def _criterion(metric: str, parameter: str) -> str:
    """H2O's name of a binomial criterion (case-insensitive; sensitivity, fallout and missrate are aliases)."""
    name = str(metric).lower()
    name = CRITERION_ALIASES.get(name, name)
    if name not in CRITERIA:
        raise ParameterError(f"{parameter}={metric!r} is not a binomial metric; use one of "
                             f"{', '.join(CRITERIA + tuple(CRITERION_ALIASES))}.")
    return name


def _confusion_at(curve: dict[str, list[float]], threshold: float) -> np.ndarray:
    """The 2x2 confusion matrix [[tn, fp], [fn, tp]] (rows actual, columns predicted) at `threshold`."""
    scores = threshold_scores(curve, [threshold])
    return _whole(np.array([[scores["tns"][0], scores["fps"][0]], [scores["fns"][0], scores["tps"][0]]]))


@dataclass
class ModelMetrics:
    """Metrics of a model on one frame, with H2O's accessors (logloss(), auc(), confusion_matrix(), ...).

    For two classes `curve` (binary_curve) holds the counts at every threshold, from which come H2O's
    binomial metrics (F1(), precision(), thresholds_and_metric_scores(), ...); the confusion matrix, the
    classification error and the mean per-class error are those of the threshold that maximises F1.
    """

    kind: str
    values: dict[str, float]
    nobs: int
    classes: list[Any] = field(default_factory=list)
    confusion: np.ndarray | None = None
    description: str = ""
    curve: dict[str, list[float]] | None = None

    @classmethod
    def for_classification(cls, codes: np.ndarray, probs: np.ndarray, classes: Sequence[Any],
                           weights: np.ndarray | None = None, description: str = "") -> "ModelMetrics":
        """Metrics of class probabilities `probs` (rows, classes) against the class codes `codes`."""
        curve = binary_curve(codes, probs[:, 1], weights) if len(classes) == 2 else None
        if curve is None:
            matrix = skm.confusion_matrix(codes, probs.argmax(axis=1), labels=list(range(len(classes))))
        else:
            matrix = _confusion_at(curve, max_threshold(curve, "f1"))
        return cls("classification", classification_metrics(codes, probs, weights, curve), len(codes),
                   list(classes), matrix, description, curve)

    @classmethod
    def for_regression(cls, y: np.ndarray, predicted: np.ndarray, distribution: str,
                       weights: np.ndarray | None = None, description: str = "") -> "ModelMetrics":
        return cls(REGRESSION, regression_metrics(y, predicted, distribution, weights), len(y), description=description)

    @classmethod
    def for_autoencoder(cls, row_errors: np.ndarray, weights: np.ndarray | None = None,
                        description: str = "") -> "ModelMetrics":
        """An autoencoder's metrics (H2O's ModelMetricsAutoEncoder): MSE, the mean over rows of each row's
        reconstruction MSE, and its square root RMSE."""
        mse = float(np.average(np.asarray(row_errors, dtype=np.float64), weights=weights))
        return cls(AUTOENCODER, {"mse": mse, "rmse": math.sqrt(mse)}, len(row_errors), description=description)

    def _get(self, key: str) -> float:
        if key not in self.values:
            raise self._missing(key)
        return self.values[key]

    def _missing(self, metric: str) -> ParameterError:
        """The error for `metric`() asked of metrics that do not hold it: what it needs, what these are, what they
        hold."""
        if self.kind in (AUTOENCODER, REGRESSION):
            model = "an autoencoder" if self.kind == AUTOENCODER else "a regression model"
        else:
            model = f"a {self.model_kind} model ({len(self.classes)} classes)"
        needs = METRIC_NEEDS.get(metric, "another kind of model")
        return ParameterError(f"{metric}() needs {needs}, and these are the metrics of {model}; ask for one they "
                              f"hold: {', '.join(f'{k}()' for k in self.values)}.")

    def _binomial(self, what: str) -> dict[str, list[float]]:
        """The threshold curve, or a ParameterError saying that `what` needs a model with two classes."""
        if len(self.classes) != 2:
            model = "a regression model" if self.kind == REGRESSION else f"a model with {len(self.classes)} classes"
            raise ParameterError(f"{what} is a binomial metric: it needs a response with two classes, and these are "
                                 f"the metrics of {model}. Use logloss(), classification_error(), "
                                 "mean_per_class_error() or confusion_matrix() for more classes, mse() or rmse() "
                                 "for regression.")
        if self.curve is None:
            raise ParameterError(f"{what} needs the threshold table, which metrics saved by an earlier deepwater "
                                 "do not hold; score a frame again: model.model_performance(frame).")
        return self.curve

    def _at(self, criterion: str, thresholds: float | Sequence[float] | None, what: str) -> list[list[float]]:
        """[[threshold, value], ...] of `criterion` at `thresholds`, or at the one that maximises it (None)."""
        curve = self._binomial(what)
        chosen = [max_threshold(curve, criterion)] if thresholds is None else _threshold_list(thresholds)
        return [[t, float(v)] for t, v in zip(chosen, threshold_scores(curve, chosen)[criterion])]

    def logloss(self) -> float:
        return self._get("logloss")

    def classification_error(self) -> float:
        return self._get("classification_error")

    def accuracy(self, thresholds: float | Sequence[float] | None = None) -> float | list[list[float]]:
        """Two classes: [[threshold, accuracy], ...], at the threshold that maximises accuracy when thresholds=None
        (H2O's binomial accuracy()); more classes: the accuracy of the most probable class, a number."""
        if len(self.classes) == 2 or thresholds is not None:
            return self._at("accuracy", thresholds, "accuracy()")
        if "classification_error" not in self.values:
            raise self._missing("accuracy")
        return 1.0 - self.values["classification_error"]

    def mean_per_class_error(self) -> float:
        return self._get("mean_per_class_error")

    def auc(self) -> float:
        return self._get("auc")

    def gini(self) -> float:
        """2 * AUC - 1 (two classes)."""
        self._binomial("gini()")
        return 2.0 * self._get("auc") - 1.0

    def aucpr(self) -> float:
        """Area under the precision-recall curve (two classes): scikit-learn's average precision."""
        self._binomial("aucpr()")
        return self._get("aucpr")

    def metric(self, metric: str, thresholds: float | Sequence[float] | None = None) -> list[list[float]]:
        """[[threshold, value], ...]: a binomial `metric` (a column of thresholds_and_metric_scores()) at each
        of `thresholds`, or at the threshold that maximises it when thresholds=None (H2O's metric())."""
        return self._at(_criterion(metric, "metric"), thresholds, f"metric({metric!r})")

    def F1(self, thresholds: float | Sequence[float] | None = None) -> list[list[float]]:
        """[[threshold, F1], ...]; thresholds=None: the largest F1 and its threshold."""
        return self._at("f1", thresholds, "F1()")

    def F2(self, thresholds: float | Sequence[float] | None = None) -> list[list[float]]:
        """[[threshold, F2], ...]; thresholds=None: the largest F2 and its threshold."""
        return self._at("f2", thresholds, "F2()")

    def F0point5(self, thresholds: float | Sequence[float] | None = None) -> list[list[float]]:
        """[[threshold, F0.5], ...]; thresholds=None: the largest F0.5 and its threshold."""
        return self._at("f0point5", thresholds, "F0point5()")

    def precision(self, thresholds: float | Sequence[float] | None = None) -> list[list[float]]:
        """[[threshold, precision], ...]; thresholds=None: the largest precision and its threshold."""
        return self._at("precision", thresholds, "precision()")

    def recall(self, thresholds: float | Sequence[float] | None = None) -> list[list[float]]:
        """[[threshold, recall (true positive rate)], ...]; thresholds=None: the largest recall and its threshold."""
        return self._at("recall", thresholds, "recall()")

    def specificity(self, thresholds: float | Sequence[float] | None = None) -> list[list[float]]:
        """[[threshold, specificity (true negative rate)], ...]; thresholds=None: the largest and its threshold."""
        return self._at("specificity", thresholds, "specificity()")

    def max_per_class_error(self, thresholds: float | Sequence[float] | None = None) -> list[list[float]]:
        """[[threshold, 1 - min per-class accuracy], ...]; thresholds=None: the smallest such error, its threshold."""
        return [[t, 1.0 - v] for t, v in self._at("min_per_class_accuracy", thresholds, "max_per_class_error()")]

    def find_threshold_by_max_metric(self, metric: str) -> float:
        """The threshold at which the binomial `metric` is largest (0.5 where it is undefined everywhere)."""
        return max_threshold(self._binomial("find_threshold_by_max_metric()"), _criterion(metric, "metric"))

    def default_threshold(self) -> float:
        """The threshold predict() uses for two classes: the one that maximises F1 (0.5 without a threshold
        table: metrics saved by an earlier deepwater)."""
        return 0.5 if self.curve is None else max_threshold(self.curve, "f1")

    def thresholds_and_metric_scores(self) -> pd.DataFrame:
        """H2O's table of every criterion at every threshold (each distinct score), highest threshold first."""
        curve = self._binomial("thresholds_and_metric_scores()")
        scores = threshold_scores(curve, curve["threshold"])
        table = pd.DataFrame({name: _whole(scores[name]) if name in _COUNTS else scores[name]
                              for name in THRESHOLD_TABLE_COLUMNS[:-1]})
        table["idx"] = np.arange(len(table))
        return table

    def mse(self) -> float:
        return self._get("mse")

    def rmse(self) -> float:
        return self._get("rmse")

    def mae(self) -> float:
        return self._get("mae")

    def r2(self) -> float:
        return self._get("r2")

    def mean_residual_deviance(self) -> float:
        return self._get("mean_residual_deviance")

    def confusion_matrix(self, metrics: str | Sequence[str] | None = None,
                         thresholds: float | Sequence[float] | None = None) -> pd.DataFrame | list[pd.DataFrame]:
        """Rows: actual class; columns: predicted class, then Error and Rate as H2O prints them.

        Two classes: at the threshold that maximises F1; `thresholds` (numbers in [0, 1]) and `metrics` (binomial
        metrics, each at the threshold that maximises it) ask for other thresholds, a table each, a list of
        them when more than one (H2O's binomial confusion_matrix). attrs["threshold"] holds a table's threshold.
        """
        if self.confusion is None:
            raise self._missing("confusion_matrix")
        if metrics is None and thresholds is None:
            threshold = self.default_threshold() if self.curve is not None else None
            return self._confusion_table(self.confusion, threshold)
        curve = self._binomial("confusion_matrix(metrics=..., thresholds=...)")
        chosen = [] if thresholds is None else _threshold_list(thresholds)
        names = [] if metrics is None else [metrics] if isinstance(metrics, str) else list(metrics)
        chosen += [max_threshold(curve, _criterion(name, "metrics")) for name in names]
        tables = [self._confusion_table(_confusion_at(curve, t), t) for t in chosen]
        return tables[0] if len(tables) == 1 else tables

    def _confusion_table(self, matrix: np.ndarray, threshold: float | None) -> pd.DataFrame:
        names = [str(c) for c in self.classes]
        table = pd.DataFrame(matrix, index=names, columns=names)
        wrong = table.sum(axis=1) - np.diag(matrix)
        totals = table.sum(axis=1)
        table["Error"] = (wrong / totals.replace(0, np.nan)).fillna(0.0)
        table["Rate"] = [f"{w:,} / {t:,}" for w, t in zip(wrong, totals)]
        if threshold is not None:
            table.attrs["threshold"] = threshold
        return table

    def as_dict(self) -> dict[str, float]:
        return dict(self.values)

    def __repr__(self) -> str:
        lines = [f"ModelMetrics ({self.kind}{', ' + self.description if self.description else ''}; {self.nobs} rows)"]
        lines += [f"  {k}: {v:.6g}" for k, v in self.values.items()]
        if self.confusion is not None and len(self.classes) <= 20:
            at = f" at threshold {self.default_threshold():.6g} (max F1)" if self.curve is not None else ""
            lines.append(f"Confusion matrix (rows: actual, columns: predicted){at}:")
            lines.append(self.confusion_matrix().to_string())
        return "\n".join(lines)

    def show(self) -> None:
        print(repr(self))

    def plot(self, type: str = "roc", save_plot_path: str | os.PathLike | None = None) -> Figure:
        """H2O's metrics plot, as a matplotlib Figure: the ROC curve of a model with two classes (type="pr": the
        precision-recall curve), the confusion matrix of one with more; regression metrics raise ParameterError.
        Needs matplotlib (pip install 'deepwater[plot]')."""
        kind = self.model_kind
        if kind == "regression":
            raise ParameterError("model_performance(...).plot() draws a ROC curve (two classes) or a confusion matrix "
                                 "(more classes); these are a regression model's metrics, which have neither. Plot "
                                 "the scoring history with model.plot(metric='rmse'), or predictions against the "
                                 "response with matplotlib.")
        if kind == "multinomial":
            return plots.confusion_plot(self.confusion, self.classes, save_plot_path)
        type = plots.choice("type", type, plots.METRICS_PLOT_TYPES)
        curve = self._binomial("plot()")
        scores = threshold_scores(curve, curve["threshold"])
        if type == "roc":
            return plots.curve_plot(type, np.concatenate([[0.0], scores["fpr"]]),
                                    np.concatenate([[0.0], scores["tpr"]]), self.auc(), save_plot_path)
        return plots.curve_plot(type, scores["recall"], np.nan_to_num(scores["precision"], nan=1.0), self.aucpr(),
                                save_plot_path)

    @property
    def model_kind(self) -> str:
        """'binomial', 'multinomial' or 'regression', as H2O names a model's metrics."""
        if self.kind != "classification":
            return "regression"
        return "binomial" if len(self.classes) == 2 else "multinomial"


def missing_metrics(model_id: str, asked: str, why: str, fix: str) -> None:
    """H2O's answer to model_performance(`asked`) when the model has no such metrics: None, with a warning that
    says `why` (the model ... `why`) and the `fix`."""
    warn_user(f"model_performance({asked}) is None: model {model_id!r} {why}; {fix}.", UserWarning)
