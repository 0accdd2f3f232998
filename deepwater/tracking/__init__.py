"""Experiment tracking: a trained model's run logged to MLflow (mlflow=True, deepwater.mlflow).

Nothing here imports MLflow until a run is logged (client.mlflow_module); MLflow is the `mlflow` extra.
"""
