"""A training request (POST /api/models, the Build a model form) checked before it is queued: the frames and
columns it names exist, the parameters pass the table's checks and the estimator's own, the model id is free."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from deepwater.errors import ParameterError
from deepwater.flow.catalogue import Catalogue, new_id
from deepwater.flow.forms import CHECKPOINT, NOT_SEARCHED, check_hyper_params, check_parameters, field_of_error
from deepwater.flow.jobs import TrainingRequest, resolved_checkpoint
from deepwater.flow.refusals import FieldError
from deepwater.model.estimator import DeepWaterEstimator


def frame_columns(catalogue: Catalogue, key: object, field: str) -> list[str]:
    """The columns of catalogue frame `key`; a FieldError naming `field` when there is no such frame."""
    if not isinstance(key, str) or not catalogue.has("frames", key):
        raise FieldError(field, f"{key!r} is no frame of this Flow; import one (POST /api/frames) and give its id.",
                         404 if isinstance(key, str) else 422)
    return list(catalogue.frame(key)["setup"]["column_types"])


def training_request(catalogue: Catalogue, body: dict[str, Any]) -> tuple[TrainingRequest, str]:
    """The checked request of `body` ({"frame", "y", "x", "params", "validation_frame"}) and the model id it
    trains."""
    columns = frame_columns(catalogue, body.get("frame"), "frame")
    validation = body.get("validation_frame")
    if validation is not None:
        frame_columns(catalogue, validation, "validation_frame")
    params = check_parameters(body.get("params") or {})
    y, x = body.get("y"), body.get("x")
    if y is None and not params.get("autoencoder"):
        raise FieldError("y", "missing: name the response column (only an autoencoder trains without one).")
    if y is not None and y not in columns:
        raise FieldError("y", f"{y!r} is no column of frame {body['frame']!r}; its columns: {', '.join(columns)}.")
    if x is not None:
        if not isinstance(x, list) or not x:
            raise FieldError("x", "must be a non-empty list of column names, or left out for every column but y.")
        for i, name in enumerate(x):
            if name not in columns:
                raise FieldError(f"x[{i}]", f"{name!r} is no column of frame {body['frame']!r}.")
    if params.get(CHECKPOINT) is not None and not catalogue.has("models", params[CHECKPOINT]):
        raise FieldError(f"params.{CHECKPOINT}", f"{params[CHECKPOINT]!r} is no model of this Flow; give the id of "
                                                 "the model to continue.", 404)
    model_id = params.get("model_id") or new_id("model")
    if catalogue.has("models", model_id):
        raise FieldError("params.model_id", f"{model_id!r} names a model this Flow holds already; give another "
                                            "model_id, or leave it out for a new one.", 409)
    try:  # the checks that span parameters, as the Python API runs them
        DeepWaterEstimator(**resolved_checkpoint(catalogue, params))
    except ParameterError as error:
        field = field_of_error(error, params)
        raise FieldError(field if field == "params" else f"params.{field}", str(error)) from None
    return TrainingRequest(body["frame"], y, x, params, validation), model_id


def grid_request(catalogue: Catalogue, body: dict[str, Any]) -> tuple[TrainingRequest, str]:
    """The checked grid search of `body` (a training request with "hyper_params") and the grid id: the shared
    parameters are checked with the first value of each searched one, as the grid's first model takes them."""
    hyper = check_hyper_params(body.get("hyper_params"))
    params = check_parameters(body.get("params") or {})
    for name in NOT_SEARCHED:
        if params.get(name) is not None:
            raise FieldError(f"params.{name}", "is not taken by a grid search: a grid names its models "
                                               "<grid>_model_<n> and trains each anew.")
    for name in hyper:
        if name in params:
            raise FieldError(f"params.{name}", f"is searched over as well (hyper_params.{name}); set it in one "
                                               "place.")
    first = {**params, **{name: values[0] for name, values in hyper.items()}}
    request, _ = training_request(catalogue, {**body, "params": first})
    return replace(request, params=params, hyper_params=hyper), new_id("grid")
