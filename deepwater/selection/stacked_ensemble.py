"""Stacked ensembles (booklet section 10, H2O's H2OStackedEnsembleEstimator): a metalearner trained on the
cross-validated (holdout) predictions of base models.

Base models are deepwater models trained with the same folds and keep_cross_validation_predictions=True
(their folds are the ensemble's), and scikit-learn estimators, which the ensemble cross-validates on those
folds and refits on every row. The default metalearner is linear (scikit-learn).
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import PredefinedSplit, cross_val_predict

from deepwater.analysis.metrics import ModelMetrics, missing_metrics
from deepwater.data.digests import frame_digest
from deepwater.data.encoders import DatasetEncoder, Response
from deepwater.data.frames import ColumnRef, check_frame, resolve_columns
from deepwater.errors import MissingDependencyError, ModelFileError, NotFittedError, ParameterError
from deepwater.specs import CLASSIFICATION
from deepwater.storage.model_classes import saved_as_algo
from deepwater.storage.model_store import get_model, register
from deepwater.storage.saved_files import SavedFiles
from deepwater.storage.saved_models import metrics_from_record, record_of

METALEARNERS = ("AUTO", "glm", "gbm")
SKLEARN_DIR = "sklearn"


def _is_deepwater(model: Any) -> bool:
    return hasattr(model, "cross_validation_holdout_predictions")


def _is_sklearn(model: Any) -> bool:
    return hasattr(model, "fit") and hasattr(model, "get_params") and not _is_deepwater(model)


@saved_as_algo
class StackedEnsembleEstimator:
    """A metalearner on the holdout predictions of `base_models` (deepwater models or their model_ids, and
    scikit-learn estimators). `metalearner_algorithm`: 'AUTO' or 'glm' (scikit-learn's LinearRegression
    with non-negative weights, or LogisticRegression), 'gbm' (HistGradientBoosting), or an estimator."""

    algo = "stackedensemble"

    def __init__(self, base_models: Sequence[Any], metalearner_algorithm: Any = "AUTO", model_id: str | None = None,
                 seed: int = -1) -> None:
        if isinstance(base_models, (str, bytes)) or not isinstance(base_models, Sequence) or not base_models:
            raise ParameterError(f"base_models={base_models!r} is not allowed: pass a list of trained deepwater models "
                                 "(or their model_ids) and scikit-learn estimators.")
        self.base_models = [get_model(m) if isinstance(m, str) else m for m in base_models]
        for index, model in enumerate(self.base_models):
            if not (_is_deepwater(model) or _is_sklearn(model)):
                raise ParameterError(f"base_models holds {model!r}, which is neither a deepwater model nor a "
                                     "scikit-learn estimator.")
            if _is_deepwater(model) and model._fitted is None:
                raise NotFittedError(f"base model {model.model_id!r} (base_models[{index}]) is not trained yet; train "
                                     "it first with nfolds >= 2 and keep_cross_validation_predictions=True, then "
                                     "build the ensemble (a scikit-learn estimator may stay unfitted: the ensemble "
                                     "fits it).")
        if not (metalearner_algorithm in METALEARNERS or _is_sklearn(metalearner_algorithm)):
            raise ParameterError(f"metalearner_algorithm={metalearner_algorithm!r} is not allowed: use one of "
                                 f"{', '.join(map(repr, METALEARNERS))} or a scikit-learn estimator.")
        self.metalearner_algorithm = metalearner_algorithm
        self.model_id = model_id or f"StackedEnsemble_model_{uuid.uuid4().hex[:8]}"
        self.seed = seed
        self._fitted: dict[str, Any] | None = None

    # --- training ---------------------------------------------------------------------------
    def train(self, x: Sequence[ColumnRef] | ColumnRef | None = None, y: ColumnRef | None = None,
              training_frame: pd.DataFrame | None = None, validation_frame: pd.DataFrame | None = None,
              model_id: str | None = None) -> StackedEnsembleEstimator:
        """Fit the metalearner on the base models' holdout predictions for `training_frame`."""
        self.model_id = model_id or self.model_id
        frame = check_frame(training_frame, "training_frame")
        predictors, response_name = resolve_columns(frame, x, y)
        response = Response.fit(frame, response_name, standardize=False)
        folds = self._check_base_models(response, frame)
        target = response.encode(frame) if response.kind == CLASSIFICATION else frame[response_name].to_numpy(float)
        encoder = DatasetEncoder.fit(frame, predictors, True, True) if any(map(_is_sklearn, self.base_models)) else None
        features = None if encoder is None else encoder.transform(frame)  # what every scikit-learn member takes
        level_one, refitted = [], []
        for model in self.base_models:
            if _is_deepwater(model):
                level_one.append(self._columns(model.cross_validation_holdout_predictions(), response))
                refitted.append(model)
                continue
            method = "predict_proba" if response.kind == CLASSIFICATION else "predict"
            holdout = cross_val_predict(clone(model), features, target, cv=PredefinedSplit(folds), method=method)
            level_one.append(self._level_one(holdout, response))
            refitted.append(clone(model).fit(features, target))
        metalearner = self._metalearner(response).fit(np.column_stack(level_one), target)
        self._fitted = {"response": response, "predictors": predictors, "encoder": encoder, "models": refitted,
                        "metalearner": metalearner, "training_metrics": None, "validation_metrics": None}
        self._fitted["training_metrics"] = self.model_performance(frame)
        if validation_frame is not None:
            self._fitted["validation_metrics"] = self.model_performance(check_frame(validation_frame,
                                                                                    "validation_frame"))
        register(self)
        return self

    def _check_base_models(self, target: Response, frame: pd.DataFrame) -> np.ndarray:
        """The folds the deepwater base models share; H2O's checks (the same training frame, folds and response,
        holdout predictions kept) and the members' kinds as ParameterErrors naming the model and the fix."""
        rows, digest, response = len(frame), frame_digest(frame), target.name
        deepwater_models = [m for m in self.base_models if _is_deepwater(m)]
        if not deepwater_models:
            raise ParameterError("base_models needs at least one deepwater model trained with nfolds and "
                                 "keep_cross_validation_predictions=True: its folds are the ensemble's.")
        self._check_member_kinds(target)
        folds = None
        for model in deepwater_models:
            cv = model._require_fitted().cross_validation
            if cv is None or cv.holdout_predictions is None:
                raise ParameterError(f"base model {model.model_id!r} kept no cross-validation predictions; train it "
                                     "with nfolds >= 2 and keep_cross_validation_predictions=True.")
            if model._fitted.response.name != response:
                raise ParameterError(f"base model {model.model_id!r} predicts {model._fitted.response.name!r}, not "
                                     f"y={response!r}; every base model must be trained on the ensemble's response.")
            if len(cv.fold_assignment) != rows:
                raise ParameterError(f"base model {model.model_id!r} was cross-validated on {len(cv.fold_assignment)} "
                                     f"rows, the training_frame has {rows}; pass the frame the base models trained on.")
            if cv.frame_digest is not None and cv.frame_digest != digest:
                raise ParameterError(f"base model {model.model_id!r} was cross-validated on another training_frame "
                                     f"(the same {rows} rows in number, not in values, columns or index); pass the "
                                     "frame the base models trained on, as it was.")
            if folds is not None and not np.array_equal(folds, cv.fold_assignment):
                raise ParameterError(f"base model {model.model_id!r} used other folds than "
                                     f"{deepwater_models[0].model_id!r}; train every base model with the same "
                                     "nfolds, fold_assignment and seed, or the same fold_column.")
            folds = cv.fold_assignment
        return folds

    def _check_member_kinds(self, response: Response) -> None:
        """A ParameterError naming the member and the fix where a base model cannot give the level-one data of
        `response`'s kind: class probabilities (predict_proba) for a classification, values for a regression."""
        classify = response.kind == CLASSIFICATION
        for index, model in enumerate(self.base_models):
            if _is_deepwater(model):
                member = model._require_fitted().response
                kind = member.kind
                if member.name == response.name and kind != response.kind:  # another name: _check_base_models
                    raise ParameterError(
                        f"base model {model.model_id!r} (base_models[{index}]) is a {kind} model, but y={response.name!r}"
                        f" makes the ensemble a {response.kind}; train every base model on y as the ensemble reads it "
                        f"({'a categorical column' if classify else 'a numeric column'}).")
            elif classify and not hasattr(model, "predict_proba"):
                raise ParameterError(
                    f"base model {model!r} (base_models[{index}]) has no predict_proba (a regressor), but "
                    f"y={response.name!r} is categorical: the ensemble stacks class probabilities. Use a scikit-learn "
                    "classifier with predict_proba (e.g. LogisticRegression()), or drop this member.")

    def _metalearner(self, response: Response):
        classify = response.kind == CLASSIFICATION
        if self.metalearner_algorithm in ("AUTO", "glm"):
            return LogisticRegression(max_iter=2000) if classify else LinearRegression(positive=True)
        if self.metalearner_algorithm == "gbm":
            seed = None if self.seed < 0 else self.seed
            return (HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor)(random_state=seed)
        return clone(self.metalearner_algorithm)

    @staticmethod
    def _level_one(values: np.ndarray, response: Response) -> np.ndarray:
        """A base model's level-one columns: the probability of each class (of the second only for two
        classes, as H2O), or the predicted value."""
        values = np.asarray(values, dtype=np.float64)
        if response.kind != CLASSIFICATION:
            return values.reshape(-1, 1)
        return values[:, 1:] if values.shape[1] == 2 else values

    def _columns(self, predictions: pd.DataFrame, response: Response) -> np.ndarray:
        if response.kind != CLASSIFICATION:
            return self._level_one(predictions["predict"].to_numpy(), response)
        return self._level_one(predictions[[str(c) for c in response.classes]].to_numpy(), response)

    # --- using the ensemble ---------------------------------------------------------------
    def _require_fitted(self) -> dict[str, Any]:
        if self._fitted is None:
            raise NotFittedError(f"ensemble {self.model_id!r} is not trained yet; call train(...) first.")
        return self._fitted

    def _outputs(self, frame: pd.DataFrame) -> np.ndarray:
        f = self._require_fitted()
        response, columns = f["response"], []
        features = None if f["encoder"] is None else f["encoder"].transform(frame)  # for the scikit-learn members
        for model in f["models"]:
            if _is_deepwater(model):
                columns.append(self._columns(model.predict(frame), response))
            elif response.kind == CLASSIFICATION:
                columns.append(self._level_one(model.predict_proba(features), response))
            else:
                columns.append(self._level_one(model.predict(features), response))
        level_one = np.column_stack(columns)
        meta = f["metalearner"]
        return meta.predict_proba(level_one) if response.kind == CLASSIFICATION else meta.predict(level_one)

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A 'predict' column, plus one probability column per class for classification (as the estimator's)."""
        frame = check_frame(frame, "frame")
        response = self._require_fitted()["response"]
        out = self._outputs(frame)
        if response.kind != CLASSIFICATION:
            return pd.DataFrame({"predict": out}, index=frame.index)
        labels = np.asarray(response.classes, dtype=object)[out.argmax(axis=1)]
        result = pd.DataFrame({"predict": pd.Categorical(labels, categories=response.classes)}, index=frame.index)
        return pd.concat([result, pd.DataFrame(out, index=frame.index, columns=[str(c) for c in response.classes])],
                         axis=1)

    def model_performance(self, frame: pd.DataFrame | None = None, train: bool = False,
                          valid: bool = False) -> ModelMetrics | None:
        """Metrics on `frame`, or those of the training (train=True, the default) or validation frame; as in H2O,
        valid=True on an ensemble trained without a validation frame gives None (and a warning)."""
        f = self._require_fitted()
        if frame is None:
            if valid and f["validation_metrics"] is None:
                return missing_metrics(self.model_id, "valid=True", "was trained without a validation_frame",
                                       "train it with validation_frame=..., or pass a frame: model_performance(frame)")
            return f["validation_metrics"] if valid else f["training_metrics"]
        frame = check_frame(frame, "frame")
        response = f["response"]
        out = self._outputs(frame)
        if response.kind == CLASSIFICATION:
            return ModelMetrics.for_classification(response.encode(frame), out, response.classes,
                                                   description="stacked ensemble")
        return ModelMetrics.for_regression(frame[response.name].to_numpy(float), out, "gaussian",
                                           description="stacked ensemble")

    # --- saving and loading (storage/saved_models.py) ------------------------------------
    def _to_record(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]:
        f = self._require_fitted()
        members = [m.model_id if _is_deepwater(m) else None for m in f["models"]]
        record = {"model_id": self.model_id, "algo": self.algo, "members": members,
                  "metalearner_algorithm": self.metalearner_algorithm if isinstance(self.metalearner_algorithm, str)
                  else type(self.metalearner_algorithm).__name__, "seed": self.seed,
                  "response": asdict(f["response"]), "predictors": f["predictors"],
                  "encoder": None if f["encoder"] is None else asdict(f["encoder"]),
                  "training_metrics": record_of(f["training_metrics"]),
                  "validation_metrics": record_of(f["validation_metrics"]), "graph_files": {}}
        return record, {}, {}

    def _members(self) -> dict[str, Any]:
        """The deepwater base models, saved as saved models inside the ensemble's (members/<model_id>/)."""
        return {m.model_id: m for m in self._require_fitted()["models"] if _is_deepwater(m)}

    def _blobs(self) -> dict[str, bytes]:
        """The scikit-learn members and the metalearner in skops' format (no pickle)."""
        f = self._require_fitted()
        objects = {f"{SKLEARN_DIR}/model_{i}.skops": m for i, m in enumerate(f["models"]) if not _is_deepwater(m)}
        objects[f"{SKLEARN_DIR}/metalearner.skops"] = f["metalearner"]
        return {name: _skops().dumps(obj) for name, obj in objects.items()}

    @classmethod
    def _from_record(cls, record: dict[str, Any], arrays: dict[str, np.ndarray], files: SavedFiles, members: dict[str, Any],
                     backend: str | None) -> StackedEnsembleEstimator:
        models = []
        for i, member in enumerate(record["members"]):
            models.append(members[member] if member is not None else
                          _load_sklearn(files, f"{SKLEARN_DIR}/model_{i}.skops"))
        ensemble = cls(models, record["metalearner_algorithm"] if record["metalearner_algorithm"] in METALEARNERS
                       else "AUTO", record["model_id"], record["seed"])
        encoder = record["encoder"]
        ensemble._fitted = {
            "response": Response(**record["response"]), "predictors": record["predictors"],
            "encoder": None if encoder is None else DatasetEncoder.from_record(encoder),
            "models": models, "metalearner": _load_sklearn(files, f"{SKLEARN_DIR}/metalearner.skops"),
            "training_metrics": metrics_from_record(record["training_metrics"]),
            "validation_metrics": metrics_from_record(record["validation_metrics"]),
        }
        return ensemble


H2OStackedEnsembleEstimator = StackedEnsembleEstimator


def _skops():
    try:
        import skops.io
    except ImportError as error:
        raise MissingDependencyError("skops (to save scikit-learn members of an ensemble without pickle)",
                                     "ensemble") from error
    return skops.io


def _load_sklearn(files: SavedFiles, name: str):
    """A scikit-learn object from a skops file, loading only types skops does not flag as unsafe beyond
    scikit-learn's and numpy's own."""
    skio = _skops()
    data = files.read_bytes(name)
    unknown = [t for t in skio.get_untrusted_types(data=data) if not t.startswith(("sklearn.", "numpy."))]
    if unknown:
        raise ModelFileError(f"{files.location}/{name} holds types deepwater does not load: {unknown[:5]}.")
    return skio.loads(data, trusted=skio.get_untrusted_types(data=data))
