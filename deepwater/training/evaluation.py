"""Scoring a net on a source of batches: its outputs, and the metrics of those outputs against the response."""
from __future__ import annotations

from typing import Any

import numpy as np

from deepwater.analysis.metrics import ModelMetrics
from deepwater.data.encoders import Response
from deepwater.data.sources import Source, map_batches
from deepwater.specs import TaskSpec
from deepwater.training import autoencoder as unsupervised


def outputs(net: Any, source: Source, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Network outputs for every row of `source` that decoded, and those rows."""
    return map_batches(source, net.predict, batch_size)


def model_metrics(net: Any, task: TaskSpec, response: Response, source: Source, batch_size: int,
                  description: str = "") -> ModelMetrics:
    """The metrics of `net` on `source` (its rows' targets and weights): an autoencoder's reconstruction errors,
    a classifier's or a regression's metrics in the response's own units."""
    if task.is_autoencoder:
        errors, rows = map_batches(source, lambda x: unsupervised.row_errors(net, x), batch_size)
        return ModelMetrics.for_autoencoder(errors[:, 0], None if source.w is None else source.w[rows], description)
    out, rows = outputs(net, source, batch_size)
    y = source.y[rows]
    w = None if source.w is None else source.w[rows]
    if task.is_classification:
        return ModelMetrics.for_classification(y, out, response.classes, w, description)
    scale = response.scale
    return ModelMetrics.for_regression(y * scale + response.mean, out[:, 0] * scale + response.mean,
                                       task.distribution, w, description)
