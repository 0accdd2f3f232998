"""The models held in this process by model_id, as H2O's cluster held them: dw.get_model(), dw.ls()."""
from __future__ import annotations

import pandas as pd

from deepwater.errors import ParameterError
from deepwater.storage.model_classes import Model

_MODELS: dict[str, Model] = {}


def register(model: Model) -> Model:
    """Hold `model` under its model_id (a later model of the same id replaces it); returns it."""
    _MODELS[model.model_id] = model
    return model


def held() -> set[str]:
    """The model_ids of the models held in this process."""
    return set(_MODELS)


def get_model(model_id: str) -> Model:
    """The trained or loaded model called `model_id` in this process (h2o.get_model)."""
    if model_id not in _MODELS:
        known = ", ".join(repr(k) for k in sorted(_MODELS)[:10]) or "none yet"
        raise ParameterError(f"model_id={model_id!r} is not a model of this process (held: {known}); train it, "
                             "or load it with deepwater.load_model(path).")
    return _MODELS[model_id]


def ls() -> pd.DataFrame:
    """The models held in this process, one row each: key (the model_id) and algo (h2o.ls)."""
    return pd.DataFrame({"key": list(_MODELS), "algo": [m.algo for m in _MODELS.values()]})


def remove(model_id: str) -> None:
    """Forget the model called `model_id` (h2o.remove); an unknown id is an error."""
    get_model(model_id)
    del _MODELS[model_id]
