"""A digest of a frame's names, types, values and index: the same frame gives the same digest, in any process."""
from __future__ import annotations

import hashlib

import pandas as pd


def frame_digest(frame: pd.DataFrame | None) -> str:
    """A digest of a frame's column names, types, values and index (None: '')."""
    if frame is None:
        return ""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame.index).to_numpy().tobytes())
    for name in frame.columns:
        column = frame[name]
        try:
            hashed = pd.util.hash_pandas_object(column, index=False)
        except TypeError:  # unhashable cells (lists): their text; training will refuse them anyway
            hashed = pd.util.hash_pandas_object(column.astype(str), index=False)
        digest.update(f"{name!r}:{column.dtype}".encode())
        digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()
