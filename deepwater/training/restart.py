"""Checkpoint restarts (H2O's `checkpoint=`): what a restart may change.

A restart continues a trained model: its parameters, encoders, network, weights, optimiser state, epoch
counter, scoring history and batch shuffler. Which parameters a restart may change is the parameter
table's `checkpoint_mutable` column (H2O Deep Water's DeepWaterParameters.Sanity); the rules on frames
(the same response and predictors, a validation frame exactly when the checkpoint had one) are here.
"""
from __future__ import annotations

from typing import Any

from deepwater.errors import ParameterError
from deepwater.training import parameters as parameter_table
from deepwater.training.fitted import FittedModel

AUTO_RESOLVED = ("backend", "network", "problem_type")  # 'auto' given to a restart means the checkpoint's
NOT_INHERITED = ("model_id", "checkpoint")


def restart_parameters(given: dict[str, Any], old: dict[str, Any], fitted: FittedModel,
                       checkpoint_id: str) -> dict[str, Any]:
    """The parameters of a restart from the model `checkpoint_id` (its parameters `old`, its run `fitted`):
    its own, overridden by the `given` (checked) ones.

    A given parameter that a checkpoint may not change must equal the checkpoint's (for backend, network
    and problem_type, 'auto' or the value the checkpoint resolved to also do); epochs must exceed the
    epochs already trained. Each violation is a ParameterError naming the parameter and both values.
    """
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
                             f"{checkpoint_id!r} has already trained (epochs counts in total, as in H2O); "
                             f"pass e.g. epochs={trained + max(trained, 1):g}.")
    return merged


def check_restart_frames(fitted: FittedModel, checkpoint_id: str, predictors: list[str], response: str,
                         has_validation: bool) -> None:
    """ParameterError unless the restart trains the checkpoint's (`fitted`) response on its predictors, with a
    validation frame exactly when the checkpoint had one."""
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
        raise ParameterError(f"validation_frame: the checkpoint {checkpoint_id!r} {what} (H2O's rule: a restart "
                             "scores the same frames).")
