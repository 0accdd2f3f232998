"""The engines that compute blocks of deepwater.distance(): numpy on the CPU here, or a backend's on a GPU.

An engine (specs.DistanceEngine) prepares the rows of one operand for a measure and writes the measure between
two prepared blocks; analysis/distances.py splits the work into blocks and keeps the results.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from deepwater.errors import ParameterError
from deepwater.runtime import registry
from deepwater.runtime.l1_kernels import l1_block
from deepwater.specs import SIMILARITIES, DistanceEngine, Prepared

PANEL = 2048  # most rows of X per BLAS call (fewer make BLAS slower); see NumpyEngine
CLOSE = 2.0**-8  # l2 pairs with d^2 below this fraction of |x|^2 + |y|^2 are re-computed from differences


class NumpyEngine:
    """Blocks of distances with numpy: BLAS for the products, deepwater.analysis.l1_kernels for l1.

    Products run `panel` rows of X per BLAS call, a block's last call padded with zeros: BLAS rounds a row
    alike in calls of one shape, wherever the row sits in the call, so every block size gives the same bits
    (a block smaller than the panel pays for the padding).
    """

    name = "numpy"

    def __init__(self, panel: int = PANEL) -> None:
        self.panel = panel

    def prepare(self, values: np.ndarray, measure: str, dtype: type, shift: np.ndarray | None) -> Prepared:
        if measure == "l2":
            rows = values.astype(dtype, copy=False) - shift.astype(dtype)  # one dtype: numpy's fast loop
            return Prepared(rows, np.einsum("ij,ij->i", rows, rows, dtype=np.float64), values)
        if measure in SIMILARITIES:
            norms = np.sqrt(np.einsum("ij,ij->i", values, values, dtype=np.float64))
            zero = norms == 0
            scale = (1.0 / np.where(zero, 1.0, norms)).astype(dtype)
            return Prepared(values.astype(dtype, copy=False) * scale[:, None], zero)
        return Prepared(values.astype(dtype, copy=False))

    def block(self, x: Prepared, y: Prepared, measure: str, out: np.ndarray) -> None:
        """Write the measure between every row of x and every row of y into `out` (of the prepared dtype)."""
        if measure == "l1":
            l1_block(x.rows, y.rows, out)
            return
        if measure == "l2":
            self._product(x.rows, -2.0 * y.rows, out)  # exact: a power of two
            out += x.norms.astype(out.dtype)[:, None]
            out += y.norms.astype(out.dtype)[None, :]
            finish_l2(out, x.norms, y.norms, x.values, y.values)
            return
        self._product(x.rows, y.rows, out)
        if measure == "cosine_sq":  # the square of the product clipped to [-1, 1]
            np.square(out, out=out)
        else:  # clipped to [-1, 1] (np.clip takes over 3x as long as these two passes)
            np.maximum(out, -1.0, out=out)
        np.minimum(out, 1.0, out=out)
        _nan_where_zero(out, x.norms, y.norms)

    def _product(self, x: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
        """x @ y.T into `out`, in BLAS calls of exactly `panel` rows."""
        panel = self.panel
        for start in range(0, len(x), panel):
            rows = x[start:start + panel]
            if len(rows) < panel:
                padded = np.zeros((panel, x.shape[1]), dtype=x.dtype)
                padded[:len(rows)] = rows
                out[start:] = (padded @ y.T)[:len(rows)]
            else:
                np.matmul(rows, y.T, out=out[start:start + panel])


def finish_l2(squared: np.ndarray, x_norms: np.ndarray, y_norms: np.ndarray, x_values: np.ndarray,
              y_values: np.ndarray) -> None:
    """Turn |x|^2 + |y|^2 - 2 x.y (in place) into distances, re-computing from their differences in float64 the
    pairs where that sum cancels: d^2 below CLOSE (|x|^2 + max |y|^2), squared norms of the centred rows."""
    limit = CLOSE * (x_norms + y_norms.max())
    close = np.flatnonzero(squared.min(axis=1) < limit)  # one pass over the block; most rows have no such pair
    rows, cols = np.nonzero(squared[close] < limit[close, None])
    rows = close[rows]
    with np.errstate(invalid="ignore"):  # a negative sum (cancellation) is among the pairs re-computed below
        np.sqrt(squared, out=squared)
    step = max(1, 2**21 // x_values.shape[1])  # pairs per 16 MB of float64 differences
    for start in range(0, len(rows), step):
        diff = x_values[rows[start:start + step]].astype(np.float64) - y_values[cols[start:start + step]]
        squared[rows[start:start + step], cols[start:start + step]] = np.sqrt(np.einsum("ij,ij->i", diff, diff))


def _nan_where_zero(out: np.ndarray, x_zero: np.ndarray, y_zero: np.ndarray) -> None:
    if x_zero.any():
        out[x_zero] = np.nan
    if y_zero.any():
        out[:, y_zero] = np.nan


def engine_for(device: Any, panel: int) -> DistanceEngine:
    """numpy for device=None or 'cpu' (products over `panel` rows of X at a time); for 'cuda' or 'cuda:N', the
    engine of an installed backend that has one."""
    if device is None or device == "cpu":
        return NumpyEngine(panel)
    if not isinstance(device, str) or not (device == "cuda" or device.startswith("cuda:")):
        raise ParameterError(f"device={device!r} is not a device; use None or 'cpu' (numpy), or 'cuda:0' (torch on a GPU).")
    return registry.distance_engine(device)
