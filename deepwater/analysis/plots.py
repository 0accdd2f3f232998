"""Plots as H2O draws them, from plain numbers: a scoring history, a ROC or precision-recall curve, a confusion
matrix, a grid's models. ModelMetrics.plot() and the models' plot() methods pick what to draw.

matplotlib (the `plot` extra) is imported only when a plot is drawn. Each function returns the matplotlib
Figure, closed to pyplot so that Jupyter shows it once (as the cell's value) and a script saves it with
`figure.savefig(path)` or `save_plot_path=`.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from deepwater.errors import MissingDependencyError, ParameterError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# H2O's model.plot(): the metrics it draws per kind of model, the first being "AUTO"'s choice
HISTORY_METRICS = {
    "binomial": ("logloss", "auc", "classification_error", "rmse"),
    "multinomial": ("classification_error", "logloss", "rmse"),
    "regression": ("rmse", "deviance", "mae"),
}
TIMESTEPS = ("epochs", "samples", "duration")  # "AUTO" is epochs, as for H2O's Deep Learning
_HISTORY_KEYS = {"deviance": "mean_residual_deviance"}  # H2O's plot name -> our history column's suffix
METRICS_PLOT_TYPES = ("roc", "pr")


def _new_figure(**options: Any) -> tuple[Figure, Axes]:
    """A figure and its axes from pyplot, closed to pyplot (the caller gets it; Jupyter shows it once)."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise MissingDependencyError("matplotlib (for plots)", "plot") from error
    figure, axes = plt.subplots(**options)
    plt.close(figure)
    return figure, axes


def _finish(figure: Figure, save_plot_path: str | os.PathLike | None) -> Figure:
    figure.tight_layout()
    if save_plot_path is not None:
        figure.savefig(save_plot_path)
    return figure


def choice(name: str, value: str, allowed: Sequence[str]) -> str:
    """`value` of the parameter `name` when it is one of `allowed` ("AUTO": the first); a ParameterError if not."""
    if value == "AUTO":
        return allowed[0]
    if value not in allowed:
        raise ParameterError(f"{name}={value!r} is not one this plot draws; use 'AUTO' or one of {', '.join(allowed)}.")
    return value


def scoring_history_plot(history: pd.DataFrame, kind: str, timestep: str = "AUTO", metric: str = "AUTO",
                         save_plot_path: str | os.PathLike | None = None) -> Figure:
    """The training (and validation, where the model has it) `metric` of each scoring against `timestep`.

    `kind` is 'binomial', 'multinomial' or 'regression' (ModelMetrics.model_kind); `metric` "AUTO" is H2O's default for it (logloss for two classes,
    classification_error for more, rmse for regression); `timestep` "AUTO" is epochs.
    """
    metric = choice("metric", metric, HISTORY_METRICS[kind])
    timestep = choice("timestep", timestep, TIMESTEPS)
    column = _HISTORY_KEYS.get(metric, metric)
    figure, axes = _new_figure()
    x = history[timestep].to_numpy(dtype=float)
    parts = [part for part in ("training", "validation") if f"{part}_{column}" in history]
    for part in parts:
        axes.plot(x, history[f"{part}_{column}"].to_numpy(dtype=float), marker="o", label=part.capitalize())
    axes.set_xlabel("duration (s)" if timestep == "duration" else timestep)
    axes.set_ylabel(metric)
    axes.set_title("Scoring History" if len(parts) > 1 else "Training Scoring History")
    axes.legend()
    return _finish(figure, save_plot_path)


def curve_plot(type: str, x: np.ndarray, y: np.ndarray, area: float,
               save_plot_path: str | os.PathLike | None = None) -> Figure:
    """A binomial model's curve, as H2O draws it: type="roc" plots the true positive rate `y` against the false
    positive rate `x` with the diagonal of a random guess; type="pr" the precision `y` against the recall `x`.
    `area` (AUC or AUCPR) goes in the legend."""
    type = choice("type", type, METRICS_PLOT_TYPES)
    figure, axes = _new_figure()
    if type == "roc":
        axes.plot(x, y, label=f"AUC = {area:.4f}")
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
        axes.set_xlabel("False Positive Rate")
        axes.set_ylabel("True Positive Rate")
        axes.set_title("ROC Curve")
    else:
        axes.plot(x, y, label=f"AUCPR = {area:.4f}")
        axes.set_xlabel("Recall")
        axes.set_ylabel("Precision")
        axes.set_title("Precision Recall Curve")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.legend(loc="lower right")
    return _finish(figure, save_plot_path)


def confusion_plot(matrix: Sequence[Sequence[float]], classes: Sequence[Any],
                   save_plot_path: str | os.PathLike | None = None) -> Figure:
    """A confusion matrix (rows actual, columns predicted) as a heat map with the counts written in."""
    labels = [str(c) for c in classes]
    matrix = np.asarray(matrix, dtype=float)
    size = max(4.0, 0.5 * len(labels) + 2)
    figure, axes = _new_figure(figsize=(size, size))
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046)
    axes.set_xticks(range(len(labels)), labels=labels)
    axes.set_yticks(range(len(labels)), labels=labels)
    if len(labels) <= 20:
        middle = matrix.max() / 2 if matrix.size else 0
        for (row, column), count in np.ndenumerate(matrix):
            axes.text(column, row, f"{count:g}", ha="center", va="center",
                      color="white" if count > middle else "black", fontsize=8)
    axes.set_xlabel("Predicted")
    axes.set_ylabel("Actual")
    axes.set_title("Confusion Matrix")
    return _finish(figure, save_plot_path)


def grid_plot(table: pd.DataFrame, metric: str, save_plot_path: str | os.PathLike | None = None) -> Figure:
    """A bar per model of `table` (hyper-parameters, model_ids and the `metric` column, best first), each
    labelled with its hyper-parameters."""
    hyper = [c for c in table.columns if c not in ("model_ids", metric)]
    labels = [", ".join(f"{name}={row[name]}" for name in hyper) or row["model_ids"] for _, row in table.iterrows()]
    figure, axes = _new_figure(figsize=(8, max(3.0, 0.45 * len(table) + 1.5)))
    positions = np.arange(len(table))[::-1]  # the first (best) model at the top
    axes.barh(positions, table[metric].to_numpy(dtype=float))
    axes.set_yticks(positions, labels=labels)
    axes.set_xlabel(metric)
    axes.set_title(f"Grid models by {metric}")
    return _finish(figure, save_plot_path)
