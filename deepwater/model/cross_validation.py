"""Cross-validation as H2O runs it: one model per fold, trained on the other folds and scored on its
holdout, then the main model on every row; the holdout predictions make the cross-validated metrics.
The fold models train in this process one after another, or side by side as Ray tasks once deepwater.init()
has run (runners.train_models).

Folds come from scikit-learn's splitters (KFold, StratifiedKFold) or a fold column; `fold_ids` turns them
into one fold number per row.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from deepwater.analysis.metrics import ModelMetrics
from deepwater.data.digests import frame_digest
from deepwater.data.encoders import Response
from deepwater.errors import FrameError, ParameterError
from deepwater.model.jobs import Job
from deepwater.model.runners import train_models
from deepwater.specs import task_from_params
from deepwater.storage.model_store import remove
from deepwater.training.fitted import CrossValidation

NOT_FOR_FOLD_MODELS = {"nfolds": 0, "fold_column": None, "fold_assignment": "AUTO", "checkpoint": None,
                       "export_checkpoints_dir": None, "overwrite_with_best_model": False,
                       "mlflow": False}  # the main model's run logs the fold models' metrics


def check_folds(params: dict[str, Any], fold_column: str | None, rows: int) -> None:
    """H2O's rules on nfolds, fold_column and fold_assignment (ParameterError naming the parameter)."""
    nfolds, assignment = params["nfolds"], params["fold_assignment"]
    if fold_column is not None and nfolds:
        raise ParameterError(f"fold_column={fold_column!r} and nfolds={nfolds} both ask for folds; pass one of them "
                             "(the fold column's values are the folds).")
    if fold_column is not None and assignment != "AUTO":
        raise ParameterError(f"fold_assignment={assignment!r} does not apply with fold_column={fold_column!r}; "
                             "drop fold_assignment.")
    if fold_column is None and not nfolds and assignment != "AUTO":
        raise ParameterError(f"fold_assignment={assignment!r} needs cross-validation; pass nfolds >= 2 too.")
    if nfolds > rows:
        raise ParameterError(f"nfolds={nfolds} is more than the {rows} rows of the training frame; use at most "
                             f"nfolds={rows} (leave-one-out).")


def fold_ids(frame: pd.DataFrame, params: dict[str, Any], response: str, fold_column: str | None,
             seed: int) -> np.ndarray:
    """The fold (0 .. k-1) of each row: from `fold_column`'s values, or `nfolds` folds split as
    fold_assignment says (AUTO and Random: shuffled KFold; Modulo: row i goes to fold i % k; Stratified:
    class proportions kept, scikit-learn's StratifiedKFold)."""
    if fold_column is not None:
        values = frame[fold_column]
        if values.isna().any():
            raise FrameError(f"fold_column={fold_column!r} has missing values (rows "
                             f"{values.index[values.isna()][:5].tolist()}); give every row a fold.")
        codes, levels = pd.factorize(values, sort=True)
        if len(levels) < 2:
            raise FrameError(f"fold_column={fold_column!r} holds one fold ({levels[0]!r}); cross-validation needs "
                             "at least two.")
        return codes.astype(np.int64)
    nfolds, assignment, rows = params["nfolds"], params["fold_assignment"], len(frame)
    if assignment == "Modulo":
        return np.arange(rows) % nfolds
    if assignment == "Stratified":
        labels = pd.factorize(frame[response])[0]
        splits = StratifiedKFold(nfolds, shuffle=True, random_state=seed).split(np.zeros(rows), labels)
    else:
        splits = KFold(nfolds, shuffle=True, random_state=seed).split(np.zeros(rows))
    folds = np.empty(rows, dtype=np.int64)
    for fold, (_, holdout) in enumerate(splits):
        folds[holdout] = fold
    return folds


def cross_validate(estimator: type, p: dict[str, Any], predictors: list[str], response_name: str,
                   frame: pd.DataFrame, fold_column: str | None, response: Response, seed: int) -> CrossValidation:
    """Train one `estimator` per fold with the main model's parameters `p` (named '<model_id>_cv_<k>',
    validated on its holdout) and collect what H2O reports; `response` is the main model's, fitted on `frame`.
    The main model is trained afterwards by the caller."""
    folds = fold_ids(frame, p, response_name, fold_column, seed)
    digest = frame_digest(frame)
    task = task_from_params(response.kind, response.n_classes, p["distribution"], p["loss"])
    if task.is_classification:  # every fold model knows every class, even one its training rows lack
        frame = frame.assign(**{response_name: pd.Categorical(frame[response_name], categories=response.classes)})
    outputs = np.zeros((len(frame), task.n_outputs))
    labels = np.empty(len(frame), dtype=object)
    holdouts = [folds == fold for fold in range(int(folds.max()) + 1)]
    jobs = [Job(estimator, {**p, **NOT_FOR_FOLD_MODELS, "model_id": f"{p['model_id']}_cv_{fold + 1}",
                              "seed": seed + fold + 1}, predictors, response_name, np.flatnonzero(~holdout),
                np.flatnonzero(holdout)) for fold, holdout in enumerate(holdouts)]
    fold_models = train_models(jobs, frame, frame)  # in this process, or side by side on Ray after deepwater.init()
    fold_metrics, fold_epochs = [], []
    for holdout, fold_model in zip(holdouts, fold_models):
        predicted = fold_model.predict(frame[holdout])
        if task.is_classification:
            outputs[holdout] = predicted[[str(c) for c in response.classes]].to_numpy(dtype=float)
            labels[holdout] = predicted["predict"].astype(object).to_numpy()
        else:
            outputs[holdout, 0] = predicted["predict"].to_numpy(dtype=float)
        fold_metrics.append(fold_model.model_performance(valid=True))
        fold_epochs.append(fold_model.summary()["epochs"])
    metrics = _holdout_metrics(response, task.distribution, frame, outputs, "cross-validation")
    holdout = _prediction_frame(response, outputs, labels, frame.index)
    kept = fold_models if p["keep_cross_validation_models"] else []
    for dropped in fold_models[len(kept):]:
        remove(dropped.model_id)
    return CrossValidation(metrics, fold_metrics, fold_epochs, kept,
                           holdout if p["keep_cross_validation_predictions"] else None,
                           folds if p["keep_cross_validation_fold_assignment"] or
                           p["keep_cross_validation_predictions"] else None, digest)


def main_model_settings(params: dict[str, Any], cv: CrossValidation) -> dict[str, Any]:
    """What the main model of a cross-validated run changes: no best-model overwrite (Deep Water's rule), and
    with early stopping on, the mean epochs the fold models stopped at, with stopping off (H2O's rule)."""
    settings: dict[str, Any] = {"overwrite_with_best_model": False}
    if params["stopping_rounds"]:
        settings.update(epochs=float(np.mean(cv.fold_epochs)), stopping_rounds=0)
    return settings


def _holdout_metrics(response: Response, distribution: str, frame: pd.DataFrame, outputs: np.ndarray,
                     description: str) -> ModelMetrics:
    if response.kind == "classification":  # float32 probabilities of several models: sums exactly 1 again
        return ModelMetrics.for_classification(response.encode(frame), outputs / outputs.sum(axis=1, keepdims=True),
                                               response.classes, description=description)
    actual = frame[response.name].to_numpy(dtype=float)
    return ModelMetrics.for_regression(actual, outputs[:, 0], distribution, description=description)


def _prediction_frame(response: Response, outputs: np.ndarray, labels: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """Holdout predictions in the layout of DeepWaterEstimator.predict()."""
    if response.kind != "classification":
        return pd.DataFrame({"predict": outputs[:, 0]}, index=index)
    probabilities = pd.DataFrame(outputs, index=index, columns=[str(c) for c in response.classes])
    predict = pd.DataFrame({"predict": pd.Categorical(labels, categories=response.classes)}, index=index)
    return pd.concat([predict, probabilities], axis=1)
