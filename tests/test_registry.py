"""The registry: backends by name, plug-ins checked against the protocol, formats and capabilities asked of
the backends (the core names none itself)."""
from __future__ import annotations

import sys
import types

import pytest

from deepwater.backends.base import Backend, UserGraphLoader
from deepwater.errors import BackendError, ParameterError
from deepwater.runtime import registry


class NotABackend:
    name = "half"
    extra = "half"

    def available(self) -> bool:
        return True


def test_an_entry_point_that_is_not_a_backend_is_a_clear_error(monkeypatch):
    module = types.ModuleType("deepwater_test_half_plugin")
    module.NotABackend = NotABackend
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(registry, "BUILTIN_BACKENDS", {**registry.BUILTIN_BACKENDS,
                                                        "half": f"{module.__name__}:NotABackend"})
    with pytest.raises(BackendError, match=r"deepwater_test_half_plugin:NotABackend.*not a deepwater Backend.*build"):
        registry.get_backend("half")


def test_an_unknown_backend_lists_the_known_ones():
    with pytest.raises(ParameterError, match=r"backend='caffe'.*'torch'"):
        registry.get_backend("caffe")


def test_every_shipped_loader_implements_its_protocol():
    for loader in registry.loaders():
        assert isinstance(loader, UserGraphLoader)
    for name in registry.BUILTIN_BACKENDS:
        assert isinstance(registry._load(registry.BUILTIN_BACKENDS[name]), Backend)


def test_graph_formats_come_from_the_backends_that_read_them():
    formats = {fmt.name: fmt for fmt in registry.graph_formats()}
    assert {"mxnet-symbol", "keras", "saved-model", "tf1-meta", "torchscript", "torch-export", "onnx"} <= set(formats)
    for fmt in formats.values():
        assert fmt in registry.format_loader(fmt).graph_formats
    assert formats["saved-model"].directory_marker == "saved_model.pb"


def test_mean_image_files_in_a_framework_format_are_read_by_its_backend():
    assert registry.mean_image_reader(".nd").name == "mxnet"
    assert registry.mean_image_reader(".npy") is None
