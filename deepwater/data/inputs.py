"""Model inputs: how a frame's predictor columns become a Source of batches for the network."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from deepwater.data.encoders import DatasetEncoder
from deepwater.data.frames import check_plain_values
from deepwater.data.images import ImageReader, ImageShape
from deepwater.data.sources import ArraySource, ImageSource
from deepwater.errors import FrameError


@dataclass
class DatasetInputs:
    """Numeric and categorical columns through a fitted DatasetEncoder."""

    encoder: DatasetEncoder

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.encoder.width,)

    def source(self, frame: pd.DataFrame, y: np.ndarray | None = None, w: np.ndarray | None = None) -> ArraySource:
        """The rows of `frame` as a design matrix. A row holding inf (or a number beyond float32) is a FrameError
        where the rows are scored against a response `y` (training, validation, model_performance); without
        `y` (predict, deepfeatures) its outputs come back NaN."""
        return ArraySource(self._shaped(self.encoder.transform(frame, keep_infinite=y is None)), y, w)

    def encode_columns(self, numbers: np.ndarray | None, categories: Sequence[pd.Series]) -> np.ndarray:
        """The network's input for checked columns without a frame (DatasetEncoder.encode_columns): how the
        prediction service encodes the rows of a request."""
        return self._shaped(self.encoder.encode_columns(numbers, categories))

    def _shaped(self, x: np.ndarray) -> np.ndarray:
        """Design-matrix rows as the network takes them."""
        return x

    def feature_names(self) -> list[str]:
        """The name of each value the network takes, in order (H2O's coefficient names)."""
        return self.encoder.feature_names()

    def feature_columns(self) -> list[str]:
        """The frame column of each value the network takes."""
        return self.encoder.feature_columns()

    def unscale(self, values: np.ndarray) -> np.ndarray:
        """Network-input values (n, width), e.g. a reconstruction, on the frame's own scale."""
        return self.encoder.unscale(values)

    def close(self) -> None:
        """Nothing to release."""

    def to_record(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fitted encoder as JSON values (no arrays)."""
        return {"kind": "dataset", "encoder": asdict(self.encoder)}, {}


@dataclass
class PixelInputs(DatasetInputs):
    """Numeric columns that hold an image's pixels, for an image network on a dataset frame (Deep Water's
    booklet trains LeNet on MNIST's 784 pixel columns): each row, encoded, is the image in row-major order,
    channels first."""

    shape: ImageShape

    @classmethod
    def fit(cls, frame: pd.DataFrame, predictors: list[str], shape: ImageShape, standardize: bool) -> PixelInputs:
        """Inputs from `predictors`, which must be height x width x channels numeric columns."""
        encoder = DatasetEncoder.fit(frame, predictors, standardize, ignore_const_cols=False)
        values = shape.height * shape.width * shape.channels
        if encoder.categorical or encoder.width != values:
            numeric = len(encoder.numeric)
            raise FrameError(f"an image network on a dataset frame takes its numeric columns as the image, but "
                             f"{numeric} numeric column(s){' and categorical ones' if encoder.categorical else ''} "
                             f"cannot be image_shape=[{shape.height}, {shape.width}] with channels={shape.channels} "
                             f"({shape.height} x {shape.width} x {shape.channels} = {values} values); pass x with "
                             "exactly that many numeric columns, or the image_shape and channels they hold; for a dataset of "
                             "ordinary columns use network='mlp'.")
        return cls(encoder, shape)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.shape.channels, self.shape.height, self.shape.width)

    def _shaped(self, x: np.ndarray) -> np.ndarray:
        return x.reshape((len(x),) + self.input_shape)

    def to_record(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The encoder and the image shape as JSON values."""
        record, arrays = super().to_record()
        return {**record, "kind": "pixels", "shape": asdict(self.shape)}, arrays


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
        check_plain_values(frame, [self.column])
        return ImageSource(frame[self.column].tolist(), self.reader, self.mean_image, y, w, self.scale)

    def feature_names(self) -> list[str]:
        """The name of each value the network takes: '<column>.C<i>', pixels in channels-first row-major order."""
        return [f"{self.column}.C{i}" for i in range(1, int(np.prod(self.input_shape)) + 1)]

    def feature_columns(self) -> list[str]:
        """The frame column of each value the network takes: the image column, for every pixel."""
        return [self.column] * int(np.prod(self.input_shape))

    def unscale(self, values: np.ndarray) -> np.ndarray:
        """Network-input values (n, C*H*W), e.g. a reconstruction, as pixel values: values / scale + mean image."""
        pixels = np.asarray(values, dtype=np.float64).reshape((len(values),) + self.input_shape)
        pixels = pixels / np.asarray(self.scale, dtype=np.float64)
        if self.mean_image is not None:
            pixels = pixels + np.asarray(self.mean_image, dtype=np.float64)
        return pixels.reshape(len(values), -1)

    def close(self) -> None:
        self.reader.close()

    def to_record(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The column, shape and scale as JSON values; the mean image (and an array scale) as arrays."""
        arrays = {}
        if self.mean_image is not None:
            arrays["inputs/mean_image"] = np.asarray(self.mean_image, dtype=np.float32)
        scale = self.scale
        if isinstance(scale, np.ndarray):
            arrays["inputs/scale"], scale = np.asarray(scale, dtype=np.float32), None
        return {"kind": "image", "column": self.column, "shape": asdict(self.shape), "scale": scale}, arrays


def inputs_from_record(record: dict[str, Any], arrays: dict[str, np.ndarray],
                       params: dict[str, Any]) -> DatasetInputs | ImageInputs:
    """The inputs that to_record() described, with an image reader made from `params`."""
    shape = ImageShape(**record["shape"]) if "shape" in record else None
    if record["kind"] in ("dataset", "pixels"):
        encoder = DatasetEncoder.from_record(record["encoder"])
        return DatasetInputs(encoder) if shape is None else PixelInputs(encoder, shape)
    reader = image_reader(shape, params)
    scale = arrays["inputs/scale"] if record["scale"] is None else record["scale"]
    return ImageInputs(record["column"], shape, arrays.get("inputs/mean_image"), reader, scale)


# ImageReader's argument -> the parameter that sets it
READER_OPTIONS = {"cache_dir": "image_cache_dir", "cache_dir_mb": "image_cache_dir_mb",
                  "storage_options": "storage_options", "decode_processes": "image_decode_processes"}


def image_reader(shape: ImageShape, params: dict[str, Any]) -> ImageReader:
    """The image reader the estimator parameters `params` ask for: bad_images, the caches in memory and on disk,
    the object stores' storage_options (never saved: a loaded model's are None, the environment's credentials).
    A bundle's record holds bad_images and image_cache_mb only: the reader's defaults stand for the others."""
    return ImageReader(shape, bad_images=params["bad_images"], cache_mb=params["image_cache_mb"],
                       **{argument: params[name] for argument, name in READER_OPTIONS.items() if name in params})
