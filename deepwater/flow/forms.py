"""The Build a model form, made from the parameter table (deepwater.training.parameters.PARAMETERS) so that it never
falls behind it: a field per parameter, grouped, with the row's doc and default, each value checked by the table's own
check. Parameters that name files on the server (graph files, weights, checkpoint folders) or send runs elsewhere
(MLflow) are not offered: Flow reads files only under --allow-dir and runs no user code."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deepwater.errors import ParameterError
from deepwater.flow.refusals import FieldError
from deepwater.runtime.registry import AUTO_ORDER
from deepwater.training import parameters as parameter_table
from deepwater.training.parameters import PARAMETERS, Parameter

GROUPS: dict[str, tuple[str, ...]] = {
    "basic": ("model_id", "backend", "gpu", "device_id", "epochs", "problem_type", "seed"),
    "network": ("network", "hidden", "activation", "input_dropout_ratio", "hidden_dropout_ratios", "autoencoder",
                "replace_output_layer", "pretrained", "freeze", "unfreeze_after_epochs"),
    "optimisation": ("mini_batch_size", "adaptive_rate", "rho", "epsilon", "learning_rate", "learning_rate_annealing",
                     "momentum_start", "momentum_ramp", "momentum_stable", "nesterov_accelerated_gradient", "l1", "l2",
                     "clip_gradient", "distribution", "loss", "precision", "compile", "optimizer", "weight_decay",
                     "lr_schedule", "warmup_epochs", "lr_step_epochs", "lr_step_gamma", "layer_lr_decay",
                     "label_smoothing", "mixup", "cutmix", "ema"),
    "images": ("image_shape", "image_resize", "channels", "bad_images", "augment", "image_cache_mb",
               "image_decode_processes", "tta"),
    "stopping": ("stopping_rounds", "stopping_metric", "stopping_tolerance", "max_runtime_secs", "score_interval",
                 "score_duty_cycle", "score_training_samples", "score_validation_samples",
                 "train_samples_per_iteration", "overwrite_with_best_model"),
    "cross-validation": ("nfolds", "fold_assignment", "fold_column", "keep_cross_validation_models",
                         "keep_cross_validation_predictions", "keep_cross_validation_fold_assignment"),
}
OTHERS = "advanced"  # every row no group names, so a new parameter shows up without an edit here
NOT_OFFERED = {  # parameter -> why Flow refuses it
    "network_definition_file": "a user graph file is code Flow does not load; train a built-in network",
    "network_parameters_file": "Flow reads no weights file named by a parameter",
    "mean_image_file": "Flow reads no mean image file named by a parameter",
    "export_checkpoints_dir": "Flow keeps its models in its own data folder",
    "pretrained_autoencoder": "Flow does not start a model from an autoencoder yet",
    "mlflow": "Flow does not send runs to MLflow",
    "storage_options": "Flow keeps no credentials; it reads object stores with its own environment's",
    "image_cache_dir": "Flow keeps its files in its own data folder",
}
CHECKPOINT = "checkpoint"  # takes the id of a model in the catalogue (Continue training)
NOT_SEARCHED = (CHECKPOINT, "model_id")  # a grid names its models and starts each anew
GRID_SEPARATOR = ";"  # a form field holding several values separated by it is searched over (a grid)
BACKEND_CHOICES = ("auto", *AUTO_ORDER)


@dataclass(frozen=True)
class Field:
    """One field of the form: its parameter row, the kind of input and the text it shows."""

    row: Parameter
    kind: str  # "checkbox" or "text"
    text: str  # the default as the field shows it
    choices: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.row.name


def shown(value: Any) -> str:
    """A parameter value as a text field shows it: '' for None, JSON for numbers and lists, a string as it is."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return json.dumps(value)


def field_of(row: Parameter) -> Field:
    """The form field of parameter `row`."""
    if isinstance(row.default, bool):
        return Field(row, "checkbox", "")
    return Field(row, "text", shown(row.default), BACKEND_CHOICES if row.name == "backend" else ())


def offered() -> list[str]:
    """The parameters the form offers as fields, in table order (the checkpoint is set by Continue training)."""
    return [name for name in PARAMETERS if name not in NOT_OFFERED and name != CHECKPOINT]


def grouped_fields() -> list[tuple[str, list[Field]]]:
    """The form's groups in order, each with its fields; rows no group names fall in OTHERS."""
    named = {name for names in GROUPS.values() for name in names}
    groups = [(group, [field_of(PARAMETERS[name]) for name in names if name in PARAMETERS])
              for group, names in GROUPS.items()]
    return groups + [(OTHERS, [field_of(PARAMETERS[name]) for name in offered() if name not in named])]


def parsed(row: Parameter, text: str) -> Any:
    """The value a text field holds: a string parameter's text as it is; otherwise JSON (2, [32,32], 0.5), 'None'
    (or 'null') for None, a list written without brackets (32,32), or else the text itself (the check then names
    what it needs)."""
    text = text.strip()
    if isinstance(row.default, str):
        return text
    if text in ("None", "null"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return json.loads(f"[{text}]") if "," in text else text
    except ValueError:
        return text


def form_parameters(form: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The parameters a submitted form sets (the fields that differ from their defaults), and the errors by field.

    A checkbox is True when sent; an empty text field keeps the default; a field of values separated by ';' is left
    to form_hyper_params."""
    params, errors = {}, {}
    for name in offered():
        row = PARAMETERS[name]
        if isinstance(row.default, bool):
            value: Any = name in form
        elif not str(form.get(name, "")).strip() or GRID_SEPARATOR in str(form[name]):
            continue
        else:
            value = parsed(row, str(form[name]))
        try:
            checked = parameter_table.check(name, value)
        except ParameterError as error:
            errors[name] = str(error)
            continue
        if checked != row.default:
            params[name] = checked
    return params, errors


def form_hyper_params(form: Mapping[str, Any]) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """The grid a submitted form asks for: each text field holding values separated by ';' ('8; 16' for hidden)
    becomes that parameter's list of values; and the errors by field."""
    hyper, errors = {}, {}
    for name in offered():
        text = form.get(name)
        if isinstance(PARAMETERS[name].default, bool) or not isinstance(text, str) or GRID_SEPARATOR not in text:
            continue
        values = [parsed(PARAMETERS[name], part) for part in text.split(GRID_SEPARATOR) if part.strip()]
        try:
            hyper.update(check_hyper_params({name: values}))
        except FieldError as error:
            errors[name] = error.message
    return hyper, errors


def check_hyper_params(hyper: object) -> dict[str, list[Any]]:
    """The JSON `hyper_params` of POST /api/grids ({"hidden": [[8], [16]], ...}), each value checked by the
    table; a FieldError naming 'hyper_params.<name>' otherwise."""
    if not isinstance(hyper, dict) or not hyper:
        raise FieldError("hyper_params", "must be an object of parameter names and lists of values to search over, "
                                         "e.g. {\"hidden\": [[8], [16]], \"epochs\": [2, 4]}.")
    checked = {}
    for name, values in hyper.items():
        field = f"hyper_params.{name}"
        if name in NOT_OFFERED or name in NOT_SEARCHED:
            raise FieldError(field, "is not searched over by Flow: "
                                    f"{NOT_OFFERED.get(name, 'a grid names its models and starts each anew')}.")
        if not isinstance(values, list) or not values:
            raise FieldError(field, f"must be a non-empty list of the values to try; got {values!r}.")
        try:
            checked[name] = [parameter_table.check(name, value) for value in values]
        except ParameterError as error:
            raise FieldError(field, str(error)) from None
    return checked


def check_parameters(params: object) -> dict[str, Any]:
    """The JSON `params` of POST /api/models checked by the table: a ParameterError carrying the field
    ('params.<name>') for an unknown name, a refused one or a value the table refuses."""
    if not isinstance(params, dict):
        raise FieldError("params", f"must be an object of parameter values, e.g. {{\"epochs\": 2}}; got "
                                   f"{type(params).__name__}.")
    for name, value in params.items():
        if name in NOT_OFFERED:
            raise FieldError(f"params.{name}", f"is not taken by Flow: {NOT_OFFERED[name]}.")
        try:
            parameter_table.check(name, value)
        except ParameterError as error:
            raise FieldError(f"params.{name}", str(error)) from None
    return dict(params)


def field_of_error(error: ParameterError, params: Mapping[str, Any]) -> str:
    """The parameter a check spanning several parameters names first ('epochs=inf ...' -> 'epochs'), or 'params'."""
    text = str(error)
    named = [name for name in PARAMETERS if text.startswith((f"{name}=", f"{name} "))]
    return named[0] if named and named[0] in params else "params"
