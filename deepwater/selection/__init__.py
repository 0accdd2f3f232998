"""The selection layer: grid search and stacked ensembles over many models."""
