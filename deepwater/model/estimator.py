"""DeepWaterEstimator: H2O Deep Water's estimator API over any installed backend."""
from __future__ import annotations

import copy
import math
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepwater.training import autoencoder as unsupervised
from deepwater import networks
from deepwater.training import parameters as parameter_table
from deepwater.analysis import plots
from deepwater.data.augment import Augmentation
from deepwater.backends.base import configure_steps
from deepwater.storage.checkpoints import CheckpointWriter, check_restart_frames, restart_parameters, resolve_checkpoint
from deepwater.model.cross_validation import CrossValidation, check_folds, cross_validate, main_model_settings
from deepwater.data.encoders import DatasetEncoder, Response
from deepwater.runtime.devices import device_label, net_device, resolve_devices
from deepwater.errors import FrameError, MissingDependencyError, NotFittedError, ParameterError, warn_user
from deepwater.analysis.deep_features import deep_features, layer_names
from deepwater.files import private_copy
from deepwater.data.frames import (
    ColumnRef,
    check_frame,
    column_name,
    detect_problem_type,
    resolve_columns,
)
from deepwater.data.images import ImageReader, ImageShape, load_mean_image
from deepwater.data.inputs import DatasetInputs, ImageInputs, PixelInputs, inputs_from_record
from deepwater.analysis.metrics import CLASSIFICATION_ONLY, STOPPING_KEYS, ModelMetrics
from deepwater.storage.saved_models import metrics_from_record, outcome_from_record, outcome_record, record_of
from deepwater.storage.model_store import register
from deepwater.runtime.parallel import check_parallel, data_parallel
from deepwater.training.pretraining import check_pretrained, encoder_state
from deepwater.runtime.registry import get_backend
from deepwater.data.sources import ImageSource, Source, map_batches, preload_images
from deepwater.specs import AUTOENCODER, CLASSIFICATION, OptimizerSpec, TaskSpec, autoencoder_task, task_from_params
from deepwater.training.trainer import LoopSettings, StoppingRule, Trainer, TrainingOutcome
from deepwater.runtime.user_graphs import (
    ANY_BACKEND,
    UserGraph,
    describe_formats,
    graph_loader,
    output_labels,
    training_refused,
    user_graph,
)
from deepwater.analysis.variable_importance import gedeon, mlp_weights, varimp_table
from deepwater.runtime.weight_files import load_network_weights

if TYPE_CHECKING:
    from matplotlib.figure import Figure

USER = "user"  # network="user": the graph comes from network_definition_file
TRAINING = "training"  # saved arrays of the optimiser state: training/<name>


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
    graph: UserGraph | None = None  # network='user': the graph file the net was built from
    cross_validation: CrossValidation | None = None


@dataclass
class _Start:
    """What training starts from: a new model's net, or a checkpoint's net continued."""

    backend: str
    device: str
    network: str
    graph: UserGraph | None
    net: Any
    task: TaskSpec
    response: Response
    inputs: DatasetInputs | ImageInputs
    problem_type: str
    seed: int

    scores_only: bool = False  # a graph scored with its own outputs: no training, no metrics

    def fitted(self, predictors: list[str], outcome: TrainingOutcome) -> _Fitted:
        """The trained model's parts once `outcome` is the run (or the run so far)."""
        return _Fitted(self.backend, self.device, self.network, self.net, self.task, self.response, self.inputs,
                       predictors, self.problem_type, self.seed, outcome, outcome.final_metrics.get("training"),
                       outcome.final_metrics.get("validation"), self.graph)

    def with_graph_outputs(self) -> _Start:
        """This start, scoring with the user graph's own classes when they are not the response's (epochs=0):
        predict names them by output_labels(), and there is nothing to train or score against."""
        outputs = self.net.predict(np.zeros((1,) + self.inputs.input_shape, dtype=np.float32)).shape[1]
        if outputs == self.task.n_outputs:
            return self
        task = TaskSpec(CLASSIFICATION, outputs, "cross_entropy", "bernoulli" if outputs == 2 else "multinomial")
        self.net.task = task
        return replace(self, task=task, response=Response(self.response.name, CLASSIFICATION,
                                                          output_labels(self.graph, outputs)), scores_only=True)


@parameter_table.documented
class DeepWaterEstimator:
    """Deep learning on pandas frames with H2O Deep Water's parameters (see deepwater.training.parameters.PARAMETERS).

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
              validation_frame: pd.DataFrame | None = None, model_id: str | None = None,
              fold_column: ColumnRef | None = None) -> DeepWaterEstimator:
        """Fit the model on `training_frame`; x and y name columns by name or 0-based position.

        `model_id` names the model (as H2O's train does); the trained model is held in this process under
        it (deepwater.get_model(model_id), deepwater.ls()). With the `checkpoint` parameter, training
        continues that model (deepwater/checkpoints.py says what a restart may change). With `nfolds` or a
        `fold_column` (this argument or the parameter), fold models are trained first (cross_validation.py).
        """
        if model_id is not None:
            self.model_id = model_id
        train = check_frame(training_frame, "training_frame")
        valid = None if validation_frame is None else check_frame(validation_frame, "validation_frame")
        previous = None if self._params["checkpoint"] is None else resolve_checkpoint(self._params["checkpoint"])
        if previous is not None:
            given = {name: self._params[name] for name in self._given}
            self._params = {**restart_parameters(given, previous), "model_id": self.model_id,
                            "checkpoint": self._params["checkpoint"]}
        p = self._params
        weights_column = column_name(train, p["weights_column"], "weights_column") if p["weights_column"] else None
        fold_ref = p["fold_column"] if fold_column is None else fold_column
        fold_column = None if fold_ref is None else column_name(train, fold_ref, "fold_column")
        if p["autoencoder"]:
            unsupervised.check_parameters(p, y, fold_column)
        predictors, response_name = resolve_columns(train, x, y, ignored=[c for c in (weights_column, fold_column) if c],
                                                    unsupervised=p["autoencoder"])
        cross_validation = None
        if previous is not None:
            if p["nfolds"] or fold_column:
                raise ParameterError(f"nfolds={p['nfolds']} (or a fold_column) with checkpoint: a checkpoint restart "
                                     "is not cross-validated (H2O's rule); pass nfolds=0.")
            check_restart_frames(previous, predictors, response_name, valid is not None)
            start = self._continue(previous, train, predictors)
        else:
            if p["nfolds"] or fold_column or p["fold_assignment"] != "AUTO":
                check_folds(p, fold_column, len(train))
                cross_validation = cross_validate(self, predictors, response_name, train, fold_column, _seed(p))
                self._params = p = {**p, **main_model_settings(p, cross_validation)}
            start = self._start(train, predictors, response_name)
        writer = CheckpointWriter(p["export_checkpoints_dir"], self.model_id, p["export_checkpoints_keep"]) \
            if p["export_checkpoints_dir"] else None
        outcome = TrainingOutcome(stop_reason="epochs=0: the graph's own outputs") if start.scores_only else \
            self._run(start, train, valid, weights_column, predictors, previous, writer)
        self._fitted = start.fitted(predictors, outcome)
        self._fitted.cross_validation = cross_validation
        register(self)
        if writer is not None:  # the final model is the newest checkpoint
            writer(self, outcome.samples)
        return self

    def _start(self, train: pd.DataFrame, predictors: list[str], response_name: str | None) -> _Start:
        """A new model's encoders, task and untrained (or pretrained-weights) net."""
        p = self._params
        problem_type = detect_problem_type(train, predictors, p["problem_type"])
        pretrained = self._pretrained()
        if p["autoencoder"]:
            network = unsupervised.network_for(p["network"], problem_type == "image")
            inputs = self._make_inputs(train, predictors, problem_type, network)
            task, response = autoencoder_task(math.prod(inputs.input_shape)), Response(None, AUTOENCODER)
        else:
            response = Response.fit(train, response_name, p["standardize"])
            task = task_from_params(response.kind, response.n_classes, p["distribution"], p["loss"])
            network = USER if _is_user(p["network"]) else networks.resolve_auto(p["network"], problem_type == "image")
            if pretrained is not None:  # its encoder too: the weights see the inputs they were trained on
                check_pretrained(pretrained, predictors, network, p)
            inputs = pretrained._fitted.inputs if pretrained is not None else \
                self._make_inputs(train, predictors, problem_type, network)
        graph = self._user_graph(inputs.input_shape, task.is_classification) if network == USER else None
        seed = _seed(p)
        backend, device, net = _build_net(network, graph, p["backend"], inputs.input_shape, task, p, seed)
        if graph is None and p["network_parameters_file"]:
            load_network_weights(net, p["network_parameters_file"], p["replace_output_layer"])
        if pretrained is not None:
            net.set_state({**net.get_state(), **encoder_state(pretrained, len(p["hidden"]))},
                          f"pretrained_autoencoder={pretrained.model_id!r}")
        if graph is None and p["epochs"] == 0 and not p["network_parameters_file"] and pretrained is None:
            warn_user(f"epochs=0 and no network_parameters_file: network={network!r} keeps the random weights it "
                      f"was initialised with (seed {seed}), so its predictions mean nothing; train it "
                      "(epochs > 0) or pass its weights.", UserWarning)
        start = _Start(backend.name, device, network, graph, net, task, response, inputs, problem_type, seed)
        return start.with_graph_outputs() if graph is not None and graph.outputs_stand else start

    def _pretrained(self) -> DeepWaterEstimator | None:
        """The pretrained_autoencoder model, or None; an autoencoder cannot itself start from one."""
        value = self._params["pretrained_autoencoder"]
        if value is None:
            return None
        if self._params["autoencoder"]:
            raise ParameterError("pretrained_autoencoder starts a supervised model from an autoencoder; this model is "
                                 "itself an autoencoder (autoencoder=True). Drop one of the two (or continue the "
                                 "autoencoder with checkpoint=).")
        return resolve_checkpoint(value, "pretrained_autoencoder")

    def _continue(self, previous: DeepWaterEstimator, train: pd.DataFrame, predictors: list[str]) -> _Start:
        """A restart's net: the checkpoint's network, encoders, weights and optimiser state, on a fresh net
        (the checkpoint model itself is left as it was), built with this restart's parameters."""
        p, f = self._params, previous._fitted
        inputs = f.inputs
        if f.problem_type == "image" and p["image_shape"] != previous._params["image_shape"]:
            inputs = self._make_inputs(train, predictors, "image", f.network)
        graph = None if f.graph is None else replace(f.graph, parameters_file=None, input_shape=inputs.input_shape)
        seed = _seed(p)
        backend, device, net = _build_net(f.network, graph, f.backend, inputs.input_shape, f.task, p, seed)
        source = f"checkpoint={previous.model_id!r}"
        net.set_state(f.net.get_state(), source)
        net.set_training_state(f.net.training_state(), source)
        return _Start(backend.name, device, f.network, graph, net, f.task, f.response, inputs, f.problem_type, seed)

    def _run(self, start: _Start, train: pd.DataFrame, valid: pd.DataFrame | None, weights_column: str | None,
             predictors: list[str], previous: DeepWaterEstimator | None,
             writer: CheckpointWriter | None) -> TrainingOutcome:
        """The training loop on `start`'s net, scoring the training (and validation) frame on H2O's
        schedule; a restart continues `previous`'s run; `writer` saves a checkpoint at each scoring."""
        p, task, response, inputs = self._params, start.task, start.response, start.inputs
        train_source = inputs.source(train, response.encode(train), _weights(train, weights_column))
        train_score = self._scoring_subset(train_source, train, inputs, response, weights_column,
                                           p["score_training_samples"], start.seed)
        valid_score = None if valid is None else self._scoring_subset(
            None, valid, inputs, response, weights_column, p["score_validation_samples"], start.seed + 1)
        preload_images([train_source, train_score, valid_score], p["quiet_mode"])
        train_source = _augmented(train_source, p["augment"], start)
        on_scored = None if writer is None else self._checkpoints(start, predictors, writer)
        settings = LoopSettings(p["epochs"], p["mini_batch_size"], p["score_interval"], p["score_duty_cycle"],
                                p["train_samples_per_iteration"], p["max_runtime_secs"],
                                p["overwrite_with_best_model"], p["quiet_mode"],
                                f"{start.network} on {start.backend}:{start.device}")
        devices, workers = start.device.split(","), p["num_workers"]
        backend = get_backend(start.backend) if len(devices) > 1 or workers else None
        with data_parallel(backend, start.net, devices, workers, p["gpu"]) as net:

            def evaluate() -> dict[str, ModelMetrics]:
                out = {"training": self._metrics(net, task, response, train_score, "training")}
                if valid_score is not None:
                    out["validation"] = self._metrics(net, task, response, valid_score, "validation")
                return out

            trainer = Trainer(net, train_source, evaluate, self._stopping_rule(task, valid is not None), settings,
                              np.random.default_rng(start.seed), on_scored)
            if previous is not None:
                f = previous._fitted
                run = f.outcome if start.seed == f.seed else replace(f.outcome, rng_state=None)  # a new seed reshuffles
                metrics = {"training": f.training_metrics, "validation": f.validation_metrics}
                trainer.resume(run, {part: m for part, m in metrics.items() if m is not None})
            return trainer.run()

    def _checkpoints(self, start: _Start, predictors: list[str],
                     writer: CheckpointWriter) -> Callable[[TrainingOutcome], None]:
        """The trainer's on_scored hook: `writer` saves the run so far."""
        def on_scored(outcome: TrainingOutcome) -> None:
            writer(self._holding(start.fitted(predictors, outcome.snapshot())), outcome.samples)

        return on_scored

    def _holding(self, fitted: _Fitted) -> DeepWaterEstimator:
        """A shallow copy of this model holding `fitted` (a checkpoint of the run in progress)."""
        snapshot = copy.copy(self)
        snapshot._fitted = fitted
        return snapshot

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
        arrays.update({f"{TRAINING}/{name}": value for name, value in f.net.training_state().items()})
        graph_files = {} if f.graph is None else {"network_definition_file": f.graph.definition_file}
        checkpoint = self._params["checkpoint"]
        record = {
            "model_id": self.model_id, "algo": self.algo, "given": sorted(set(self._given) - {"checkpoint"}),
            "params": {**self._params, "checkpoint": getattr(checkpoint, "model_id", checkpoint),
                       "pretrained_autoencoder": getattr(self._params["pretrained_autoencoder"], "model_id",
                                                         self._params["pretrained_autoencoder"])},
            "backend": f.backend, "device": f.device, "network": f.network, "task": asdict(f.task),
            "response": asdict(f.response), "inputs": inputs, "predictors": f.predictors,
            "problem_type": f.problem_type, "seed": f.seed, "outcome": outcome_record(f.outcome),
            "training_metrics": record_of(f.training_metrics), "validation_metrics": record_of(f.validation_metrics),
            "graph_files": {}, "cross_validation": None if f.cross_validation is None else {
                "metrics": record_of(f.cross_validation.metrics), "fold_epochs": f.cross_validation.fold_epochs,
                "fold_metrics": [record_of(m) for m in f.cross_validation.fold_metrics]},  # fold models are not saved
        }
        return record, arrays, graph_files

    @classmethod
    def _from_record(cls, record: dict[str, Any], arrays: dict[str, np.ndarray], folder: Path,
                     backend: str | None) -> DeepWaterEstimator:
        """The model a saved record describes, its net rebuilt (on `backend`, or its own) with the saved
        weights and, on its own backend, the optimiser state a checkpoint restart continues from."""
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
        if record["network"] == USER:  # a private copy: the model outlives the saved folder
            definition = private_copy(folder / record["graph_files"]["network_definition_file"])
            graph = user_graph(definition, None, inputs.input_shape, p["replace_output_layer"])
        chosen, device, net = _build_net(record["network"], graph, backend_name, inputs.input_shape, task, p,
                                         record["seed"])
        source = f"the saved model {str(folder)!r}"
        net.set_state(_part(arrays, "net"), source)
        outcome = outcome_from_record(record["outcome"])
        training = _part(arrays, TRAINING)
        if chosen.name != record["backend"] or not training:  # another framework's optimiser, or format 1's none
            training = {**net.training_state(), "samples": np.asarray(outcome.samples)}
        net.set_training_state(training, source)
        model._fitted = _Fitted(
            chosen.name, device, record["network"], net, task, Response(**record["response"]), inputs,
            record["predictors"], record["problem_type"], record["seed"], outcome,
            metrics_from_record(record["training_metrics"]), metrics_from_record(record["validation_metrics"]), graph,
        )
        cv = record.get("cross_validation")
        if cv is not None:
            model._fitted.cross_validation = CrossValidation(
                metrics_from_record(cv["metrics"]), [metrics_from_record(m) for m in cv["fold_metrics"]],
                cv["fold_epochs"])
        return model

    def _user_graph(self, input_shape: tuple[int, ...], classification: bool) -> UserGraph:
        """The user's graph file, its format detected; ONNX graphs only score, so they need epochs=0. A classifier
        scored with epochs=0 keeps its own outputs (Deep Water's booklet scores ImageNet graphs on any frame)."""
        p = self._params
        graph = user_graph(p["network_definition_file"], p["network_parameters_file"], input_shape,
                           p["replace_output_layer"])
        if graph.format.backend == ANY_BACKEND and p["epochs"] > 0:
            raise training_refused(graph.definition_file)
        return replace(graph, outputs_stand=classification and p["epochs"] == 0 and not p["replace_output_layer"])

    def _stopping_rule(self, task: TaskSpec, has_validation: bool) -> StoppingRule:
        p = self._params
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

    def _make_inputs(self, frame: pd.DataFrame, predictors: list[str], problem_type: str,
                     network: str) -> DatasetInputs | ImageInputs:
        """Columns and their encoders, a built-in image network's pixel columns, or an image URI column."""
        p = self._params
        pixels = problem_type == "dataset" and network != USER and networks.get(network).needs_image
        if problem_type == "dataset" and not pixels:
            return DatasetInputs(DatasetEncoder.fit(frame, predictors, p["standardize"], p["ignore_const_cols"],
                                                    p["categorical_encoding"], p["max_categorical_features"]))
        default = (None if network == USER else networks.get(network).default_image_shape) or (224, 224)
        height, width = p["image_shape"] or default
        shape = ImageShape(height, width, p["channels"])
        if pixels:  # an image network on pixel columns (Deep Water's booklet, section 10)
            return PixelInputs.fit(frame, predictors, shape, p["standardize"])
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
        if task.is_autoencoder:
            errors, rows = map_batches(source, lambda x: unsupervised.row_errors(net, x),
                                       max(self._params["mini_batch_size"], 256))
            return ModelMetrics.for_autoencoder(errors[:, 0], None if source.w is None else source.w[rows], description)
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
        """A 'predict' column, plus one probability column per class for classification.

        With two classes the label is the second class where its probability is >= the threshold that
        maximised F1 on the final validation scoring (training scoring without a validation frame), as in
        H2O. Rows that cannot be scored (a skipped image, a value beyond float32) are NaN, label included.
        """
        f = self._require_fitted()
        frame = check_frame(frame, "frame")
        if f.task.is_autoencoder:
            values = self._scored(frame, lambda net, x: net.predict(x))
            return unsupervised.reconstruction_frame(f.inputs.unscale(values), f.inputs.feature_names(), frame.index)
        out, rows = self._outputs(f.net, f.inputs.source(frame))
        return f.response.predictions(out, rows, frame.index, self._threshold())

    def _scored(self, frame: pd.DataFrame, fn: Callable[[Any, np.ndarray], np.ndarray]) -> np.ndarray:
        """fn(net, x) for every row of `frame` (checked), rows that could not be read NaN."""
        f = self._require_fitted()
        return unsupervised.scored(f.net, f.inputs.source(frame), fn, max(self._params["mini_batch_size"], 256),
                                   frame.index)

    def anomaly(self, frame: pd.DataFrame, per_feature: bool = False) -> pd.DataFrame:
        """An autoencoder's reconstruction error of each row of `frame` (H2O's anomaly()): the column
        'Reconstruction.MSE', or with `per_feature` each input value's squared error, 'reconstr_<name>.SE'. Errors
        are measured on the values the net reconstructs (standardised numbers, one-hot levels, or the
        mean-subtracted, scaled image); rows that could not be read are NaN."""
        f = self._require_fitted()
        if not f.task.is_autoencoder:
            raise ParameterError(f"anomaly() needs an autoencoder; model {self.model_id!r} is a {f.task.kind} model. "
                                 "Train one with autoencoder=True (or H2OAutoEncoderEstimator) to score "
                                 "reconstruction errors.")
        frame = check_frame(frame, "frame")
        errors = self._scored(frame, unsupervised.squared_errors)
        return unsupervised.anomaly_frame(errors, f.inputs.feature_names(), frame.index, per_feature)

    def varimp(self, use_pandas: bool = False, by_column: bool = False) -> list[tuple] | pd.DataFrame | None:
        """H2O's variable importances of an MLP (Gedeon's method on its first two weight layers): tuples of
        (variable, relative_importance, scaled_importance, percentage), most important first, or a DataFrame with
        `use_pandas`. Variables are the encoded inputs ('<col>.<level>' for one-hot levels); `by_column` sums
        each frame column's values into one row. None (as in H2O) when trained with variable_importances=False."""
        f = self._require_fitted()
        if not self._params["variable_importances"]:
            warn_user(f"model {self.model_id!r} was trained with variable_importances=False, so it has none "
                      "(H2O returns None too); train with variable_importances=True.", UserWarning)
            return None
        importance = gedeon(*mlp_weights(f.net.get_state(), f.network, self._params["hidden"]))
        return varimp_table(f.inputs.feature_names(), importance, f.inputs.feature_columns() if by_column else None,
                            use_pandas)

    def _threshold(self) -> float:
        """The probability of the second class from which predict() says that class (two classes): the max-F1
        threshold of the final validation scoring, else of the training scoring, else 0.5 (H2O's rule)."""
        f = self._require_fitted()
        final = f.validation_metrics if f.validation_metrics is not None else f.training_metrics
        return 0.5 if final is None else final.default_threshold()

    def layers(self) -> list[str]:
        """Layer names that deepfeatures() takes, from the input side to 'output'."""
        return layer_names(self._require_fitted().net)

    def deepfeatures(self, frame: pd.DataFrame, layer: str | int) -> pd.DataFrame:
        """Activations of `layer` (a name from layers(), or its position) for each row of `frame`.

        Columns DF.<layer>.C1 ... DF.<layer>.Ck, index frame.index; skipped images and rows holding inf give NaN rows.
        """
        f = self._require_fitted()
        frame = check_frame(frame, "frame")
        return deep_features(f.net, f.inputs.source(frame), frame.index, layer,
                             max(self._params["mini_batch_size"], 256), self._params["quiet_mode"])

    def export(self, path: str | os.PathLike, format: str = "onnx", layers: Sequence[str | int] | None = None,
               force: bool = False) -> str:
        """A deployment bundle (Keras 3's model.export): the folder `path` with the network as model.onnx and what
        scoring needs around it, which deepwater.deploy.inference.load(path) scores with onnxruntime alone; `layers`
        adds those layers' activations for deepfeatures(). Returns the folder's path (see deepwater/export.py)."""
        from deepwater.deploy.export import export_bundle  # here: export.py imports this module

        return export_bundle(self, path, format, layers, force)

    def model_performance(self, frame: pd.DataFrame | None = None, train: bool = False,
                          valid: bool = False, xval: bool = False) -> ModelMetrics:
        """Metrics on `frame`, or those of the training (train=True), validation (valid=True) or
        cross-validation holdout (xval=True) predictions; one of the four at a time."""
        asked = [name for name, given in (("frame", frame is not None), ("train=True", train), ("valid=True", valid),
                                          ("xval=True", xval)) if given]
        if len(asked) > 1:
            raise ParameterError(f"model_performance({', '.join(asked)}): these arguments conflict, each asks for "
                                 "other metrics. Pass a frame to score it, or train=True, valid=True or xval=True "
                                 "for the training, validation or cross-validation metrics, one at a time.")
        f = self._require_fitted()
        if xval:
            return self._cross_validation().metrics
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

    # --- cross-validation (see cross_validation.py) ---------------------------------------
    def _cross_validation(self) -> CrossValidation:
        cv = self._require_fitted().cross_validation
        if cv is None:
            raise ParameterError(f"model {self.model_id!r} was not cross-validated; train it with nfolds >= 2 or a "
                                 "fold_column.")
        return cv

    def cross_validation_metrics_summary(self) -> pd.DataFrame:
        """One row per metric: mean and sd over the folds, then cv_1_valid ... cv_k_valid (H2O's layout)."""
        return self._cross_validation().summary()

    def cross_validation_models(self) -> list[DeepWaterEstimator]:
        """The fold models (kept with keep_cross_validation_models=True, the default)."""
        cv = self._cross_validation()
        return CrossValidation._require(cv.models or None, "keep_cross_validation_models")

    def cross_validation_predictions(self) -> list[pd.DataFrame]:
        """One frame per fold model over every training row: its holdout predictions, 0 elsewhere."""
        return self._cross_validation().fold_predictions()

    def cross_validation_holdout_predictions(self) -> pd.DataFrame:
        """Every training row's prediction by the fold model that did not train on it."""
        cv = self._cross_validation()
        return CrossValidation._require(cv.holdout_predictions, "keep_cross_validation_predictions")

    def cross_validation_fold_assignment(self) -> pd.DataFrame:
        """Each training row's fold, as column 'fold_assignment' (0-based)."""
        cv = self._cross_validation()
        folds = CrossValidation._require(cv.fold_assignment, "keep_cross_validation_fold_assignment")
        return pd.DataFrame({"fold_assignment": folds})

    def scoring_history(self) -> pd.DataFrame:
        """One row per scoring: timestamp, duration, speed, epochs, samples, training_* and validation_* metrics."""
        return pd.DataFrame(self._require_fitted().outcome.history)

    # --- display --------------------------------------------------------------------------
    def plot(self, timestep: str = "AUTO", metric: str = "AUTO",
             save_plot_path: str | os.PathLike | None = None) -> Figure:
        """H2O's model.plot(): the scoring history's training and validation `metric` against `timestep`.

        `metric`: "AUTO" (logloss for two classes, classification_error for more, rmse for regression) or
        another of H2O's (auc, classification_error, logloss, rmse; deviance, mae for regression);
        `timestep`: "AUTO" (epochs), "samples" or "duration". Returns the matplotlib Figure, also saved to
        `save_plot_path` when given. Needs matplotlib (pip install 'deepwater[plot]').
        """
        history = self.scoring_history()
        return plots.scoring_history_plot(history, plots.model_kind(self.model_performance(train=True)), timestep,
                                          metric, save_plot_path)

    def summary(self) -> dict[str, Any]:
        """The model in a few facts: backend and device that ran, network, size, precision, run length, stop
        reason."""
        f = self._require_fitted()
        return {
            "model_id": self.model_id,
            "backend": f.backend,
            "device": f.device,
            "network": f.network,
            "problem_type": f.problem_type,
            "input_shape": f.inputs.input_shape,
            "parameters": f.net.parameter_count(),
            "precision": getattr(f.net, "precision", "float32"),  # what the steps computed in ("auto" resolved)
            "compiled": getattr(f.net, "compiled", False),
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


class H2OAutoEncoderEstimator(DeepWaterEstimator):
    """H2O's H2OAutoEncoderEstimator: the estimator with autoencoder=True (train(x=..., training_frame=...))."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**{"autoencoder": True, **params})


def _seed(params: dict[str, Any]) -> int:
    """The seed parameter, or a fresh random one for seed=-1."""
    return params["seed"] if params["seed"] >= 0 else int(np.random.SeedSequence().entropy % 2**32)


def _build_net(network: str, graph: UserGraph | None, backend_name: str, input_shape: tuple[int, ...],
               task: TaskSpec, params: dict[str, Any], seed: int):
    """The backend (or graph loader), the devices it trains on (device_label()) and the untrained net, built on
    the first of them, for a built-in `network` or the user `graph`."""
    backend = graph_loader(graph, backend_name) if graph is not None else get_backend(backend_name)
    devices = resolve_devices(backend, params["gpu"], params["device_id"])
    check_parallel(backend, devices, params["num_workers"], graph)
    optimizer = OptimizerSpec.from_params(params)
    device = net_device(devices)
    if graph is not None:
        net = backend.load_user_network(graph, task, optimizer, device, seed)
    else:
        net = backend.build(networks.build_graph(network, input_shape, task.n_outputs, params), task, optimizer,
                            device, seed)
    configure_steps(net, params["precision"], params["compile"])
    return backend, device_label(devices), net


def _part(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays saved under '<prefix>/', by the rest of their names."""
    return {name[len(prefix) + 1:]: value for name, value in arrays.items() if name.startswith(prefix + "/")}


def _weights(frame: pd.DataFrame, column: str | None) -> np.ndarray | None:
    if column is None:
        return None
    if column not in frame.columns:
        raise FrameError(f"weights_column={column!r} is not in the frame; add it or drop weights_column.")
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float32, copy=True)
    if np.isnan(values).any() or (values < 0).any():
        raise FrameError(f"weights_column={column!r} holds missing or negative values; weights must be >= 0.")
    return values


def _augmented(source: Source, augment: str | None, start: _Start) -> Source:
    """The training source with the `augment` parameter's changes (seeded by the run's seed), or as it is."""
    augmentation = Augmentation.parse("augment", augment)
    if augmentation is None:
        return source
    if not isinstance(source, ImageSource):
        raise ParameterError(f"augment={augment!r} changes images, but this model's inputs are columns of a dataset "
                             f"(problem_type={start.problem_type!r}); augment applies to an image URI column: "
                             "leave it None.")
    return source.augmented(augmentation, start.seed)
