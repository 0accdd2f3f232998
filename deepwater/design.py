"""Encoders fitted on the training frame and kept with the model, so predict sees the same columns.

Response: class labels <-> integer codes, or a numeric response (standardised for training).
DatasetEncoder: numeric columns standardised with missing values set to the training mean,
categorical columns one-hot encoded (an unseen level encodes as all zeros), constant columns dropped.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .errors import FrameError
from .frames import is_categorical
from .specs import CLASSIFICATION, REGRESSION


def _levels(series: pd.Series) -> list[Any]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        used = set(series.dropna().unique())
        return [c for c in series.cat.categories if c in used]
    values = series.dropna().unique().tolist()
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _codes(series: pd.Series, levels: list[Any]) -> np.ndarray:
    """Position of each value in `levels` (int64); -1 for missing values and values not in `levels`."""
    return pd.Index(levels).get_indexer(np.array(series.astype(object), dtype=object)).astype(np.int64)


@dataclass
class Response:
    """The response column: its name, task kind and how to encode and decode it."""

    name: str
    kind: str
    classes: list[Any] = field(default_factory=list)
    mean: float = 0.0
    scale: float = 1.0

    @classmethod
    def fit(cls, frame: pd.DataFrame, name: str, standardize: bool) -> "Response":
        series = frame[name]
        _check_no_missing(series, "y")
        if is_categorical(series):
            classes = _levels(series)
            if len(classes) < 2:
                raise FrameError(f"y={name!r} has a single class {classes}; classification needs at least two.")
            return cls(name, CLASSIFICATION, classes)
        values = series.to_numpy(dtype=np.float64)
        mean, scale = (float(values.mean()), float(values.std()) or 1.0) if standardize else (0.0, 1.0)
        return cls(name, REGRESSION, mean=mean, scale=scale)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """Integer class codes (int64) or the standardised response (float32)."""
        if self.name not in frame.columns:
            raise FrameError(f"the frame has no response column {self.name!r}; add it to score the model.")
        series = frame[self.name]
        _check_no_missing(series, "y")
        if self.kind == REGRESSION:
            return ((series.to_numpy(dtype=np.float64) - self.mean) / self.scale).astype(np.float32)
        codes = _codes(series, self.classes)
        if (codes < 0).any():
            unseen = sorted(set(series[codes < 0].astype(str)))[:5]
            raise FrameError(f"y={self.name!r} holds classes the model never saw in training: {unseen}; "
                             f"known classes: {self.classes[:20]}.")
        return codes

    def decode(self, output: np.ndarray) -> np.ndarray:
        """Predicted labels (from probabilities) or values on the original scale."""
        if self.kind == REGRESSION:
            return output[:, 0].astype(np.float64) * self.scale + self.mean
        return np.asarray(self.classes, dtype=object)[output.argmax(axis=1)]

    def predictions(self, output: np.ndarray, rows: np.ndarray, index: pd.Index) -> pd.DataFrame:
        """predict()'s frame for `index` from the network's `output` (probabilities, or standardised values) for
        the positions `rows`: a 'predict' column (categorical labels, or values on the response's scale) and,
        for classification, one probability column per class; rows left out (skipped images) are missing."""
        full = np.full((len(index), output.shape[1]), np.nan, dtype=np.float64)
        full[rows] = output
        if self.kind == REGRESSION:
            return pd.DataFrame({"predict": full[:, 0] * self.scale + self.mean}, index=index)
        labels = np.full(len(index), None, dtype=object)
        labels[rows] = self.decode(output)
        result = pd.DataFrame({"predict": pd.Categorical(labels, categories=self.classes)}, index=index)
        probabilities = pd.DataFrame(full, index=index, columns=[str(name) for name in self.classes])
        return pd.concat([result, probabilities], axis=1)  # at once: a column at a time is slow for 1000 classes


def _check_no_missing(series: pd.Series, parameter: str) -> None:
    missing = int(series.isna().sum())
    if missing:
        rows = series.index[series.isna()][:5].tolist()
        raise FrameError(f"{parameter}={series.name!r} has {missing} missing value(s) (rows {rows}...); "
                         "drop those rows (frame.dropna(subset=[...])) or fill them first.")


def _numeric_block(frame: pd.DataFrame, names: list[str], dtype: type) -> np.ndarray:
    """The columns as a new (rows, columns) array; values that are not numbers become NaN."""
    columns = frame[names]
    if not all(pd.api.types.is_numeric_dtype(t) for t in columns.dtypes):
        columns = columns.apply(pd.to_numeric, errors="coerce")
    return columns.to_numpy(dtype=dtype, copy=True, na_value=np.nan)


def _column_statistics(block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and standard deviation of each column (accumulated in float64, missing values left out),
    and which columns hold no value at all."""
    missing = np.isnan(block)
    if not missing.any():
        return block.mean(axis=0, dtype=np.float64), block.std(axis=0, dtype=np.float64), np.zeros(block.shape[1], bool)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: the caller drops them
        means = np.nanmean(block, axis=0, dtype=np.float64)
        stds = np.nanstd(block, axis=0, dtype=np.float64)
    return means, stds, missing.all(axis=0)


@dataclass
class NumericColumn:
    name: str
    mean: float
    scale: float


@dataclass
class CategoricalColumn:
    name: str
    levels: list[Any]


@dataclass
class DatasetEncoder:
    """Turns the predictor columns of a frame into a float32 matrix, the same way every time."""

    numeric: list[NumericColumn]
    categorical: list[CategoricalColumn]
    dropped: list[str]
    standardize: bool = True

    @classmethod
    def fit(cls, frame: pd.DataFrame, columns: Sequence[str], standardize: bool,
            ignore_const_cols: bool) -> "DatasetEncoder":
        categorical, dropped = [], []
        numeric_names = [name for name in columns if not is_categorical(frame[name])]
        for name in columns:
            if name in numeric_names:
                continue
            series = frame[name]
            levels = _levels(series)
            if ignore_const_cols and len(levels) <= 1 and not series.isna().any():
                dropped.append(name)
            else:
                categorical.append(CategoricalColumn(name, levels))
        numeric = []
        if numeric_names:  # statistics of all numeric columns at once
            block = _numeric_block(frame, numeric_names, np.float32)
            means, stds, empty = _column_statistics(block)
            for name, is_empty, mean, std in zip(numeric_names, empty, means, stds):
                if is_empty or (ignore_const_cols and std == 0.0):
                    dropped.append(name)
                else:
                    numeric.append(NumericColumn(name, float(mean), float(std) or 1.0))
        if not numeric and not categorical:
            raise FrameError(f"every predictor was dropped as constant or empty ({dropped[:10]}); "
                             "give columns that vary, or ignore_const_cols=False.")
        order = {name: i for i, name in enumerate(columns)}
        dropped.sort(key=order.__getitem__)
        return cls(numeric, categorical, dropped, standardize)

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.numeric] + [c.name for c in self.categorical]

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(len(c.levels) for c in self.categorical)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """The (rows, width) float32 design matrix of `frame`."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise FrameError(f"the frame lacks columns the model was trained on: {missing[:10]}; add them.")
        parts = []
        if self.numeric:
            names = [c.name for c in self.numeric]
            block = _numeric_block(frame, names, np.float32)
            mean = np.array([c.mean for c in self.numeric], dtype=np.float32)
            scale = np.array([c.scale for c in self.numeric], dtype=np.float32)
            rows, cols = np.nonzero(np.isnan(block))
            block[rows, cols] = mean[cols]  # mean imputation
            if self.standardize:
                block -= mean
                block /= scale
            parts.append(block)
        for column in self.categorical:
            codes = _codes(frame[column.name], column.levels)
            onehot = np.zeros((len(frame), len(column.levels)), dtype=np.float32)
            known = codes >= 0  # unseen levels and missing values stay all-zero
            onehot[np.nonzero(known)[0], codes[known]] = 1.0
            parts.append(onehot)
        matrix = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return np.ascontiguousarray(matrix)  # row-major: mini-batches gather rows
