"""Encoders fitted on the training frame and kept with the model, so predict sees the same columns.

Response: class labels <-> integer codes, or a numeric response (standardised for training).
DatasetEncoder: numeric columns standardised with missing values set to the training mean,
categorical columns one-hot encoded (an unseen level encodes as all zeros), constant columns dropped.
"""
from __future__ import annotations

import contextlib
import decimal
import operator
import warnings
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from deepwater.data.frames import check_frame, check_plain_values, is_categorical
from deepwater.errors import FrameError, warn_user
from deepwater.specs import AUTOENCODER, CLASSIFICATION, REGRESSION

try:
    from pandas.api.internals import create_dataframe_from_blocks
except ImportError:  # pandas 2: frames are made with the DataFrame constructor
    create_dataframe_from_blocks = None

ONE_HOT, BINARY, LABEL = "one_hot", "binary", "label"
# H2O's categorical_encoding names -> how a categorical column becomes numbers
CATEGORICAL_ENCODINGS = {"AUTO": ONE_HOT, "OneHotInternal": ONE_HOT, "OneHotExplicit": ONE_HOT, "Binary": BINARY,
                         "LabelEncoder": LABEL}
ALL_LEVELS = 2**31 - 1  # max_categorical_features' default, H2O's: no hashing
LARGE_MATRIX_BYTES = 1 << 30  # a design matrix above this gets a warning naming the encodings that shrink it
EXACT_INTEGERS = 2**53  # float64 holds every integer up to this, so int64 -> float32 rounds as float64 does
FEW_INTEGER_VALUES = 10  # a numeric response with at most this many distinct integers may be meant as classes


def _levels(series: pd.Series) -> list[Any]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        used = set(series.dropna().unique())
        return [c for c in series.cat.categories if c in used]
    values = series.dropna().unique().tolist()
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


class LevelLookup:
    """The positions of values among a column's levels, through one hash table (an Index's, built on the first
    lookup and kept); a categorical column's categories are looked up once per dtype, not once per frame."""

    def __init__(self, levels: list[Any]) -> None:
        self.levels = pd.Index(levels)
        self._last: tuple[pd.Index, np.ndarray] | None = None  # the last categories seen and their positions

    def positions(self, values: np.ndarray) -> np.ndarray:
        """The position of each value (int64); -1 for values not among the levels."""
        return self.levels.get_indexer(values).astype(np.int64)

    def category_positions(self, categories: pd.Index) -> np.ndarray:
        """positions() of a categorical dtype's categories, kept while frames bring the same categories."""
        last = self._last
        if last is None or not (last[0] is categories or last[0].equals(categories)):
            last = self._last = (categories, self.positions(np.array(categories.astype(object), dtype=object)))
        return last[1]


def _codes(series: pd.Series, lookup: LevelLookup) -> np.ndarray:
    """Position of each value among the levels of `lookup` (int64); -1 for missing values and values not among
    them. A pandas categorical column is looked up once per category, not once per value."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        codes = series.array.codes
        return np.where(codes >= 0, lookup.category_positions(series.dtype.categories)[codes], -1)
    return lookup.positions(np.array(series.astype(object), dtype=object))


@dataclass
class Response:
    """The response column: its name, task kind and how to encode and decode it."""

    name: str | None  # None for an autoencoder
    kind: str
    classes: list[Any] = field(default_factory=list)
    mean: float = 0.0
    scale: float = 1.0

    @classmethod
    def fit(cls, frame: pd.DataFrame, name: str, standardize: bool) -> "Response":
        series = frame[name]
        _check_no_missing(series, "y")
        if is_categorical(series):
            check_one_kind(series, f"y={name!r}")
            classes = _levels(series)
            if len(classes) < 2:
                raise FrameError(f"y={name!r} has a single class {classes}; classification needs at least two.")
            _check_class_names(name, classes)
            _hint_if_numbers(name, series, classes)
            return cls(name, CLASSIFICATION, classes)
        _reject_infinite(_numeric_block(frame, [name]), frame, [name], "y")
        values = series.to_numpy(dtype=np.float64)
        if values.min() == values.max():
            raise FrameError(f"y={name!r} is constant (every row is {values[0]:g}), so there is nothing to learn and "
                             "its r2 means nothing; pick another response, or the rows where it varies.")
        _hint_if_classes(name, values)
        mean, scale = (float(values.mean()), float(values.std()) or 1.0) if standardize else (0.0, 1.0)
        return cls(name, REGRESSION, mean=mean, scale=scale)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @cached_property
    def _lookup(self) -> LevelLookup:
        return LevelLookup(self.classes)

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """Integer class codes (int64) or the standardised response (float32); an autoencoder's placeholder
        zeros (its targets are its inputs)."""
        if self.kind == AUTOENCODER:
            return np.zeros(len(frame), dtype=np.float32)
        if self.name not in frame.columns:
            raise FrameError(f"the frame has no response column {self.name!r}; add it to score the model.")
        check_plain_values(frame, [self.name])
        series = frame[self.name]
        _check_no_missing(series, "y")
        if self.kind == REGRESSION:
            _reject_infinite(_numeric_block(frame, [self.name]), frame, [self.name], "y")
            return ((series.to_numpy(dtype=np.float64) - self.mean) / self.scale).astype(np.float32)
        codes = _codes(series, self._lookup)
        if (codes < 0).any():
            unseen = sorted(set(series[codes < 0].astype(str)))[:5]
            raise FrameError(f"y={self.name!r} holds classes the model never saw in training: {unseen}; "
                             f"known classes: {self.classes[:20]}.")
        return codes

    def decode(self, output: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """Values on the original scale, or labels from class probabilities: for two classes the second when its
        probability is >= `threshold` (H2O's rule), else the most probable class; None where a probability is NaN."""
        if self.kind == REGRESSION:
            return output[:, 0].astype(np.float64) * self.scale + self.mean
        chosen = self._chosen(output, threshold)
        labels = np.asarray(self.classes, dtype=object)[chosen]
        labels[chosen < 0] = None
        return labels

    def _chosen(self, output: np.ndarray, threshold: float, missing: np.ndarray | None = None) -> np.ndarray:
        """The position of each row's label among the classes (see decode()); -1 where a probability is NaN
        (`missing`: those rows, when the caller has found them)."""
        chosen = (output[:, 1] >= threshold).astype(np.int64) if self.n_classes == 2 else output.argmax(axis=1)
        chosen[np.isnan(output).any(axis=1) if missing is None else missing] = -1
        return chosen

    @cached_property
    def _labels(self) -> pd.CategoricalDtype:
        return pd.CategoricalDtype(self.classes)

    @cached_property
    def _prediction_columns(self) -> pd.Index:
        """predict()'s column names: an Index is slow to make, so it is made once."""
        names = ["predict", *self.probability_columns] if self.kind == CLASSIFICATION else ["predict"]
        return pd.Index(names)

    def predictions(self, output: np.ndarray, rows: np.ndarray, index: pd.Index,
                    threshold: float = 0.5) -> pd.DataFrame:
        """predict()'s frame for `index` from the network's `output` (probabilities, or standardised values) for
        the positions `rows`: a 'predict' column (categorical labels, or values on the response's scale; two
        classes labelled at `threshold`, see decode()) and, for classification, one probability column per
        class; rows left out (skipped images) are missing."""
        if self.kind == REGRESSION:
            full = np.full((len(index), 1), np.nan, dtype=np.float64)
            full[rows] = output[:, :1]
            return _answer_frame(full * self.scale + self.mean, None, None, index, self._prediction_columns)
        # one float64 block, its first column the labels' place, the labels put in as the frame is made
        if len(rows) == len(index):  # every row scored (none skipped): nothing left missing
            full = np.empty((len(index), 1 + output.shape[1]), dtype=np.float64)
            full[:, 1:] = output
            return _answer_frame(full, self._chosen(output, threshold), self._labels, index, self._prediction_columns)
        full = np.full((len(index), 1 + output.shape[1]), np.nan, dtype=np.float64)
        full[rows, 1:] = output
        chosen = np.full(len(index), -1, dtype=np.int64)
        chosen[rows] = self._chosen(output, threshold)
        return _answer_frame(full, chosen, self._labels, index, self._prediction_columns)

    @property
    def probability_columns(self) -> list[str]:
        """The names of predict()'s probability columns: one per class, none for a regression."""
        return [str(name) for name in self.classes]

    def records(self, output: np.ndarray, threshold: float = 0.5) -> list[dict[str, Any]]:
        """predict()'s rows for the network's `output` as dicts, without a frame (quick for a few rows):
        {'predict': label or value, '<class>': probability, ...}; None where a value is missing."""
        if self.kind == REGRESSION:
            return [{"predict": _number_or_none(value)} for value in self.decode(output, threshold).tolist()]
        probabilities = output.tolist()  # Python floats holding the output's values exactly
        missing = np.isnan(output).any(axis=1)
        if missing.any():  # the rows that held inf
            probabilities = [[_number_or_none(p) for p in row] for row in probabilities]
        classes, names = self.classes, self._probability_names
        return [{"predict": None if chosen < 0 else classes[chosen], **dict(zip(names, row))}
                for chosen, row in zip(self._chosen(output, threshold, missing).tolist(), probabilities)]

    @cached_property
    def _probability_names(self) -> list[str]:
        return self.probability_columns


def _number_or_none(value: float) -> float | None:
    """None for NaN (a missing value), else the value."""
    return None if value != value else value


def _answer_frame(values: np.ndarray, codes: np.ndarray | None, labels: pd.CategoricalDtype | None,
                  index: pd.Index, columns: pd.Index) -> pd.DataFrame:
    """The frame of `columns` for `index` holding the float64 (rows, columns) `values`, its first column replaced
    by the `labels` of `codes` (-1: missing) when given. With pandas 3 it is made at once from its two blocks
    (15 us for one row; a frame made, then given its label column, takes 50 us, and two frames joined 200 us)."""
    if create_dataframe_from_blocks is None:  # pandas 2
        frame = pd.DataFrame(values, index=index, columns=columns, copy=False)
        if codes is not None:
            frame.isetitem(0, pd.Categorical.from_codes(codes, dtype=labels))
        return frame
    if codes is None:
        return create_dataframe_from_blocks([(values.T, np.arange(values.shape[1]))], index, columns)
    first = pd.Categorical.from_codes(codes, dtype=labels, validate=False)  # codes made by _chosen()
    return create_dataframe_from_blocks([(first, np.zeros(1, np.intp)),
                                         (values[:, 1:].T, np.arange(1, values.shape[1]))], index, columns)


NUMBER_TYPES = (int, float, decimal.Decimal, np.number)


def check_one_kind(series: pd.Series, where: str) -> None:
    """A FrameError for an object column of Python numbers (Decimal, int objects), or of numbers mixed with text:
    deepwater would read it as categories in silence. Text alone is a categorical column, as H2O's enums."""
    if series.dtype != object:
        return
    values = series.dropna()
    numbers = values.map(lambda v: isinstance(v, NUMBER_TYPES) and not isinstance(v, (bool, np.bool_)))
    numbers = numbers.to_numpy(dtype=bool)
    if not numbers.any():
        return
    column = where.partition("=")[2] or where.removeprefix("column ")
    if numbers.all():
        first = values.iloc[0]
        raise FrameError(f"{where} holds numbers stored as Python objects ({type(first).__name__} {first!r} at row "
                         f"{values.index[0]!r}), which would be read as categories; convert them: "
                         f"frame[{column}] = pd.to_numeric(frame[{column}]) (or .astype(str) if they are labels).")
    text = values[~numbers]
    raise FrameError(f"{where} mixes numbers and text: {text.iloc[0]!r} at row {text.index[0]!r} ({len(text)} text "
                     f"value(s)) among numbers such as {values[numbers].iloc[0]!r}; a column is numeric or "
                     f"categorical. Make the text missing with frame[{column}] = pd.to_numeric(frame[{column}], "
                     f"errors='coerce'), or make every value text with frame[{column}].astype(str).")


def _check_class_names(name: str, classes: list[Any]) -> None:
    """A FrameError when two classes print alike (1 and '1'): predict's probability columns would collide."""
    names = [str(c) for c in classes]
    clashing = sorted({n for n in names if names.count(n) > 1})
    if clashing:
        raise FrameError(f"y={name!r} has classes that print alike: {clashing[:5]} (e.g. 1 and '1'); give the "
                         f"column one type, e.g. frame[{name!r}] = frame[{name!r}].astype(str).")


def _hint_if_numbers(name: str, series: pd.Series, classes: list[Any]) -> None:
    """Warn when a text response reads as many numbers ('1', '2', ... '40'): it trains that many classes, though
    the user may have meant a regression. A categorical column says it holds classes and gets no warning."""
    if isinstance(series.dtype, pd.CategoricalDtype) or len(classes) <= FEW_INTEGER_VALUES:
        return
    if pd.to_numeric(pd.Series(classes, dtype=object), errors="coerce").notna().all():
        warn_user(f"y={name!r} holds text that reads as numbers ({', '.join(map(repr, classes[:3]))}, ...), so this "
                  f"trains a {len(classes)}-class classification; for a regression make it numeric first: "
                  f"frame[{name!r}] = pd.to_numeric(frame[{name!r}])", UserWarning)


def _hint_if_classes(name: str, values: np.ndarray) -> None:
    """Warn when a numeric response holds a few integers (0/1, 1..5): it trains a regression, as in H2O, though
    the user may have meant classes (H2O users call asfactor(); pandas users make the column categorical)."""
    distinct = np.unique(values)
    if 2 <= len(distinct) <= FEW_INTEGER_VALUES and np.array_equal(distinct, np.round(distinct)):
        warn_user(f"y={name!r} is numeric with {len(distinct)} integer values, so this trains a regression (as H2O "
                  f"does); for classification make it categorical first: frame[{name!r}] = "
                  f"frame[{name!r}].astype('category')", UserWarning)


def _check_no_missing(series: pd.Series, parameter: str) -> None:
    missing = int(series.isna().sum())
    if missing:
        rows = series.index[series.isna()][:5].tolist()
        raise FrameError(f"{parameter}={series.name!r} has {missing} missing value(s) (rows {rows}...); "
                         "drop those rows (frame.dropna(subset=[...])) or fill them first.")


def _numeric_block(frame: pd.DataFrame, names: list[str]) -> np.ndarray:
    """The columns as a new float32 (rows, columns) array, missing values NaN; numbers too large for float32
    become inf, and text that is no number is a FrameError naming the column, the row and the text."""
    columns = frame[names]
    dtypes = set(columns.dtypes)  # a set: 784 pixels, one dtype
    if any(pd.api.types.is_complex_dtype(t) for t in dtypes):
        name = next(n for n, t in zip(names, columns.dtypes) if pd.api.types.is_complex_dtype(t))
        raise FrameError(f"column {name!r} holds complex numbers; a network takes real ones. Split it into its "
                         f"real and imaginary parts (frame[{name!r}].to_numpy().real and .imag) or take its "
                         "magnitude (abs), as columns of their own.")
    if not all(pd.api.types.is_numeric_dtype(t) for t in dtypes):
        numbers = columns.apply(pd.to_numeric, errors="coerce")
        text = (numbers.isna() & columns.notna()).to_numpy()
        if text.any():
            row, col = (int(i[0]) for i in np.nonzero(text))
            raise FrameError(f"column {names[col]!r} is numeric in the model but holds text that is no number: "
                             f"{columns.iloc[row, col]!r} at row {frame.index[row]!r} ({int(text[:, col].sum())} such "
                             f"value(s) in the column). Fix those values, or make them missing with "
                             f"frame[{names[col]!r}] = pd.to_numeric(frame[{names[col]!r}], errors='coerce').")
        columns = numbers
    with np.errstate(over="ignore"):  # numbers beyond float32's range become inf, flagged by the callers
        return columns.to_numpy(dtype=np.float32, copy=True, na_value=np.nan)


def _reject_infinite(block: np.ndarray, frame: pd.DataFrame, names: Sequence[str], parameter: str,
                     first_row: int = 0) -> None:
    """A FrameError naming the column and first row where the float32 `block` of columns `names` (the rows of
    `frame` from position `first_row` on) holds inf: inf or -inf in `frame`, or a number float32 cannot hold.
    `parameter` is "x" or "y"."""
    infinite = np.isinf(block)
    if not infinite.any():
        return
    rows, cols = np.nonzero(infinite)
    name, row = names[cols[0]], first_row + rows[0]
    fix = ("drop those rows" if parameter == "y" else
           "drop those rows, or make the values missing (NaN) so that they take the training mean; "
           "frame.replace([np.inf, -np.inf], np.nan) does that for inf")
    where = f"y={name!r}" if parameter == "y" else f"column {name!r}"
    raise FrameError(f"{where} holds {frame[name].iloc[row]!r} at row {frame.index[row]!r} ({len(rows)} value(s) "
                     f"that are inf, -inf or beyond float32's range of +-3.4e38 in all); deepwater trains in "
                     f"float32: {fix}.")


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
    """A categorical column and its encoding: one-hot (over its levels, or over `buckets` hashed buckets when
    it has more levels than max_categorical_features), binary digits of the level's number, or that number."""

    name: str
    levels: list[Any]
    encoding: str = ONE_HOT
    buckets: int = 0  # > 0: one-hot over crc32(level) % buckets (H2O's max_categorical_features)

    @property
    def width(self) -> int:
        if self.encoding == LABEL:
            return 1
        if self.encoding == BINARY:
            return len(self.levels).bit_length()  # level i is written as i + 1; 0 is missing or unseen
        return self.buckets or len(self.levels)

    def feature_names(self) -> list[str]:
        """H2O's names of the column's encoded values: '<col>.<level>' per one-hot level, '<col>.bucket<i>' per
        hashed bucket, '<col>.bit<i>' per binary digit, or '<col>' for a label-encoded column."""
        if self.encoding == LABEL:
            return [self.name]
        if self.encoding == BINARY:
            return [f"{self.name}.bit{i}" for i in range(self.width)]
        if self.buckets:
            return [f"{self.name}.bucket{i}" for i in range(self.buckets)]
        return [f"{self.name}.{level}" for level in self.levels]

    @cached_property
    def _lookup(self) -> LevelLookup:
        return LevelLookup(self.levels)

    @cached_property
    def _slots(self) -> np.ndarray:
        """The one-hot position of each level: the level's own, or its hashed bucket."""
        if not self.buckets:
            return np.arange(len(self.levels), dtype=np.int64)
        return np.array([zlib.crc32(str(level).encode()) % self.buckets for level in self.levels], np.int64)

    @cached_property
    def _text_codes(self) -> dict[str, int]:
        """The position of each level that is a str (a dict lookup is exact for str keys alone: 1 == True)."""
        return {level: i for i, level in enumerate(self.levels) if type(level) is str}

    def text_code(self, value: Any) -> int:
        """The position of `value` among the levels when it is a str level the column knows, else -1."""
        return self._text_codes.get(value, -1) if type(value) is str else -1

    def encode(self, series: pd.Series) -> np.ndarray:
        """The column's (rows, width) float32 block; missing values and unseen levels are all zeros
        (LabelEncoder: -1)."""
        codes = _codes(series, self._lookup)
        known = codes >= 0
        if not known.all():
            _warn_if_other_kind(self, series, known)
        return self.encode_codes(codes)

    def encode_codes(self, codes: np.ndarray) -> np.ndarray:
        """The column's (rows, width) float32 block for the levels' positions `codes` (int64, -1: missing or
        unseen)."""
        if self.encoding == LABEL:
            return codes.astype(np.float32)[:, None]
        if self.encoding == BINARY:
            return (((codes + 1)[:, None] >> np.arange(self.width)) & 1).astype(np.float32)
        block = np.zeros((len(codes), self.width), dtype=np.float32)
        rows = np.nonzero(codes >= 0)[0]
        block[rows, self._slots[codes[rows]]] = 1.0
        return block


def _kind(value: Any) -> str:
    """'number' or 'text' (what a categorical level is made of), else the value's type name."""
    if isinstance(value, NUMBER_TYPES) and not isinstance(value, (bool, np.bool_)):
        return "number"
    return "text" if isinstance(value, str) else type(value).__name__


def _warn_if_other_kind(column: CategoricalColumn, series: pd.Series, known: np.ndarray) -> None:
    """Warn when some values the model never saw are of another kind than all its levels (numbers in a column
    trained on text, or the reverse): a type change, not new levels; they encode as unseen (all zeros)."""
    unseen = ~known & series.notna().to_numpy()
    if not unseen.any():
        return
    values = series[unseen]
    level_kinds = {_kind(level) for level in column.levels}
    other = values.map(lambda value: _kind(value) not in level_kinds).to_numpy(dtype=bool)
    if not other.any():
        return
    share = other.sum() / len(series)
    first = values[other].iloc[0]
    level_types = sorted({type(level).__name__ for level in column.levels})
    warn_user(f"column {column.name!r}: {share:.0%} of its values ({first!r} of type {type(first).__name__}, ...) "
              f"are levels the model never saw, and of another type than the levels it learnt "
              f"({', '.join(level_types)}, e.g. {column.levels[0]!r}); they encode as unseen levels (all "
              f"zeros). If the column changed type, convert it back, e.g. frame[{column.name!r}] = "
              f"frame[{column.name!r}].astype({level_types[0]}).", UserWarning)


@dataclass
class DatasetEncoder:
    """Turns the predictor columns of a frame into a float32 matrix, the same way every time."""

    numeric: list[NumericColumn]
    categorical: list[CategoricalColumn]
    dropped: list[str]
    standardize: bool = True

    @classmethod
    def fit(cls, frame: pd.DataFrame, columns: Sequence[str], standardize: bool, ignore_const_cols: bool,
            categorical_encoding: str = "AUTO", max_categorical_features: int = ALL_LEVELS) -> "DatasetEncoder":
        """Learn the columns' statistics and levels from `frame`; categorical_encoding and
        max_categorical_features are H2O's (parameter table)."""
        encoding = CATEGORICAL_ENCODINGS[categorical_encoding]
        categorical, dropped = [], []
        numeric_names = [name for name in columns if not is_categorical(frame[name])]
        for name in columns:
            if name in numeric_names:
                continue
            series = frame[name]
            check_one_kind(series, f"column {name!r}")
            levels = _levels(series)
            if ignore_const_cols and len(levels) <= 1 and not series.isna().any():
                dropped.append(name)
            else:
                buckets = max_categorical_features if encoding == ONE_HOT and len(levels) > max_categorical_features \
                    else 0
                categorical.append(CategoricalColumn(name, levels, encoding, buckets))
        numeric = []
        if numeric_names:  # statistics of all numeric columns at once
            block = _numeric_block(frame, numeric_names)
            _reject_infinite(block, frame, numeric_names, "x")
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
        encoder = cls(numeric, categorical, dropped, standardize)
        encoder.warn_when_large(len(frame))
        return encoder

    def warn_when_large(self, rows: int) -> None:
        """Warn when the float32 design matrix of `rows` rows passes LARGE_MATRIX_BYTES, naming the widest
        categorical column and the parameters that shrink it."""
        size = rows * self.width * 4
        if size <= LARGE_MATRIX_BYTES or not self.categorical:
            return
        widest = max(self.categorical, key=lambda c: c.width)
        warn_user(f"the design matrix of {rows:,} rows x {self.width:,} columns takes {size / 2**30:.1f} GiB; "
                  f"column {widest.name!r} alone is {widest.width:,} wide ({len(widest.levels):,} levels). Pass "
                  "categorical_encoding='Binary' or 'LabelEncoder', or max_categorical_features=N to hash the "
                  "levels into N columns.", UserWarning)

    @classmethod
    def from_record(cls, saved: dict[str, Any]) -> "DatasetEncoder":
        """The encoder that dataclasses.asdict() wrote."""
        return cls([NumericColumn(**c) for c in saved["numeric"]], [CategoricalColumn(**c) for c in saved["categorical"]],
                   saved["dropped"], saved["standardize"])

    @property
    def columns(self) -> list[str]:
        return [c.name for c in self.numeric] + [c.name for c in self.categorical]

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(c.width for c in self.categorical)

    def feature_names(self) -> list[str]:
        """The name of each column of the design matrix, in its order (H2O's coefficient names)."""
        return [c.name for c in self.numeric] + [n for c in self.categorical for n in c.feature_names()]

    def feature_columns(self) -> list[str]:
        """The frame column each column of the design matrix comes from, in its order."""
        return [c.name for c in self.numeric] + [c.name for c in self.categorical for _ in range(c.width)]

    def unscale(self, matrix: np.ndarray) -> np.ndarray:
        """A design matrix (e.g. an autoencoder's reconstruction) with its numeric columns back on the frame's
        scale (times the training standard deviation, plus the mean); encoded categorical columns as they are."""
        out = np.array(matrix, dtype=np.float64)
        if self.standardize and self.numeric:
            k = len(self.numeric)
            out[:, :k] = out[:, :k] * [c.scale for c in self.numeric] + [c.mean for c in self.numeric]
        return out

    @cached_property
    def _numeric_names(self) -> list[str]:
        return [c.name for c in self.numeric]

    @cached_property
    def _means(self) -> np.ndarray:
        return np.array([c.mean for c in self.numeric], dtype=np.float32)

    @cached_property
    def _scales(self) -> np.ndarray:
        return np.array([c.scale for c in self.numeric], dtype=np.float32)

    def _layout(self, frame: pd.DataFrame) -> ColumnLayout:
        """Where this encoder's columns sit in `frame`: the last frame's layout when `frame` has the same columns
        and dtypes (scoring one request after another), else worked out (and kept) now."""
        last = self.__dict__.get("_last_layout")
        if last is not None and last.fits(frame):
            return last
        layout = ColumnLayout.of(frame, self.columns, self._numeric_names)
        self.__dict__["_last_layout"] = layout
        return layout

    def transform(self, frame: pd.DataFrame, keep_infinite: bool = False) -> np.ndarray:
        """The (rows, width) float32 design matrix of `frame`.

        A numeric value that is inf, -inf or beyond float32's range is a FrameError, or with `keep_infinite`
        stays inf in the matrix, so that the row's outputs come back NaN (sources.map_batches).
        """
        layout = self._layout(frame)
        if layout.objects:
            check_plain_values(frame, layout.objects)
        numbers = None
        if self.numeric:
            names = self._numeric_names

            def prepare(block: np.ndarray, first_row: int) -> None:
                if not (keep_infinite or layout.whole_numbers):  # integers hold no inf (nor NaN)
                    _reject_infinite(block, frame, names, "x", first_row)
                self._impute_and_standardise(block, may_miss=not layout.whole_numbers)

            if layout.plain_numbers:
                numbers = layout.numbers(frame, prepare)
            else:
                numbers = _numeric_block(frame, names)
                prepare(numbers, 0)
        return self._matrix(numbers, [column.encode(frame[column.name]) for column in self.categorical])

    def encode_columns(self, numbers: np.ndarray | None, categories: Sequence[pd.Series]) -> np.ndarray:
        """The (rows, width) float32 design matrix of checked columns: `numbers`, the numeric columns as a
        float32 (rows, len(numeric)) array that this call may change (NaN where missing; None when the model has
        no numeric column), and one series per categorical column, in the encoder's order."""
        if numbers is not None:  # a block of rows at a time: one pass over memory, each block while in the cache
            step = max(1, BLOCK_BYTES // max(numbers.itemsize * numbers.shape[1], 1))
            for start in range(0, len(numbers), step):
                self._impute_and_standardise(numbers[start:start + step])
        return self._matrix(numbers, [c.encode(series) for c, series in zip(self.categorical, categories)])

    def _impute_and_standardise(self, numbers: np.ndarray, may_miss: bool = True) -> None:
        """The numeric columns' float32 values, in place: missing values (NaN) set to the training mean (looked for
        only where `may_miss`: integer columns have none), then standardised."""
        if may_miss:
            missing = np.isnan(numbers)
            if missing.any():
                np.copyto(numbers, np.broadcast_to(self._means, numbers.shape), where=missing)  # mean imputation
        if self.standardize:
            np.subtract(numbers, self._means, out=numbers)
            np.divide(numbers, self._scales, out=numbers)

    def encode_row(self, row: Mapping[str, Any]) -> np.ndarray | None:
        """The (1, width) float32 design matrix of one row given as {column: value}, the same as
        transform(pd.DataFrame([row])), when the row is plain: each numeric value an int or a float within
        +-2**53 (NaN where missing), each categorical one a str level the column knows. None for any other row (a
        column absent, None, text in a numeric column, inf, an unseen level, ...): the frame's checks and warnings
        are then the caller's to apply, through transform()."""
        try:
            cells = self._numeric_cells(row)
            levels = [row[column.name] for column in self.categorical]
        except KeyError:
            return None
        if not set(map(type, cells)) <= {int, float}:  # bool, None, text, numpy and Decimal values: the frame's rules
            return None
        try:
            numbers = np.array(cells, dtype=np.float64).reshape(1, len(cells))
        except OverflowError:  # an int beyond float64
            return None
        if (np.abs(numbers) > EXACT_INTEGERS).any():  # inf, or where an int64 column converts otherwise
            return None
        codes = [column.text_code(level) for column, level in zip(self.categorical, levels)]
        if min(codes, default=0) < 0:
            return None
        numbers = numbers.astype(np.float32)
        self._impute_and_standardise(numbers)
        return self._matrix(numbers if self.numeric else None,
                            [column.encode_codes(np.array([code])) for column, code in zip(self.categorical, codes)])

    @cached_property
    def _numeric_cells(self) -> Callable[[Mapping[str, Any]], tuple]:
        """A row's numeric values as a tuple, in the encoder's order (KeyError when one is absent)."""
        names = self._numeric_names
        return operator.itemgetter(*names) if len(names) > 1 else lambda row: tuple(row[name] for name in names)

    def _matrix(self, numbers: np.ndarray | None, blocks: list[np.ndarray]) -> np.ndarray:
        """The design matrix of the prepared numeric columns and the categorical columns' encoded blocks."""
        parts = [] if numbers is None else [numbers]
        matrix = parts[0] if not blocks else np.concatenate(parts + blocks, axis=1)
        return np.ascontiguousarray(matrix)  # row-major: mini-batches gather rows


def _is_plain_number(dtype: Any) -> bool:
    """A numpy dtype of booleans, integers or real numbers (not a pandas extension dtype)."""
    return isinstance(dtype, np.dtype) and dtype.kind in "biuf"


def _reads_blocks() -> bool:
    """Whether this pandas lays frames out as the block readers below expect (its internals, read because its
    public API is 25-100 us slower per frame: frame.dtypes makes a Series, a frame of some columns copies them)."""
    probe = pd.DataFrame({"a": [1.0], "b": [2], "c": [3.0]})
    try:
        blocks = probe._mgr.blocks
        found = sorted((str(block.dtype), list(block.mgr_locs.as_array)) for block in blocks)
        return found == [("float64", [0, 2]), ("int64", [1])] and _block_signature(probe) == _block_signature(probe)
    except (AttributeError, TypeError):
        return False


def _block_signature(frame: pd.DataFrame) -> tuple:
    """The dtype and the column positions of each of pandas' blocks of `frame`: read in about a microsecond, and
    equal for two frames of the same columns only when every column has the same dtype."""
    return tuple((block.dtype, _positions(block.mgr_locs.indexer)) for block in frame._mgr.blocks)


def _public_signature(frame: pd.DataFrame) -> tuple:
    """The dtype of each column of `frame`, through pandas' public API (25 us for 784 columns)."""
    return tuple(frame.dtypes.to_numpy())


def _block_holding(frame: pd.DataFrame, positions: np.ndarray) -> int | None:
    """The number of the block of `frame` whose columns are those at `positions`, in that order, and of a real
    number dtype; None if no block is."""
    for number, block in enumerate(frame._mgr.blocks):
        if _is_plain_number(block.dtype) and np.array_equal(block.mgr_locs.as_array, positions):
            return number
    return None


def _positions(indexer: slice | np.ndarray) -> slice | bytes:
    """A block's column positions in a form that compares with ==."""
    return indexer if isinstance(indexer, slice) else indexer.tobytes()


READS_BLOCKS = _reads_blocks()  # False: the public path alone (a pandas whose internals differ)


BLOCK_BYTES = 256 << 10  # float32 values converted, checked and standardised at a time: they stay in the cache


@dataclass(frozen=True)
class ColumnLayout:
    """Where an encoder's columns sit in frames of one set of columns and dtypes, and what those dtypes leave to
    check in each frame; worked out once and reused while frames keep it."""

    columns: pd.Index
    dtypes: tuple  # the frame's dtypes as _block_signature() (or, without blocks, _public_signature()) reads them
    numeric: slice | np.ndarray | None  # the numeric columns' positions, in the encoder's order; None: all, in order
    plain_numbers: bool  # they all have a real number dtype: one array conversion, no text to look for
    whole_numbers: bool  # they all have an integer (or bool) dtype: no NaN, no inf to look for
    one_dtype: bool  # every column of the frame has the same real number dtype: numpy picks the numeric ones
    objects: list[str]  # the encoder's columns of object dtype, checked for containers in each frame
    block: int | None  # the pandas block holding the numeric columns alone, in order (numpy's dtype), if one does
    blocks: bool  # frames are read through pandas' blocks (READS_BLOCKS), else through its public API alone

    @classmethod
    def of(cls, frame: pd.DataFrame, columns: list[str], numeric_names: list[str],
           blocks: bool = READS_BLOCKS) -> ColumnLayout:
        """The layout of `frame` for an encoder of `columns` (of which `numeric_names` are numeric); a FrameError
        when some are missing. `blocks`: read frames through pandas' blocks (quicker) rather than its public API."""
        absent = [c for c in columns if c not in frame.columns]
        if absent:
            raise FrameError(f"the frame lacks columns the model was trained on: {absent[:10]}; add them.")
        if not frame.columns.is_unique:
            check_frame(frame, "frame")  # its error: duplicated names do not say which column is meant
        dtypes = frame.dtypes
        positions = frame.columns.get_indexer(numeric_names)
        numeric_types = set(dtypes.iloc[positions])
        plain = all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_complex_dtype(t) for t in numeric_types)
        whole = all(_is_plain_number(t) and t.kind in "biu" for t in numeric_types)
        first = int(positions[0]) if len(positions) else 0
        contiguous = np.array_equal(positions, np.arange(first, first + len(positions)))
        numeric = slice(first, first + len(positions)) if contiguous else positions
        if contiguous and len(positions) == frame.shape[1]:
            numeric = None  # the frame holds the numeric columns alone, in the encoder's order
        objects = [name for name, dtype in zip(columns, dtypes[columns]) if dtype == object]
        frame_types = set(dtypes)
        one_dtype = plain and len(frame_types) == 1 and _is_plain_number(frame_types.pop())
        if not blocks:
            return cls(frame.columns, _public_signature(frame), numeric, plain, whole, one_dtype, objects, None, False)
        return cls(frame.columns, _block_signature(frame), numeric, plain, whole, one_dtype, objects,
                   _block_holding(frame, positions), True)

    def fits(self, frame: pd.DataFrame) -> bool:
        """Whether `frame` has the columns and dtypes this layout was worked out for."""
        signature = _block_signature(frame) if self.blocks else _public_signature(frame)
        return frame.columns.equals(self.columns) and signature == self.dtypes

    def numbers(self, frame: pd.DataFrame, prepare: Callable[[np.ndarray, int], None]) -> np.ndarray:
        """The numeric columns of a frame of this layout as a new float32 (rows, columns) array, missing values
        NaN, numbers too large for float32 inf; each block of rows is handed to prepare(block, first row), which
        changes it in place, as soon as it is converted (one pass over the values while they are in the cache,
        not one pass over the whole array per step)."""
        values, picked = self._values(frame)
        numbers = np.empty((len(values), values.shape[1] if picked is None else len(picked)), dtype=np.float32)
        step = max(1, BLOCK_BYTES // max(numbers.itemsize * numbers.shape[1], 1))
        # float32 holds every integer's magnitude: only real numbers can overflow (errstate costs 4 us a call)
        with contextlib.nullcontext() if self.whole_numbers else np.errstate(over="ignore"):
            for start in range(0, len(numbers), step):
                block, taken = numbers[start:start + step], values[start:start + step]
                if picked is not None:
                    taken = np.take(taken, picked, axis=1)  # row-major, unlike taken[:, picked]
                np.copyto(block, taken, casting="unsafe")  # converted and laid out in one pass
                prepare(block, start)
        return numbers

    def _values(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """The frame's numbers as one array, without a copy where pandas holds them so, and the positions of
        the numeric columns in it when they are still to be picked (None: they are its columns, in order)."""
        if self.block is not None:  # a view of that block: no frame of the numeric columns made (100 us and more)
            return frame._mgr.blocks[self.block].values.T, None
        if self.one_dtype:  # one array of the whole frame (often a transposed view), its columns picked by numpy
            values = frame.to_numpy(copy=False)
            if isinstance(self.numeric, slice):
                return values[:, self.numeric], None
            return values, self.numeric  # None, or the positions numpy picks from each block of rows
        columns = frame if self.numeric is None else frame.iloc[:, self.numeric]
        values = columns.to_numpy(copy=False)
        if not _is_plain_number(values.dtype):  # nullable dtypes (pd.NA): pandas' own conversion
            values = columns.to_numpy(dtype=np.float32, na_value=np.nan)
        return values, None
