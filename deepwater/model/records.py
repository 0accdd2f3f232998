"""A DeepWaterEstimator as a saved record and back: JSON values, arrays by name, the user's graph files.

storage/saved_models.py writes and reads the files; this module says what a Deep Water model puts in them and
rebuilds its net (on its own backend, or another for a built-in network) from them.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from deepwater.data.encoders import Response
from deepwater.data.inputs import inputs_from_record
from deepwater.errors import ModelFileError
from deepwater.model.starts import USER
from deepwater.runtime.build import build_net
from deepwater.runtime.user_graphs import user_graph
from deepwater.specs import TaskSpec
from deepwater.storage.saved_files import SavedFiles
from deepwater.storage.saved_models import metrics_from_record, outcome_from_record, outcome_record, record_of
from deepwater.training import parameters as parameter_table
from deepwater.training.fitted import CrossValidation, FittedModel

TRAINING = "training"  # saved arrays of the optimiser state: training/<name>


def model_record(model_id: str, algo: str, params: dict[str, Any], given: set[str], f: FittedModel,
                 mlflow_run_id: str | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
    """What a saved model holds: JSON values, arrays by name, and the user's graph files to copy (`mlflow_run_id`:
    the MLflow run its training is logged in, which a checkpoint restart continues). The table's
    SECRET_PARAMETERS (storage_options, which may hold a store's secret key) are left out: a loaded model, or a
    checkpoint restart given none, reads its image URIs with the environment's credentials."""
    inputs, arrays = f.inputs.to_record()
    arrays.update({f"net/{name}": value for name, value in f.net.get_state().items()})
    arrays.update({f"{TRAINING}/{name}": value for name, value in f.net.training_state().items()})
    graph_files = {} if f.graph is None else {"network_definition_file": f.graph.definition_file}
    models_by_id = {name: getattr(params[name], "model_id", params[name])
                    for name in ("checkpoint", "pretrained_autoencoder")}
    secret = parameter_table.SECRET_PARAMETERS
    cv = f.cross_validation
    record = {
        "model_id": model_id, "algo": algo, "given": sorted(given - {"checkpoint", *secret}),
        "params": {name: value for name, value in {**params, **models_by_id}.items() if name not in secret},
        "backend": f.backend, "device": f.device, "network": f.network, "task": asdict(f.task),
        "response": asdict(f.response), "inputs": inputs, "predictors": f.predictors,
        "problem_type": f.problem_type, "seed": f.seed, "outcome": outcome_record(f.outcome),
        "training_metrics": record_of(f.training_metrics), "validation_metrics": record_of(f.validation_metrics),
        "graph_files": {}, "cross_validation": None if cv is None else {
            "metrics": record_of(cv.metrics), "fold_epochs": cv.fold_epochs, "frame_digest": cv.frame_digest,
            "fold_metrics": [record_of(m) for m in cv.fold_metrics]},  # fold models are not saved
        "mlflow_run_id": mlflow_run_id,
    }
    return record, arrays, graph_files


def given_parameters(record: dict[str, Any]) -> dict[str, Any]:
    """The parameters the saved model was given (those the table still knows), and its model_id."""
    saved = record["params"]
    given = {name: saved[name] for name in record["given"] if name in parameter_table.PARAMETERS}
    return {**given, "model_id": record["model_id"]}


def fitted_from_record(p: dict[str, Any], record: dict[str, Any], arrays: dict[str, np.ndarray], files: SavedFiles,
                       backend: str | None) -> FittedModel:
    """The fitted parts a saved record describes, the net rebuilt (on `backend`, or its own) with the saved
    weights and, on its own backend, the optimiser state a checkpoint restart continues from."""
    backend_name = record["backend"] if backend is None else p["backend"]
    task = TaskSpec(**record["task"])
    inputs = inputs_from_record(record["inputs"], arrays, p)
    graph = None
    if record["network"] == USER:  # a private copy: the model outlives the saved folder
        definition = files.private_copy(record["graph_files"]["network_definition_file"])
        graph = user_graph(definition, None, inputs.input_shape, p["replace_output_layer"])
    chosen, device, net = build_net(record["network"], graph, backend_name, inputs.input_shape, task, p,
                                    record["seed"])
    source = f"the saved model {files.location!r}"
    net.set_state(_weights(_under(arrays, "net"), source, built_in=graph is None), source)
    outcome = outcome_from_record(record["outcome"])
    training = _under(arrays, TRAINING)
    if chosen.name != record["backend"] or not training:  # another framework's optimiser, or format 1's none
        training = {**net.training_state(), "samples": np.asarray(outcome.samples)}
    net.set_training_state(training, source)
    fitted = FittedModel(
        chosen.name, device, record["network"], net, task, Response(**record["response"]), inputs,
        record["predictors"], record["problem_type"], record["seed"], outcome,
        metrics_from_record(record["training_metrics"]), metrics_from_record(record["validation_metrics"]), graph,
        params=dict(p), given=frozenset(record["given"]),
    )
    cv = record.get("cross_validation")
    if cv is not None:
        fitted.cross_validation = CrossValidation(
            metrics_from_record(cv["metrics"]), [metrics_from_record(m) for m in cv["fold_metrics"]],
            cv["fold_epochs"], frame_digest=cv.get("frame_digest"))
    return fitted


def _weights(state: dict[str, np.ndarray], source: str, built_in: bool) -> dict[str, np.ndarray]:
    """The saved network weights, refused as corrupt when one holds NaN or infinity, or, for a built-in network,
    is not float32 (what every backend's get_state() gives it): damage, never a model. A user graph's own
    variables may have other dtypes (an integer step counter)."""
    for name, value in state.items():
        wrong_dtype = built_in and value.dtype != np.float32
        if wrong_dtype or (value.dtype.kind == "f" and not np.isfinite(value).all()):
            problem = f"dtype {value.dtype}" if wrong_dtype else "NaN or infinite values"
            raise ModelFileError(f"{source} is corrupt: its weight net/{name} holds {problem}, where a saved network "
                                 "holds finite float32 weights. Save the model again from a trained model (one whose "
                                 "training did not diverge).")
    return state


def _under(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays saved under '<prefix>/', by the rest of their names."""
    return {name[len(prefix) + 1:]: value for name, value in arrays.items() if name.startswith(prefix + "/")}
