"""A request's rows -> the network's input rows, every bad value a RequestError naming its field.

Dataset bundles take JSON rows of column values. Image bundles take rows carrying an image: "image" (base64 bytes,
a data: URL too) or "uri" (or the model's own image column name): an http(s) URL, fetched by the service, or a
local path, read only when it resolves (symbolic links and '..' followed) inside the service's allow_dir.
"""
from __future__ import annotations

import base64
import binascii
import math
import operator
import os
import urllib.parse
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from deepwater.data.images import decode_image, fetch, file_url_to_path, open_regular_file
from deepwater.data.inputs import ImageInputs
from deepwater.deploy.inference import Scorer
from deepwater.errors import DeepWaterError
from deepwater.serving.config import ServeConfig

IMAGE_KEY = "image"
URI_KEY = "uri"
_NUMBER = (int, float)
_FLOAT_BITS = 1000  # integers longer than this overflow a float64
_PLAIN_CELLS = {int, float, type(None)}  # numeric cells checked as a whole array (a bool is looked at alone)
_SHOWN = 200  # characters of a request's value quoted in a message


class RequestError(Exception):
    """A request the service refuses: the HTTP status, the field at fault ('rows[3].x1') and why."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.status, self.field, self.message = status, field, message


def shown(value: object) -> str:
    """A request's value as a message quotes it: a string's or a number's repr (at most _SHOWN characters), an
    array or an object by its kind alone (never its repr, however deep or long)."""
    if isinstance(value, (list, dict)):
        return "a JSON array" if isinstance(value, list) else "a JSON object"
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN - 3]}..."


def check_rows(rows: object, max_rows: int) -> list[dict[str, Any]]:
    """`rows` itself when it is a non-empty list of at most `max_rows` JSON objects."""
    if not isinstance(rows, list) or not rows:
        raise RequestError(422, "rows", 'must be a non-empty list of objects, e.g. {"rows": [{"x1": 1.5}]}.')
    if len(rows) > max_rows:
        raise RequestError(413, "rows", f"{len(rows):,} rows are more than the {max_rows:,} one request may carry; "
                                        "split them over several requests.")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RequestError(422, f"rows[{i}]", f"must be an object of column values, got {type(row).__name__}.")
    return rows


class RowEncoder:
    """Turns requests' rows (or uploaded image files) into the scorer's network input."""

    def __init__(self, scorer: Scorer, config: ServeConfig) -> None:
        self.scorer, self.config = scorer, config
        self.images = isinstance(scorer.inputs, ImageInputs)

    @property
    def uri_keys(self) -> tuple[str, ...]:
        """The keys an image row may name its URI by: 'uri' and the model's image column."""
        return tuple(dict.fromkeys((URI_KEY, self.scorer.inputs.column))) if self.images else ()

    def encode_rows(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """The network input of checked JSON rows."""
        if self.images:
            images = [self._image_bytes(i, row) for i, row in enumerate(rows)]
            return self.encode_images([data for data, _ in images], [field for _, field in images])
        return self._encode_dataset(rows)

    def encode_images(self, images: Sequence[bytes], fields: Sequence[str]) -> np.ndarray:
        """The network input of encoded images (PNG, JPEG, ... bytes); `fields` name each in errors."""
        if not self.images:
            raise RequestError(422, "images", "this model scores columns of values, not images; send "
                                              '{"rows": [{column: value, ...}]} to /predict.')
        shape = self.scorer.inputs.shape
        pixels = []
        for data, field in zip(images, fields):
            try:
                pixels.append(decode_image(data, shape, self.config.max_image_pixels))
            except ValueError as error:
                raise RequestError(422, field, f"{error}; send a PNG, JPEG, BMP, GIF, TIFF or WebP image.") from None
        return self.scorer.encode_images(np.stack(pixels))

    # --- datasets ---------------------------------------------------------------------------
    def _encode_dataset(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """The network input of a dataset model's rows, read straight into column arrays. The numeric cells are
        checked as a whole (every one an int, a float or null, and finite); where that fails, and for the
        categorical cells, each cell is checked and the first bad one named."""
        encoder = self.scorer.inputs.encoder
        numbers = self._plain_numbers(rows)
        if numbers is None:
            self._check_cells(rows, encoder.columns)
            with np.errstate(over="ignore"):  # beyond float32: inf, whose row scores NaN (as predict() does)
                numbers = np.array([[row[name] for name in self._numeric_names] for row in rows],
                                   dtype=np.float64).astype(np.float32)
        elif encoder.categorical:
            self._check_cells(rows, [c.name for c in encoder.categorical])
        categories = [pd.Series([row[c.name] for row in rows], dtype=object) for c in encoder.categorical]
        try:
            return self.scorer.encode_columns(numbers if encoder.numeric else None, categories)
        except DeepWaterError as error:  # checked above; kept so that nothing escapes as a server error
            raise RequestError(422, "rows", str(error)) from None

    @cached_property
    def _numeric_names(self) -> list[str]:
        return [c.name for c in self.scorer.inputs.encoder.numeric]

    @cached_property
    def _numeric_cells(self) -> Callable[[dict[str, Any]], tuple]:
        """A row's numeric values as a tuple, in the encoder's order (KeyError when one is absent)."""
        names = self._numeric_names
        return operator.itemgetter(*names) if len(names) > 1 else lambda row: tuple(row[name] for name in names)

    @cached_property
    def _numeric_set(self) -> set[str]:
        return set(self._numeric_names)

    def _plain_numbers(self, rows: list[dict[str, Any]]) -> np.ndarray | None:
        """The numeric cells as a float32 (rows, columns) array, null NaN, when every one is present and an int, a
        float or null that float32 holds; else None (the cells are then checked one by one: a larger number may
        still be allowed, and becomes inf)."""
        try:
            cells = [self._numeric_cells(row) for row in rows]
        except KeyError:
            return None
        types: set[type] = set()
        for values in cells:
            types.update(map(type, values))
        if not types <= _PLAIN_CELLS:
            return None
        try:
            with np.errstate(over="ignore"):
                numbers = np.array(cells, dtype=np.float32).reshape(len(rows), len(self._numeric_names))
        except OverflowError:  # an integer beyond a float64
            return None
        return None if np.isinf(numbers).any() else numbers

    def _check_cells(self, rows: list[dict[str, Any]], columns: Sequence[str]) -> None:
        """A RequestError naming the first cell of `columns`, row by row, that is missing or of a kind the model
        does not take."""
        numeric = self._numeric_set
        for i, row in enumerate(rows):
            for name in columns:
                if name not in row:
                    raise RequestError(422, f"rows[{i}].{name}", f"missing: the model takes the columns "
                                                                 f"{self.scorer.inputs.encoder.columns[:20]} "
                                                                 "(null for a missing value).")
                value = row[name]
                if value is None:
                    continue
                if name in numeric and (isinstance(value, bool) or not isinstance(value, _NUMBER)):
                    raise RequestError(422, f"rows[{i}].{name}", f"{shown(value)} is not a number: the model "
                                                                 "takes a number here (null when missing).")
                if (isinstance(value, float) and math.isinf(value)) or \
                        (isinstance(value, int) and value.bit_length() > _FLOAT_BITS):  # 1e400 reads as inf
                    raise RequestError(422, f"rows[{i}].{name}", "is a number too large for a float; send a finite "
                                                                 "number (null for a missing value).")
                if not isinstance(value, (str, *_NUMBER)):
                    raise RequestError(422, f"rows[{i}].{name}", f"{type(value).__name__} values are not allowed; "
                                                                 "send a single value (a level's name).")

    # --- images -----------------------------------------------------------------------------
    def _image_bytes(self, i: int, row: dict[str, Any]) -> tuple[bytes, str]:
        """The image file's bytes a row carries, and the field that carries them."""
        given = [key for key in (IMAGE_KEY, *self.uri_keys) if row.get(key) is not None]
        if len(given) != 1:
            raise RequestError(422, f"rows[{i}]", f"give exactly one of {[IMAGE_KEY, *self.uri_keys]} (the image as "
                                                  f"base64, or its http(s) URL or path), got {given or 'none'}.")
        key = given[0]
        value, field = row[key], f"rows[{i}].{key}"
        if not isinstance(value, str):
            raise RequestError(422, field, f"must be a string, got {type(value).__name__}.")
        return (self._decode_base64(value, field) if key == IMAGE_KEY else self._read_uri(value, field)), field

    @staticmethod
    def _decode_base64(text: str, field: str) -> bytes:
        if text.startswith("data:") and "," in text:
            text = text.split(",", 1)[1]  # a data URL: data:image/png;base64,....
        try:
            return base64.b64decode("".join(text.split()), validate=True)  # line breaks allowed
        except (binascii.Error, ValueError):
            raise RequestError(422, field, "is not valid base64; send the image file's bytes base64-encoded.") \
                from None

    def _read_uri(self, uri: str, field: str) -> bytes:
        scheme = urllib.parse.urlsplit(uri).scheme.lower()
        if scheme in ("http", "https"):
            return self._fetch(uri, field)
        if scheme == "file":
            return self._read_local(file_url_to_path(uri), field, uri)
        if scheme and len(scheme) > 1:  # one letter: a Windows drive
            raise RequestError(422, field, f"scheme {shown(scheme)} is not served; give an http(s) URL, a path or the "
                                           "image as base64 in 'image'.")
        return self._read_local(uri, field)

    def _read_local(self, path: str, field: str, uri: str | None = None) -> bytes:
        """The bytes of the regular file `path` under allow_dir; messages name it as the request did (`uri`)."""
        given = shown(path if uri is None else uri)
        root = self.config.allow_dir
        if root is None:
            raise RequestError(403, field, "local paths are refused: this service reads no file of its own machine "
                                           "(start it with --allow-dir DIR to serve the images under DIR), or send "
                                           "the image as base64 in 'image'.")
        real = os.path.realpath(os.path.join(root, path))  # symbolic links and '..' resolved before the check
        if os.path.commonpath([root, real]) != root:
            raise RequestError(403, field, f"{given} is outside the folder this service may read ({root!r}).")
        try:
            with open_regular_file(real) as stream:  # a FIFO, a folder or a device is refused, never opened
                return self._bounded(stream.read(self.config.max_body_bytes + 1), field)
        except ValueError as error:
            raise RequestError(422, field, f"cannot read {given}: {error}; name an image file, or send the image "
                                           "as base64 in 'image'.") from None
        except OSError as error:
            raise RequestError(422, field, f"cannot read {given}: {error.strerror or type(error).__name__}.") \
                from None

    def _fetch(self, url: str, field: str) -> bytes:
        try:
            return self._bounded(fetch(url, self.config.http_timeout, self.config.max_body_bytes + 1), field)
        except ValueError as error:  # HTTP errors, timeouts and network errors, with their reason
            raise RequestError(422, field, f"cannot fetch {shown(url)}: {error}.") from None

    def _bounded(self, data: bytes, field: str) -> bytes:
        if len(data) > self.config.max_body_bytes:
            raise RequestError(413, field, f"the image is larger than {self.config.max_body_mb:g} MB.")
        return data
