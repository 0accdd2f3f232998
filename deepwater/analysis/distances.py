"""Distances between the rows of two frames, and nearest-neighbour search, as H2O's distance().

`distance(X, Y, measure)` gives the N x M matrix of a measure between every row of X and every row
of Y; `nearest(X, Y, k, measure)` gives each row of X its k best rows of Y without building that
matrix. The measures are the Deep Water booklet's:

    l1         sum |x - y|                        (a distance: smaller is closer)
    l2         sqrt(sum (x - y)^2), Euclidean     (a distance)
    cosine     x.y / (|x| |y|)                    (a SIMILARITY, as H2O returns it: larger is closer)
    cosine_sq  (x.y)^2 / (|x|^2 |y|^2)            (a similarity)

Everything is computed in the inputs' precision unless `dtype=` says otherwise: float32 when both
inputs are float32 (deep features are), else float64; the result has that dtype. l2, cosine and
cosine_sq run as matrix products over row blocks, at BLAS speed in bounded memory: l2 as
|x|^2 + |y|^2 - 2 x.y on rows centred on Y's mean, cosine as products of unit rows. Norms are
accumulated in float64 whatever the dtype, and the l2 pairs whose distance is small against their
norms (near-duplicates, where the subtraction cancels) are re-computed from their differences in
float64, so float32 results stay within 1e-4 relative of float64 ones (cosines within 1e-6 absolute).
l1 has no matrix-product form; it runs through a compiled kernel (deepwater.runtime.l1_kernels).
A row of zeros has no direction: its cosine similarities are NaN (as H2O's distance() gives them), with a
warning that counts such rows. Two DataFrames are compared column by column by name: Y's columns are taken in
X's order, and names that differ are a FrameError naming them.

Values whose squares (or, for l1, sums) would overflow the precision computed in are scaled by a power of
two first (exactly): one factor for both operands for l1 and l2, scaled back on the results, one per row
for the cosines, which do not depend on a row's length. Only data that large pays for this: each operand's
largest |value| is checked once. A distance that does not fit the result's dtype is a FrameError.
A result larger than the memory available is refused before anything is allocated (use out= or nearest()).
"""
from __future__ import annotations

import os
import uuid
import warnings
from dataclasses import dataclass
from typing import Any, Union

import numpy as np
import pandas as pd

from deepwater.errors import FrameError, ParameterError, warn_user
from deepwater.runtime.distance_engines import PANEL, engine_for
from deepwater.runtime.memory import available_memory
from deepwater.specs import SIMILARITIES

MEASURES = ("l1", "l2", "cosine", "cosine_sq")
DTYPES = {"float32": np.float32, "float64": np.float64}
BLOCK_BYTES = 64 * 2**20  # bytes of results one block may hold
Y_BLOCK_ROWS = 8192  # rows of Y nearest() scores at a time, keeping a running best-k between blocks
CANDIDATE_SLACK = 16  # extra candidates nearest() re-scores exactly, to absorb rounding near the k-th

Data = Union[pd.DataFrame, np.ndarray]


# --------------------------------------------------------------------------- inputs

@dataclass
class _Operand:
    """A checked input: finite float32 or float64 values (C order) and the row labels."""

    values: np.ndarray
    labels: pd.Index


def _operand(data: Any, name: str) -> _Operand:
    """The rows of `data` (a DataFrame or a 2-D numeric array) as a checked _Operand."""
    if isinstance(data, pd.DataFrame):
        values, labels = _frame_values(data, name), data.index
    elif isinstance(data, (pd.Series, np.ndarray, list, tuple)):
        values = _array_values(np.asarray(data), name)
        labels = pd.RangeIndex(len(values))
    else:
        raise FrameError(f"{name} must be a pandas DataFrame or a 2-D numpy array, got {type(data).__name__}; "
                         f"convert it with pd.DataFrame({name}) or np.asarray({name}).")
    finite = np.isfinite(values).all(axis=1)
    if not finite.all():
        bad = labels[~finite]
        shown = ", ".join(map(repr, bad[:5])) + (", ..." if len(bad) > 5 else "")
        raise FrameError(f"{name} has missing (NaN) or infinite values in {len(bad)} row(s): {shown}; "
                         f"drop those rows (e.g. {name}.dropna()) or fill them before computing distances.")
    return _Operand(np.ascontiguousarray(values), labels)


def _frame_values(frame: pd.DataFrame, name: str) -> np.ndarray:
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise FrameError(f"{name} is empty ({frame.shape[0]} rows, {frame.shape[1]} columns); "
                         "give it at least one row and one column.")
    dtypes = list(frame.dtypes)
    complex_columns = [str(c) for c, t in zip(frame.columns, dtypes) if pd.api.types.is_complex_dtype(t)]
    if complex_columns:
        shown = ", ".join(map(repr, complex_columns[:10])) + (", ..." if len(complex_columns) > 10 else "")
        raise FrameError(f"{name} has {len(complex_columns)} complex-valued column(s): {shown}; distances need real "
                         f"numbers. Split each into its real and imaginary parts ({name}[c].to_numpy().real and .imag) "
                         "or take its magnitude (abs), then compute distances.")
    bad = [str(c) for c, t in zip(frame.columns, dtypes) if not pd.api.types.is_numeric_dtype(t)]
    if bad:
        shown = ", ".join(map(repr, bad[:10])) + (", ..." if len(bad) > 10 else "")
        raise FrameError(f"{name} has {len(bad)} non-numeric column(s): {shown}; distances need numbers. "
                         f"Drop them ({name}.drop(columns=[...])), or convert them with pd.to_numeric.")
    dtype = np.float32 if all(t == np.float32 for t in dtypes) else np.float64
    return frame.to_numpy(dtype=dtype, na_value=np.nan)


def _array_values(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim != 2:
        raise FrameError(f"{name} must be 2-D (rows x features), got an array of shape {array.shape}; "
                         "reshape it, e.g. array.reshape(1, -1) for one row.")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise FrameError(f"{name} is empty (shape {array.shape}); give it at least one row and one column.")
    if array.dtype.kind == "c":
        raise FrameError(f"{name} has complex values (dtype {array.dtype}, columns 0..{array.shape[1] - 1}); "
                         "distances need real numbers. Split them into real and imaginary columns "
                         f"(np.hstack([{name}.real, {name}.imag])) or take their magnitude (np.abs({name})).")
    if array.dtype.kind not in "biuf":
        raise FrameError(f"{name} has dtype {array.dtype}, which is not numeric; "
                         f"convert it, e.g. np.asarray({name}, dtype=float).")
    return array if array.dtype in (np.float32, np.float64) else array.astype(np.float64)


def _pair(x: Any, y: Any) -> tuple[_Operand, _Operand]:
    xs, ys = _operand(x, "X"), _operand(y, "Y")
    if xs.values.shape[1] != ys.values.shape[1]:
        raise FrameError(f"X has {xs.values.shape[1]} columns but Y has {ys.values.shape[1]}; distances compare "
                         "rows feature by feature, so give both the same columns (e.g. Y[X.columns]).")
    if isinstance(x, pd.DataFrame) and isinstance(y, pd.DataFrame):
        ys = _in_x_order(x.columns, y.columns, ys)
    return xs, ys


def _in_x_order(x_columns: pd.Index, y_columns: pd.Index, ys: _Operand) -> _Operand:
    """Y's values with its columns in X's order (frames are compared by column name); a FrameError naming the
    columns where the names differ."""
    if x_columns.equals(y_columns):
        return ys
    only_x = [c for c in x_columns if c not in y_columns]
    only_y = [c for c in y_columns if c not in x_columns]
    if only_x or only_y or x_columns.has_duplicates or y_columns.has_duplicates:
        differ = f"only in X: {only_x[:10]}; only in Y: {only_y[:10]}" if only_x or only_y else \
            "repeated names in another order"
        raise FrameError(f"X and Y have different columns ({differ}); distances compare rows feature by feature, "
                         "so give both the same columns: Y[X.columns] where Y holds X's, or "
                         "Y.set_axis(X.columns, axis=1) where they are the same features under other names.")
    return _Operand(np.ascontiguousarray(ys.values[:, y_columns.get_indexer(x_columns)]), ys.labels)


def _warn_zero_rows(xs: _Operand, ys: _Operand, measure: str) -> None:
    """Warn where a cosine measure meets rows of zeros: they have no direction, so their similarities are NaN."""
    if measure not in SIMILARITIES:
        return
    x_zeros, y_zeros = (len(o.values) - int(np.count_nonzero(o.values.any(axis=1))) for o in (xs, ys))
    if x_zeros or y_zeros:
        warn_user(f"{x_zeros} row(s) of X and {y_zeros} of Y are all zeros: a row of zeros has no direction, so its "
                  f"{measure} similarities are NaN (as H2O's distance() gives them). Drop those rows, or use "
                  "measure='l2' or 'l1', which measure them.")


def _check_measure(measure: Any) -> str:
    if measure not in MEASURES:
        raise ParameterError(f"measure={measure!r} is not a known measure; use one of {', '.join(map(repr, MEASURES))}.")
    return measure


def _check_block_rows(block_rows: Any) -> int | None:
    if block_rows is None:
        return None
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)) or block_rows < 1:
        raise ParameterError(f"block_rows={block_rows!r} must be a whole number >= 1 "
                             "(rows of X per block), or None to size blocks automatically.")
    return int(block_rows)


def _check_out(out: Any) -> str | None:
    if out is None:
        return None
    if not isinstance(out, (str, os.PathLike)):
        raise ParameterError(f"out={out!r} must be a path ending in '.npy', or None for an in-memory DataFrame.")
    path = os.path.abspath(os.fspath(out))
    if not path.endswith(".npy"):
        raise ParameterError(f"out={os.fspath(out)!r} must end in '.npy' (a numpy memory map is written there).")
    if not os.path.isdir(os.path.dirname(path)):
        raise ParameterError(f"out={os.fspath(out)!r}: the folder {os.path.dirname(path)!r} does not exist; "
                             "create it first.")
    return path


def _check_dtype(dtype: Any) -> type | None:
    """None (the inputs' precision), or np.float32 / np.float64 from a name or a numpy dtype."""
    if dtype is None:
        return None
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ParameterError(f"dtype={dtype!r} is not a precision distances are computed in; use None (the inputs' "
                             "precision: float32 when both inputs are float32, else float64), 'float32' or 'float64'.")
    return DTYPES[name]


def _compute_dtype(xs: _Operand, ys: _Operand, dtype: type | None) -> type:
    """The dtype asked for, else the inputs' precision: float32 when both are float32, else float64."""
    if dtype is not None:
        return dtype
    return np.float32 if xs.values.dtype == np.float32 and ys.values.dtype == np.float32 else np.float64


# --------------------------------------------------------------------------- magnitudes and memory

@dataclass
class _Scale:
    """How X and Y were scaled: l1 and l2 results are multiplied back by 2**exponent."""

    exponent: int = 0
    largest: float = 0.0  # the largest |value| of X and Y as given


def _largest(values: np.ndarray) -> float:
    """max |value|, without an array of absolute values."""
    return float(max(values.max(), -values.min()))


def _limit(measure: str, dtype: type, width: int) -> float:
    """The largest |value| whose sums (l1) or products (l2, cosines) over `width` features stay finite in `dtype`."""
    big = float(np.finfo(dtype).max)
    return big / (4.0 * width) if measure == "l1" else float(np.sqrt(big / (16.0 * width)))


def _scaled(xs: _Operand, ys: _Operand, measure: str, dtype: type) -> tuple[_Operand, _Operand, _Scale]:
    """X and Y as given when no value is too large for `measure` in `dtype` (one max |value| per operand); else
    scaled exactly by powers of two: by one factor for l1 and l2 (their results scale back), by one per row for
    the cosines (which ignore a row's length)."""
    largest = max(_largest(xs.values), _largest(ys.values))
    if largest <= _limit(measure, dtype, xs.values.shape[1]):
        return xs, ys, _Scale(0, largest)
    if measure in SIMILARITIES:
        return _Operand(_rows_scaled(xs.values), xs.labels), _Operand(_rows_scaled(ys.values), ys.labels), \
            _Scale(0, largest)
    exponent = int(np.frexp(largest)[1])  # the largest |value| becomes one in [0.5, 1)
    return (_Operand(np.ldexp(xs.values, -exponent), xs.labels), _Operand(np.ldexp(ys.values, -exponent), ys.labels),
            _Scale(exponent, largest))


def _rows_scaled(values: np.ndarray) -> np.ndarray:
    """Each row times the power of two that brings its largest |value| into [0.5, 1) (rows of zeros stay zeros)."""
    largest = np.maximum(values.max(axis=1), -values.min(axis=1))
    return np.ldexp(values, -np.frexp(largest)[1][:, None])


def _unscale(results: np.ndarray, scale: _Scale, measure: str) -> None:
    """Multiply scaled l1 / l2 results back by 2**exponent in place; a FrameError where they overflow their dtype."""
    if scale.exponent == 0:
        return
    with np.errstate(over="ignore"):
        np.ldexp(results, scale.exponent, out=results)
    if np.isinf(results).any():
        dtype = results.dtype
        fix = ("compute in float64 (dtype='float64')" if dtype == np.float32 else
               "divide X and Y by one common factor (e.g. X / 1e300, Y / 1e300) and multiply the distances back")
        raise FrameError(f"X and Y hold values up to {scale.largest:.3g}: some {measure} distances between them exceed "
                         f"the largest {dtype.name} ({float(np.finfo(dtype).max):.3g}); {fix}.")


def _check_fits(n: int, m: int, dtype: type) -> None:
    """A FrameError, before anything is allocated, where an n x m matrix of `dtype` exceeds the memory available."""
    needed = n * m * np.dtype(dtype).itemsize
    available = available_memory()
    if available is not None and needed > available:
        raise FrameError(f"the {n:,} x {m:,} distance matrix of X and Y needs {needed:,} bytes "
                         f"({needed / 2**30:,.1f} GiB of {np.dtype(dtype).name}), more than the {available / 2**30:,.1f} "
                         "GiB of memory available; write it to disk block by block with out='d.npy' (a memory map), "
                         "or ask nearest(X, Y, k) for each row's k best rows of Y without the full matrix.")


# --------------------------------------------------------------------------- distance

def distance(X: Data, Y: Data, measure: str = "l2", *, block_rows: int | None = None,
             device: str | None = None, out: str | os.PathLike | None = None,
             dtype: str | type | None = None) -> pd.DataFrame | np.memmap:
    """The measure between every row of X (N x d) and every row of Y (M x d), as H2O's distance().

    Returns an N x M DataFrame (index: X's row labels, columns: Y's row labels; 0..n-1 for
    arrays). `measure`: 'l1', 'l2' (distances) or 'cosine', 'cosine_sq' (similarities; see the module
    docstring). `dtype`: the precision computed in and returned; None (default) for the inputs'
    (float32 when both are float32, else float64), or 'float32' / 'float64'. Rows are processed
    `block_rows` of X at a time (default: about 64 MB of results per block; on the CPU the block size
    never changes a value). `device`: None or 'cpu' computes with numpy, 'cuda:N' with torch on that GPU.
    `out='result.npy'` writes the matrix block by block to a .npy memory map (written to a temporary
    file in the same folder and renamed when complete) and returns it, opened read-only, instead of
    a DataFrame: for results larger than memory.

    >>> distance(features_a, features_b, "cosine")                       # doctest: +SKIP
    """
    measure = _check_measure(measure)
    block_rows = _check_block_rows(block_rows)
    path = _check_out(out)
    dtype = _check_dtype(dtype)
    xs, ys = _pair(X, Y)
    _warn_zero_rows(xs, ys, measure)
    dtype = _compute_dtype(xs, ys, dtype)
    n, m = len(xs.values), len(ys.values)
    if path is None:
        _check_fits(n, m, dtype)
    engine = engine_for(device, min(PANEL, n))
    xs, ys, scale = _scaled(xs, ys, measure, dtype)
    rows = block_rows or min(n, max(PANEL, BLOCK_BYTES // (np.dtype(dtype).itemsize * m) // PANEL * PANEL))
    if path is None:
        result = np.empty((n, m), dtype=dtype)
        _fill(engine, xs, ys, measure, rows, result, scale)
        return pd.DataFrame(result, index=xs.labels, columns=ys.labels, copy=False)
    return _fill_file(engine, xs, ys, measure, rows, path, dtype, scale)


def _fill(engine, xs: _Operand, ys: _Operand, measure: str, rows: int, result: np.ndarray,
          scale: _Scale | None = None) -> None:
    """Write the full N x M matrix into `result` (in its dtype), one block of X rows at a time; `scale`: how X and Y
    were scaled (see _scaled), so that each block is scaled back."""
    dtype = result.dtype.type
    shift = ys.values.mean(axis=0, dtype=np.float64) if measure == "l2" else None
    y = engine.prepare(ys.values, measure, dtype, shift)
    for start in range(0, len(xs.values), rows):
        x = engine.prepare(xs.values[start:start + rows], measure, dtype, shift)
        engine.block(x, y, measure, result[start:start + rows])
        if scale is not None:
            _unscale(result[start:start + rows], scale, measure)


def _fill_file(engine, xs: _Operand, ys: _Operand, measure: str, rows: int, path: str, dtype: type,
               scale: _Scale) -> np.memmap:
    """Fill a .npy memory map at a temporary name beside `path`, then rename it into place."""
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.partial.npy")
    try:
        result = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype,
                                           shape=(len(xs.values), len(ys.values)))
        _fill(engine, xs, ys, measure, rows, result, scale)
        result.flush()
        del result
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return np.load(path, mmap_mode="r")


# --------------------------------------------------------------------------- nearest

def nearest(X: Data, Y: Data, k: int, measure: str = "l2", *, block_rows: int | None = None,
            device: str | None = None) -> pd.DataFrame:
    """The k best rows of Y for each row of X, best first, without building the N x M matrix.

    Best means the smallest distance for 'l1' and 'l2' and the largest similarity for 'cosine' and
    'cosine_sq'; equal values are ordered by position in Y (the earlier row first). A row whose
    similarities are NaN (all zeros) gets its neighbours in Y's order. Returns a wide DataFrame
    indexed like X with columns neighbour_1..neighbour_k (Y's row labels; 0..M-1 for arrays) then
    distance_1..distance_k (the measure's value: a similarity for the cosine measures). k larger
    than Y's rows warns and returns all of Y's rows. The values are re-computed exactly (float64,
    straight from the definitions) for the candidates, so near-duplicates rank and read exactly.

    >>> nearest(queries, catalogue, k=5, measure="cosine")              # doctest: +SKIP
    """
    measure = _check_measure(measure)
    block_rows = _check_block_rows(block_rows)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ParameterError(f"k={k!r} must be a whole number >= 1 (how many neighbours per row of X).")
    xs, ys = _pair(X, Y)
    _warn_zero_rows(xs, ys, measure)
    n, m = len(xs.values), len(ys.values)
    if k > m:
        warnings.warn(f"k={k} is larger than Y's {m} rows; returning all {m} rows of Y for each row of X.",
                      UserWarning, stacklevel=2)
    k = int(min(k, m))
    cols = min(m, Y_BLOCK_ROWS)
    rows = block_rows or max(1, min(n, 2**21 // cols))  # 16 MB of float64 scores per block
    engine = engine_for(device, rows)  # values are re-computed exactly: no need for one panel at every block size
    positions = np.empty((n, k), dtype=np.int64)
    values = np.empty((n, k), dtype=np.float64)
    dtype = _compute_dtype(xs, ys, None)
    xs, ys, scale = _scaled(xs, ys, measure, dtype)
    shift = ys.values.mean(axis=0, dtype=np.float64) if measure == "l2" else None
    y_blocks = [(j, engine.prepare(ys.values[j:j + cols], measure, dtype, shift)) for j in range(0, m, cols)]
    keep = min(m, k + CANDIDATE_SLACK)
    for start in range(0, n, rows):
        x_values = xs.values[start:start + rows]
        x = engine.prepare(x_values, measure, dtype, shift)
        best_keys = np.empty((len(x_values), 0))
        best_pos = np.empty((len(x_values), 0), dtype=np.int64)
        for j, y in y_blocks:
            block = np.empty((len(x_values), len(y.rows)), dtype=dtype)
            engine.block(x, y, measure, block)
            keys = _keys(block, measure)
            pos = np.broadcast_to(np.arange(j, j + len(y.rows)), keys.shape)
            best_keys, best_pos = _smallest(np.concatenate([best_keys, keys], axis=1),
                                            np.concatenate([best_pos, pos], axis=1), keep)
        best_pos = np.sort(best_pos, axis=1)  # _smallest breaks exact ties by column order: make it Y's order
        exact = _exact(x_values, ys.values, best_pos, measure)
        final_keys, final_pos = _smallest(_keys(exact, measure), best_pos, k)
        positions[start:start + rows] = final_pos
        values[start:start + rows] = _values(final_keys, measure)
    _unscale(values, scale, measure)
    return _neighbour_frame(xs.labels, ys.labels, positions, values)


def _keys(values: np.ndarray, measure: str) -> np.ndarray:
    """Values turned into sort keys where smaller is better; NaN sorts last."""
    keys = -values if measure in SIMILARITIES else values.copy()
    keys[np.isnan(keys)] = np.inf
    return keys


def _values(keys: np.ndarray, measure: str) -> np.ndarray:
    """Sort keys back to the measure's values (inverse of _keys)."""
    if measure not in SIMILARITIES:
        return keys
    values = -keys
    values[np.isinf(keys)] = np.nan
    return values


def _neighbour_frame(x_labels: pd.Index, y_labels: pd.Index, positions: np.ndarray,
                     values: np.ndarray) -> pd.DataFrame:
    """The wide result of nearest(): neighbour_1..k (Y labels) then distance_1..k."""
    k = positions.shape[1]
    columns: dict[str, Any] = {f"neighbour_{i + 1}": y_labels.take(positions[:, i]) for i in range(k)}
    columns.update({f"distance_{i + 1}": values[:, i] for i in range(k)})
    return pd.DataFrame({name: np.asarray(col) for name, col in columns.items()}, index=x_labels)


def _smallest(keys: np.ndarray, positions: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the `count` smallest keys ordered by (key, position), and their positions.

    Among equal keys, columns must already run in increasing position, so the earlier Y rows win a
    tie at the cut as well as in the ordering.
    """
    b, n = keys.shape
    if count < n:
        cut = np.partition(keys, count - 1, axis=1)[:, count - 1:count]
        below = keys < cut
        at = keys == cut
        take = below | (at & (np.cumsum(at, axis=1) <= count - below.sum(axis=1, keepdims=True)))
        columns = np.nonzero(take)[1].reshape(b, count)
        keys = np.take_along_axis(keys, columns, axis=1)
        positions = np.take_along_axis(positions, columns, axis=1)
    order = np.lexsort((positions, keys), axis=1)
    return np.take_along_axis(keys, order, axis=1), np.take_along_axis(positions, order, axis=1)


def _exact(x: np.ndarray, y: np.ndarray, candidates: np.ndarray, measure: str) -> np.ndarray:
    """The measure from its definition, in float64, between each row of x and its candidate rows of y.

    Plain element-wise products and numpy's pairwise sums: identical rows of y give identical values.
    """
    count, width = candidates.shape[1], x.shape[1]
    rows = max(1, (16 * 2**20) // (8 * max(1, count * width)))
    result = np.empty(candidates.shape, dtype=np.float64)
    for start in range(0, len(x), rows):
        xs = x[start:start + rows].astype(np.float64)
        ys = y[candidates[start:start + rows]].astype(np.float64)  # (rows, count, width)
        if measure in SIMILARITIES:
            dots = (ys * xs[:, None, :]).sum(axis=2)
            norms = np.sqrt((xs * xs).sum(axis=1))[:, None] * np.sqrt((ys * ys).sum(axis=2))
            with np.errstate(invalid="ignore", divide="ignore"):
                cos = np.clip(np.where(norms > 0, dots / norms, np.nan), -1.0, 1.0)
            result[start:start + rows] = cos * cos if measure == "cosine_sq" else cos
            continue
        ys -= xs[:, None, :]
        if measure == "l1":
            result[start:start + rows] = np.abs(ys).sum(axis=2)
        else:
            result[start:start + rows] = np.sqrt((ys * ys).sum(axis=2))
    return result
