"""l1 (sum |x - y|) between every row of x and every row of y: the one measure with no matrix-product form.

Two kernels write the same block: a compiled one (numba, the `distances` extra) where numba is installed,
and numpy's broadcast differences over small tiles otherwise; both run on one thread per core, taking
small tasks of rows as they free up. Measured on 2 cores with 1,000 x 2,000 x 1,024
float32 rows (benchmarks/distance_vs_cdist.py has the full-size figures): numba 0.09 s, torch.cdist(p=1)
0.57 s, the numpy tiles 0.8 s, scipy's cdist 0.74 s. So numba is the kernel, numpy the fallback; torch's cdist
was not worth a third path. Neither kernel imports torch.
"""
from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np

TILE_BYTES = 2 * 2**20  # bytes of broadcast differences one numpy tile may hold (about an L2 cache)
TASK_ROWS = 32  # rows of x per compiled task: threads take tasks as they free up, so a busy core slows no one
Y_TILE = 64  # Y rows per pass of the compiled kernel (Y's tile stays in L2)


def kernel_name() -> str:
    """'numba' where the compiled kernel is available, else 'numpy'."""
    return "numpy" if _compiled() is None else "numba"


def l1_block(x: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    """Write sum |x_i - y_j| into out[i, j], in x's dtype (x, y: both float32 or both float64)."""
    compiled = _compiled()
    if compiled is None:
        _numpy_l1(x, y, out)
    elif not out.flags.c_contiguous:  # one compiled layout, so a pair sums alike in every block shape
        block = np.empty(out.shape, dtype=x.dtype)
        l1_block(x, y, block)
        out[...] = block
    else:
        x, y, out, zero = np.ascontiguousarray(x), np.ascontiguousarray(y), np.asarray(out), x.dtype.type(0)
        _over_rows(lambda start: compiled(x[start:start + TASK_ROWS], y, out[start:start + TASK_ROWS], zero),
                   range(0, len(x), TASK_ROWS))


@functools.lru_cache(maxsize=None)
def _compiled() -> Callable | None:
    """The numba kernel (compiled per dtype at its first call), or None where numba is not installed."""
    try:
        import numba
    except ImportError:
        return None

    def l1(x, y, out, zero):  # pragma: no cover - compiled by numba, so coverage cannot see it run
        # 4 rows of x against 2 rows of y per pass over the features: each value loaded serves 2 or 4 sums.
        # Past the last row the indices repeat it, so that every pair is summed by the same instructions
        # wherever it falls in a block (a repeated sum writes the same value twice).
        n, d = x.shape
        m = y.shape[0]
        for j0 in range(0, m, Y_TILE):
            for i in range(0, n, 4):
                a, b, c, e = i, min(i + 1, n - 1), min(i + 2, n - 1), min(i + 3, n - 1)
                for j in range(j0, min(m, j0 + Y_TILE), 2):
                    g = min(j + 1, m - 1)
                    aj = bj = cj = ej = ag = bg = cg = eg = zero
                    for k in range(d):
                        v, w = y[j, k], y[g, k]
                        p, q, r, u = x[a, k], x[b, k], x[c, k], x[e, k]
                        aj += abs(p - v)
                        bj += abs(q - v)
                        cj += abs(r - v)
                        ej += abs(u - v)
                        ag += abs(p - w)
                        bg += abs(q - w)
                        cg += abs(r - w)
                        eg += abs(u - w)
                    out[a, j], out[b, j], out[c, j], out[e, j] = aj, bj, cj, ej
                    out[a, g], out[b, g], out[c, g], out[e, g] = ag, bg, cg, eg

    options = {"fastmath": True, "nogil": True}  # nogil: the threads of _over_rows run it side by side
    try:
        return numba.njit(cache=True, **options)(l1)
    except RuntimeError:  # no writable cache folder: compile at every process start instead
        return numba.njit(**options)(l1)


def _numpy_l1(x: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    """The numpy form: |x - y| broadcast over tiles of (x rows, y rows, features)."""
    pairs = max(1, TILE_BYTES // (x.shape[1] * x.itemsize))  # (x, y) pairs per tile
    cols = max(1, min(len(y), int(pairs ** 0.5)))
    rows = max(1, pairs // cols)

    def tile_rows(start: int) -> None:
        xs = x[start:start + rows]
        buffer = np.empty((len(xs), cols, x.shape[1]), dtype=x.dtype)
        for j in range(0, len(y), cols):
            ys = y[j:j + cols]
            diff = buffer[:, :len(ys)]
            np.subtract(xs[:, None, :], ys[None, :, :], out=diff)
            np.abs(diff, out=diff)
            out[start:start + len(xs), j:j + len(ys)] = diff.sum(axis=2)

    _over_rows(tile_rows, range(0, len(x), rows))


def _over_rows(task: Callable[[int], None], starts: range) -> None:
    """task(start) for every start, spread over one thread per core (the work releases the interpreter)."""
    workers = max(1, os.cpu_count() or 1)
    if workers == 1 or len(starts) == 1:
        for start in starts:
            task(start)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(task, starts))
