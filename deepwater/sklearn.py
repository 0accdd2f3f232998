"""scikit-learn estimators over DeepWaterEstimator: DeepWaterClassifier and DeepWaterRegressor.

Their parameters are the parameter table's (deepwater.training.parameters.PARAMETERS), so they work in Pipeline,
GridSearchCV, cross_val_score and StackingClassifier. X is a numpy array or a pandas frame (categorical
and image URI columns included: a frame goes to the estimator as it is); y is a vector. random_state is
scikit-learn's name for the table's seed (see _seed); a seeded fit is a function of its data and parameters alone.
"""
from __future__ import annotations

import inspect
import numbers
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from deepwater.errors import ParameterError
from deepwater.model.estimator import DeepWaterEstimator
from deepwater.training import parameters as parameter_table

TARGET = "__deepwater_target__"
QUIET = {"quiet_mode": True}  # scikit-learn fits many models: no progress bars unless asked for
SEED_HIGH = 2**32 - 1  # the table's seed range is [0, SEED_HIGH]; -1 draws one
BY_TIME = (-2, -1, 0)  # the train_samples_per_iteration values that score by the clock (score_interval)


def _default(name: str) -> Any:
    """The table's default, with lists as tuples (scikit-learn's defaults are immutable)."""
    value = QUIET.get(name, parameter_table.PARAMETERS[name].default)
    return tuple(value) if isinstance(value, list) else value


def _table_init(self, *, random_state: Any = None, **params: Any) -> None:
    """Store every parameter as given (scikit-learn's rule: no checks before fit)."""
    self.random_state = random_state
    for name in parameter_table.PARAMETERS:
        setattr(self, name, params.pop(name, _default(name)))
    if params:
        raise parameter_table.unknown_parameter(next(iter(params)), parameter_table.PARAMETERS)


_table_init.__signature__ = inspect.Signature(
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=_default(name))
       for name in parameter_table.PARAMETERS]
    + [inspect.Parameter("random_state", inspect.Parameter.KEYWORD_ONLY, default=None)])


def _is_int(value: Any) -> bool:
    """An integer, not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _seed(random_state: Any, seed: Any) -> Any:
    """The seed a fit trains with (scikit-learn's check_random_state semantics for random_state).

    None: the seed parameter as it is (-1, its default, draws one per fit); an int in [0, 2**32 - 1]: that
    seed; a numpy RandomState or Generator: one seed drawn from it per fit. random_state and a seed other
    than -1 that disagree are a ParameterError naming both."""
    if random_state is None:
        return seed
    if _is_int(random_state):
        if not 0 <= random_state <= SEED_HIGH:
            raise ParameterError(f"random_state={random_state!r} is out of range; use an int in [0, 2**32 - 1], a "
                                 "numpy RandomState or Generator, or None.")
        chosen = int(random_state)
    elif not isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        raise ParameterError(f"random_state={random_state!r} cannot seed a fit; use None, an int in [0, 2**32 - 1], "
                             "a numpy RandomState or Generator.")
    else:
        chosen = None
    if not (_is_int(seed) and seed in (-1, chosen)):
        raise ParameterError(f"random_state={random_state!r} and seed={seed!r} both set the seed and disagree "
                             "(random_state is scikit-learn's name for seed); give one of them, leaving seed at -1.")
    if chosen is not None:
        return chosen
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(SEED_HIGH + 1, dtype=np.int64))
    return int(random_state.integers(SEED_HIGH + 1))


def _changed(name: str, value: Any) -> bool:
    """Whether `value` is not the table's default for `name` (a tuple compared as the list it stands for)."""
    default = parameter_table.PARAMETERS[name].default
    value = list(value) if isinstance(value, tuple) and isinstance(default, list) else value
    return type(value) is not type(default) or bool(value != default)


def _fit_parameters(estimator: BaseEstimator, rows: int) -> dict[str, Any]:
    """The parameters one fit gives the estimator: those not at the table's default (so that the estimator's
    warnings about settings given but unused stay quiet for the rest), with the seed resolved, and a seeded fit
    scored every `rows` samples (once an epoch) where train_samples_per_iteration would score by the clock, so
    that the best model kept and early stopping do not depend on the machine's speed."""
    params = {name: getattr(estimator, name) for name in parameter_table.PARAMETERS}
    params["seed"] = seed = _seed(estimator.random_state, params["seed"])
    every = params["train_samples_per_iteration"]
    if _is_int(seed) and seed >= 0 and _is_int(every) and every in BY_TIME:
        params["train_samples_per_iteration"] = rows
    return {name: value for name, value in params.items() if _changed(name, value)}


def _target(estimator: BaseEstimator, y: Any) -> np.ndarray:
    """y as a 1-d array, with scikit-learn's messages for a missing y and a column vector."""
    if y is None:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, but the target y is None.")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        warnings.warn("A column-vector y was passed when a 1d array was expected; it is read as y.ravel().",
                      DataConversionWarning, stacklevel=3)
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y has shape {y.shape}; {type(estimator).__name__} takes one target per row (a 1-d y).")
    return y


def _numeric_target(estimator: BaseEstimator, y: Any) -> np.ndarray:
    """y as a 1-d float array (numbers written as text read as numbers); a ParameterError naming y's first value
    that is no number, since a regressor predicts numbers."""
    target = _target(estimator, y)
    numbers = pd.to_numeric(pd.Series(target), errors="coerce")
    text = numbers.isna().to_numpy() & pd.notna(target)
    if text.any():
        row = int(np.argmax(text))
        raise ParameterError(f"y holds {target.tolist()[row]!r} at row {row}, which is not a number, and "
                             f"{type(estimator).__name__} predicts numbers. Fit DeepWaterClassifier for class labels, "
                             "or convert y to numbers (e.g. pd.to_numeric(y)).")
    return numbers.to_numpy(dtype=np.float64)


def _check_not_strings(X: Any, owner: str) -> None:
    """scikit-learn's ValueError, naming the dtype, for an array (or nested list) of strings as X."""
    if isinstance(X, (list, tuple)):
        X = np.asarray(X)
    dtype = getattr(X, "dtype", None)
    strings = isinstance(dtype, np.dtype) and (dtype.kind in "USa" or (
        dtype.kind == "O" and getattr(X, "ndim", 0) > 0 and any(isinstance(v, (str, bytes)) for v in X.flat)))
    if strings:
        raise ValueError(f"X has dtype {dtype} holding strings; {owner} takes numbers in an array. Convert it "
                         "(np.asarray(X, dtype=float)), or pass a pandas DataFrame, whose string or categorical "
                         "columns are read as categorical.")


class _DeepWaterModel(BaseEstimator):
    """What the classifier and the regressor share: the table's parameters, X as a frame, the fit."""

    __init__ = _table_init

    def _frame(self, X: Any, reset: bool) -> pd.DataFrame:
        """X as a frame: a frame as it is (its column names checked at predict), else a numeric array
        validated by scikit-learn (NaN allowed: the estimator imputes it) with columns x0, x1, ..."""
        if isinstance(X, pd.DataFrame):
            if reset:
                self.n_features_in_ = X.shape[1]
                self.feature_names_in_ = np.asarray(X.columns, dtype=object)
            elif list(X.columns) != list(self.feature_names_in_):
                raise ValueError(f"X has columns {list(X.columns)[:8]}, but {type(self).__name__} was fitted with "
                                 f"{list(self.feature_names_in_)[:8]}; pass the same columns.")
            return X.reset_index(drop=True)
        _check_not_strings(X, type(self).__name__)
        array = validate_data(self, X, reset=reset, ensure_all_finite="allow-nan", dtype=np.float64)
        return pd.DataFrame(array, columns=[f"x{i}" for i in range(array.shape[1])])

    def _fit(self, X: Any, y: Any, target: pd.Series) -> _DeepWaterModel:
        frame = self._frame(X, reset=True)
        if len(frame) != len(target):
            raise ValueError(f"X has {len(frame)} rows but y has {len(target)}; pass one target per row.")
        if len(frame) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 samples to train; got 1 sample.")
        frame[TARGET] = target.array  # the array keeps a categorical target categorical
        params = _fit_parameters(self, len(frame))
        self.model_ = DeepWaterEstimator(**params).train(x=list(frame.columns[:-1]), y=TARGET, training_frame=frame)
        return self

    def _predictions(self, X: Any) -> pd.DataFrame:
        check_is_fitted(self, "model_")
        return self.model_.predict(self._frame(X, reset=False))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


class DeepWaterClassifier(ClassifierMixin, _DeepWaterModel):
    """A deepwater network as a scikit-learn classifier (fit, predict, predict_proba, score, classes_)."""

    def fit(self, X: Any, y: Any) -> DeepWaterClassifier:
        """Train on X and the class labels y."""
        y = _target(self, y)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"y holds {len(self.classes_)} class(es) {list(self.classes_)}; a classifier needs at "
                             "least two.")
        return self._fit(X, y, pd.Series(pd.Categorical(y, categories=self.classes_)))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, one column per entry of classes_."""
        predictions = self._predictions(X)
        return predictions.iloc[:, 1:].to_numpy(dtype=np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row."""
        probabilities = self.predict_proba(X)
        return self.classes_[probabilities.argmax(axis=1)]


class DeepWaterRegressor(RegressorMixin, _DeepWaterModel):
    """A deepwater network as a scikit-learn regressor (fit, predict, score)."""

    def fit(self, X: Any, y: Any) -> DeepWaterRegressor:
        """Train on X and the numeric target y."""
        y = _numeric_target(self, y)
        return self._fit(X, y, pd.Series(y))

    def predict(self, X: Any) -> np.ndarray:
        """The predicted value of each row."""
        return self._predictions(X)["predict"].to_numpy(dtype=np.float64)
