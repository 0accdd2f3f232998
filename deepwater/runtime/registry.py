"""Find backends: the ones shipped here plus any plug-in in the `deepwater.backends` entry-point group.

The core asks this module, never a backend module by path: for a backend by name, for the graph formats
the installed loaders read, and for optional capabilities (mean-image files in a framework's format, a
distance engine on a GPU). Creating a backend object imports no framework; using it does.
"""
from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

from deepwater.backends.base import Backend, DistanceEngineProvider, MeanImageReader, UserGraphLoader
from deepwater.errors import BackendError, MissingDependencyError, ParameterError
from deepwater.specs import DistanceEngine, GraphFormat

ENTRY_POINT_GROUP = "deepwater.backends"
# Shipped backends, in the order backend="auto" tries them.
BUILTIN_BACKENDS = {
    "torch": "deepwater.backends.torch.backend:TorchBackend",
    "mxnet": "deepwater.backends.mxnet.backend:MXNetBackend",
    "tensorflow": "deepwater.backends.tensorflow.backend:TensorflowBackend",
}
# Loaders that read graph files of their own formats but build no networks (not choosable as backend=).
GRAPH_LOADERS = {"onnxruntime": "deepwater.backends.onnx.backend:OnnxRuntime"}
AUTO_ORDER = ("torch", "tensorflow", "mxnet")


def _auto_order(targets: dict[str, str]) -> list[str]:
    """Backend names in the order backend='auto' tries them: AUTO_ORDER, then plug-ins by name."""
    return [n for n in AUTO_ORDER if n in targets] + sorted(set(targets) - set(AUTO_ORDER))


def backend_targets() -> dict[str, str]:
    """Backend name -> 'module:Class' for every backend known, shipped or plugged in."""
    targets = dict(BUILTIN_BACKENDS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        targets.setdefault(ep.name, ep.value)
    return targets


@cache
def _load(target: str, kind: type = Backend):
    """The object that `target` ('module:Class') makes, checked to be a `kind` (Backend or UserGraphLoader)."""
    module_name, _, class_name = target.partition(":")
    made = getattr(importlib.import_module(module_name), class_name)()
    if not isinstance(made, kind):
        missing = [name for name in dir(kind) if not name.startswith("_") and not hasattr(made, name)]
        raise BackendError(f"the entry point {target!r} (group {ENTRY_POINT_GROUP!r}) made a "
                           f"{type(made).__name__}, which is not a deepwater {kind.__name__}: it lacks "
                           f"{', '.join(missing) or 'some of its methods'}. Implement the protocol in "
                           "deepwater.backends.base (and run deepwater.backends.testing on it), or remove the "
                           "entry point.")
    return made


def known_backend(name: str) -> str:
    """`name` spelt as the registry spells it ('auto' or a shipped or plugged-in backend, in any case).

    Imports no framework: a known backend whose framework is not installed passes here and fails when used.
    """
    targets = backend_targets()
    spellings = {known.lower(): known for known in ("auto", *targets)}
    if name.lower() not in spellings:
        raise ParameterError(f"backend={name!r} is not a known backend. Use 'auto' or one of: "
                             f"{', '.join(map(repr, sorted(targets)))}.")
    return spellings[name.lower()]


def get_backend(name: str) -> Backend:
    """The backend called `name` ('auto': the first installed of torch, tensorflow, mxnet), ready to use."""
    name = known_backend(name)
    targets = backend_targets()
    if name == "auto":
        for candidate in _auto_order(targets):
            backend = _load(targets[candidate])
            if backend.available():
                return backend
        raise MissingDependencyError("No deep learning framework", "torch")
    backend = _load(targets[name])
    if not backend.available():
        raise MissingDependencyError(f"The framework for backend={name!r}", backend.extra)
    return backend


def installed_backends() -> list[str]:
    """The shipped backends whose framework imports here, in backend='auto' order."""
    names = []
    for name in AUTO_ORDER:
        try:
            get_backend(name)
        except ImportError:
            continue
        names.append(name)
    return names


def loaders() -> list[UserGraphLoader]:
    """Every backend and graph loader known, installed or not (making them imports no framework)."""
    return [_load(t) for t in backend_targets().values()] + [_load(t, UserGraphLoader) for t in GRAPH_LOADERS.values()]


def graph_formats() -> list[GraphFormat]:
    """The graph formats every known loader declares, in the order the loaders are known."""
    return [fmt for loader in loaders() for fmt in loader.graph_formats]


def format_loader(fmt: GraphFormat) -> UserGraphLoader:
    """The loader that declared `fmt`."""
    return next(loader for loader in loaders() if fmt in loader.graph_formats)


def mean_image_reader(suffix: str) -> MeanImageReader | None:
    """The backend that reads mean-image files ending in `suffix` (e.g. '.nd'), or None when none does."""
    return next((b for b in loaders() if isinstance(b, MeanImageReader) and suffix in b.mean_image_suffixes), None)


def distance_engine(device: str) -> DistanceEngine:
    """A GPU engine for deepwater.distance() from the first installed backend that has one (torch)."""
    targets = backend_targets()
    for name in _auto_order(targets):
        backend = _load(targets[name])
        if isinstance(backend, DistanceEngineProvider) and backend.available():
            return backend.distance_engine(device)
    raise MissingDependencyError(f"A backend that computes distances on device={device!r} (torch)", "torch")
