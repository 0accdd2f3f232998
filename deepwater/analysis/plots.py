"""Plots as H2O draws them, from plain numbers: a scoring history, a ROC or precision-recall curve, a confusion
matrix, a grid's models; and model.explain()'s heatmaps over their images. ModelMetrics.plot() and the models'
plot() methods pick what to draw.

matplotlib (the `plot` extra) is imported only when a plot is drawn. Each function returns the matplotlib
Figure, closed to pyplot so that Jupyter shows it once (as the cell's value) and a script saves it with
`figure.savefig(path)` or `save_plot_path=`.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from deepwater.data.images import ImageReader, ImageShape, looks_like_image_column
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


def _image_column(frame: pd.DataFrame, column: str | None) -> str:
    """`column`, or the frame's first column of image URIs; ParameterError when there is none."""
    if column is not None:
        if column not in frame.columns:
            raise ParameterError(f"column={column!r} is not a column of the frame; name its image column, one of "
                                 f"{list(frame.columns)[:20]}.")
        return column
    found = next((name for name in frame.columns if looks_like_image_column(frame[name])), None)
    if found is None:
        raise ParameterError("the frame has no column of image URIs to draw the heatmaps on; pass column=... "
                             "naming it.")
    return found


def overlays(frame: pd.DataFrame, heatmaps: np.ndarray, column: str | None = None, alpha: float = 0.5,
             resize: str = "stretch") -> np.ndarray:
    """Each row's image (`column`: the frame's image column, found when None) resized to its heatmap as the model
    resized it (`resize`: its image_resize, 'stretch' or 'crop'), with the heatmap drawn over it in matplotlib's
    'jet' colours at opacity `alpha`: uint8 (rows, height, width, 3). A row without a heatmap (NaN: a skipped
    image) is its image alone; an image that cannot be read is black."""
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    if heatmaps.ndim != 3 or len(heatmaps) != len(frame):
        raise ParameterError(f"heatmaps of shape {heatmaps.shape}: give model.explain(frame)'s array for this frame, "
                             f"({len(frame)}, height, width).")
    if not 0.0 <= alpha <= 1.0:
        raise ParameterError(f"alpha={alpha!r}: the heatmaps' opacity is a number from 0 to 1.")
    try:
        from matplotlib import colormaps
    except ImportError as error:
        raise MissingDependencyError("matplotlib (for plots)", "plot") from error
    reader = ImageReader(ImageShape(int(heatmaps.shape[1]), int(heatmaps.shape[2]), 3, resize), bad_images="skip",
                         cache_mb=0)
    pixels, read = reader.read_batch(frame[_image_column(frame, column)].tolist(), list(range(len(frame))))
    images = np.zeros((len(frame), *heatmaps.shape[1:], 3), dtype=np.float32)
    images[read] = pixels.transpose(0, 2, 3, 1)
    colours = colormaps["jet"](np.nan_to_num(heatmaps))[..., :3] * 255.0
    shown = np.where(np.isnan(heatmaps).all(axis=(1, 2)), 0.0, alpha).reshape(-1, 1, 1, 1)
    return np.rint((1.0 - shown) * images + shown * colours).astype(np.uint8)


def explain_grid(frame: pd.DataFrame, heatmaps: np.ndarray, column: str | None = None,
                 titles: Sequence[Any] | None = None, alpha: float = 0.5, columns: int = 4,
                 save_plot_path: str | os.PathLike | None = None, resize: str = "stretch") -> Figure:
    """model.explain()'s `heatmaps` (rows, height, width) over their rows' images (overlays(), `resize` as the
    model's image_resize), `columns` images a row; `titles` labels them (default: the frame's index), e.g. with the
    predictions."""
    if titles is not None and len(titles) != len(frame):
        raise ParameterError(f"titles holds {len(titles)} labels for {len(frame)} rows; give one per row.")
    pictures = overlays(frame, heatmaps, column, alpha, resize)
    width = max(1, min(columns, len(frame)))
    height = -(-len(frame) // width)
    figure, axes = _new_figure(nrows=height, ncols=width, figsize=(2.4 * width, 2.4 * height), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < len(frame):
            ax.imshow(pictures[i])
            ax.set_title(str(frame.index[i] if titles is None else titles[i]), fontsize=9)
    return _finish(figure, save_plot_path)
