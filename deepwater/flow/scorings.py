"""A run's progress and scoring history as a job records them, wherever the run trains (this process, a Ray task,
a grid's model read from its checkpoint)."""
from __future__ import annotations

import math
from typing import Any

from deepwater.storage.saved_models import json_values


def run_progress(samples: float, epochs: float, rows: int) -> float | None:
    """The share of the run done: samples trained / (epochs x rows), at most 1; None when epochs is not finite."""
    if not (math.isfinite(epochs) and epochs and rows):
        return None
    return min(samples / (epochs * rows), 1.0)


def history_rows(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A scoring history as JSON rows."""
    return json_values([dict(row) for row in history])
