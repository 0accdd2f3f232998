"""MLflow itself: imported only when a run is logged, and called so that a tracking server that is down makes
training warn once and go on rather than fail or wait through MLflow's retries."""
from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import TypeVar

from deepwater.errors import MissingDependencyError, warn_user

T = TypeVar("T")

# MLflow's HTTP settings for deepwater's own calls, unless the user set them: no retries (MLflow's default retries
# with backoff for minutes), and a short wait for each answer
QUICK_REQUESTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


def mlflow_module(name: str = "mlflow") -> ModuleType:
    """The MLflow module `name` (mlflow, mlflow.pyfunc, ...); MissingDependencyError naming the extra without it."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise MissingDependencyError("MLflow (for mlflow=True and deepwater.mlflow)", "mlflow") from error


@contextlib.contextmanager
def quick_requests() -> Iterator[None]:
    """QUICK_REQUESTS in the environment while the block runs (those the user did not set), then as they were."""
    added = {name: value for name, value in QUICK_REQUESTS.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def unreachable_errors(mlflow: ModuleType) -> tuple[type[BaseException], ...]:
    """The errors of a tracking server that is down or refuses a call: MLflow's own, the HTTP client's, the OS's."""
    requests = importlib.import_module("requests")
    return mlflow.exceptions.MlflowException, requests.exceptions.RequestException, OSError


def logged(what: str, log: Callable[[ModuleType], T]) -> T | None:
    """log(mlflow) with quick requests; None and one warning (naming the tracking URI) when the server does not
    answer or refuses it, so that the trained model is kept whatever happens to its run."""
    mlflow = mlflow_module()
    with quick_requests():
        try:
            return log(mlflow)
        except unreachable_errors(mlflow) as error:
            warn_user(f"MLflow tracking at {mlflow.get_tracking_uri()!r} failed, so {what} is not logged "
                      f"({type(error).__name__}: {_first_line(error)}). The model is trained as usual; start the "
                      "tracking server (or set MLFLOW_TRACKING_URI) and log it again with "
                      "deepwater.mlflow.log_run(model).", RuntimeWarning)
            return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else "no message"
