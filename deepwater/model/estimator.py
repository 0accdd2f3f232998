"""DeepWaterEstimator: H2O Deep Water's estimator API over any installed backend."""
from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from deepwater import networks
from deepwater.analysis import plots
from deepwater.analysis.deep_features import deep_features, layer_names
from deepwater.analysis.explain import (
    DEFAULT_STEPS,
    check_baseline,
    check_method,
    check_steps,
    column_attributions,
    explain_source,
    explained_layer,
    fixed_or_predicted,
    mean_absolute,
    target_column,
)
from deepwater.analysis.metrics import ModelMetrics, missing_metrics
from deepwater.analysis.tta import AveragedNet, ViewsSource, view_count, views_of
from deepwater.analysis.variable_importance import gedeon, mlp_weights, varimp_table
from deepwater.data.encoders import Response
from deepwater.data.frames import ColumnRef, check_frame, require_columns
from deepwater.data.images import ImageShape
from deepwater.data.inputs import ImageInputs, image_reader
from deepwater.data.sources import throughput_batch
from deepwater.data.training_data import TrainingData, training_data
from deepwater.deploy.export import export_bundle
from deepwater.errors import MissingDependencyError, NotFittedError, ParameterError, warn_user
from deepwater.model.cross_validation import check_folds, cross_validate, main_model_settings
from deepwater.model.fitting import run_training, scoring_batch, scoring_source
from deepwater.model.recipe import (
    RECIPE_PARAMETERS,
    RECIPE_SOURCE,
    ZOO_PARAMETERS,
    for_response,
    recipe_values,
    with_recipe,
)
from deepwater.model.records import fitted_from_record, given_parameters, model_record
from deepwater.model.starts import TrainingStart, continue_start, new_start, settle_parameters
from deepwater.runtime.build import build_net, draw_seed
from deepwater.runtime.registry import get_backend
from deepwater.specs import CLASSIFICATION, task_from_params
from deepwater.storage.checkpoints import CheckpointWriter, resolve_checkpoint
from deepwater.storage.model_classes import saved_as_algo
from deepwater.storage.model_store import register
from deepwater.storage.saved_files import SavedFiles
from deepwater.tracking.runs import log_run, open_run, require_mlflow
from deepwater.training import autoencoder as unsupervised
from deepwater.training import parameters as parameter_table
from deepwater.training.evaluation import model_metrics, outputs
from deepwater.training.fitted import CrossValidation, FittedModel
from deepwater.training.restart import check_restart_frames, restart_parameters
from deepwater.training.trainer import TrainingOutcome

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@saved_as_algo
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
        self._params = settle_parameters(with_recipe(parameter_table.resolve(params), frozenset(params)))
        self._given = dict(params)
        self._fitted: FittedModel | None = None
        self._mlflow_run_id: str | None = None

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
        kind = None if self._fitted is None else self._fitted.task.kind
        recipe = recipe_values(actual, frozenset(self._given), kind)
        return {name: {"default": row.default, "actual": actual[name],
                       **({"source": RECIPE_SOURCE} if name in recipe else {})}
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
        given = {**self._given, **params}
        self._params = settle_parameters(with_recipe({**self._params, **checked}, frozenset(given)))
        self._given = given
        return self

    def __sklearn_clone__(self) -> DeepWaterEstimator:
        """An untrained copy with the parameters this model was given (scikit-learn's clone()): the values
        pretrained=True's recipe filled in stay the recipe's, as get_params() alone could not say."""
        return type(self)(**{name: copy.deepcopy(self._given[name]) for name in parameter_table.PARAMETERS
                             if name in self._given})

    # --- training -------------------------------------------------------------------------
    def train(self, x: Sequence[ColumnRef] | ColumnRef | None = None, y: ColumnRef | None = None,
              training_frame: pd.DataFrame | None = None,
              validation_frame: pd.DataFrame | None = None, model_id: str | None = None,
              fold_column: ColumnRef | None = None, *, callbacks: Sequence[Callback] = ()) -> DeepWaterEstimator:
        """Fit the model on `training_frame`; x and y name columns by name or 0-based position.

        `model_id` names the model (as H2O's train does); the trained model is held in this process under
        it (deepwater.get_model(model_id), deepwater.ls()). With the `checkpoint` parameter, training
        continues that model (training/restart.py says what a restart may change). With `nfolds` or a
        `fold_column` (this argument or the parameter), fold models are trained first (cross_validation.py).

        `callbacks` (keyword only): callables `callback(model, outcome)` called at each scoring of this model's run
        (not its fold models'), handed this model and the run so far (a TrainingOutcome: `history`, one row per
        scoring, `samples`, `epochs`); a live chart or a progress bar (samples / (epochs x rows)). An exception a
        callback raises stops training at that scoring and leaves train() as it is, the model left untrained.
        """
        callbacks = _checked_callbacks(callbacks)
        if model_id is not None:
            self.model_id = model_id
        previous = None if self._params["checkpoint"] is None else resolve_checkpoint(self._params["checkpoint"])
        if previous is not None:  # the checkpoint's parameters, where this model gives none
            given = {name: self._params[name] for name in self._given}
            self._params = {**restart_parameters(given, previous._fitted.params, previous._fitted, previous.model_id),
                            "model_id": self.model_id, "checkpoint": self._params["checkpoint"]}
        p = self._params
        if p["mlflow"]:
            require_mlflow()
        self._mlflow_run_id = None if previous is None else previous._mlflow_run_id  # what checkpoints carry
        opened = bool(p["mlflow"]) and self._mlflow_run_id is None
        if opened:  # the run starts with the training: a checkpoint written on the way carries it, and continues it
            self._mlflow_run_id = open_run(self.model_id)
        fold_column = p["fold_column"] if fold_column is None else fold_column
        if p["autoencoder"]:
            unsupervised.check_parameters(p, y, fold_column)
        data = training_data(training_frame, validation_frame, x, y, p["weights_column"] or None, fold_column,
                             p["autoencoder"])
        if previous is not None:
            start, cross_validation = self._continue(previous, data), None
        else:
            response = None if p["autoencoder"] else Response.fit(data.frame, data.response, p["standardize"])
            if response is not None:  # the recipe's label smoothing only where there are classes
                self._params = for_response(p, frozenset(self._given), response.kind)
            cross_validation = self._cross_validate(data, response)
            start = new_start(self._params, data, response, self._pretrained(), frozenset(self._given))
        p = self._params
        writer = CheckpointWriter(p["export_checkpoints_dir"], self.model_id, p["export_checkpoints_keep"]) \
            if p["export_checkpoints_dir"] else None
        outcome = TrainingOutcome(stop_reason="epochs=0: the graph's own outputs") if start.scores_only else \
            run_training(p, start, data, None if previous is None else previous._fitted,
                         self._on_scored(start, data.predictors, writer, callbacks))
        self._fitted = start.fitted(data.predictors, outcome, p, frozenset(self._given))
        self._fitted.cross_validation = cross_validation
        register(self)
        self._mlflow_run_id = self._tracked(previous, opened)
        if writer is not None:  # the final model is the newest checkpoint
            writer(self, outcome.samples)
        return self

    def _tracked(self, previous: DeepWaterEstimator | None, opened: bool) -> str | None:
        """The MLflow run of this training: logged when mlflow=True into the run `opened` for it, or (a restart)
        its checkpoint's run."""
        if not self._params["mlflow"] or (opened and self._mlflow_run_id is None):  # the server failed: warned once
            return self._mlflow_run_id
        since = 0 if previous is None else previous._fitted.outcome.samples
        return log_run(self, self._mlflow_run_id, since, fresh=opened) or self._mlflow_run_id

    @property
    def mlflow_run_id(self) -> str | None:
        """The id of the MLflow run this model's training is logged in (mlflow=True); None if none."""
        return self._mlflow_run_id

    def _continue(self, previous: DeepWaterEstimator, data: TrainingData) -> TrainingStart:
        """A checkpoint restart (its parameters already merged with the checkpoint's): the frames checked against
        the checkpoint's, and its net continued."""
        p = self._params
        if p["nfolds"] or data.fold_column:
            raise ParameterError(f"nfolds={p['nfolds']} (or a fold_column) with checkpoint: a checkpoint restart "
                                 "is not cross-validated (H2O's rule); pass nfolds=0.")
        check_restart_frames(previous._fitted, previous.model_id, data.predictors, data.response,
                             data.validation is not None)
        return continue_start(self._params, previous._fitted.params, previous._fitted, previous.model_id, data)

    def _cross_validate(self, data: TrainingData, response: Response | None) -> CrossValidation | None:
        """The fold models, when nfolds or a fold column ask for them (None otherwise); the main model then
        trains with cross-validation's settings."""
        p = self._params
        if not (p["nfolds"] or data.fold_column or p["fold_assignment"] != "AUTO"):
            return None
        check_folds(p, data.fold_column, len(data.frame))
        cv = cross_validate(type(self), p, data.predictors, data.response, data.frame, data.fold_column, response,
                            draw_seed(p))
        self._params = {**p, **main_model_settings(p, cv)}
        return cv

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

    def _on_scored(self, start: TrainingStart, predictors: list[str], writer: CheckpointWriter | None,
                   callbacks: tuple[Callback, ...]) -> Callable[[TrainingOutcome], None] | None:
        """The trainer's on_scored hook (None when nothing listens): `writer` saves the run so far, then each of
        `callbacks` is handed this model and the run."""
        if writer is None and not callbacks:
            return None

        def on_scored(outcome: TrainingOutcome) -> None:
            if writer is not None:
                snapshot = start.fitted(predictors, outcome.snapshot(), self._params, frozenset(self._given))
                writer(self._holding(snapshot), outcome.samples)
            for callback in callbacks:
                callback(self, outcome)

        return on_scored

    def _holding(self, fitted: FittedModel) -> DeepWaterEstimator:
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
        shape = ImageShape(p["image_shape"][0], p["image_shape"][1], p["channels"], p["image_resize"])
        task = task_from_params(CLASSIFICATION, len(classes), "AUTO", "Automatic")
        seed = draw_seed(p)
        chosen, device, net = build_net(network, None, p["backend"], (shape.channels, shape.height, shape.width),
                                        task, p, seed)
        net.set_state(dict(state))
        reader = image_reader(shape, p)
        model._fitted = FittedModel(
            chosen.name, device, networks.get(network).name, net, task, Response(y, CLASSIFICATION, list(classes)),
            ImageInputs(x, shape, offset, reader, scale), [x], "image", seed,
            TrainingOutcome(stop_reason="pretrained weights"), None, None, params=dict(p),
            given=frozenset(model._given),
        )
        return register(model)

    # --- saving and loading (model/records.py, storage/saved_models.py) ---------------------
    def _to_record(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
        """What a saved model holds (model/records.py): JSON values, arrays by name, the user's graph files."""
        f = self._require_fitted()
        return model_record(self.model_id, self.algo, f.params, set(f.given), f, self._mlflow_run_id)

    @classmethod
    def _from_record(cls, record: dict[str, Any], arrays: dict[str, np.ndarray], files: SavedFiles,
                     members: dict[str, Any], backend: str | None) -> DeepWaterEstimator:
        """The model a saved record describes, its net rebuilt on `backend` (None: the one it was saved from)."""
        model = cls(**given_parameters(record))
        model._params.update({name: record["params"][name] for name in RECIPE_PARAMETERS + ZOO_PARAMETERS
                              if name in record["params"]})  # as they were resolved, the recipe's included
        if backend is not None:
            model._params["backend"] = parameter_table.check("backend", backend)
        model._fitted = fitted_from_record(model._params, record, arrays, files, backend)
        model._mlflow_run_id = record.get("mlflow_run_id")
        return model

    # --- using the model ------------------------------------------------------------------
    def _require_fitted(self) -> FittedModel:
        if self._fitted is None:
            raise NotFittedError(f"model {self.model_id!r} is not trained yet; call train(...) first.")
        return self._fitted

    def _scoring_frame(self, frame: Any) -> pd.DataFrame:
        """`frame` checked for scoring: a non-empty DataFrame that holds every column the model reads."""
        frame = check_frame(frame, "frame")
        require_columns(frame, self._require_fitted().inputs.feature_columns(), "frame")
        return frame

    def predict(self, frame: pd.DataFrame, tta: bool | Sequence[str] | None = None) -> pd.DataFrame:
        """A 'predict' column, plus one probability column per class for classification.

        With two classes the label is the second class where its probability is >= the threshold that
        maximised F1 on the final validation scoring (training scoring without a validation frame), as in
        H2O. Rows that cannot be scored (a skipped image, a value beyond float32) are NaN, label included.
        `tta` (None: the model's tta parameter) averages an image model's probabilities or values over views
        of each image: True, or a list of 'flip' and 'crops' (analysis/tta.py).
        """
        f = self._require_fitted()
        frame = self._scoring_frame(frame)
        views = self._tta_views(tta)
        if f.task.is_autoencoder:
            values = self._scored(frame, lambda net, x: net.predict(x))
            return unsupervised.reconstruction_frame(f.inputs.unscale(values), f.inputs.feature_names(), frame.index)
        batch = throughput_batch(scoring_batch(self._params), int(np.prod(f.inputs.input_shape)) * view_count(views))
        with self._viewed(f.inputs.source(frame), views) as (net, source):
            out, rows = outputs(net, source, batch)
        return f.response.predictions(out, rows, frame.index, f.threshold())

    def _tta_views(self, tta: bool | Sequence[str] | None) -> list[str]:
        """The views predict()'s or model_performance()'s `tta` asks for (None: the parameter's), [] for none; a
        ParameterError where the model does not score images."""
        f = self._require_fitted()
        value = self._params["tta"] if tta is None else parameter_table.check("tta", tta)
        return views_of(f.inputs, value or [], self.model_id, f.task.kind)

    @contextlib.contextmanager
    def _viewed(self, source: Any, views: list[str]) -> Iterator[tuple[Any, Any]]:
        """The net and `source` to score: as they are without `views`, else averaged over the views."""
        net = self._require_fitted().net
        if not views:
            yield net, source
            return
        viewed = ViewsSource(source, views, self._params)
        try:
            yield AveragedNet(net), viewed
        finally:
            viewed.close()

    def _scored(self, frame: pd.DataFrame, fn: Callable[[Any, np.ndarray], np.ndarray]) -> np.ndarray:
        """fn(net, x) for every row of `frame` (checked), rows that could not be read NaN."""
        f = self._require_fitted()
        return unsupervised.scored(f.net, f.inputs.source(frame), fn, scoring_batch(self._params), frame.index)

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
        frame = self._scoring_frame(frame)
        errors = self._scored(frame, unsupervised.squared_errors)
        return unsupervised.anomaly_frame(errors, f.inputs.feature_names(), frame.index, per_feature)

    def varimp(self, use_pandas: bool = False, by_column: bool = False, method: str = "gedeon",
               frame: pd.DataFrame | None = None, steps: int = DEFAULT_STEPS) -> list[tuple] | pd.DataFrame | None:
        """H2O's variable importances of an MLP (Gedeon's method on its first two weight layers): tuples of
        (variable, relative_importance, scaled_importance, percentage), most important first, or a DataFrame with
        `use_pandas`. Variables are the encoded inputs ('<col>.<level>' for one-hot levels); `by_column` sums
        each frame column's values into one row. None (as in H2O) when trained with variable_importances=False.

        method="integrated_gradients" ranks the inputs of any dataset model by their mean absolute integrated
        gradients (explain()) over the rows of `frame`, with `steps` steps each."""
        use_pandas = parameter_table.flag("use_pandas", use_pandas)
        by_column = parameter_table.flag("by_column", by_column)
        f = self._require_fitted()
        if method == "integrated_gradients":
            if frame is None:
                raise ParameterError("varimp(method='integrated_gradients') averages the attributions of rows: pass "
                                     "them as frame=..., e.g. the training or a validation frame.")
            values, _ = self._attributions(self._scoring_frame(frame), method, None, None, steps, None, False)
            return varimp_table(f.inputs.feature_names(), mean_absolute(values),
                                f.inputs.feature_columns() if by_column else None, use_pandas)
        if method != "gedeon":
            raise ParameterError(f"method={method!r}: varimp() knows 'gedeon' (H2O's, from the weights) and "
                                 "'integrated_gradients' (from the rows of frame=...).")
        if not f.params["variable_importances"]:
            warn_user(f"model {self.model_id!r} was trained with variable_importances=False, so it has none "
                      "(H2O returns None too); train with variable_importances=True.", UserWarning)
            return None
        importance = gedeon(*mlp_weights(f.net.get_state(), f.network, f.params["hidden"]))
        return varimp_table(f.inputs.feature_names(), importance, f.inputs.feature_columns() if by_column else None,
                            use_pandas)

    def explain(self, frame: pd.DataFrame, method: str = "gradcam", layer: str | int | None = None,
                target: Any = None, steps: int = DEFAULT_STEPS,
                baseline: float | np.ndarray | None = None) -> np.ndarray | pd.DataFrame:
        """Why the model predicts what it does for each row of `frame` (analysis/explain.py).

        An image model gives one heatmap per row, a float32 array (rows, height, width) of the image_shape's size
        with values 0..1 (NaN for a skipped image), by `method`: "gradcam" (the maps of `layer`, by default the
        network's last convolutional one; a user graph must name it), "saliency" (input gradients) or
        "integrated_gradients" (`steps` steps from `baseline`: None for zeros, or a number or array in the
        network's input units). A dataset model takes "integrated_gradients" and gives a DataFrame of one
        attribution per frame column (a categorical column's levels summed), index frame.index. Explained is the
        predicted class, or the class named by `target`; a regression's value, on the network's standardised scale.
        """
        f = self._require_fitted()
        frame = self._scoring_frame(frame)
        values, image = self._attributions(frame, method, layer, target, steps, baseline, True)
        return values if image else column_attributions(values, f.inputs.feature_columns(), frame.index)

    def _attributions(self, frame: pd.DataFrame, method: str, layer: str | int | None, target: Any, steps: int,
                      baseline: float | np.ndarray | None, image: bool) -> tuple[np.ndarray, bool]:
        """explain()'s values for `frame` (checked), and whether they are image heatmaps (an image model with
        `image`) rather than the encoded inputs' attributions."""
        f = self._require_fitted()
        if f.task.is_autoencoder:
            raise ParameterError(f"explain() needs a classification or regression model; model {self.model_id!r} "
                                 "is an autoencoder: anomaly(frame, per_feature=True) shows which inputs it "
                                 "reconstructs worst.")
        image = image and len(f.inputs.input_shape) == 3
        method = check_method(method, image)
        graph = None if f.graph is not None else f.net.graph  # a built-in network's; a user graph has none
        layer = explained_layer(method, layer, f.net, graph)
        classes = f.response.classes if f.task.is_classification else None
        targets = fixed_or_predicted(f.net, target_column(target, classes),
                                     lambda p: f.response.decode(p, f.threshold()), classes)
        values = explain_source(f.net, f.inputs.source(frame), targets, method, layer, graph,
                                check_baseline(baseline, f.inputs.input_shape), check_steps(steps),
                                scoring_batch(self._params), image)
        return (values if image else values.reshape(len(values), -1)), image

    def layers(self) -> list[str]:
        """Layer names that deepfeatures() takes, from the input side to 'output'."""
        return layer_names(self._require_fitted().net)

    def deepfeatures(self, frame: pd.DataFrame, layer: str | int) -> pd.DataFrame:
        """Activations of `layer` for each row of `frame`: a name from layers(), or a number. On an MLP (and an MLP
        autoencoder) a number is H2O's hidden-layer index, 0-based (deepfeatures(frame, 1) on hidden=[64, 16, 64]
        gives the 16 bottleneck units); on other networks it is a position in layers(). A built-in network also
        takes Deep Water's own names for its layers (MXNet's: 'pooling1_output' is LeNet's 'pool2';
        networks.deep_water_names lists them).

        Columns DF.<layer>.C1 ... DF.<layer>.Ck, index frame.index; skipped images and rows holding inf give NaN rows.
        """
        f = self._require_fitted()
        frame = self._scoring_frame(frame)
        if f.network == "mlp" and isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
            layer = networks.hidden_layer(int(layer), f.params["hidden"], f.params["activation"])
        elif f.graph is None and isinstance(layer, str):  # a built-in network also takes Deep Water's names
            layer = networks.resolve_deep_water_name(f.net.graph, layer)
        return deep_features(f.net, f.inputs.source(frame), frame.index, layer, scoring_batch(self._params),
                             self._params["quiet_mode"])

    def export(self, path: str | os.PathLike, format: str = "onnx", layers: Sequence[str | int] | None = None,
               force: bool = False) -> str:
        """A deployment bundle (Keras 3's model.export): the folder `path` with the network as model.onnx and what
        scoring needs around it, which deepwater.inference.load(path) scores with onnxruntime alone; `layers`
        adds those layers' activations for deepfeatures(). Returns the folder's path (see deploy/export.py)."""
        f = self._require_fitted()
        return export_bundle(self.model_id, f.params, f, path, format, layers, force)

    def model_performance(self, frame: pd.DataFrame | None = None, train: bool = False,
                          valid: bool = False, xval: bool = False,
                          tta: bool | Sequence[str] | None = None) -> ModelMetrics | None:
        """Metrics on `frame`, or those of the training (train=True), validation (valid=True) or
        cross-validation holdout (xval=True) predictions; one of the four at a time. As in H2O, valid=True on a
        model trained without a validation frame, or xval=True on one without folds, gives None (and a warning).
        `tta` scores `frame` with test-time augmentation, as predict() does (None: the model's tta parameter)."""
        train, valid, xval = (parameter_table.flag(name, value) for name, value in
                              (("train", train), ("valid", valid), ("xval", xval)))
        asked = [name for name, given in (("frame", frame is not None), ("train=True", train), ("valid=True", valid),
                                          ("xval=True", xval)) if given]
        if len(asked) > 1:
            raise ParameterError(f"model_performance({', '.join(asked)}): these arguments conflict, each asks for "
                                 "other metrics. Pass a frame to score it, or train=True, valid=True or xval=True "
                                 "for the training, validation or cross-validation metrics, one at a time.")
        f = self._require_fitted()
        if xval:
            return f.cross_validation.metrics if f.cross_validation is not None else missing_metrics(
                self.model_id, "xval=True", "was not cross-validated", "train it with nfolds >= 2 or a fold_column")
        if frame is not None:
            source = scoring_source(f, self._scoring_frame(frame), self._params["weights_column"])
            views = self._tta_views(tta)
            with self._viewed(source, views) as (net, viewed):
                return model_metrics(net, f.task, f.response, viewed, scoring_batch(self._params),
                                     f"test frame, tta={views}" if views else "test frame")
        if tta:
            raise ParameterError(f"model_performance(tta={tta!r}) scores a frame with test-time augmentation; pass "
                                 "the frame: model_performance(frame, tta=...). The training and validation "
                                 "metrics were scored during training, without it.")
        if valid:
            return f.validation_metrics if f.validation_metrics is not None else missing_metrics(
                self.model_id, "valid=True", "was trained without a validation_frame",
                "train it with validation_frame=..., or pass a frame: model_performance(frame)")
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
        return CrossValidation.kept(cv.models or None, "keep_cross_validation_models")

    def cross_validation_predictions(self) -> list[pd.DataFrame]:
        """One frame per fold model over every training row: its holdout predictions, 0 elsewhere."""
        return self._cross_validation().fold_predictions()

    def cross_validation_holdout_predictions(self) -> pd.DataFrame:
        """Every training row's prediction by the fold model that did not train on it."""
        cv = self._cross_validation()
        return CrossValidation.kept(cv.holdout_predictions, "keep_cross_validation_predictions")

    def cross_validation_fold_assignment(self) -> pd.DataFrame:
        """Each training row's fold, as column 'fold_assignment' (0-based)."""
        cv = self._cross_validation()
        folds = CrossValidation.kept(cv.fold_assignment, "keep_cross_validation_fold_assignment")
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
        return plots.scoring_history_plot(history, self.model_performance(train=True).model_kind, timestep,
                                          metric, save_plot_path)

    def summary(self) -> dict[str, Any]:
        """The model in a few facts: backend and device that ran, network, size, precision, run length, stop
        reason; for a fine-tune of a zoo network (pretrained=True) also its name and, as 'recipe', the values the
        fine-tuning recipe gave the parameters not given (deepwater/model/recipe.py)."""
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
            **({"pretrained": f.params["network"],
                "recipe": {name: f.params[name] for name in recipe_values(f.params, f.given, f.task.kind)}}
               if f.params.get("pretrained") else {}),
        }

    def __repr__(self) -> str:
        if self._fitted is None:
            given = ", ".join(f"{k}={'<hidden>' if k in parameter_table.SECRET_PARAMETERS else repr(v)}"
                              for k, v in self._given.items()
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
Callback = Callable[[DeepWaterEstimator, TrainingOutcome], None]


def _checked_callbacks(callbacks: object) -> tuple[Callback, ...]:
    """train()'s `callbacks` as a tuple of callables; a ParameterError naming the one that is not."""
    if callable(callbacks) or isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Sequence):
        raise ParameterError(f"callbacks={callbacks!r} is not a list of callables; pass a list of functions "
                             "callback(model, outcome), e.g. callbacks=[show_progress].")
    for i, callback in enumerate(callbacks):
        if not callable(callback):
            raise ParameterError(f"callbacks[{i}]={callback!r} is not callable; pass functions "
                                 "callback(model, outcome).")
    return tuple(callbacks)


class AutoEncoderEstimator(DeepWaterEstimator):
    """An autoencoder: the estimator with autoencoder=True (train(x=..., training_frame=...), no y)."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**{"autoencoder": True, **params})


H2OAutoEncoderEstimator = AutoEncoderEstimator  # H2O's name
