"""The prediction service over an exported bundle (`deepwater serve`, extra `deepwater[serve]`): FastAPI on uvicorn,
scoring with deepwater.inference (onnxruntime), so it imports no deep learning framework.

>>> from deepwater.serving import ServeConfig, create_app       # doctest: +SKIP
>>> app = create_app(ServeConfig("bundles/mnist", max_batch=64))  # an ASGI app: uvicorn.run(app)   # doctest: +SKIP
"""
from deepwater.serving.config import ServeConfig

__all__ = ["ServeConfig", "create_app", "serve"]


def __getattr__(name: str):
    """create_app and serve import FastAPI and uvicorn only when asked for."""
    if name in ("create_app", "serve"):
        from deepwater.serving import server

        return getattr(server, name)
    raise AttributeError(name)
