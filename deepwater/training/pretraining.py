"""pretrained_autoencoder (H2O's parameter): a supervised MLP whose first hidden layers start from an
autoencoder's encoder weights, then train on the labels.

H2O's check: the autoencoder took the same inputs (the same predictor columns; the supervised model then encodes
them with the autoencoder's fitted encoder, so its weights see what they were trained on) and its hidden layers fit
(the supervised `hidden` is the autoencoder's, or its first layers, e.g. the encoder [50, 20] of [50, 20, 50]),
with the same activation.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from deepwater.errors import ParameterError


def check_pretrained(autoencoder: Any, predictors: list[str], network: str, params: dict[str, Any]) -> None:
    """ParameterError naming what does not fit, unless `autoencoder` can start the supervised MLP."""
    reference = f"pretrained_autoencoder={autoencoder.model_id!r}"
    fitted = autoencoder._fitted
    if not fitted.task.is_autoencoder:
        raise ParameterError(f"{reference} is a {fitted.task.kind} model, not an autoencoder; pass a model trained "
                             "with autoencoder=True.")
    if network != "mlp" or fitted.network != "mlp":
        raise ParameterError(f"{reference}: pretraining starts an MLP from an MLP autoencoder, but this model's "
                             f"network is {network!r} and the autoencoder's {fitted.network!r}. Use network='mlp' "
                             "for both.")
    if list(predictors) != list(fitted.predictors):
        missing = [c for c in fitted.predictors if c not in predictors]
        extra = [c for c in predictors if c not in fitted.predictors]
        raise ParameterError(f"{reference} was trained on other inputs: x lacks {missing[:10]} and adds "
                             f"{extra[:10]} (order matters too). Pass x={fitted.predictors[:10]}... exactly as the "
                             "autoencoder had them (H2O's rule: the same input columns).")
    theirs = fitted.params["hidden"]
    ours = params["hidden"]
    if ours != theirs[:len(ours)]:
        raise ParameterError(f"{reference} has hidden={theirs}, which does not start with this model's hidden={ours}; "
                             f"use hidden={theirs} or its first layers (e.g. {theirs[:(len(theirs) + 1) // 2]}).")
    if params["activation"] != fitted.params["activation"]:
        raise ParameterError(f"{reference} was trained with activation={fitted.params['activation']!r}, this "
                             f"model has activation={params['activation']!r}; use the autoencoder's activation.")


def encoder_state(autoencoder: Any, layers: int) -> dict[str, np.ndarray]:
    """The weights and biases of the autoencoder's first `layers` dense layers (fc1 ... fc<layers>), canonical."""
    state = autoencoder._fitted.net.get_state()
    return {f"fc{i}.{part}": state[f"fc{i}.{part}"] for i in range(1, layers + 1) for part in ("weight", "bias")}
