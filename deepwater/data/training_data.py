"""A training run's frames, checked once on their way to the batches: the frames, the columns picked from them
(predictors, response, weights, folds) and the row weights. The estimator and cross-validation both start here."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from deepwater.data.frames import ColumnRef, check_frame, column_name, resolve_columns
from deepwater.errors import FrameError, ParameterError


@dataclass(frozen=True)
class TrainingData:
    """The checked training (and validation) frame and the columns a run uses."""

    frame: pd.DataFrame
    validation: pd.DataFrame | None
    predictors: list[str]
    response: str | None  # None for an autoencoder
    weights_column: str | None
    fold_column: str | None
    x_given: bool = True  # False for x=None: every column but the response, weights and folds

    def weights(self, frame: pd.DataFrame) -> np.ndarray | None:
        """The row weights of `frame` (this run's frame or a part of it), None without a weights column."""
        return row_weights(frame, self.weights_column)


def training_data(training_frame: pd.DataFrame | None, validation_frame: pd.DataFrame | None,
                  x: Sequence[ColumnRef] | ColumnRef | None, y: ColumnRef | None, weights_column: ColumnRef | None,
                  fold_column: ColumnRef | None, unsupervised: bool) -> TrainingData:
    """Check both frames and resolve the columns (names or 0-based positions); the weights and fold columns are
    never predictors. `unsupervised` (an autoencoder) takes no response."""
    train = check_frame(training_frame, "training_frame")
    valid = None if validation_frame is None else check_frame(validation_frame, "validation_frame")
    weights = None if weights_column is None else column_name(train, weights_column, "weights_column")
    folds = None if fold_column is None else column_name(train, fold_column, "fold_column")
    predictors, response = resolve_columns(train, x, y, ignored=[c for c in (weights, folds) if c],
                                           unsupervised=unsupervised)
    for parameter, column in (("weights_column", weights), ("fold_column", folds)):
        if column is not None and column in predictors:
            raise ParameterError(f"{parameter}={column!r} is also in x; a column that weighs rows or assigns folds "
                                 f"cannot be a predictor too (as y cannot). Drop {column!r} from x.")
    return TrainingData(train, valid, predictors, response, weights, folds, x is not None)


def row_weights(frame: pd.DataFrame, column: str | None) -> np.ndarray | None:
    """The weights_column of `frame` as float32, checked (no missing or negative values); None without one."""
    if column is None:
        return None
    if column not in frame.columns:
        raise FrameError(f"weights_column={column!r} is not in the frame; add it or drop weights_column.")
    given = frame[column]
    values = pd.to_numeric(given, errors="coerce").to_numpy(dtype=np.float32, copy=True)
    text = np.isnan(values) & given.notna().to_numpy()
    if text.any():
        raise FrameError(f"weights_column={column!r} holds text that is no number: {given[text].iloc[0]!r} at row "
                         f"{given.index[text][0]!r}; weights are numbers >= 0.")
    if np.isnan(values).any() or (values < 0).any():
        raise FrameError(f"weights_column={column!r} holds missing or negative values; weights must be >= 0.")
    if len(values) and not values.any():
        raise FrameError(f"weights_column={column!r} holds only zeros, so no row counts; give some rows a weight "
                         "> 0, or drop weights_column.")
    return values
