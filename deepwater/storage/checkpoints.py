"""Checkpoint restarts (H2O's `checkpoint=`) and the crash-safe checkpoints of `export_checkpoints_dir`.

A restart continues a trained model: its parameters, encoders, network, weights, optimiser state, epoch
counter, scoring history and batch shuffler. Which parameters a restart may change is the parameter
table's `checkpoint_mutable` column (H2O Deep Water's DeepWaterParameters.Sanity); the rules on frames
(the same response and predictors, a validation frame exactly when the checkpoint had one) are here.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepwater.training import parameters as parameter_table
from deepwater.errors import NotFittedError, ParameterError
from deepwater.storage.saved_models import CHECKSUMS, load_model, save_model
from deepwater.storage.model_store import get_model, held

if TYPE_CHECKING:
    from deepwater.model.estimator import DeepWaterEstimator

AUTO_RESOLVED = ("backend", "network", "problem_type")  # 'auto' given to a restart means the checkpoint's
NOT_INHERITED = ("model_id", "checkpoint")


def resolve_checkpoint(value: Any, parameter: str = "checkpoint") -> DeepWaterEstimator:
    """The trained model `value` names: the model itself, a model_id held in this process, a saved
    model's path, or an export_checkpoints_dir folder (its newest complete checkpoint); errors name `parameter`."""
    if hasattr(value, "model_id") and not isinstance(value, str):
        model = value
    elif value in held():
        model = get_model(value)
    elif os.path.exists(value):
        model = load_model(value)
    else:
        raise ParameterError(f"{parameter}={value!r} is neither a model_id of this process (deepwater.ls() lists "
                             "them) nor an existing saved model or export_checkpoints_dir folder; pass a trained "
                             "model, its model_id, or the path deepwater.save_model() returned.")
    if getattr(model, "_fitted", None) is None:
        raise NotFittedError(f"{parameter}={model.model_id!r} is not trained, so there is nothing to start from; "
                             f"train it first or drop {parameter}.")
    return model


def restart_parameters(given: dict[str, Any], previous: DeepWaterEstimator) -> dict[str, Any]:
    """The parameters of a restart from `previous`: its own, overridden by the `given` (checked) ones.

    A given parameter that a checkpoint may not change must equal the checkpoint's (for backend, network
    and problem_type, 'auto' or the value the checkpoint resolved to also do); epochs must exceed the
    epochs already trained. Each violation is a ParameterError naming the parameter and both values.
    """
    old, fitted = previous._params, previous._fitted
    actual = {"backend": fitted.backend, "network": fitted.network, "problem_type": fitted.problem_type}
    for name, value in given.items():
        row = parameter_table.PARAMETERS[name]
        if row.checkpoint_mutable or name in NOT_INHERITED or value == old[name]:
            continue
        if name in AUTO_RESOLVED and (value == "auto" or value == actual[name]):
            continue
        raise ParameterError(f"{name}={value!r} differs from the checkpoint's {name}={old[name]!r}, and a "
                             f"checkpoint restart cannot change {name} (H2O Deep Water's rule); drop {name}, "
                             f"pass {old[name]!r}, or train a new model without checkpoint.")
    merged = {**{k: v for k, v in old.items() if k not in NOT_INHERITED}, **given}
    trained = fitted.outcome.epochs
    if merged["epochs"] <= trained:
        raise ParameterError(f"epochs={merged['epochs']:g} must be larger than the {trained:g} epochs the checkpoint "
                             f"{previous.model_id!r} has already trained (epochs counts in total, as in H2O); "
                             f"pass e.g. epochs={trained + max(trained, 1):g}.")
    return merged


def check_restart_frames(previous: DeepWaterEstimator, predictors: list[str], response: str,
                         has_validation: bool) -> None:
    """ParameterError unless the restart trains the checkpoint's response on its predictors, with a
    validation frame exactly when the checkpoint had one."""
    fitted = previous._fitted
    if response != fitted.response.name:
        raise ParameterError(f"y={response!r} is not the checkpoint's response column {fitted.response.name!r}; a "
                             "checkpoint restart trains the same response: pass y="
                             f"{fitted.response.name!r} or train a new model.")
    if set(predictors) != set(fitted.predictors):
        given, before = set(predictors), set(fitted.predictors)
        extra, missing = sorted(given - before), sorted(before - given)
        raise ParameterError(f"x differs from the checkpoint's predictors (new: {extra[:5]}, missing: {missing[:5]}); "
                             "a checkpoint restart takes the same columns: pass x="
                             f"{fitted.predictors[:5]}{'...' if len(fitted.predictors) > 5 else ''}.")
    had_validation = fitted.validation_metrics is not None
    if has_validation != had_validation:
        what = "was trained with a validation_frame: pass one" if had_validation else \
            "was trained without a validation_frame: drop it"
        raise ParameterError(f"validation_frame: the checkpoint {previous.model_id!r} {what} (H2O's rule: a restart "
                             "scores the same frames).")


class CheckpointWriter:
    """Saves a model into `folder` at each call, named '<model_id>-<samples>', and keeps the newest `keep`.

    Each checkpoint is a complete saved model (written under a temporary name and renamed), so a process
    killed at any moment leaves only complete checkpoints and, at worst, a hidden temporary folder, which
    the next writer in that folder removes.
    """

    def __init__(self, folder: str | os.PathLike, model_id: str, keep: int) -> None:
        self.folder, self.model_id, self.keep = Path(os.fspath(folder)), model_id, keep
        if self.folder.exists() and not self.folder.is_dir():
            raise ParameterError(f"export_checkpoints_dir={os.fspath(folder)!r} is a file; pass a folder.")
        self.folder.mkdir(parents=True, exist_ok=True)
        for left in self.folder.glob(".*.tmp"):  # a killed run's half-written checkpoint
            shutil.rmtree(left, ignore_errors=True)

    def __call__(self, model: DeepWaterEstimator, samples: int) -> str:
        """Save `model` (trained for `samples` rows) and drop checkpoints beyond the newest `keep`."""
        path = save_model(model, self.folder, force=True, filename=f"{self.model_id}-{samples:012d}")
        ours = sorted(p for p in self.folder.glob(f"{self.model_id}-*") if (p / CHECKSUMS).is_file())
        for old in ours[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        return path
