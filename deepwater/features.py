"""Deep features: the activations of one layer of a trained network for every row of a frame.

The estimator's deepfeatures() and layers() delegate here. Rows go through the same Source and
batches as predict(), on the device the model trained on; rows whose image was skipped
(bad_images='skip') come back as rows of NaN. Columns follow H2O: DF.<layer>.C1 ... DF.<layer>.Ck.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from .errors import DeepWaterError, FrameError, ParameterError
from .sources import Source, batches, iterate

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
    result: np.ndarray | None = None  # allocated once the first batch shows the layer's width
    groups = list(batches(source.n, batch_size))
    with tqdm(total=source.n, unit="rows", desc=f"deepfeatures {name}", leave=False,
              disable=quiet or len(groups) <= PROGRESS_MIN_BATCHES) as bar:
        for rows, batch in zip(groups, iterate(source, groups)):
            if len(batch.rows):
                values = np.asarray(net.features(batch.x, name))
                if result is None and values.ndim == 2:
                    result = np.full((source.n, values.shape[1]), np.nan, dtype=np.float32)
                if result is None or values.shape != (len(batch.rows), result.shape[1]):
                    expected = (len(batch.rows), "k" if result is None else result.shape[1])
                    raise DeepWaterError(f"the backend returned features of shape {values.shape} for layer {name!r}; "
                                         f"expected {expected}. This is a bug in the backend.")
                result[batch.rows] = values
            bar.update(len(rows))
    if result is None:
        raise FrameError("no row of the frame could be scored (every image was skipped).")
    width = result.shape[1]
    return pd.DataFrame(result, index=index, columns=feature_columns(name, width), copy=False)
