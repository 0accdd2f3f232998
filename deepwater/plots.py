"""Plots as H2O draws them (matplotlib, the `plot` extra): the public path of deepwater.plots."""
from deepwater.analysis.plots import (
    HISTORY_METRICS,
    METRICS_PLOT_TYPES,
    TIMESTEPS,
    confusion_plot,
    curve_plot,
    explain_grid,
    grid_plot,
    overlays,
    scoring_history_plot,
)

__all__ = ["scoring_history_plot", "curve_plot", "confusion_plot", "grid_plot", "explain_grid", "overlays",
           "HISTORY_METRICS", "TIMESTEPS", "METRICS_PLOT_TYPES"]
