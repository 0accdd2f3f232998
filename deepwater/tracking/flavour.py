"""The deepwater flavour of an MLflow model: the saved model (storage/saved_models.py, loaded back with its
framework) and, beside it, the model's export bundle as an `mlflow.pyfunc` model, which `mlflow models serve`
and `mlflow.pyfunc.load_model(uri).predict(frame)` score with onnxruntime alone (deepwater.mlflow's loader).

An MLflow model folder written here holds

* `MLmodel`            the flavours: `deepwater` (the saved model's file, deepwater's version) and
                       `python_function` (loader module deepwater.mlflow, data: the bundle);
* `deepwater_model`    the saved model (one archive file, no pickle);
* `bundle/`            the export bundle (model.export: model.onnx, bundle.json, checksums);
* `requirements.txt`   what scoring the bundle needs.

A model whose network cannot be exported (a TorchScript or MXNet user graph) gets the deepwater flavour alone.
"""
from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from deepwater.errors import DeepWaterError, ModelFileError, warn_user
from deepwater.files import path_text, write_atomically
from deepwater.storage import saved_models
from deepwater.tracking.client import mlflow_module
from deepwater.version import __version__

FLAVOUR = "deepwater"
SAVED_MODEL = "deepwater_model"
BUNDLE = "bundle"
LOADER_MODULE = "deepwater.mlflow"  # its _load_pyfunc(bundle folder) scores the bundle
SCORING_NEEDS = ("onnxruntime", "numpy", "pandas", "pillow", "blake3")


def save_model(path: str, mlflow_model: Any = None, model: Any = None) -> None:
    """Write `model` as an MLflow model folder at `path` (which must not exist). MLflow's Model.log calls it
    with the run's MLmodel as `mlflow_model` (a flavour module's save_model)."""
    models = mlflow_module("mlflow.models")
    folder = Path(path_text(path, "path"))
    folder.mkdir(parents=True)
    mlflow_model = models.Model() if mlflow_model is None else mlflow_model
    saved_models.save_model(model, folder, filename=SAVED_MODEL)
    mlflow_model.add_flavor(FLAVOUR, saved_model=SAVED_MODEL, deepwater_version=__version__, algo=model.algo)
    if _exported(model, folder / BUNDLE):
        mlflow_module("mlflow.pyfunc").add_to_model(mlflow_model, loader_module=LOADER_MODULE, data=BUNDLE)
    write_atomically(folder / "requirements.txt", ("\n".join(_requirements()) + "\n").encode())
    mlflow_model.save(str(folder / "MLmodel"))


def log(mlflow: ModuleType, model: Any, run_id: str | None, name: str = "model", step: int = 0) -> Any:
    """Log `model` as an MLflow model named `name` of the run `run_id` (None: no run); MLflow's ModelInfo."""
    return mlflow.models.Model.log(None, sys.modules[__name__], name=name, flavor_name=FLAVOUR, run_id=run_id,
                                   step=step, model=model)


def load(model_uri: str, backend: str | None = None) -> Any:
    """The deepwater model logged at `model_uri` (runs:/..., models:/..., a local folder), with its framework."""
    mlflow = mlflow_module()
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    flavours = mlflow.models.Model.load(str(local)).flavors
    if FLAVOUR not in flavours:
        raise ModelFileError(f"model_uri={model_uri!r} is an MLflow model of flavour(s) {sorted(flavours)}, not "
                             "deepwater; log the model with deepwater.mlflow.log_model(model), or load this one "
                             "with mlflow.pyfunc.load_model.")
    return saved_models.load_model(local / flavours[FLAVOUR]["saved_model"], backend)


def _exported(model: Any, folder: Path) -> bool:
    """True when the model's export bundle is written into `folder`; a model that cannot be exported is logged
    without it (and a warning)."""
    try:
        model.export(folder)
    except DeepWaterError as error:
        warn_user(f"model {model.model_id!r} is logged to MLflow without its pyfunc form (the ONNX bundle that "
                  f"mlflow models serve scores): {error}", RuntimeWarning)
        return False
    return True


def _requirements() -> list[str]:
    """The packages scoring the bundle needs, at the versions installed here."""
    found = []
    for name in SCORING_NEEDS:
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return found
