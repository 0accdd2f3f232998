"""Deep features: the activations of one layer of a trained network for every row of a frame.

The estimator's deepfeatures() and layers() delegate here. Rows go through the same Source and
batches as predict(), on the device the model trained on; rows whose image was skipped
(bad_images='skip') come back as rows of NaN. Columns follow H2O: DF.<layer>.C1 ... DF.<layer>.Ck.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deepwater.data.sources import Source, map_batches
from deepwater.errors import DeepWaterError, ParameterError
from deepwater.progress import progress

PROGRESS_MIN_BATCHES = 10  # more batches than this show a progress bar (unless quiet)


def layer_names(net: Any) -> list[str]:
    """The layers whose activations deep_features() can return, from the input side to the output."""
    return list(net.layers())


def resolve_layer(net: Any, layer: Any) -> str:
    """The layer's name: given by name, or by 0-based position in layer_names()."""
    names = layer_names(net)
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
        if -len(names) <= layer < len(names):
            return names[layer]
        raise ParameterError(f"layer={layer} is out of range: the network has {len(names)} layers "
                             f"(positions 0..{len(names) - 1}): {names}.")
    if not isinstance(layer, str) or layer not in names:
        raise ParameterError(f"layer={layer!r} is not a layer of this network; use one of {names} "
                             "(model.layers() lists them).")
    return layer


def feature_columns(layer: str, width: int) -> list[str]:
    """H2O's names for a layer's features: DF.<layer>.C1 ... DF.<layer>.C<width>."""
    return [f"DF.{layer}.C{i}" for i in range(1, width + 1)]


def deep_features(net: Any, source: Source, index: pd.Index, layer: Any, batch_size: int,
                  quiet: bool = True) -> pd.DataFrame:
    """Activations of `layer` for every row of `source`, flattened, as a float32 DataFrame.

    `index` labels the rows (the frame's index). A progress bar shows when there are more than
    PROGRESS_MIN_BATCHES batches and `quiet` is False.
    """
    name = resolve_layer(net, layer)
    width: list[int] = []  # the layer's width, once the first batch shows it

    def features(x: np.ndarray) -> np.ndarray:
        values = np.asarray(net.features(x, name), dtype=np.float32)
        if values.ndim != 2 or len(values) != len(x) or values.shape[1] != (width or [values.shape[1]])[0]:
            raise DeepWaterError(f"the backend returned features of shape {values.shape} for layer {name!r}; "
                                 f"expected ({len(x)}, {width[0] if width else 'k'}). This is a bug in the backend.")
        width[:] = [values.shape[1]]
        return values

    many = -(-source.n // batch_size) > PROGRESS_MIN_BATCHES
    with progress(total=source.n, unit="rows", desc=f"deepfeatures {name}", leave=False, disable=quiet or not many) as bar:
        values, rows = map_batches(source, features, batch_size, bar.update)
    result = np.full((source.n, values.shape[1]), np.nan, dtype=np.float32)
    result[rows] = values
    return pd.DataFrame(result, index=index, columns=feature_columns(name, values.shape[1]), copy=False)
