"""`frame.dw`: deepwater's distance() and nearest() as methods of any pandas DataFrame.

Importing deepwater registers the accessor:

>>> X.dw.distance(Y, "cosine")          # doctest: +SKIP
>>> X.dw.nearest(Y, k=5, measure="l2")  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deepwater.analysis.distances import distance, nearest


@pd.api.extensions.register_dataframe_accessor("dw")
class DeepWaterAccessor:
    """Methods under `frame.dw`; the frame is X, the rows being compared."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    def distance(self, other: pd.DataFrame | np.ndarray, measure: str = "l2", **options: Any) -> pd.DataFrame | np.memmap:
        """deepwater.distance(frame, other, measure, **options): the frame's rows against other's."""
        return distance(self._frame, other, measure, **options)

    def nearest(self, other: pd.DataFrame | np.ndarray, k: int, measure: str = "l2", **options: Any) -> pd.DataFrame:
        """deepwater.nearest(frame, other, k, measure, **options): each row's k best rows of other."""
        return nearest(self._frame, other, k, measure, **options)
