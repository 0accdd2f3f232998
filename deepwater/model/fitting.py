"""The fit step: the training loop on a TrainingStart's net, scoring the training (and validation) frame on H2O's
schedule, stopping as the parameters say, continuing a checkpoint's run."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from deepwater.analysis.metrics import CLASSIFICATION_ONLY, STOPPING_KEYS, ModelMetrics
from deepwater.data.augment import Augmentation
from deepwater.data.sources import ImageSource, Source, preload_images
from deepwater.data.training_data import TrainingData, row_weights
from deepwater.errors import ParameterError, warn_user
from deepwater.model.starts import TrainingStart
from deepwater.runtime.parallel import data_parallel
from deepwater.runtime.registry import get_backend
from deepwater.specs import TaskSpec
from deepwater.training.evaluation import model_metrics
from deepwater.training.fitted import FittedModel
from deepwater.training.mixing import mixed
from deepwater.training.trainer import LoopSettings, StoppingRule, Trainer, TrainingOutcome

OnScored = Callable[[TrainingOutcome], None]


def scoring_batch(p: dict[str, Any]) -> int:
    """Rows per batch when scoring: the mini-batch, at least 256."""
    return max(p["mini_batch_size"], 256)


def run_training(p: dict[str, Any], start: TrainingStart, data: TrainingData, previous: FittedModel | None,
                 on_scored: OnScored | None) -> TrainingOutcome:
    """Train `start`'s net on `data` with the parameters `p`; a restart continues `previous`'s run; `on_scored`
    is handed the run so far at each scoring (checkpoints)."""
    task, response, inputs = start.task, start.response, start.inputs
    train, valid = data.frame, data.validation
    if previous is None and 0 < p["epochs"] * len(train) < 0.5:
        warn_user(f"epochs={p['epochs']:g} trains round({p['epochs']:g} x {len(train)} rows) = 0 samples, so "
                  "nothing is trained: the network keeps the weights it starts from. Pass epochs >= "
                  f"{1 / len(train):.3g} (one row), or epochs=0 to only score.", UserWarning)
    train_source = inputs.source(train, response.encode(train), data.weights(train))
    train_score = _scoring_subset(train_source, train, start, data.weights_column, p["score_training_samples"],
                                  start.seed)
    valid_score = None if valid is None else _scoring_subset(
        None, valid, start, data.weights_column, p["score_validation_samples"], start.seed + 1)
    preload_images([train_source, train_score, valid_score], p["quiet_mode"])
    train_source = _augmented(train_source, p["augment"], start)
    settings = LoopSettings(p["epochs"], p["mini_batch_size"], p["score_interval"], p["score_duty_cycle"],
                            p["train_samples_per_iteration"], p["max_runtime_secs"],
                            p["overwrite_with_best_model"], p["quiet_mode"],
                            f"{start.network} on {start.backend}:{start.device}")
    devices, workers = start.device.split(","), p["num_workers"]
    train_source = mixed(train_source, p["mixup"], p["cutmix"], task, inputs.input_shape, start.net,
                         len(devices) > 1 or bool(workers), start.seed,
                         0 if previous is None else previous.outcome.samples)
    backend = get_backend(start.backend) if len(devices) > 1 or workers else None
    with data_parallel(backend, start.net, devices, workers, p["gpu"]) as net:

        def evaluate() -> dict[str, ModelMetrics]:
            out = {"training": model_metrics(net, task, response, train_score, scoring_batch(p), "training")}
            if valid_score is not None:
                out["validation"] = model_metrics(net, task, response, valid_score, scoring_batch(p), "validation")
            return out

        trainer = Trainer(net, train_source, evaluate, stopping_rule(p, task, valid is not None), settings,
                          np.random.default_rng(start.seed), on_scored)
        if previous is not None:
            run = previous.outcome if start.seed == previous.seed else replace(previous.outcome, rng_state=None)
            metrics = {"training": previous.training_metrics, "validation": previous.validation_metrics}
            trainer.resume(run, {part: m for part, m in metrics.items() if m is not None})  # a new seed reshuffles
        return trainer.run()


def stopping_rule(p: dict[str, Any], task: TaskSpec, has_validation: bool) -> StoppingRule:
    """H2O's early stopping from stopping_metric ('AUTO': by the task), stopping_rounds and stopping_tolerance,
    on the validation scoring when there is one."""
    metric = p["stopping_metric"]
    if metric == "AUTO":
        metric = "MSE" if task.is_autoencoder else "logloss" if task.is_classification else "deviance"
    if metric in CLASSIFICATION_ONLY and not task.is_classification:
        raise ParameterError(f"stopping_metric={metric!r} needs a classification response; "
                             "use 'deviance', 'MSE' or 'RMSE' for regression.")
    if metric == "AUC" and task.n_outputs != 2:
        raise ParameterError("stopping_metric='AUC' needs two classes; use 'logloss' or 'misclassification'.")
    key, larger = STOPPING_KEYS[metric]
    return StoppingRule(key, larger, p["stopping_rounds"], p["stopping_tolerance"],
                        "validation" if has_validation else "training")


def scoring_source(start: TrainingStart | FittedModel, frame: pd.DataFrame, weights_column: str | None) -> Source:
    """Every row of `frame` with its targets (and weights, where the frame has the column) for metrics."""
    weights = row_weights(frame, weights_column) if weights_column in frame.columns else None
    return start.inputs.source(frame, start.response.encode(frame), weights)


def _scoring_subset(full: Source | None, frame: pd.DataFrame, start: TrainingStart, weights_column: str | None,
                    limit: int, seed: int) -> Source:
    """The rows scored during training: all (`full` when given), or `limit` sampled once with a fixed seed."""
    if limit and limit < len(frame):
        rows = np.sort(np.random.default_rng(seed).choice(len(frame), size=limit, replace=False))
        frame = frame.iloc[rows]
        full = None
    if full is not None:
        return full
    return start.inputs.source(frame, start.response.encode(frame), row_weights(frame, weights_column))


def _augmented(source: Source, augment: str | None, start: TrainingStart) -> Source:
    """The training source with the `augment` parameter's changes (seeded by the run's seed), or as it is."""
    augmentation = Augmentation.parse("augment", augment)
    if augmentation is None:
        return source
    if not isinstance(source, ImageSource):
        raise ParameterError(f"augment={augment!r} changes images, but this model's inputs are columns of a dataset "
                             f"(problem_type={start.problem_type!r}); augment applies to an image URI column: "
                             "leave it None.")
    return source.augmented(augmentation, start.seed)
