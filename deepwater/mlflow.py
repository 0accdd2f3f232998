"""deepwater's MLflow flavour (the `mlflow` extra): log a trained model, or its whole training run, to MLflow and
load it back; MLflow's pyfunc form of a logged model scores its export bundle with onnxruntime alone.

>>> import deepwater.mlflow
>>> info = deepwater.mlflow.log_model(model)                 # in the active run, if any    # doctest: +SKIP
>>> same = deepwater.mlflow.load_model(info.model_uri)       # a DeepWaterEstimator         # doctest: +SKIP
>>> mlflow.pyfunc.load_model(info.model_uri).predict(frame)  # no deep learning framework   # doctest: +SKIP

Training with mlflow=True logs the run by itself (docs/guide/tracking.md); log_run logs a model trained
without it. MLflow is imported when one of these is called, not when this module is.
"""
from __future__ import annotations

import os
from typing import Any

import pandas as pd

from deepwater.deploy.inference import load
from deepwater.tracking import flavour, runs
from deepwater.tracking.client import mlflow_module, quick_requests

FLAVOR_NAME = flavour.FLAVOUR


def log_model(model: Any, name: str = "model") -> Any:
    """Log the trained `model` as the MLflow model `name` (the deepwater and pyfunc flavours) in the active run,
    or as a model of its own without one; returns MLflow's ModelInfo (model_info.model_uri loads it)."""
    mlflow = mlflow_module()
    active = mlflow.active_run()
    with quick_requests():
        return flavour.log(mlflow, model, None if active is None else active.info.run_id, name)


def load_model(model_uri: str, backend: str | None = None) -> Any:
    """The deepwater model logged at `model_uri` ('runs:/<run_id>/model', 'models:/<id>', a folder), ready to
    predict with its framework (`backend`: another installed one for a built-in network)."""
    with quick_requests():
        return flavour.load(model_uri, backend)


def log_run(model: Any) -> str | None:
    """Log a trained model's run as mlflow=True would have (parameters, scoring history, metrics, tags, plots,
    the model); the run's id, or None and a warning when the tracking server does not answer."""
    return runs.log_run(model)


class BundleModel:
    """MLflow's pyfunc model of a deepwater export bundle: predict(frame) as model.predict(frame), scored by
    deepwater.inference with onnxruntime (no deep learning framework)."""

    def __init__(self, bundle: str | os.PathLike) -> None:
        self.scorer = load(bundle, device="cpu")

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """The bundle's predictions of the rows of `model_input` (a DataFrame, or what makes one)."""
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return self.scorer.predict(frame)


def _load_pyfunc(data_path: str) -> BundleModel:
    """mlflow.pyfunc's loader of the python_function flavour (`data_path`: the logged model's bundle folder)."""
    return BundleModel(data_path)
