"""Model inputs: how a frame's predictor columns become a Source of batches for the network."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .design import DatasetEncoder
from .errors import FrameError
from .images import ImageReader, ImageShape
from .sources import ArraySource, ImageSource


@dataclass
class DatasetInputs:
    """Numeric and categorical columns through a fitted DatasetEncoder."""

    encoder: DatasetEncoder

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.encoder.width,)

    def source(self, frame: pd.DataFrame, y: np.ndarray | None = None, w: np.ndarray | None = None) -> ArraySource:
        return ArraySource(self.encoder.transform(frame), y, w)

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class ImageInputs:
    """A column of image URIs, decoded to `shape`, as (pixels - mean_image) * scale.

    mean_image is a (C, H, W) mean image, a per-channel (C, 1, 1) offset or None; scale is 1/255 unless
    a pretrained model asks for its own (a number or a per-channel (C, 1, 1) array).
    """

    column: str
    shape: ImageShape
    mean_image: np.ndarray | None
    reader: ImageReader
    scale: float | np.ndarray = 1.0 / 255.0

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.shape.channels, self.shape.height, self.shape.width)

    def source(self, frame: pd.DataFrame, y: np.ndarray | None = None, w: np.ndarray | None = None) -> ImageSource:
        if self.column not in frame.columns:
            raise FrameError(f"the frame has no image column {self.column!r}, which the model was trained on; add it.")
        return ImageSource(frame[self.column].tolist(), self.reader, self.mean_image, y, w, self.scale)

    def close(self) -> None:
        self.reader.close()
