"""DeepWaterEstimator: H2O Deep Water's estimator API over any installed backend."""
from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import networks
from . import params as parameter_table
from .design import DatasetEncoder, Response
from .devices import resolve_device
from .errors import FrameError, MissingDependencyError, NotFittedError, ParameterError
from .features import deep_features, layer_names
from .frames import (
    ColumnRef,
    check_frame,
    column_name,
    detect_problem_type,
    resolve_columns,
)
from .images import ImageReader, ImageShape, load_mean_image
from .inputs import DatasetInputs, ImageInputs, inputs_from_record
from .metrics import CLASSIFICATION_ONLY, STOPPING_KEYS, ModelMetrics
from .model_files import metrics_from_record, outcome_from_record, outcome_record, record_of
from .model_store import register
from .registry import get_backend
from .sources import Source, map_batches
from .specs import CLASSIFICATION, OptimizerSpec, TaskSpec, task_from_params
from .trainer import LoopSettings, StoppingRule, Trainer, TrainingOutcome
from .user_graphs import ANY_BACKEND, UserGraph, describe_formats, graph_loader, training_refused, user_graph
from .weight_files import load_network_weights

USER = "user"  # network="user": the graph comes from network_definition_file


def _is_user(network: str) -> bool:
    return network.lower() == USER


def _settle(values: dict[str, Any]) -> dict[str, Any]:
    """`values` after the checks that span parameters, with Deep Water's network='auto' -> 'user' for a graph
    file and a model_id generated when none is given."""
    network, definition = values["network"], values["network_definition_file"]
    if definition and network == "auto":
        network = USER
    if definition and not _is_user(network):
        raise ParameterError(f"network={network!r} is a built-in network, so network_definition_file={definition!r} "
                             "cannot be used with it. Pass network='user' (or 'auto') to train the graph file, or "
                             "drop network_definition_file to train the built-in network.")
    if _is_user(network) and not definition:
        raise ParameterError("network='user' needs network_definition_file: pass the path of your graph file "
                             f"({describe_formats()}), optionally with network_parameters_file for its "
                             "weights; or pick a built-in network.")
    if math.isinf(values["epochs"]) and not values["max_runtime_secs"]:
        raise ParameterError("epochs=inf trains until max_runtime_secs, but max_runtime_secs=0 (no limit). Pass "
                             "max_runtime_secs > 0 in the same call, or a finite number of epochs.")
    return {**values, "network": network,
            "model_id": values["model_id"] or f"DeepWater_model_{uuid.uuid4().hex[:8]}"}


@dataclass
class _Fitted:
    """Everything train() produced and predict() needs."""

    backend: str
    device: str
    network: str
    net: Any
    task: TaskSpec
    response: Response
    inputs: DatasetInputs | ImageInputs
    predictors: list[str]
    problem_type: str
    seed: int
    outcome: TrainingOutcome
    training_metrics: ModelMetrics | None  # None for pretrained weights loaded by from_pretrained()
    validation_metrics: ModelMetrics | None


@parameter_table.documented
class DeepWaterEstimator:
    """Deep learning on pandas frames with H2O Deep Water's parameters (see deepwater.params.PARAMETERS).

    Parameters are keyword arguments, attributes (``model.epochs = 3``) and get_params()/set_params(),
    all checked by the table; a change takes effect at the next train().

    >>> model = DeepWaterEstimator(epochs=2, network="lenet", problem_type="image", channels=1)
    >>> model.train(x=["uri"], y="label", training_frame=frame)    # doctest: +SKIP
    """

    algo = "deepwater"

    def __init__(self, **params: Any) -> None:
        self._params = _settle(parameter_table.resolve(params))
        self._given = dict(params)
        self._fitted: _Fitted | None = None

    @classmethod
    def available(cls) -> bool:
        """True when some backend can run here (H2O's H2ODeepWaterEstimator.available())."""
        try:
            get_backend("auto")
        except MissingDependencyError:
            return False
        return True

    # --- parameters -----------------------------------------------------------------------
    @property
    def params(self) -> dict[str, dict[str, Any]]:
        """Every parameter as {'default': ..., 'actual': ...}, as H2O shows them: 'actual' holds the values set
        until train(), then what training resolved (the backend that ran, the network 'auto' chose, the seed drawn
        for seed=-1, the problem type and distribution)."""
        actual = {**self._params, **self._resolved()}
        return {name: {"default": row.default, "actual": actual[name]}
                for name, row in parameter_table.PARAMETERS.items()}

    def _resolved(self) -> dict[str, Any]:
        """The parameters training resolved, as they ran; empty before train()."""
        f = self._fitted
        if f is None:
            return {}
        return {"backend": f.backend, "network": f.network, "seed": f.seed, "problem_type": f.problem_type,
                "distribution": f.task.distribution}

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        """Private names are set as usual; any other name is a parameter, set through set_params()."""
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self.set_params(**{name: value})

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Every parameter as given to the constructor or set_params(), else its default (scikit-learn's meaning).

        Given values are returned as the very objects given, so sklearn.base.clone() works; `deep` is
        accepted for scikit-learn and changes nothing (no parameter is an estimator).
        """
        return {**parameter_table.resolve({}), **self._given}

    def set_params(self, **params: Any) -> DeepWaterEstimator:
        """Check `params` through the table and set them for the next train(); returns self."""
        checked = {name: parameter_table.check(name, value) for name, value in params.items()}
        self._params = _settle({**self._params, **checked})
        self._given.update(params)
        return self

    # --- training -------------------------------------------------------------------------
    def train(self, x: Sequence[ColumnRef] | ColumnRef | None = None, y: ColumnRef | None = None,
              training_frame: pd.DataFrame | None = None,
              validation_frame: pd.DataFrame | None = None, model_id: str | None = None) -> DeepWaterEstimator:
        """Fit the model on `training_frame`; x and y name columns by name or 0-based position.

        `model_id` names the model (as H2O's train does); the trained model is held in this process under
        it (deepwater.get_model(model_id), deepwater.ls()).
        """
        if model_id is not None:
            self.model_id = model_id
        p = self._params
        train = check_frame(training_frame, "training_frame")
        valid = None if validation_frame is None else check_frame(validation_frame, "validation_frame")
        weights_column = column_name(train, p["weights_column"], "weights_column") if p["weights_column"] else None
        predictors, response_name = resolve_columns(train, x, y, ignored=[weights_column] if weights_column else [])
        problem_type = detect_problem_type(train, predictors, p["problem_type"])
        response = Response.fit(train, response_name, p["standardize"])
        task = task_from_params(response.kind, response.n_classes, p["distribution"], p["loss"])
        rule = self._stopping_rule(task, valid is not None)

        network = USER if _is_user(p["network"]) else networks.resolve_auto(p["network"], problem_type == "image")
        inputs = self._make_inputs(train, predictors, problem_type, network)
        graph = self._user_graph(inputs.input_shape) if network == USER else None
        seed = _seed(p)
        backend, device, net = _build_net(network, graph, p["backend"], inputs.input_shape, task, p, seed)
        if graph is None and p["network_parameters_file"]:
            load_network_weights(net, p["network_parameters_file"], p["replace_output_layer"])

        train_source = inputs.source(train, response.encode(train), _weights(train, weights_column))
        train_score = self._scoring_subset(train_source, train, inputs, response, weights_column,
                                           p["score_training_samples"], seed)
        valid_score = None if valid is None else self._scoring_subset(
            None, valid, inputs, response, weights_column, p["score_validation_samples"], seed + 1)

        def evaluate() -> dict[str, ModelMetrics]:
            out = {"training": self._metrics(net, task, response, train_score, "training")}
            if valid_score is not None:
                out["validation"] = self._metrics(net, task, response, valid_score, "validation")
            return out

        settings = LoopSettings(p["epochs"], p["mini_batch_size"], p["score_interval"], p["score_duty_cycle"],
                                p["train_samples_per_iteration"], p["max_runtime_secs"],
                                p["overwrite_with_best_model"], p["quiet_mode"],
                                f"{network} on {backend.name}:{device}")
        outcome = Trainer(net, train_source, evaluate, rule, settings, np.random.default_rng(seed)).run()
        self._fitted = _Fitted(
            backend.name, device, network, net, task, response, inputs, predictors, problem_type, seed, outcome,
            outcome.final_metrics["training"], outcome.final_metrics.get("validation"),
        )
        register(self)
        return self

    @classmethod
    def from_pretrained(cls, network: str, state: Mapping[str, np.ndarray], classes: Sequence[Any],
                        image_shape: Sequence[int], channels: int = 3, offset: np.ndarray | None = None,
                        scale: float | np.ndarray = 1.0 / 255.0, x: str = "uri", y: str = "label",
                        backend: str = "auto", gpu: bool = True, device_id: Sequence[int] = (0,),
                        **params: Any) -> DeepWaterEstimator:
        """An image classifier ready to predict, from weights trained elsewhere (epochs=0, no history).

        `state` holds the network's canonical '<layer>.<param>' arrays (PyTorch layouts) for `classes`
        outputs; images in column `x` are resized to `image_shape` [height, width] and fed to the network
        as (pixels - offset) * scale, where offset and scale are numbers or per-channel (C, 1, 1) arrays.
        `y` names the response column that model_performance(frame) reads.
        """
        model = cls(network=network, backend=backend, gpu=gpu, device_id=list(device_id), problem_type="image",
                    image_shape=list(image_shape), channels=channels, epochs=0, **params)
        p = model._params
        shape = ImageShape(p["image_shape"][0], p["image_shape"][1], p["channels"])
        task = task_from_params(CLASSIFICATION, len(classes), "AUTO", "Automatic")
        seed = _seed(p)
        chosen, device, net = _build_net(network, None, p["backend"], (shape.channels, shape.height, shape.width),
                                         task, p, seed)
        net.set_state(dict(state))
        reader = ImageReader(shape, bad_images=p["bad_images"], cache_mb=p["image_cache_mb"])
        model._fitted = _Fitted(
            chosen.name, device, networks.get(network).name, net, task, Response(y, CLASSIFICATION, list(classes)),
            ImageInputs(x, shape, offset, reader, scale), [x], "image", seed,
            TrainingOutcome(stop_reason="pretrained weights"), None, None,
        )
        return register(model)

    # --- saving and loading (see model_files.py) -------------------------------------------
    def _to_record(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
        """What a saved model holds: JSON values, arrays by name, and the user's graph files to copy."""
        f = self._require_fitted()
        inputs, arrays = f.inputs.to_record()
        arrays.update({f"net/{name}": value for name, value in f.net.get_state().items()})
        graph_files = {"network_definition_file": self._params["network_definition_file"]} \
            if f.network == USER else {}
        record = {
            "model_id": self.model_id, "algo": self.algo, "params": self._params, "given": sorted(self._given),
            "backend": f.backend, "device": f.device, "network": f.network, "task": asdict(f.task),
            "response": asdict(f.response), "inputs": inputs, "predictors": f.predictors,
            "problem_type": f.problem_type, "seed": f.seed, "outcome": outcome_record(f.outcome),
            "training_metrics": record_of(f.training_metrics), "validation_metrics": record_of(f.validation_metrics),
            "graph_files": {},
        }
        return record, arrays, graph_files

    @classmethod
    def _from_record(cls, record: dict[str, Any], arrays: dict[str, np.ndarray], folder: Path,
                     backend: str | None) -> DeepWaterEstimator:
        """The model a saved record describes, its net rebuilt (on `backend`, or its own) with the saved state."""
        saved = record["params"]
        given = {name: saved[name] for name in record["given"] if name in parameter_table.PARAMETERS}
        model = cls(**{**given, "model_id": record["model_id"]})
        p = model._params
        backend_name = record["backend"] if backend is None else parameter_table.check("backend", backend)
        if backend is not None:
            p["backend"] = backend_name
        task = TaskSpec(**record["task"])
        inputs = inputs_from_record(record["inputs"], arrays, p)
        graph = None
        if record["network"] == USER:
            definition = folder / record["graph_files"]["network_definition_file"]
            graph = user_graph(definition, None, inputs.input_shape, p["replace_output_layer"])
        chosen, device, net = _build_net(record["network"], graph, backend_name, inputs.input_shape, task, p, record["seed"])
        net.set_state({name[4:]: value for name, value in arrays.items() if name.startswith("net/")},
                      f"the saved model {str(folder)!r}")
        model._fitted = _Fitted(
            chosen.name, device, record["network"], net, task, Response(**record["response"]), inputs,
            record["predictors"], record["problem_type"], record["seed"], outcome_from_record(record["outcome"]),
            metrics_from_record(record["training_metrics"]), metrics_from_record(record["validation_metrics"]),
        )
        return model

    def _user_graph(self, input_shape: tuple[int, ...]) -> UserGraph:
        """The user's graph file, its format detected; ONNX graphs only score, so they need epochs=0."""
        p = self._params
        graph = user_graph(p["network_definition_file"], p["network_parameters_file"], input_shape,
                           p["replace_output_layer"])
        if graph.format.backend == ANY_BACKEND and p["epochs"] > 0:
            raise training_refused(graph.definition_file)
        return graph

    def _stopping_rule(self, task: TaskSpec, has_validation: bool) -> StoppingRule:
        p = self._params
        metric = p["stopping_metric"]
        if metric == "AUTO":
            metric = "logloss" if task.is_classification else "deviance"
        if metric in CLASSIFICATION_ONLY and not task.is_classification:
            raise ParameterError(f"stopping_metric={metric!r} needs a classification response; "
                                 "use 'deviance', 'MSE' or 'RMSE' for regression.")
        if metric == "AUC" and task.n_outputs != 2:
            raise ParameterError("stopping_metric='AUC' needs two classes; use 'logloss' or 'misclassification'.")
        key, larger = STOPPING_KEYS[metric]
        return StoppingRule(key, larger, p["stopping_rounds"], p["stopping_tolerance"],
                            "validation" if has_validation else "training")

    def _make_inputs(self, frame: pd.DataFrame, predictors: list[str], problem_type: str,
                     network: str) -> DatasetInputs | ImageInputs:
        p = self._params
        if problem_type == "dataset":
            return DatasetInputs(DatasetEncoder.fit(frame, predictors, p["standardize"], p["ignore_const_cols"]))
        default = (None if network == USER else networks.get(network).default_image_shape) or (224, 224)
        height, width = p["image_shape"] or default
        shape = ImageShape(height, width, p["channels"])
        mean = None if p["mean_image_file"] is None else load_mean_image(p["mean_image_file"], shape)
        reader = ImageReader(shape, bad_images=p["bad_images"], cache_mb=p["image_cache_mb"])
        return ImageInputs(predictors[0], shape, mean, reader)

    def _scoring_subset(self, full: Source | None, frame: pd.DataFrame, inputs, response: Response,
                        weights_column: str | None, limit: int, seed: int) -> Source:
        """The rows scored during training: all, or `limit` sampled once with a fixed seed."""
        if limit and limit < len(frame):
            rows = np.sort(np.random.default_rng(seed).choice(len(frame), size=limit, replace=False))
            frame = frame.iloc[rows]
            full = None
        if full is not None:
            return full
        return inputs.source(frame, response.encode(frame), _weights(frame, weights_column))

    def _outputs(self, net, source: Source) -> tuple[np.ndarray, np.ndarray]:
        """Network outputs for every row of `source` that decoded, and those rows."""
        return map_batches(source, net.predict, max(self._params["mini_batch_size"], 256))

    def _metrics(self, net, task: TaskSpec, response: Response, source: Source, description: str = "") -> ModelMetrics:
        out, rows = self._outputs(net, source)
        y = source.y[rows]
        w = None if source.w is None else source.w[rows]
        if task.is_classification:
            return ModelMetrics.for_classification(y, out, response.classes, w, description)
        scale = response.scale
        return ModelMetrics.for_regression(y * scale + response.mean, out[:, 0] * scale + response.mean,
                                           task.distribution, w, description)

    # --- using the model ------------------------------------------------------------------
    def _require_fitted(self) -> _Fitted:
        if self._fitted is None:
            raise NotFittedError(f"model {self.model_id!r} is not trained yet; call train(...) first.")
        return self._fitted

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A 'predict' column, plus one probability column per class for classification."""
        f = self._require_fitted()
        frame = check_frame(frame, "frame")
        out, rows = self._outputs(f.net, f.inputs.source(frame))
        full = np.full((len(frame), out.shape[1]), np.nan, dtype=np.float64)
        full[rows] = out  # rows whose image was skipped stay NaN
        if not f.task.is_classification:
            values = full[:, 0] * f.response.scale + f.response.mean
            return pd.DataFrame({"predict": values}, index=frame.index)
        labels = np.full(len(frame), None, dtype=object)
        labels[rows] = f.response.decode(out)
        result = pd.DataFrame({"predict": pd.Categorical(labels, categories=f.response.classes)}, index=frame.index)
        probabilities = pd.DataFrame(full, index=frame.index, columns=[str(name) for name in f.response.classes])
        return pd.concat([result, probabilities], axis=1)  # at once: a column at a time is slow for 1000 classes

    def layers(self) -> list[str]:
        """Layer names that deepfeatures() takes, from the input side to 'output'."""
        return layer_names(self._require_fitted().net)

    def deepfeatures(self, frame: pd.DataFrame, layer: str | int) -> pd.DataFrame:
        """Activations of `layer` (a name from layers(), or its position) for each row of `frame`.

        Columns DF.<layer>.C1 ... DF.<layer>.Ck, index frame.index; skipped images give NaN rows.
        """
        f = self._require_fitted()
        frame = check_frame(frame, "frame")
        return deep_features(f.net, f.inputs.source(frame), frame.index, layer,
                             max(self._params["mini_batch_size"], 256), self._params["quiet_mode"])

    def model_performance(self, frame: pd.DataFrame | None = None, train: bool = False,
                          valid: bool = False) -> ModelMetrics:
        """Metrics on `frame`, or those of the training (train=True) or validation (valid=True) frame."""
        f = self._require_fitted()
        if frame is not None:
            frame = check_frame(frame, "frame")
            weights_column = self._params["weights_column"]
            source = f.inputs.source(frame, f.response.encode(frame),
                                     _weights(frame, weights_column) if weights_column in frame.columns else None)
            return self._metrics(f.net, f.task, f.response, source, "test frame")
        if valid:
            if f.validation_metrics is None:
                raise ParameterError("valid=True but the model was trained without a validation_frame.")
            return f.validation_metrics
        if f.training_metrics is None:
            raise ParameterError("this model holds pretrained weights and was not trained here; "
                                 "pass a frame: model_performance(frame).")
        return f.training_metrics

    def scoring_history(self) -> pd.DataFrame:
        """One row per scoring: timestamp, duration, speed, epochs, samples, training_* and validation_* metrics."""
        return pd.DataFrame(self._require_fitted().outcome.history)

    # --- display --------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """The model in a few facts: backend and device that ran, network, size, run length, stop reason."""
        f = self._require_fitted()
        return {
            "model_id": self.model_id,
            "backend": f.backend,
            "device": f.device,
            "network": f.network,
            "problem_type": f.problem_type,
            "input_shape": f.inputs.input_shape,
            "parameters": f.net.parameter_count(),
            "response": f"{f.response.name} ({f.task.kind}, {f.task.distribution})",
            "epochs": round(f.outcome.epochs, 4),
            "samples": f.outcome.samples,
            "stop_reason": f.outcome.stop_reason,
            "run_seconds": round(f.outcome.run_seconds, 2),
            "seed": f.seed,
            "skipped_images": getattr(getattr(f.inputs, "reader", None), "skipped", 0),
        }

    def __repr__(self) -> str:
        if self._fitted is None:
            given = ", ".join(f"{k}={v!r}" for k, v in self._given.items()
                              if parameter_table.check(k, v) != parameter_table.PARAMETERS[k].default)
            return f"{type(self).__name__}({given}) [not trained]"
        lines = [f"{type(self).__name__}: {self.model_id}"]
        lines += [f"  {k}: {v}" for k, v in self.summary().items() if k != "model_id"]
        if self._fitted.training_metrics is not None:
            lines.append(repr(self._fitted.training_metrics))
        if self._fitted.validation_metrics is not None:
            lines.append(repr(self._fitted.validation_metrics))
        return "\n".join(lines)

    def show(self) -> None:
        """Print the summary and metrics."""
        print(repr(self))


H2ODeepWaterEstimator = DeepWaterEstimator


def _seed(params: dict[str, Any]) -> int:
    """The seed parameter, or a fresh random one for seed=-1."""
    return params["seed"] if params["seed"] >= 0 else int(np.random.SeedSequence().entropy % 2**32)


def _build_net(network: str, graph: UserGraph | None, backend_name: str, input_shape: tuple[int, ...],
               task: TaskSpec, params: dict[str, Any], seed: int):
    """The backend (or graph loader), device and untrained net for a built-in `network` or the user `graph`."""
    backend = graph_loader(graph, backend_name) if graph is not None else get_backend(backend_name)
    device = resolve_device(backend, params["gpu"], params["device_id"])
    optimizer = OptimizerSpec.from_params(params)
    if graph is not None:
        return backend, device, backend.load_user_network(graph, task, optimizer, device, seed)
    spec = networks.build_graph(network, input_shape, task.n_outputs, params)
    return backend, device, backend.build(spec, task, optimizer, device, seed)


def _weights(frame: pd.DataFrame, column: str | None) -> np.ndarray | None:
    if column is None:
        return None
    if column not in frame.columns:
        raise FrameError(f"weights_column={column!r} is not in the frame; add it or drop weights_column.")
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float32, copy=True)
    if np.isnan(values).any() or (values < 0).any():
        raise FrameError(f"weights_column={column!r} holds missing or negative values; weights must be >= 0.")
    return values
