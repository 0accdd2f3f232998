"""The training layer: the parameter table, the training loop and its schedule, and what a run leaves."""
