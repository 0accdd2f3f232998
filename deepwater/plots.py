"""Plots as H2O draws them (matplotlib, the `plot` extra): the public path of deepwater.analysis.plots."""
from deepwater.analysis.plots import (
    HISTORY_METRICS,
    METRICS_PLOT_TYPES,
    TIMESTEPS,
    grid_plot,
    metrics_plot,
    model_kind,
    scoring_history_plot,
)

__all__ = ["scoring_history_plot", "metrics_plot", "grid_plot", "model_kind", "HISTORY_METRICS", "TIMESTEPS",
           "METRICS_PLOT_TYPES"]
