"""The model layer: the estimator and the steps it is made of (start, fit, record, cross-validation, jobs)."""
