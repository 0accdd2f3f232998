"""Pretrained networks by name, for `pretrained=True`: what the estimator needs of a zoo model.

The model zoo (deepwater.models_zoo) sits above the estimator in the layers, so the estimator never imports it:
the zoo registers each of its models here when it is imported (importing deepwater imports it), as plain facts
(architecture, input size, normalisation) and a function that loads the weights only when training starts.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deepwater.errors import ParameterError

WeightsLoader = Callable[[], tuple[dict[str, np.ndarray], list[str]]]  # the canonical state, and its classes


@dataclass(frozen=True)
class PretrainedNetwork:
    """A pretrained network: its architecture (a network of deepwater.networks), the image size and channels it
    was trained on, the normalisation its inputs had, (pixels - offset) * scale with per-channel (C, 1, 1)
    arrays, and `load`, which returns its weights and the classes of its output layer."""

    name: str
    architecture: str
    image_shape: tuple[int, int]
    channels: int
    offset: np.ndarray
    scale: np.ndarray
    load: WeightsLoader


_REGISTERED: dict[str, PretrainedNetwork] = {}


def register_pretrained(network: PretrainedNetwork) -> PretrainedNetwork:
    """Make `network` available to pretrained=True under its name (lower case); returns it."""
    _REGISTERED[network.name.lower()] = network
    return network


def pretrained_names() -> list[str]:
    """The names pretrained=True takes as network."""
    return sorted(_REGISTERED)


def pretrained_network(name: str) -> PretrainedNetwork:
    """The pretrained network called `name`, or a ParameterError naming it and listing the known ones."""
    try:
        return _REGISTERED[name.lower()]
    except KeyError:
        known = ", ".join(map(repr, pretrained_names())) or "none (deepwater.models_zoo registers them)"
        raise ParameterError(f"pretrained=True with network={name!r}: the model zoo has no pretrained {name!r}; "
                             f"pass one of {known} as network (deepwater.models_zoo.list_models()), or "
                             "pretrained=False to train it from its initial weights.") from None
