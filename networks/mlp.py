"""H2O's multi-layer perceptron: hidden dense layers with an activation and optional dropout."""
from __future__ import annotations

from typing import Sequence

from deepwater.errors import ParameterError

from .graph import GraphBuilder

_ACTIVATION_KIND = {"Rectifier": "relu", "Tanh": "tanh"}


def mlp(b: GraphBuilder, x: str, n_outputs: int, *, hidden: Sequence[int] = (200, 200),
        activation: str = "Rectifier", input_dropout_ratio: float = 0.0,
        hidden_dropout_ratios: Sequence[float] | None = None) -> str:
    """Layers: input_dropout?, fc{i}, act{i} (or maxout{i}), dropout{i}?, output."""
    base = activation.replace("WithDropout", "")
    dropouts = _hidden_dropouts(activation, hidden, hidden_dropout_ratios)
    if len(b.shape(x)) != 1:
        x = b.flatten("flatten", x)
    if input_dropout_ratio > 0:
        x = b.dropout("input_dropout", x, input_dropout_ratio)
    for i, (units, rate) in enumerate(zip(hidden, dropouts), start=1):
        if base == "Maxout":
            x = b.maxout(f"maxout{i}", b.dense(f"fc{i}", x, 2 * units), pieces=2)
        else:
            x = b.act(f"act{i}", b.dense(f"fc{i}", x, units), _ACTIVATION_KIND[base])
        if rate > 0:
            x = b.dropout(f"dropout{i}", x, rate)
    return b.dense("output", x, n_outputs)


def hidden_layer(index: int, hidden: Sequence[int], activation: str) -> str:
    """The name of H2O's hidden layer `index` (0-based, as h2o-py's deepfeatures(frame, layer) counts): the
    output of its activation, act{index + 1} (maxout{index + 1} for Maxout)."""
    if not -len(hidden) <= index < len(hidden):
        raise ParameterError(f"layer={index} is not a hidden layer of this MLP: hidden={list(hidden)} has "
                             f"{len(hidden)} (0..{len(hidden) - 1}, as in H2O); pass one of those, or a layer name "
                             "from model.layers().")
    number = index % len(hidden) + 1
    return f"maxout{number}" if activation.startswith("Maxout") else f"act{number}"


def _hidden_dropouts(activation: str, hidden: Sequence[int], ratios: Sequence[float] | None) -> list[float]:
    if ratios is None:
        return [0.5 if activation.endswith("WithDropout") else 0.0] * len(hidden)
    if len(ratios) != len(hidden):
        raise ParameterError(
            f"hidden_dropout_ratios={list(ratios)!r} has {len(ratios)} values but hidden has {len(hidden)} layers; "
            "give one ratio per hidden layer."
        )
    return list(ratios)
