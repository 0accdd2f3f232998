"""load(): a zoo model as a DeepWaterEstimator, ready to predict on a frame of image URIs; and each zoo model
registered for fine-tuning with DeepWaterEstimator(network=<its name>, pretrained=True)."""
from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from deepwater.errors import ModelFileError
from deepwater.model.estimator import DeepWaterEstimator
from deepwater.model.pretrained_networks import PretrainedNetwork, register_pretrained
from deepwater.networks import build_graph, check_state

from .convert import canonical_state
from .manifest import MANIFEST, ZooEntry, get_entry
from .weights import DOWNLOAD_TIMEOUT, find_weights


def list_models() -> list[ZooEntry]:
    """Every model in the zoo, as its manifest entry."""
    return list(MANIFEST.values())


def load_weights(name: str, timeout: float = DOWNLOAD_TIMEOUT) -> tuple[dict[str, np.ndarray], list[str]]:
    """The zoo model `name`'s weights, renamed onto its architecture's layers and checked to fit it, and the
    classes of its output layer.

    The weights come from their installed package, else the cache folder ($DEEPWATER_CACHE/models or
    ~/.cache/deepwater/models), else a download into the cache (`timeout` seconds without an answer);
    each is checked against the manifest's sha256.
    """
    entry = get_entry(name)
    path = find_weights(entry.weights, timeout)
    labels = entry.labels()
    state = canonical_state(entry.convert, path)
    graph = build_graph(entry.architecture, (entry.channels, *entry.image_shape), len(labels))
    try:
        check_state(graph, state)
    except ModelFileError as error:
        raise ModelFileError(f"weights file {str(path)!r} does not fit {entry.architecture}: {error}") from None
    return state, labels


def load(name: str, backend: str = "auto", gpu: bool = True, device_id: Sequence[int] = (0,), x: str = "uri",
         timeout: float = DOWNLOAD_TIMEOUT, **params: Any) -> DeepWaterEstimator:
    """The pretrained model `name` on `backend`, as an estimator that predicts on frames with image column `x`.

    The weights are found as load_weights() says (`timeout` seconds without an answer for a download). Images
    are resized to the model's input size and normalised as it was trained. Other keyword arguments are
    estimator parameters (e.g. mini_batch_size). To fine-tune it on your own classes, train
    DeepWaterEstimator(network=name, pretrained=True, ...) instead (docs/guide/finetuning.md).

    >>> model = load("mobilenet_v2", backend="torch", gpu=False)    # doctest: +SKIP
    >>> model.predict(pd.DataFrame({"uri": ["cat.jpg"]}))["predict"]  # doctest: +SKIP
    """
    entry = get_entry(name)
    state, labels = load_weights(name, timeout)
    offset, scale = entry.normalisation.offset_and_scale()
    params.setdefault("model_id", entry.name)
    return DeepWaterEstimator.from_pretrained(entry.architecture, state, labels, entry.image_shape, entry.channels,
                                              offset, scale, x=x, backend=backend, gpu=gpu, device_id=device_id,
                                              **params)


def pretrained_network(entry: ZooEntry) -> PretrainedNetwork:
    """What pretrained=True needs of the zoo model `entry`; its weights are loaded when training starts."""
    offset, scale = entry.normalisation.offset_and_scale()
    return PretrainedNetwork(entry.name, entry.architecture, entry.image_shape, entry.channels, offset, scale,
                             partial(load_weights, entry.name))


for _entry in MANIFEST.values():
    register_pretrained(pretrained_network(_entry))
