"""What a model page shows beside its metrics, taken once when the job ends so that the page needs no model: the
ROC curve of a binomial model, the variable importances of an MLP, the cross-validation summary, as JSON."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deepwater.errors import ParameterError

ROC_POINTS = 200  # at most this many points of a curve are kept (thinned evenly; the ends always)
VARIMP_ROWS = 20  # the most important variables shown


def table(frame: pd.DataFrame) -> dict[str, Any]:
    """A DataFrame as {"columns", "index", "rows"} (text labels, cells as they are)."""
    return {"columns": [str(c) for c in frame.columns], "index": [str(i) for i in frame.index],
            "rows": frame.astype(object).where(frame.notna(), None).to_numpy().tolist()}


def roc_points(performance: Any) -> list[list[float]] | None:
    """[[fpr, tpr], ...] from (0, 0) of a binomial model's metrics (H2O's thresholds table), else None."""
    if performance is None or performance.model_kind != "binomial":
        return None
    scores = performance.thresholds_and_metric_scores()
    points = np.vstack([[0.0, 0.0], scores[["fpr", "tpr"]].to_numpy(dtype=float), [1.0, 1.0]])
    if len(points) > ROC_POINTS:
        points = points[np.linspace(0, len(points) - 1, ROC_POINTS).round().astype(int)]
    return np.round(points, 5).tolist()


def variable_importances(model: Any) -> dict[str, Any] | None:
    """The first VARIMP_ROWS rows of model.varimp(use_pandas=True): an MLP trained with variable_importances;
    None for any other model (a convolutional network has none)."""
    if not model.params["variable_importances"]["actual"]:
        return None
    try:
        found = model.varimp(use_pandas=True)
    except ParameterError:  # not an MLP: varimp() says so, and the page shows no table
        return None
    return None if found is None else table(found.head(VARIMP_ROWS).set_index("variable"))


def cross_validation(model: Any) -> dict[str, Any] | None:
    """model.cross_validation_metrics_summary() when the model was cross-validated, else None."""
    try:
        summary = model.cross_validation_metrics_summary()
    except ParameterError:  # not cross-validated
        return None
    return table(summary)
