"""What a training run leaves: the fitted model's parts that predict() needs, and cross-validation's results."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from deepwater.analysis.metrics import ModelMetrics
from deepwater.data.encoders import Response
from deepwater.data.inputs import DatasetInputs, ImageInputs
from deepwater.errors import ParameterError
from deepwater.specs import TaskSpec, UserGraph
from deepwater.training.trainer import TrainingOutcome


@dataclass
class CrossValidation:
    """What cross-validation produced: per-fold metrics, the combined holdout predictions' metrics, and
    (as the keep_cross_validation_* parameters ask) the fold models, their predictions, the folds."""

    metrics: ModelMetrics
    fold_metrics: list[ModelMetrics]
    fold_epochs: list[float]
    models: list[Any] = field(default_factory=list)  # the fold models, when kept
    holdout_predictions: pd.DataFrame | None = None
    fold_assignment: np.ndarray | None = None
    frame_digest: str | None = None  # data.digests.frame_digest of the frame cross-validated (None: saved before)

    def summary(self) -> pd.DataFrame:
        """H2O's cross_validation_metrics_summary(): one row per metric; mean, sd, cv_1_valid ... cv_k_valid."""
        per_fold = [summary_values(m) for m in self.fold_metrics]
        names = sorted(set().union(*per_fold))
        table = pd.DataFrame({f"cv_{i + 1}_valid": [values.get(n, np.nan) for n in names]
                              for i, values in enumerate(per_fold)}, index=pd.Index(names, name="metric"))
        folds = table.astype(float)
        table.insert(0, "sd", folds.std(axis=1, ddof=1))  # pandas skips NaN (r2 of a one-row fold) quietly
        table.insert(0, "mean", folds.mean(axis=1))
        return table

    def fold_predictions(self) -> list[pd.DataFrame]:
        """H2O's cross_validation_predictions(): one frame per fold model, as long as the training frame,
        holding that model's predictions on its holdout rows and 0 elsewhere."""
        holdout = self.kept(self.holdout_predictions, "keep_cross_validation_predictions")
        folds = self.kept(self.fold_assignment, "keep_cross_validation_predictions")
        frames = []
        for fold in range(len(self.fold_metrics)):
            frame = holdout.copy()
            numeric = [c for c in frame.columns if c != "predict"]
            frame.loc[folds != fold, numeric] = 0.0
            if "predict" in frame and isinstance(frame["predict"].dtype, pd.CategoricalDtype):
                frame["predict"] = frame["predict"].where(folds == fold)
            else:
                frame.loc[folds != fold, "predict"] = 0.0
            frames.append(frame)
        return frames

    @staticmethod
    def kept(value: Any, parameter: str) -> Any:
        """`value`, or a ParameterError saying that the keep_* `parameter` was off."""
        if value is None:
            raise ParameterError(f"this model did not keep them: train it with {parameter}=True.")
        return value


def summary_values(metrics: ModelMetrics) -> dict[str, float]:
    """A fold's metrics under H2O's summary names (err, accuracy, err_count, mean_per_class_accuracy...)."""
    values = dict(metrics.values)
    if "classification_error" in values:
        error = values.pop("classification_error")
        values.update(err=error, accuracy=1.0 - error, err_count=round(error * metrics.nobs))
    if "mean_per_class_error" in values:
        values["mean_per_class_accuracy"] = 1.0 - values["mean_per_class_error"]
    return values


@dataclass
class FittedModel:
    """Everything train() produced and predict() needs."""

    backend: str
    device: str
    network: str
    net: Any
    task: TaskSpec
    response: Response
    inputs: DatasetInputs | ImageInputs
    predictors: list[str]
    problem_type: str
    seed: int
    outcome: TrainingOutcome
    training_metrics: ModelMetrics | None  # None for pretrained weights loaded by from_pretrained()
    validation_metrics: ModelMetrics | None
    graph: UserGraph | None = None  # network='user': the graph file the net was built from
    cross_validation: CrossValidation | None = None
    params: dict[str, Any] = field(default_factory=dict)  # the parameters it was trained (or loaded) with
    given: frozenset[str] = frozenset()  # the names of those that were given, not defaults

    def threshold(self) -> float:
        """The probability of the second class from which predict() says that class (two classes): the max-F1
        threshold of the final validation scoring, else of the training scoring, else 0.5 (H2O's rule)."""
        final = self.validation_metrics if self.validation_metrics is not None else self.training_metrics
        return 0.5 if final is None else final.default_threshold()
