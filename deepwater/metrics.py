"""Model metrics computed with scikit-learn, held in an H2O-style ModelMetrics object."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from .specs import REGRESSION

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


def classification_metrics(codes: np.ndarray, probs: np.ndarray, weights: np.ndarray | None = None) -> dict[str, float]:
    """logloss, classification_error, mean_per_class_error, mse, rmse and (two classes) auc."""
    labels = list(range(probs.shape[1]))
    predicted = probs.argmax(axis=1)
    onehot = np.eye(probs.shape[1], dtype=np.float64)[codes]
    mse = float(np.average(((onehot - probs) ** 2).sum(axis=1), weights=weights))
    out = {
        "logloss": float(skm.log_loss(codes, np.clip(probs, 1e-15, 1.0), labels=labels, sample_weight=weights)),
        "classification_error": 1.0 - float(skm.accuracy_score(codes, predicted, sample_weight=weights)),
        "mean_per_class_error": _mean_per_class_error(codes, predicted, labels),
        "mse": mse,
        "rmse": math.sqrt(mse),
    }
    if probs.shape[1] == 2:
        out["auc"] = float(skm.roc_auc_score(codes, probs[:, 1], sample_weight=weights)) \
            if len(np.unique(codes)) == 2 else float("nan")
    return out


def _mean_per_class_error(codes: np.ndarray, predicted: np.ndarray, labels: list[int]) -> float:
    matrix = skm.confusion_matrix(codes, predicted, labels=labels)
    support = matrix.sum(axis=1)
    present = support > 0
    return float(np.mean(1.0 - np.diag(matrix)[present] / support[present]))


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


@dataclass
class ModelMetrics:
    """Metrics of a model on one frame, with H2O's accessors (logloss(), auc(), confusion_matrix(), ...)."""

    kind: str
    values: dict[str, float]
    nobs: int
    classes: list[Any] = field(default_factory=list)
    confusion: np.ndarray | None = None
    description: str = ""

    @classmethod
    def for_classification(cls, codes: np.ndarray, probs: np.ndarray, classes: Sequence[Any],
                           weights: np.ndarray | None = None, description: str = "") -> "ModelMetrics":
        matrix = skm.confusion_matrix(codes, probs.argmax(axis=1), labels=list(range(len(classes))))
        return cls("classification", classification_metrics(codes, probs, weights), len(codes), list(classes),
                   matrix, description)

    @classmethod
    def for_regression(cls, y: np.ndarray, predicted: np.ndarray, distribution: str,
                       weights: np.ndarray | None = None, description: str = "") -> "ModelMetrics":
        return cls(REGRESSION, regression_metrics(y, predicted, distribution, weights), len(y), description=description)

    def _get(self, key: str) -> float:
        if key not in self.values:
            raise KeyError(f"{key!r} is not computed for this {self.kind} model; available: {sorted(self.values)}")
        return self.values[key]

    def logloss(self) -> float:
        return self._get("logloss")

    def classification_error(self) -> float:
        return self._get("classification_error")

    def accuracy(self) -> float:
        return 1.0 - self._get("classification_error")

    def mean_per_class_error(self) -> float:
        return self._get("mean_per_class_error")

    def auc(self) -> float:
        return self._get("auc")

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

    def confusion_matrix(self) -> pd.DataFrame:
        """Rows: actual class; columns: predicted class, then Error and Rate as H2O prints them."""
        if self.confusion is None:
            raise KeyError("a confusion matrix exists only for classification models")
        names = [str(c) for c in self.classes]
        table = pd.DataFrame(self.confusion, index=names, columns=names)
        wrong = table.sum(axis=1) - np.diag(self.confusion)
        totals = table.sum(axis=1)
        table["Error"] = (wrong / totals.replace(0, np.nan)).fillna(0.0)
        table["Rate"] = [f"{w:,} / {t:,}" for w, t in zip(wrong, totals)]
        return table

    def as_dict(self) -> dict[str, float]:
        return dict(self.values)

    def __repr__(self) -> str:
        lines = [f"ModelMetrics ({self.kind}{', ' + self.description if self.description else ''}; {self.nobs} rows)"]
        lines += [f"  {k}: {v:.6g}" for k, v in self.values.items()]
        if self.confusion is not None and len(self.classes) <= 20:
            lines.append("Confusion matrix (rows: actual, columns: predicted):")
            lines.append(self.confusion_matrix().to_string())
        return "\n".join(lines)

    def show(self) -> None:
        print(repr(self))
