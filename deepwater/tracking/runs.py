"""A trained model's run in MLflow, logged from what the fitted model holds: every parameter as it was used,
each scoring history row as metrics at its step (samples), the final training, validation and cross-validation
metrics, tags, plots and the model (flavour.py). A grid's models are child runs of the grid's run.

The run is named after the model_id, in the experiment MLflow is set to (MLFLOW_EXPERIMENT_NAME,
mlflow.set_experiment), and becomes a child of a run the user has active. A checkpoint restart continues its
checkpoint's run: the history from where the checkpoint stopped, the parameters it changed as
'<name>.restart_<n>' (MLflow keeps a parameter's first value).
"""
from __future__ import annotations

import math
import numbers
import time
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Protocol

import pandas as pd

from deepwater.errors import MissingDependencyError
from deepwater.tracking import flavour
from deepwater.tracking.client import logged, mlflow_module
from deepwater.training.fitted import FittedModel
from deepwater.training.parameters import SECRET_PARAMETERS
from deepwater.version import __version__

PARAM_LENGTH = 6000  # MLflow's longest parameter value
RESTARTS_TAG = "deepwater.restarts"
NOT_METRICS = ("timestamp", "samples")  # scoring history columns that are not a metric (samples is the step)


class TrainedModel(Protocol):
    """What a run is logged from (a DeepWaterEstimator)."""

    model_id: str
    params: dict[str, dict[str, Any]]

    _fitted: FittedModel

    def summary(self) -> dict[str, Any]: ...
    def scoring_history(self) -> pd.DataFrame: ...
    def cross_validation_metrics_summary(self) -> pd.DataFrame: ...
    def plot(self) -> Any: ...


def require_mlflow() -> None:
    """MissingDependencyError (naming deepwater[mlflow]) before a run that asks for MLflow starts, if it is absent."""
    mlflow_module()


def open_run(model_id: str) -> str | None:
    """A new run named `model_id`, opened before its training so that the checkpoints written on the way carry
    its id (a restart from one continues it); None (with one warning) when the tracking server fails."""
    def start(mlflow: ModuleType) -> str:
        with mlflow.start_run(run_name=model_id, nested=mlflow.active_run() is not None) as run:
            return run.info.run_id

    return logged(f"the run of model {model_id!r}", start)


def log_run(model: TrainedModel, run_id: str | None = None, since_samples: int = 0, fresh: bool = False) -> str | None:
    """Log `model`'s training into a new run, or into `run_id`: the run open_run() opened for it (`fresh`), or a
    checkpoint's (a restart: the history after `since_samples`); returns the run's id, or None (with one warning)
    when the tracking server fails."""
    return logged(f"the run of model {model.model_id!r}", lambda mlflow: _log_run(mlflow, model, run_id,
                                                                                   since_samples, fresh))


def log_grid(grid_id: str, models: Sequence[TrainedModel], leaderboard: pd.DataFrame) -> dict[str, str]:
    """A run named `grid_id` holding the leaderboard as a table, each model a child run; the model_ids' run ids
    (none when the tracking server fails)."""
    def log(mlflow: ModuleType) -> dict[str, str]:
        with mlflow.start_run(run_name=grid_id, nested=mlflow.active_run() is not None,
                              tags={"deepwater.grid_id": grid_id, "deepwater.version": __version__}) as parent:
            mlflow.MlflowClient().log_table(parent.info.run_id, leaderboard, "leaderboard.json")
            return {model.model_id: _log_run(mlflow, model, None, 0) for model in models}

    return logged(f"grid {grid_id!r}", log) or {}


def _log_run(mlflow: ModuleType, model: TrainedModel, run_id: str | None, since_samples: int,
             fresh: bool = False) -> str:
    summary = model.summary()
    with mlflow.start_run(run_id=run_id, run_name=None if run_id else model.model_id,
                          nested=mlflow.active_run() is not None) as run:
        client, rid = mlflow.MlflowClient(), run.info.run_id
        logged_before = client.get_run(rid).data if run_id and not fresh else None
        params, tags = _params_and_tags(model, summary, logged_before)
        metrics = _history_metrics(mlflow, model.scoring_history(), since_samples)
        metrics += _final_metrics(mlflow, model._fitted, int(summary["samples"]))
        client.log_batch(rid, metrics=metrics, params=params, tags=tags)
        for name, figure in _figures(model):
            client.log_figure(rid, figure, f"plots/{name}.png")
        if model._fitted.cross_validation is not None:
            summary_table = model.cross_validation_metrics_summary().reset_index()
            client.log_table(rid, summary_table, "cross_validation_metrics_summary.json")
        flavour.log(mlflow, model, rid, step=int(summary["samples"]))
        return rid


def _params_and_tags(model: TrainedModel, summary: dict[str, Any], before: Any) -> tuple[list, list]:
    """Every parameter as it was used (a restart's changed ones under '<name>.restart_<n>'), and the tags."""
    entities = mlflow_module("mlflow.entities")
    used = {name: _param_text(row["actual"]) for name, row in model.params.items()
            if name not in SECRET_PARAMETERS}  # credentials are never logged
    tags = {"deepwater.backend": summary["backend"], "deepwater.device": summary["device"],
            "deepwater.precision": summary["precision"], "deepwater.network": summary["network"],
            "deepwater.version": __version__, "deepwater.model_id": model.model_id,
            "deepwater.problem_type": summary["problem_type"], "deepwater.stop_reason": summary["stop_reason"]}
    if before is not None:
        restart = int(before.tags.get(RESTARTS_TAG, "0")) + 1
        tags[RESTARTS_TAG] = str(restart)
        used = {name if name not in before.params else f"{name}.restart_{restart}": value
                for name, value in used.items() if before.params.get(name) != value}
    params = [entities.Param(name, value) for name, value in used.items()]
    return params, [entities.RunTag(name, str(value)) for name, value in tags.items()]


def _param_text(value: Any) -> str:
    return str(getattr(value, "model_id", value))[:PARAM_LENGTH]  # a checkpoint model by its model_id


def _history_metrics(mlflow: ModuleType, history: pd.DataFrame, since_samples: int) -> list:
    """Each scoring history row after `since_samples` as metrics at step samples, timed as it was scored."""
    if history.empty:
        return []
    metrics = []
    numeric = [c for c in history.columns if c not in NOT_METRICS and pd.api.types.is_numeric_dtype(history[c])]
    for _, row in history[history["samples"] > since_samples].iterrows():
        when = int(pd.Timestamp(row["timestamp"]).to_pydatetime().timestamp() * 1000)
        metrics += [mlflow.entities.Metric(name, float(row[name]), when, int(row["samples"]))
                    for name in numeric if _finite(row[name])]
    return metrics


def _final_metrics(mlflow: ModuleType, fitted: FittedModel, step: int) -> list:
    """The final training, validation and cross-validation metrics ('training.logloss', ...), and each fold
    model's ('cv_1_valid.logloss', ...), at the run's last step."""
    cv = fitted.cross_validation
    found = {"training": fitted.training_metrics, "validation": fitted.validation_metrics,
             "cross_validation": None if cv is None else cv.metrics}
    if cv is not None:
        found.update({f"cv_{k + 1}_valid": metrics for k, metrics in enumerate(cv.fold_metrics)})
    now = int(time.time() * 1000)
    return [mlflow.entities.Metric(f"{prefix}.{name}", float(value), now, step)
            for prefix, metrics in found.items() if metrics is not None
            for name, value in metrics.values.items() if _finite(value)]


def _figures(model: TrainedModel) -> list[tuple[str, Any]]:
    """The scoring history plot and the final metrics' ROC curve (two classes) or confusion matrix (more);
    none without matplotlib or a scoring history."""
    fitted = model._fitted
    final = fitted.validation_metrics if fitted.validation_metrics is not None else fitted.training_metrics
    if final is None or not fitted.outcome.history or fitted.task.is_autoencoder:
        return []
    try:
        figures = [("scoring_history", model.plot())]
        if final.model_kind in ("binomial", "multinomial"):
            figures.append(("roc" if final.model_kind == "binomial" else "confusion_matrix", final.plot()))
    except MissingDependencyError:  # the plot extra is not installed: no images
        return []
    return figures


def _finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
