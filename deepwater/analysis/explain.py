"""Why a model said what it said: Grad-CAM, saliency and integrated gradients over any backend.

A backend gives gradients only (backends.base.GradientNet.class_gradients: a layer's values and the gradient of
one output score with respect to them); everything else is numpy, written once here: Grad-CAM's channel weights
and ReLU, resizing maps to the image, scaling them to 0..1, the integrated-gradients path in chunks, and the
one-hot levels of a column summed back into it. Rows go through the same Source and batches as predict(); rows
that could not be read (a skipped image, a value beyond float32) come back NaN.

* gradcam (Selvaraju et al. 2017): a layer's maps weighted by their mean gradient, summed, ReLU; one forward
  and one backward pass per batch.
* saliency (Simonyan et al. 2014): the largest absolute input gradient over an image's channels.
* integrated_gradients (Sundararajan et al. 2017): (x - baseline) times the mean gradient along the straight
  path from the baseline to x, at `steps` midpoints, run `steps` at a time as far as a batch holds them.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from deepwater.backends.base import check_gradients, class_gradients, convolutional_layers
from deepwater.data.sources import Source, map_batches
from deepwater.errors import ParameterError
from deepwater.networks import Graph, last_conv_layer, map_geometry

METHODS = ("gradcam", "integrated_gradients", "saliency")
TABULAR_METHODS = ("integrated_gradients",)
DEFAULT_STEPS = 32
CANDIDATES_SHOWN = 20  # layers a Grad-CAM error suggests for a user graph

Targets = Callable[[np.ndarray], np.ndarray]  # a batch's inputs -> each row's output column


def check_method(method: str, is_image: bool) -> str:
    """`method`, checked: one of METHODS for an image model, TABULAR_METHODS for a dataset one."""
    allowed = METHODS if is_image else TABULAR_METHODS
    if method not in allowed:
        kind = "an image model" if is_image else "a model of a dataset (numeric and categorical columns)"
        raise ParameterError(f"method={method!r} cannot explain {kind}; use one of {list(allowed)}.")
    return method


def check_steps(steps: int) -> int:
    """`steps`, checked: a whole number >= 1."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ParameterError(f"steps={steps!r}: integrated gradients need a whole number of steps >= 1 "
                             f"(e.g. the default {DEFAULT_STEPS}).")
    return int(steps)


def check_baseline(baseline: float | np.ndarray | None, input_shape: tuple[int, ...]) -> np.ndarray:
    """The baseline as a float32 array of one row's shape: 0 (None), a number, or an array that broadcasts to
    `input_shape`, in the network's input units (after the model's mean image and scale, or standardisation)."""
    try:
        value = np.broadcast_to(np.asarray(0.0 if baseline is None else baseline, dtype=np.float32), input_shape)
    except (TypeError, ValueError):
        raise ParameterError(f"baseline of shape {np.shape(baseline)}: it must be a number or an array that "
                             f"broadcasts to one input row of shape {input_shape} (None: zeros).") from None
    if not np.isfinite(value).all():
        raise ParameterError("baseline holds NaN or inf; give finite numbers (None: zeros).")
    return value


def explained_layer(method: str, layer: str | int | None, net: object, graph: Graph | None) -> str | None:
    """The layer of `net` that `method` reads (chosen_layer()), after a BackendError when the net gives no
    gradients (backends.base.check_gradients: an ONNX graph), so that no layer is asked for in vain."""
    check_gradients(net)
    return chosen_layer(method, layer, net.layers(), graph, convolutional_layers(net))


def chosen_layer(method: str, layer: str | int | None, layers: Sequence[str], graph: Graph | None,
                 convolutional: Sequence[str] = ()) -> str | None:
    """The layer Grad-CAM reads: `layer` (a name or a position in `layers`), else a built-in network's (its
    `graph`'s) last convolutional feature map; a user graph (graph None) must name it, and the ParameterError
    suggests describe_candidates(). None for other methods."""
    if method != "gradcam":
        if layer is not None:
            raise ParameterError(f"layer={layer!r} with method={method!r}: only Grad-CAM reads a layer ({method} "
                                 "works on the input); drop layer, or use method='gradcam'.")
        return None
    if layer is None:
        if graph is None:
            raise ParameterError(f"layer=None: Grad-CAM on a user graph needs layer=... naming a layer of feature "
                                 "maps (channels, height, width), usually its last convolutional one; "
                                 f"{describe_candidates(layers, convolutional)}. method='saliency' and "
                                 "'integrated_gradients' need no layer.")
        return last_conv_layer(graph)
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool) and -len(layers) <= layer < len(layers):
        return layers[layer]
    if layer not in layers:
        raise ParameterError(f"layer={layer!r} is not a layer of this network; use one of {list(layers)} "
                             "(model.layers() lists them).")
    return layer


def describe_candidates(layers: Sequence[str], convolutional: Sequence[str] = ()) -> str:
    """The layers to suggest for Grad-CAM, in words: nearest the output first, the convolutional ones (where the
    graph's format tells) before the others, at most CANDIDATES_SHOWN names."""
    ordered, convolutional = list(reversed(layers)), set(convolutional)
    candidates = [n for n in ordered if n in convolutional] + [n for n in ordered if n not in convolutional]
    which = "convolutional layers first, " if convolutional & set(layers) else ""
    more = len(candidates) - CANDIDATES_SHOWN
    rest = f" and {more} more (model.layers() lists them all)" if more > 0 else ""
    return f"candidates ({which}nearest the output first): {candidates[:CANDIDATES_SHOWN]}{rest}"


def target_column(target: object, classes: Sequence[object] | None) -> int | None:
    """The output column `target` names: a class label's position, None for each row's predicted class; a
    regression's one value (classes None) is column 0."""
    if classes is None:
        if target is not None:
            raise ParameterError(f"target={target!r}: a regression model has one output, its value; drop target.")
        return 0
    if target is None:
        return None
    position = pd.Index(list(classes)).get_indexer([target])[0]
    if position < 0:
        raise ParameterError(f"target={target!r} is not a class of this model; use one of {list(classes)} "
                             "(None: each row's predicted class).")
    return int(position)


def fixed_or_predicted(net: object, column: int | None, predicted: Callable[[np.ndarray], Sequence[object]],
                       classes: Sequence[object] | None) -> Targets:
    """Each batch's output columns: `column` for every row, or (None) the position among `classes` of the label
    predicted(probabilities) gives each row, as predict() labels it."""
    if column is not None:
        return lambda x: np.full(len(x), column, dtype=np.int64)
    lookup = pd.Index(list(classes or []))

    def targets(x: np.ndarray) -> np.ndarray:
        positions = lookup.get_indexer(pd.Index(list(predicted(net.predict(x))), dtype=object))
        return np.maximum(positions, 0).astype(np.int64)

    return targets


# --------------------------------------------------------------------------- maps

def gradcam(activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Grad-CAM maps (n, h, w) from a layer's maps and their gradients (n, C, h, w): each channel weighted by its
    mean gradient, summed over channels, negative values set to 0."""
    if activations.ndim != 4:
        raise ParameterError(f"Grad-CAM needs a layer of feature maps (channels, height, width); this layer gives "
                             f"values of shape {activations.shape[1:]}. Name a convolutional layer (model.layers()).")
    weights = gradients.mean(axis=(2, 3), keepdims=True)
    return np.maximum((weights * activations).sum(axis=1), 0.0)


def saliency(gradients: np.ndarray) -> np.ndarray:
    """Saliency maps (n, H, W): the largest absolute input gradient over each pixel's channels."""
    return np.abs(gradients).max(axis=1)


Geometry = tuple[float, float]  # a map's positions on its image: position i is centred on pixel offset + i * stride


def spread(size_in: int, size_out: int) -> Geometry:
    """The geometry of a map of `size_in` positions spread evenly over `size_out` pixels (a user graph's maps)."""
    stride = size_out / size_in
    return stride / 2 - 0.5, stride


def _interpolation(size_in: int, size_out: int, geometry: Geometry) -> np.ndarray:
    """The (size_out, size_in) matrix of linear interpolation from map positions to pixels (edges clamped)."""
    offset, stride = geometry
    centres = np.clip((np.arange(size_out) - offset) / stride, 0, size_in - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    matrix = np.zeros((size_out, size_in))
    np.add.at(matrix, (np.arange(size_out), low), 1.0 - (centres - low))
    np.add.at(matrix, (np.arange(size_out), high), centres - low)
    return matrix


def resize_maps(maps: np.ndarray, height: int, width: int, geometry: Geometry | None = None) -> np.ndarray:
    """Maps (n, h, w) resized to (n, height, width) by bilinear interpolation, their positions placed by
    `geometry` (networks.map_geometry()), or spread evenly over the image (None)."""
    rows = _interpolation(maps.shape[1], height, geometry or spread(maps.shape[1], height))
    cols = _interpolation(maps.shape[2], width, geometry or spread(maps.shape[2], width))
    return np.einsum("yh,nhw,xw->nyx", rows, maps, cols)


def normalise(maps: np.ndarray) -> np.ndarray:
    """Each map scaled to 0..1 (its minimum to 0, its maximum to 1); a constant map becomes zeros."""
    flat = maps.reshape(len(maps), -1)
    low = flat.min(axis=1, keepdims=True)
    span = flat.max(axis=1, keepdims=True) - low
    scaled = np.divide(flat - low, span, out=np.zeros_like(flat, dtype=np.float64), where=span > 0)
    return scaled.reshape(maps.shape).astype(np.float32)


# --------------------------------------------------------------------------- integrated gradients

def integrated_gradients(net: object, x: np.ndarray, targets: np.ndarray, baseline: np.ndarray, steps: int,
                         batch_rows: int) -> np.ndarray:
    """Integrated gradients of each row's `targets` score, shaped as `x`: (x - baseline) times the mean input
    gradient at `steps` midpoints of the path from `baseline` to x, as many steps a call as `batch_rows` holds."""
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    chunk = max(1, batch_rows // max(len(x), 1))
    difference = x - baseline
    total = np.zeros_like(x, dtype=np.float64)
    for start in range(0, steps, chunk):
        part = alphas[start:start + chunk].reshape((-1,) + (1,) * x.ndim)
        path = (baseline + part * difference).reshape((-1,) + x.shape[1:])
        _, gradients = class_gradients(net, path, None, np.tile(targets, len(part)))
        total += gradients.reshape((len(part),) + x.shape).sum(axis=0)
    return (difference * total / steps).astype(np.float32)


# --------------------------------------------------------------------------- over a frame's rows

def image_heatmaps(net: object, x: np.ndarray, targets: np.ndarray, method: str, layer: str | None,
                   geometry: Geometry | None, baseline: np.ndarray, steps: int, batch_rows: int) -> np.ndarray:
    """Heatmaps (n, H, W) in 0..1 for a batch of images (n, C, H, W) by `method` (one of METHODS); Grad-CAM's
    maps of `layer` placed on the image by `geometry` (None: spread evenly)."""
    height, width = x.shape[2:]
    if method == "gradcam":
        return normalise(resize_maps(gradcam(*class_gradients(net, x, layer, targets)), height, width, geometry))
    if method == "saliency":
        return normalise(saliency(class_gradients(net, x, None, targets)[1]))
    attributions = integrated_gradients(net, x, targets, baseline, steps, batch_rows)
    return normalise(np.abs(attributions.sum(axis=1)))


def explain_source(net: object, source: Source, targets: Targets, method: str, layer: str | None,
                   graph: Graph | None, baseline: np.ndarray, steps: int, batch_size: int, image: bool) -> np.ndarray:
    """For every row of `source`: an image's heatmap (H, W), or a dataset row's attributions (width,), as one
    float32 array; rows that could not be read are NaN. `graph` is a built-in network's (None: a user graph)."""
    geometry = None if graph is None or layer is None else map_geometry(graph, layer)

    def explain(x: np.ndarray) -> np.ndarray:
        chosen = targets(x)
        if image:
            return image_heatmaps(net, x, chosen, method, layer, geometry, baseline, steps, batch_size)
        return integrated_gradients(net, x, chosen, baseline, steps, batch_size)

    values, rows = map_batches(source, explain, batch_size)
    result = np.full((source.n,) + values.shape[1:], np.nan, dtype=np.float32)
    result[rows] = values
    return result


def column_attributions(attributions: np.ndarray, feature_columns: Sequence[str], index: pd.Index) -> pd.DataFrame:
    """Attributions (n, width) of the encoded inputs as one column per frame column (a categorical column's
    one-hot levels summed), indexed by `index`."""
    encoded = pd.DataFrame(attributions, index=index, columns=pd.Index(list(feature_columns)), copy=False)
    return encoded.T.groupby(level=0, sort=False).sum(min_count=1).T.astype(np.float32)


def mean_absolute(attributions: np.ndarray) -> np.ndarray:
    """Each input's mean absolute attribution (n, width) -> (width,) over the rows that have one: an importance."""
    rows = ~np.isnan(attributions).any(axis=1)
    return np.abs(attributions[rows].astype(np.float64)).mean(axis=0)
