"""Variable importances of an MLP by Gedeon's method (1997), as H2O Deep Learning computes them.

For inputs i, first hidden units j and units k of the next layer (the second hidden layer, or the output when
there is one hidden layer), with W1 (j, i) and W2 (k, j) the weights of the first two dense layers:
Q[i, k] = sum_j |W1[j, i]| / sum_i' |W1[j, i']| * |W2[k, j]| / sum_j' |W2[k, j']|; each column Q[:, k] is
normalised to sum 1, an input's importance is its row sum, and importances are divided by their largest.
The weights come from the net's canonical state (get_state(): '<layer>.weight' in PyTorch's (out, in) layout), so
every backend gives the same table for the same weights.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from deepwater.errors import ParameterError


def gedeon(w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    """Each input's importance (max 1) from the first two weight matrices, W1 (hidden, inputs) and W2 (next, hidden)."""
    a1 = np.abs(np.asarray(w1, dtype=np.float64))
    a2 = np.abs(np.asarray(w2, dtype=np.float64))
    share1 = a1 / a1.sum(axis=1, keepdims=True)  # each hidden unit's incoming weights as shares
    share2 = a2 / a2.sum(axis=1, keepdims=True)
    q = share1.T @ share2.T  # (inputs, next units)
    q /= q.sum(axis=0, keepdims=True)
    importance = q.sum(axis=1)
    return importance / importance.max()


def check_network(network: str) -> None:
    """ParameterError unless `network` is an MLP: Gedeon's method needs a dense first layer."""
    if network != "mlp":
        raise ParameterError(f"variable importances need an MLP (network='mlp' on a dataset): Gedeon's method reads "
                             f"the weights of a dense first layer, and network={network!r} starts with a convolution "
                             "or is a user graph. Use deepfeatures() to inspect it, or train an MLP.")


def mlp_weights(state: Mapping[str, np.ndarray], network: str, hidden: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """W1 and W2 of an MLP's canonical `state`; a Maxout layer's pieces count together for their unit.
    ParameterError for another network (check_network)."""
    check_network(network)
    w1 = np.asarray(state["fc1.weight"])
    w2 = np.asarray(state["fc2.weight" if len(hidden) > 1 else "output.weight"])
    if len(w1) != w2.shape[1]:  # Maxout: fc1 has `pieces` rows per unit
        w1 = np.abs(w1).reshape(w2.shape[1], -1, w1.shape[1]).sum(axis=1)
    return w1, w2


def varimp_table(names: Sequence[str], importance: np.ndarray, columns: Sequence[str] | None = None,
                 use_pandas: bool = False) -> list[tuple] | pd.DataFrame:
    """H2O's varimp table, most important first: (variable, relative_importance, scaled_importance, percentage).

    With `columns` (each name's frame column) the importances of one column's values (one-hot levels) are summed
    into one row for the column.
    """
    table = pd.DataFrame({"variable": list(names), "relative_importance": np.asarray(importance, dtype=np.float64)})
    if columns is not None:
        table = table.assign(variable=list(columns)).groupby("variable", sort=False, as_index=False).sum()
    relative = table["relative_importance"]
    table["scaled_importance"] = relative / relative.max()
    table["percentage"] = relative / relative.sum()
    table = table.sort_values("relative_importance", ascending=False, kind="stable").reset_index(drop=True)
    return table if use_pandas else [tuple(row) for row in table.itertuples(index=False)]
