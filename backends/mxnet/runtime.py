"""The MXNet runtime: importing mxnet 1.9 (the last release) safely, and binding executors unfused.

MXNet 1.9 needs two accommodations, both kept here: it still refers to `numpy.bool`, which numpy
1.24 removed, and importing it drops PyTorch's intra-op thread count to 1. `load_mxnet()` applies
the first and undoes the second. `unfused_binding()` binds executors without graph fusion and keeps
the notice MXNet logs about that off the user's terminal.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from deepwater.errors import MissingDependencyError

EXTRA = "mxnet"
SUBGRAPH_BACKEND = "MXNET_SUBGRAPH_BACKEND"  # read by MXNet each time an executor is bound
# What MXNet's C++ log writes to stderr for every executor bound with MXNET_SUBGRAPH_BACKEND=NONE, whatever
# MXNET_SUBGRAPH_VERBOSE says (src/executor/graph_executor.cc): it reports deepwater's own setting, so it is dropped.
SUBGRAPH_NOTICE = b"MXNET_SUBGRAPH_BACKEND=NONE is detected"
_BINDING = threading.RLock()  # the environment and file descriptor 2 are process-wide


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


@contextmanager
def stderr_without(notice: bytes) -> Iterator[None]:
    """Run the block with file descriptor 2 (where C++ libraries log) captured, then write back what the block
    wrote there, less the lines that hold `notice`. Call it under _BINDING: fd 2 is shared by every thread."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = b"".join(line for line in captured if notice not in line)
            if kept:
                os.write(2, kept)


@contextmanager
def unfused_binding() -> Iterator[None]:
    """Bind without MXNet's MKL-DNN graph fusion: its fused convolutions fold and cache the weights when
    first run and miss later in-place updates, so predictions after a training step or set_state() would
    use stale weights. The setting is restored afterwards, and MXNet's notice about it is not shown."""
    with _BINDING, stderr_without(SUBGRAPH_NOTICE):
        previous = os.environ.get(SUBGRAPH_BACKEND)
        os.environ[SUBGRAPH_BACKEND] = "NONE"
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop(SUBGRAPH_BACKEND, None)
            else:
                os.environ[SUBGRAPH_BACKEND] = previous
