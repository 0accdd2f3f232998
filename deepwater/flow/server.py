"""Running Flow: uvicorn on one process; off the loopback address only with a token (printed when none is given)."""
from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from deepwater.errors import MissingDependencyError, ParameterError
from deepwater.flow.config import LOOPBACK, FlowConfig

PORTS = range(1, 65536)


def guarded(config: FlowConfig, host: str) -> FlowConfig:
    """`config` with a token made where `host` is not a loopback address and none was given."""
    if host in LOOPBACK or config.token is not None:
        return config
    return replace(config, token=secrets.token_urlsafe(24))


def _app_module() -> Any:
    try:
        from deepwater.flow import app
    except ImportError as error:
        raise MissingDependencyError(f"{error.name or 'fastapi'} (for Deep Water Flow)", "flow") from error
    return app


def run(config: FlowConfig, host: str = "127.0.0.1", port: int = 54321, log_level: str = "info") -> None:
    """Serve Flow on http://host:port until interrupted; prints the address to open (with the token, if any).
    After deepwater.init() in this process, its jobs train as Ray tasks."""
    if isinstance(port, bool) or port not in PORTS:
        raise ParameterError(f"port={port!r} is out of range; give a port in 1-65535, e.g. 54321.")
    config = guarded(config, host)
    app = _app_module().create_app(config)
    try:
        import uvicorn
    except ImportError as error:
        raise MissingDependencyError("uvicorn (for Deep Water Flow)", "flow") from error
    address = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    print(f"Deep Water Flow: open {address}" + (f"?token={config.token}" if config.token else ""), flush=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
