"""Running the service: uvicorn on one process, or on `workers` processes that each load the bundle."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepwater.deploy.inference import Scorer
from deepwater.errors import MissingDependencyError, ParameterError
from deepwater.serving.config import ServeConfig

if TYPE_CHECKING:
    from fastapi import FastAPI


def _app_module() -> Any:
    try:
        from deepwater.serving import app
    except ImportError as error:
        raise MissingDependencyError(f"{error.name or 'fastapi'} (for the prediction service)", "serve") from error
    return app


def create_app(config: ServeConfig, scorer: Scorer | None = None) -> FastAPI:
    """The FastAPI app scoring config.bundle (see deepwater.serving.app.create_app)."""
    return _app_module().create_app(config, scorer)


def serve(config: ServeConfig, host: str = "127.0.0.1", port: int = 8080, workers: int = 1,
          log_level: str = "info") -> None:
    """Serve config.bundle on http://host:port until interrupted, on `workers` processes."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParameterError(f"workers={workers!r} must be an integer >= 1.")
    app = create_app(config)  # loads the bundle here, so a bad bundle fails before the server starts
    try:
        import uvicorn
    except ImportError as error:
        raise MissingDependencyError("uvicorn (for the prediction service)", "serve") from error
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
        return
    config.to_environment()
    uvicorn.run(f"{_app_module().__name__}:app_from_environment", factory=True, host=host, port=port,
                workers=workers, log_level=log_level)
