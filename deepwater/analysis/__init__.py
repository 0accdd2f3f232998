"""The analysis layer: metrics, plots, deep features, variable importances and distances."""
