"""Find backends: the ones shipped here plus any plug-in in the `deepwater.backends` entry-point group."""
from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from .errors import MissingDependencyError, ParameterError

ENTRY_POINT_GROUP = "deepwater.backends"
# Shipped backends, in the order backend="auto" tries them.
BUILTIN_BACKENDS = {
    "torch": "deepwater.backends.torch_backend:TorchBackend",
    "mxnet": "deepwater.backends.mxnet_backend:MXNetBackend",
    "tensorflow": "deepwater.backends.tf_backend:TensorflowBackend",
}
AUTO_ORDER = ("torch", "tensorflow", "mxnet")


def backend_targets() -> dict[str, str]:
    """Backend name -> 'module:Class' for every backend known, shipped or plugged in."""
    targets = dict(BUILTIN_BACKENDS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        targets.setdefault(ep.name, ep.value)
    return targets


def _load(target: str):
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)()


def get_backend(name: str):
    """The backend called `name` ('auto': the first installed of torch, tensorflow, mxnet), ready to use."""
    targets = backend_targets()
    if name == "auto":
        for candidate in [n for n in AUTO_ORDER if n in targets] + sorted(set(targets) - set(AUTO_ORDER)):
            backend = _load(targets[candidate])
            if backend.available():
                return backend
        raise MissingDependencyError("No deep learning framework", "torch")
    if name not in targets:
        raise ParameterError(f"backend={name!r} is not a known backend. Use 'auto' or one of: "
                             f"{', '.join(map(repr, sorted(targets)))}.")
    backend = _load(targets[name])
    if not backend.available():
        raise MissingDependencyError(f"The framework for backend={name!r}", backend.extra)
    return backend
