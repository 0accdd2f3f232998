"""The MXNet backend. Importing this module does not import mxnet; building a net does.

MXNet 1.9 needs two accommodations, both kept here: it still refers to `numpy.bool`, which numpy
1.24 removed, and importing it drops PyTorch's intra-op thread count to 1. `load_mxnet()` applies
the first and undoes the second.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from deepwater.errors import MissingDependencyError
from deepwater.networks import Graph
from deepwater.specs import OptimizerSpec, TaskSpec
from deepwater.user_graphs import UserGraph

EXTRA = "mxnet"


def _numpy_bool_shim() -> None:
    """Give numpy back the `bool` alias that MXNet 1.9 uses (removed in numpy 1.24)."""
    import numpy

    if "bool" not in numpy.__dict__:
        numpy.bool = bool  # type: ignore[attr-defined]


def _torch_threads() -> int | None:
    """PyTorch's intra-op thread count when torch is already imported, else None (and no import)."""
    torch = sys.modules.get("torch")
    get = getattr(torch, "get_num_threads", None)
    return get() if callable(get) else None


def _restore_torch_threads(count: int | None) -> None:
    """Put PyTorch's thread count back to `count` if importing mxnet changed it."""
    torch = sys.modules.get("torch")
    if count is not None and torch is not None and torch.get_num_threads() != count:
        torch.set_num_threads(count)


@contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Run the block (MXNet work) and put PyTorch's thread count back as it was before it."""
    threads = _torch_threads()
    try:
        yield
    finally:
        _restore_torch_threads(threads)


def load_mxnet() -> ModuleType:
    """Import mxnet (with the numpy shim), leaving PyTorch's thread count as it was.

    A missing or broken install raises MissingDependencyError naming the 'mxnet' extra.
    """
    if "mxnet" in sys.modules:
        return sys.modules["mxnet"]
    if importlib.util.find_spec("mxnet") is None:
        raise MissingDependencyError("MXNet (the framework for backend='mxnet')", EXTRA)
    _numpy_bool_shim()
    with torch_threads_kept():
        try:
            with warnings.catch_warnings():  # MXNet 1.9's own deprecated uses of numpy and distutils
                warnings.simplefilter("ignore", DeprecationWarning)
                return importlib.import_module("mxnet")
        except Exception as error:  # a broken install: a missing shared library, an incompatible numpy, ...
            sys.modules.pop("mxnet", None)
            raise MissingDependencyError(
                f"A working MXNet (importing mxnet failed: {type(error).__name__}: {error})", EXTRA) from error


class MXNetBackend:
    """Compiles network graphs into MXNet symbols run by bound executors (see mxnet_net.py)."""

    name = "mxnet"
    extra = EXTRA

    def available(self) -> bool:
        return importlib.util.find_spec("mxnet") is not None

    def devices(self) -> list[str]:
        mx = load_mxnet()
        try:
            gpus = mx.context.num_gpus()
        except mx.base.MXNetError:  # a CUDA build without a usable driver
            gpus = 0
        return ["cpu"] + [f"cuda:{i}" for i in range(gpus)]

    def gpu_hint(self) -> str:
        """Why no GPU may be visible: the installed MXNet has no CUDA (PyPI's mxnet wheel), or no device."""
        mx = load_mxnet()
        if not mx.runtime.Features().is_enabled("CUDA"):
            return ("this MXNet build has no CUDA support (PyPI's mxnet wheel is CPU-only); "
                    "a CUDA build such as mxnet-cu112 is needed for GPUs")
        return "MXNet sees no GPU"

    def build(self, graph: Graph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int):
        load_mxnet()
        with torch_threads_kept():
            from .mxnet_net import MXNetNet

            return MXNetNet(graph, task, optimizer, device, seed)

    def load_user_network(self, graph: UserGraph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int):
        """A Net from an MXNet symbol JSON file and optional .params weights (see mxnet_user.py)."""
        load_mxnet()
        with torch_threads_kept():
            from .mxnet_user import MXNetUserNet

            return MXNetUserNet(graph, task, optimizer, device, seed)
