"""Scoring a model's exported bundle without the trainer: onnxruntime, numpy, pandas and pillow only.

>>> from deepwater import inference
>>> scorer = inference.load("bundles/mnist")        # the folder model.export() wrote    # doctest: +SKIP
>>> scorer.predict(frame)                            # as model.predict(frame)           # doctest: +SKIP
>>> scorer.predict_row({"x1": 0.5, "colour": "red"}) # one row in, one dict out          # doctest: +SKIP
>>> scorer.predict_array(x)                          # numeric rows of scorer.columns    # doctest: +SKIP
>>> scorer.predict_array(x, as_frame=False)          # the same, a dict per row          # doctest: +SKIP
>>> scorer.deepfeatures(frame, "fc1")                # a layer given to export(layers=)  # doctest: +SKIP

The bundle's checksums are checked before anything is read. Frames go through the same encoders as in the
estimator (the bundle holds the fitted DatasetEncoder, or the image shape, mean image and scale), so the
predictions are the model's own. Importing this module imports no deep learning framework.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepwater.analysis.deep_features import deep_features
from deepwater.backends.base import softmax
from deepwater.data.encoders import Response
from deepwater.data.frames import check_frame
from deepwater.data.inputs import DatasetInputs, ImageInputs, inputs_from_record
from deepwater.data.sources import ArraySource, image_input, map_batches
from deepwater.errors import DeviceError, ModelFileError, ParameterError, warn_user
from deepwater.runtime.onnx_sessions import has_cuda, run_rows, start_session
from deepwater.storage.saved_files import CHECKSUMS, FolderFiles, check_files
from deepwater.storage.saved_models import BUNDLE_JSON, is_saved_model

BUNDLE_FORMAT = "deepwater-onnx-bundle"
BUNDLE_VERSION = 1
MODEL_ONNX = "model.onnx"
ARRAYS_DIR = "arrays"  # the inputs' arrays (mean image, per-channel scale) as .npy files
_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}


def read_bundle(path: str | os.PathLike) -> tuple[dict[str, Any], Path]:
    """bundle.json of the bundle folder at `path`, and the folder, its checksums checked (ModelFileError)."""
    folder = Path(os.fspath(path))
    if is_saved_model(folder) and not (folder / BUNDLE_JSON).exists():
        raise ModelFileError(f"path={os.fspath(path)!r} is a saved model (deepwater.save_model), not a bundle: load "
                             "it with deepwater.load_model(path), and write its bundle with model.export(path).")
    if not (folder / CHECKSUMS).is_file() or not folder.is_dir():
        raise ModelFileError(f"path={os.fspath(path)!r} is not a deepwater bundle (a folder with {MODEL_ONNX}, "
                             f"{BUNDLE_JSON} and {CHECKSUMS}); pass the folder that model.export(path) wrote.")
    check_files(FolderFiles(folder), BUNDLE_JSON, "bundle", "export the model again")
    bundle = json.loads((folder / BUNDLE_JSON).read_text())
    if bundle.get("format") != BUNDLE_FORMAT:
        raise ModelFileError(f"{str(folder / BUNDLE_JSON)!r} is not the {BUNDLE_JSON} of a bundle written by "
                             "model.export(path); export the model again.")
    if bundle.get("format_version", 0) > BUNDLE_VERSION:
        raise ModelFileError(f"{str(folder / BUNDLE_JSON)!r} has format version {bundle['format_version']!r}, "
                             f"newer than this deepwater reads ({BUNDLE_VERSION}); upgrade deepwater to score it.")
    return bundle, folder


def load(path: str | os.PathLike, device: str = "auto", batch_size: int = 256, threads: int = 0) -> Scorer:
    """The Scorer of the bundle folder at `path` (written by model.export(path)).

    `device`: 'cpu', 'cuda:<i>' (onnxruntime's CUDAExecutionProvider, from onnxruntime-gpu), or 'auto': the
    first GPU when onnxruntime has the CUDA provider and it starts, else the CPU. Rows are scored
    `batch_size` at a time, with `threads` CPU threads (0: onnxruntime's default, one per core).
    """
    for name, value, least in (("batch_size", batch_size, 1), ("threads", threads, 0)):
        if not isinstance(value, int) or value < least:
            raise ParameterError(f"{name}={value!r} must be an integer >= {least}.")
    bundle, folder = read_bundle(path)
    return Scorer(folder, bundle, device, batch_size, threads)


class Scorer:
    """A bundle's network in an onnxruntime session, with the encoders that turn frames into its input."""

    def __init__(self, folder: Path, bundle: dict[str, Any], device: str, batch_size: int, threads: int) -> None:
        self.folder, self.bundle, self.batch_size = folder, bundle, batch_size
        self._graph = bundle["graph"]
        self._source = f"the bundle {str(folder)!r}"
        self._session, self.device = self._start(device, threads)
        value = self._session.get_inputs()[0]
        if value.type not in _NUMPY_TYPES:
            raise ModelFileError(f"{self._source}: the graph's input is a {value.type}; deepwater feeds float rows.")
        self._dtype = np.dtype(_NUMPY_TYPES[value.type])
        self._batch = value.shape[0] if isinstance(value.shape[0], int) else None  # None: any batch size
        arrays = {name: np.load(folder / file, allow_pickle=False) for name, file in bundle["arrays"].items()}
        self._inputs: DatasetInputs | ImageInputs = inputs_from_record(bundle["inputs"], arrays, bundle["reader"])
        self._response = Response(**bundle["response"])
        self._threshold = bundle.get("threshold", 0.5)  # two classes: the model's max-F1 threshold

    def _start(self, device: str, threads: int) -> tuple[Any, str]:
        """The onnxruntime session on `device` ('auto': the first GPU where one starts, else the CPU)."""
        model = str(self.folder / self._graph["file"])
        if device != "auto":
            return start_session(model, device, self._source, "pass device='cpu'", threads), device
        if has_cuda():
            try:
                return start_session(model, "cuda:0", self._source, "pass device='cpu'", threads), "cuda:0"
            except DeviceError as error:
                warn_user(f"{error} Scoring on the CPU.", UserWarning)
        return start_session(model, "cpu", self._source, "", threads), "cpu"

    # --- what deep_features() and map_batches() call ----------------------------------------
    def layers(self) -> list[str]:
        """The layers whose activations the bundle holds (those given to model.export(layers=...))."""
        return list(self._graph["layers"])

    def features(self, x: np.ndarray, layer: str) -> np.ndarray:
        """Activations of an exported `layer` for a batch of encoded rows, flattened to (n, k)."""
        return self._run(self._graph["layers"][layer], x)

    def _run(self, output: str, x: np.ndarray) -> np.ndarray:
        return run_rows(self._session, self._graph["input"], output, x, self._dtype, self._batch, self._source)

    def _outputs(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities or (standardised) values for a batch of encoded rows, as the model's net gives them."""
        out = self._run(self._graph["output"], x)
        return softmax(out) if self._response.kind == "classification" and not self._graph["probabilities"] else out

    # --- scoring frames ---------------------------------------------------------------------
    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's predict(frame): a 'predict' column, plus one probability column per class for
        classification; rows whose image was skipped (bad_images='skip') are missing."""
        frame = check_frame(frame, "frame")
        out, rows = map_batches(self._inputs.source(frame), self._outputs, self.batch_size)
        return self._response.predictions(out, rows, frame.index, self._threshold)

    def predict_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """predict() of one row given as {column: value}, as a dict: {'predict': ..., '<class>': p, ...} (see
        records()). The answer, errors and warnings are predict(pd.DataFrame([row]))'s; a plain row (numbers, and
        levels the model knows: DatasetEncoder.encode_row) is scored without making a frame."""
        if not isinstance(row, Mapping):
            raise ParameterError(f"row must be a dict of column values, got {type(row).__name__}; score frames "
                                 "with predict(frame).")
        x = self._plain_row(row)
        if x is None:  # the frame's rules: errors, warnings, inf scored as NaN, images read
            frame = check_frame(pd.DataFrame([row]), "frame")
            return self.records(map_batches(self._inputs.source(frame), self._outputs, self.batch_size)[0])[0]
        return self.records(self._outputs(x))[0]

    def predict_array(self, x: np.ndarray, as_frame: bool = True) -> pd.DataFrame | list[dict[str, Any]]:
        """predict() of rows given as a numeric (rows, columns) numpy array of the model's `columns`, in that order,
        without a frame (as H2O's EasyPredictModelWrapper takes a row of numbers): the answer of predict() on the
        frame of those columns, indexed 0..rows-1, or with as_frame=False its rows as records() gives them, a dict
        each (no frame made: the quickest answer for a row or a few). NaN is a missing value; a row holding inf,
        or a number beyond float32, gets missing predictions. Only for a model whose predictors are all numeric
        (ParameterError)."""
        if not isinstance(as_frame, bool):
            raise ParameterError(f"as_frame={as_frame!r} must be True (predict()'s frame) or False (a dict per row, "
                                 "as records() gives them).")
        numbers = self._checked_numbers(x)
        out, rows = map_batches(ArraySource(self._inputs.encode_columns(numbers, [])), self._outputs,
                                self.batch_size)
        if not as_frame:  # every row of an array is scored: a row holding inf has missing values
            return self.records(out)
        return self._response.predictions(out, rows, pd.RangeIndex(len(numbers)), self._threshold)

    @property
    def columns(self) -> list[str]:
        """The frame columns the model reads, in the order it reads them: predict_array()'s columns."""
        if isinstance(self._inputs, ImageInputs):
            return [self._inputs.column]
        return self._inputs.encoder.columns

    def _checked_numbers(self, x: np.ndarray) -> np.ndarray:
        """predict_array()'s `x` as a new float32 array, or a ParameterError saying what to pass instead."""
        if isinstance(self._inputs, ImageInputs) or self._inputs.encoder.categorical:
            kind = "images" if isinstance(self._inputs, ImageInputs) else "categorical columns"
            raise ParameterError(f"predict_array() takes numbers, and this model reads {kind} "
                                 f"({_first_names(self.columns)}); pass them in a frame to predict(frame).")
        width = len(self._inputs.encoder.numeric)
        if not isinstance(x, np.ndarray):
            raise ParameterError(f"x must be a numpy array of {width} columns ({_first_names(self.columns)}), got "
                                 f"{type(x).__name__}; score a DataFrame with predict(frame).")
        if x.ndim != 2 or x.shape[1] != width or x.shape[0] == 0:
            raise ParameterError(f"x has shape {x.shape}; predict_array() takes (rows, {width}): at least one row "
                                 f"of the columns {_first_names(self.columns)} in that order (scorer.columns; one "
                                 "row: x.reshape(1, -1)).")
        if x.dtype.kind not in "iuf":
            raise ParameterError(f"x has dtype {x.dtype}; predict_array() takes numbers (an int or float array, NaN "
                                 "where missing): convert it with x.astype(np.float32), or pass a frame to "
                                 "predict(frame).")
        numbers = np.empty(x.shape, dtype=np.float32)
        if x.dtype.kind == "f" and x.dtype.itemsize > 4:  # beyond float32 becomes inf, as in a frame
            with np.errstate(over="ignore"):
                np.copyto(numbers, x, casting="unsafe")
        else:  # float32 holds every integer's magnitude (errstate costs microseconds a call)
            np.copyto(numbers, x, casting="unsafe")
        return numbers

    def _plain_row(self, row: Mapping[str, Any]) -> np.ndarray | None:
        """The network's input for a plain dataset row (finite: no inf to score as NaN), else None."""
        if isinstance(self._inputs, ImageInputs):
            return None
        x = self._inputs.encoder.encode_row(row)
        return None if x is None else x.reshape((1, *self._inputs.input_shape))

    # --- scoring in steps (the prediction service gathers many requests' rows into one network call) ---
    @property
    def inputs(self) -> DatasetInputs | ImageInputs:
        """How rows become the network's input: the fitted dataset encoder, or the image column, shape, mean
        image and scale."""
        return self._inputs

    @property
    def response(self) -> Response:
        """The response: its name, kind ('classification' or 'regression') and class labels."""
        return self._response

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        """The network's input rows for a dataset `frame` (every predictor column present), as predict() encodes
        them; FrameError naming the column and row of a value that is no number."""
        if isinstance(self._inputs, ImageInputs):
            raise ParameterError(f"{self._source} scores images: pass them to encode_images(), not a frame.")
        return self._inputs.source(check_frame(frame, "frame")).x

    def encode_columns(self, numbers: np.ndarray | None, categories: Sequence[pd.Series]) -> np.ndarray:
        """The network's input rows for checked columns, as encode() gives them for a frame of those columns:
        `numbers` the numeric columns as float32 (rows, columns), NaN where missing (None when the model has none),
        and one series per categorical column, both in the order of inputs.encoder."""
        if isinstance(self._inputs, ImageInputs):
            raise ParameterError(f"{self._source} scores images: pass them to encode_images(), not columns.")
        return self._inputs.encode_columns(numbers, categories)

    def encode_images(self, pixels: np.ndarray) -> np.ndarray:
        """The network's input for decoded uint8 images (n, channels, height, width) of the bundle's image shape:
        (pixels - mean image) * scale, as predict() feeds the images of a URI column."""
        return image_input(pixels, self._inputs.mean_image, self._inputs.scale)

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (or standardised values) of encoded rows, `batch_size` rows per network call; NaN
        for a row holding inf."""
        return map_batches(ArraySource(x), self._outputs, self.batch_size)[0]

    def records(self, outputs: np.ndarray) -> list[dict[str, Any]]:
        """predict()'s rows, as dicts ({'predict': ..., '<class>': p, ...}; None where missing), from the
        outputs() of encoded rows."""
        return self._response.records(outputs, self._threshold)

    def deepfeatures(self, frame: pd.DataFrame, layer: str | int) -> pd.DataFrame:
        """The model's deepfeatures(frame, layer) for a layer the bundle holds: columns DF.<layer>.C1 ... Ck."""
        if isinstance(layer, str) and layer not in self._graph["layers"]:
            raise ParameterError(f"layer={layer!r} is not in this bundle, which holds the layers {self.layers()}; "
                                 f"export the model with layers=[{layer!r}] to score its activations.")
        frame = check_frame(frame, "frame")
        return deep_features(self, self._inputs.source(frame), frame.index, layer, self.batch_size)

    def close(self) -> None:
        """Stop the image decoding threads (nothing to do for datasets)."""
        self._inputs.close()

    def __repr__(self) -> str:
        return (f"Scorer({str(self.folder)!r}: {self.bundle['network']} trained on {self.bundle['backend']}, "
                f"{self._response.kind} of {self._response.name!r}, on {self.device})")


def _first_names(columns: list[str], shown: int = 5) -> str:
    """The first `shown` of `columns`, for a message: "'x1', 'x2', ... (784 in all)"."""
    names = ", ".join(map(repr, columns[:shown]))
    return f"{names}, ... ({len(columns)} in all)" if len(columns) > shown else names
