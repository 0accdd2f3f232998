"""load(): a zoo model as a DeepWaterEstimator, ready to predict on a frame of image URIs."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deepwater.errors import ModelFileError
from deepwater.model.estimator import DeepWaterEstimator
from deepwater.networks import build_graph, check_state

from .convert import canonical_state
from .manifest import MANIFEST, ZooEntry, get_entry
from .weights import DOWNLOAD_TIMEOUT, find_weights


def list_models() -> list[ZooEntry]:
    """Every model in the zoo, as its manifest entry."""
    return list(MANIFEST.values())


def load(name: str, backend: str = "auto", gpu: bool = True, device_id: Sequence[int] = (0,), x: str = "uri",
         timeout: float = DOWNLOAD_TIMEOUT, **params: Any) -> DeepWaterEstimator:
    """The pretrained model `name` on `backend`, as an estimator that predicts on frames with image column `x`.

    The weights come from their installed package, else the cache folder ($DEEPWATER_CACHE/models or
    ~/.cache/deepwater/models), else a download into the cache (`timeout` seconds without an answer);
    each is checked against the manifest's sha256. Images are resized to the model's input size and
    normalised as it was trained. Other keyword arguments are estimator parameters (e.g. mini_batch_size).

    >>> model = load("mobilenet_v2", backend="torch", gpu=False)    # doctest: +SKIP
    >>> model.predict(pd.DataFrame({"uri": ["cat.jpg"]}))["predict"]  # doctest: +SKIP
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
    offset, scale = entry.normalisation.offset_and_scale()
    params.setdefault("model_id", entry.name)
    return DeepWaterEstimator.from_pretrained(entry.architecture, state, labels, entry.image_shape, entry.channels,
                                              offset, scale, x=x, backend=backend, gpu=gpu, device_id=device_id,
                                              **params)
