"""Autoencoders (H2O's autoencoder=True): the rules they train under, and their reconstructions and errors.

An autoencoder's net reconstructs its own input: the encoded design matrix of a dataset (standardised numbers,
one-hot levels) or the decoded, mean-subtracted image, flattened. Its error is measured where it trains, in that
encoded space, as H2O does: anomaly() gives each row's mean squared error ('Reconstruction.MSE') or each value's
squared error ('reconstr_<name>.SE'); predict() gives the reconstruction on the frame's own scale ('reconstr_<name>').
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from deepwater.data.sources import Source, map_batches
from deepwater.errors import ParameterError, warn_user

STOPPING_METRICS = ("AUTO", "MSE")  # H2O's: an autoencoder is scored by its reconstruction MSE only
ANOMALY_COLUMN = "Reconstruction.MSE"


def check_parameters(params: dict[str, Any], y: Any, fold_column: str | None) -> None:
    """H2O's rules for autoencoder=True: no cross-validation, stopping on MSE only, no user graph, and a warning
    that a given `y` is ignored."""
    if params["nfolds"] or fold_column:
        what = f"nfolds={params['nfolds']}" if params["nfolds"] else f"fold_column={fold_column!r}"
        raise ParameterError(f"{what} with autoencoder=True: an autoencoder is not cross-validated (H2O's rule); "
                             "pass nfolds=0 and no fold_column.")
    if params["stopping_metric"] not in STOPPING_METRICS:
        raise ParameterError(f"stopping_metric={params['stopping_metric']!r} cannot score an autoencoder, which is "
                             "scored by its reconstruction error: use stopping_metric='AUTO' or 'MSE' (H2O's rule).")
    if params["network"] == "user" or params["network_definition_file"]:
        raise ParameterError("autoencoder=True builds its own network; a user graph (network='user', "
                             "network_definition_file) cannot be trained as one. Use network='auto' ('mlp' for a "
                             "dataset, 'conv_autoencoder' for images).")
    if y is not None:
        warn_user(f"y={y!r} is ignored: an autoencoder learns from x alone (H2O's rule); the column is not used "
                  "as a predictor either. Call train(x=..., training_frame=...) without y.", UserWarning)


def network_for(network: str, is_image: bool) -> str:
    """The autoencoder's network: 'auto' is an MLP for datasets and 'conv_autoencoder' for images; an image
    network that does not reconstruct its input is refused."""
    if network == "auto":
        return "conv_autoencoder" if is_image else "mlp"
    if network not in ("mlp", "conv_autoencoder"):
        raise ParameterError(f"network={network!r} with autoencoder=True: that network classifies, it does not "
                             "reconstruct its input. Use network='mlp' (hidden is the whole stack between input and "
                             "reconstruction, e.g. [50, 20, 50]) or 'conv_autoencoder' for images.")
    return network


def squared_errors(net: Any, x: np.ndarray) -> np.ndarray:
    """Each input value's squared reconstruction error (n, values), in the space the net trains on."""
    target = np.reshape(x, (len(x), -1)).astype(np.float64)
    return (np.asarray(net.predict(x), dtype=np.float64) - target) ** 2


def row_errors(net: Any, x: np.ndarray) -> np.ndarray:
    """Each row's reconstruction MSE, as (n, 1)."""
    return squared_errors(net, x).mean(axis=1, keepdims=True)


def scored(net: Any, source: Source, fn, batch_size: int, index: pd.Index) -> np.ndarray:
    """fn(net, x) for every row of `source`, rows that could not be read (skipped images) NaN."""
    values, rows = map_batches(source, lambda x: fn(net, x), batch_size)
    full = np.full((len(index), values.shape[1]), np.nan, dtype=np.float64)
    full[rows] = values
    return full


def anomaly_frame(errors: np.ndarray, names: list[str], index: pd.Index, per_feature: bool) -> pd.DataFrame:
    """H2O's anomaly() frame: 'Reconstruction.MSE', or with `per_feature` one 'reconstr_<name>.SE' column per value."""
    if per_feature:
        return pd.DataFrame(errors, index=index, columns=[f"reconstr_{name}.SE" for name in names])
    return pd.DataFrame({ANOMALY_COLUMN: errors.mean(axis=1)}, index=index)


def reconstruction_frame(values: np.ndarray, names: list[str], index: pd.Index) -> pd.DataFrame:
    """H2O's predict() frame of an autoencoder: one 'reconstr_<name>' column per value."""
    return pd.DataFrame(values, index=index, columns=[f"reconstr_{name}" for name in names])
