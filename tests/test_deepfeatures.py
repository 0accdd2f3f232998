"""model.deepfeatures() and model.layers() on every installed backend, for the MLP and LeNet."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepwater import DeepWaterEstimator, FrameError, MissingDependencyError, NotFittedError, ParameterError
from deepwater.runtime.registry import backend_targets, get_backend

TINY = {"hidden": [8], "epochs": 1, "gpu": False, "quiet_mode": True, "seed": 7, "mini_batch_size": 16}
LENET = {"network": "lenet", "problem_type": "image", "image_shape": [28, 28], "channels": 1, "epochs": 1,
         "gpu": False, "quiet_mode": True, "seed": 7, "mini_batch_size": 8}


def make_blobs(n: int, seed: int) -> pd.DataFrame:
    """Three gaussian blobs in (x1, x2) with a categorical label a, b, c."""
    rng = np.random.default_rng(seed)
    codes = np.arange(n) % 3
    xy = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]])[codes] + rng.normal(scale=0.7, size=(n, 2))
    return pd.DataFrame({"x1": xy[:, 0], "x2": xy[:, 1], "label": pd.Categorical(np.array(["a", "b", "c"])[codes])})


def write_png(path: Path, value: int, size: int, seed: int) -> Path:
    """A grey PNG of about brightness `value`, with a little noise."""
    noise = np.random.default_rng(seed).integers(-20, 21, size=(size, size))
    Image.fromarray(np.clip(value + noise, 0, 255).astype(np.uint8), mode="L").save(path)
    return path


def _installed() -> list[str]:
    names = []
    for name in sorted(backend_targets()):
        try:
            get_backend(name)
        except MissingDependencyError:
            continue
        names.append(name)
    return names


BACKENDS = [pytest.param(name, id=name) for name in _installed()]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """The blobs with an index that is not 0..n-1, so the index is seen to carry over."""
    blobs = make_blobs(120, seed=3)
    return blobs.set_axis(np.arange(1000, 1000 + len(blobs)))


@pytest.fixture(scope="module", params=BACKENDS)
def mlp(request, frame) -> DeepWaterEstimator:
    return DeepWaterEstimator(backend=request.param, **TINY).train(y="label", training_frame=frame)


@pytest.fixture(scope="module")
def pngs(tmp_path_factory) -> pd.DataFrame:
    """Eight 28x28 grey PNGs (dark and light) and one file that is not an image, at row 5."""
    folder = tmp_path_factory.mktemp("pngs")
    uris = [str(write_png(folder / f"img{i}.png", 40 if i % 2 else 215, size=28, seed=i)) for i in range(8)]
    broken = folder / "broken.png"
    broken.write_bytes(b"not an image")
    uris.insert(5, str(broken))
    labels = ["dark" if "broken" in u or int(Path(u).stem[3:]) % 2 else "light" for u in uris]
    return pd.DataFrame({"uri": uris, "label": pd.Categorical(labels)})


# --------------------------------------------------------------------------- the MLP, every backend

def test_mlp_layers_are_listed(mlp):
    assert mlp.layers() == ["fc1", "act1", "output"]


def test_mlp_hidden_features_match_the_net(mlp, frame):
    features = mlp.deepfeatures(frame, "fc1")
    assert list(features.columns) == [f"DF.fc1.C{i}" for i in range(1, 9)]
    assert features.index.equals(frame.index)
    fitted = mlp._fitted
    expected = fitted.net.features(fitted.inputs.source(frame).x, "fc1")
    np.testing.assert_allclose(features.to_numpy(), expected, rtol=1e-5, atol=1e-6)


def test_mlp_output_softmax_is_predict(mlp, frame):
    logits = mlp.deepfeatures(frame, "output").to_numpy(dtype=np.float64)
    softmax = np.exp(logits - logits.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax, mlp.predict(frame)[["a", "b", "c"]].to_numpy(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_number_is_h2os_hidden_layer_index_on_an_mlp(backend, frame):
    """h2o-py's deepfeatures(frame, layer): the 0-based hidden layer, its activations."""
    model = DeepWaterEstimator(backend=backend, **{**TINY, "hidden": [6, 3, 5]}).train(y="label", training_frame=frame)
    head = frame.head(10)
    for index, name, width in [(0, "act1", 6), (1, "act2", 3), (2, "act3", 5), (-1, "act3", 5)]:
        features = model.deepfeatures(head, index)
        assert features.shape == (10, width)
        pd.testing.assert_frame_equal(features, model.deepfeatures(head, name))


def test_a_number_is_the_bottleneck_of_an_autoencoder(frame):
    """H2O's booklet: deepfeatures(frame, 1) of hidden=[64, 16, 64] gives the 16 bottleneck units."""
    model = DeepWaterEstimator(**{**TINY, "hidden": [6, 2, 6], "autoencoder": True})
    model.train(x=["x1", "x2"], training_frame=frame)
    assert model.deepfeatures(frame, 1).shape == (len(frame), 2)
    assert list(model.deepfeatures(frame, 1).columns) == ["DF.act2.C1", "DF.act2.C2"]


@pytest.mark.parametrize("layer", ["fc9", "input", "", None, 3.5])
def test_wrong_layer_lists_the_valid_ones(mlp, frame, layer):
    with pytest.raises(ParameterError) as info:
        mlp.deepfeatures(frame, layer)
    message = str(info.value)
    assert f"layer={layer!r}" in message
    assert "'fc1', 'act1', 'output'" in message


def test_a_hidden_layer_index_out_of_range_names_the_hidden_layers(mlp, frame):
    with pytest.raises(ParameterError, match=r"layer=7 is not a hidden layer of this MLP: hidden=\[8\] has 1"):
        mlp.deepfeatures(frame, 7)


# --------------------------------------------------------------------------- LeNet on images, every backend

@pytest.mark.parametrize("backend", BACKENDS)
def test_lenet_pool2_features_and_skipped_images(backend, pngs):
    model = DeepWaterEstimator(backend=backend, bad_images="skip", **LENET)
    model.train(x=["uri"], y="label", training_frame=pngs)
    assert model.layers() == ["conv1", "tanh1", "pool1", "conv2", "tanh2", "pool2", "flatten", "fc1", "tanh3",
                              "output"]
    features = model.deepfeatures(pngs, "pool2")
    pd.testing.assert_frame_equal(model.deepfeatures(pngs, 5), features)  # a number: a position in layers()
    deep_water = model.deepfeatures(pngs, "pooling1_output")  # Deep Water's own (MXNet's) name for it
    np.testing.assert_array_equal(deep_water.to_numpy(), features.to_numpy())
    assert features.shape == (len(pngs), 50 * 4 * 4)
    assert features.columns[0] == "DF.pool2.C1" and features.columns[-1] == "DF.pool2.C800"
    assert features.iloc[5].isna().all()  # the broken file: a row of NaN, as predict gives
    assert np.isfinite(features.drop(index=5).to_numpy()).all()
    predictions = model.predict(pngs)
    assert predictions.iloc[5, 1:].isna().all()
    broken = pngs.iloc[[5, 5]]
    with pytest.raises(FrameError, match="no row of the frame could be scored"):
        model.deepfeatures(broken, "pool2")
    with pytest.raises(FrameError, match="no row of the frame could be scored"):
        model.predict(broken)


# --------------------------------------------------------------------------- progress and errors

def test_progress_bar_shows_for_many_batches_unless_quiet(capsys):
    frame = make_blobs(300, seed=4)
    big = pd.concat([frame] * 10, ignore_index=True)  # 3,000 rows: 12 batches of 256
    quiet = DeepWaterEstimator(**TINY).train(y="label", training_frame=frame)
    model = DeepWaterEstimator(**{**TINY, "quiet_mode": False}).train(y="label", training_frame=frame)
    capsys.readouterr()
    quiet.deepfeatures(big, "fc1")
    assert "deepfeatures fc1" not in capsys.readouterr().err
    model.deepfeatures(big, "fc1")
    assert "deepfeatures fc1" in capsys.readouterr().err
    model.deepfeatures(frame.head(50), "fc1")  # one batch: no bar even when not quiet
    assert "deepfeatures fc1" not in capsys.readouterr().err


def test_untrained_model_says_so(frame):
    model = DeepWaterEstimator(**TINY)
    with pytest.raises(NotFittedError, match="not trained yet"):
        model.deepfeatures(frame, "fc1")
    with pytest.raises(NotFittedError, match="not trained yet"):
        model.layers()


class _ShapeShifter:
    """A net whose features change width between batches, as a broken backend might."""

    def layers(self) -> list[str]:
        return ["hidden"]

    def features(self, x: np.ndarray, layer: str) -> np.ndarray:
        return np.zeros((len(x), 3 if x[0, 0] < 0.5 else 4), dtype=np.float32)


def test_a_backend_returning_unsteady_feature_widths_is_reported():
    from deepwater.analysis.deep_features import deep_features
    from deepwater.data.sources import ArraySource
    from deepwater.errors import DeepWaterError

    x = np.repeat(np.array([[0.0], [1.0]], dtype=np.float32), 4, axis=0)
    with pytest.raises(DeepWaterError, match=r"shape \(4, 4\).*'hidden'.*\(4, 3\).*bug in the backend"):
        deep_features(_ShapeShifter(), ArraySource(x), pd.RangeIndex(8), "hidden", batch_size=4)
    np.testing.assert_array_equal(deep_features(_ShapeShifter(), ArraySource(x[:4]), pd.RangeIndex(4), "hidden", 2),
                                  np.zeros((4, 3)))


LENET_SYMBOL = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "h2o-deepwater" / "mxnet" / \
    "symbol_lenet-cpp.json"


@pytest.mark.skipif(not LENET_SYMBOL.is_file(), reason="needs the shared fixtures of the original Deep Water")
def test_deep_water_names_are_those_of_its_own_lenet_symbol():
    """Every layer name in the LeNet symbol Deep Water wrote maps onto one of our LeNet's layers, in order."""
    import json

    from deepwater.networks import build_graph, deep_water_names
    from deepwater.training.parameters import resolve

    theirs = [node["name"] for node in json.loads(LENET_SYMBOL.read_text())["nodes"]
              if node["op"] not in ("null", "SoftmaxOutput")]
    aliases = deep_water_names(build_graph("lenet", (1, 28, 28), 10, resolve({})))
    assert list(aliases) == theirs
    assert [aliases[name] for name in theirs] == ["conv1", "tanh1", "pool1", "conv2", "tanh2", "pool2", "flatten",
                                                  "fc1", "tanh3", "output"]

