"""model.explain(): Grad-CAM, saliency and integrated gradients on every backend, and what they find.

The image test builds a data set where only a bright patch at a known place decides the class (the rest is
noise) and checks that Grad-CAM's peak falls inside the patch; the tabular test has two columns of twenty that
carry the signal and checks that integrated gradients rank them first.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import deepwater as dw
from conftest import installed_backends
from deepwater import cli, plots
from deepwater.datasets import PATCH_CORNER, PATCH_IMAGE_SIZE, PATCH_SIDE, patch_images
from deepwater.analysis.explain import (
    column_attributions,
    explained_layer,
    integrated_gradients,
    normalise,
    resize_maps,
)
from deepwater.backends import testing
from deepwater.backends.base import class_gradients
from deepwater.errors import BackendError, ParameterError
from deepwater.networks import build_graph, map_geometry
from deepwater.runtime.registry import get_backend

BACKENDS = installed_backends()
SIZE, PATCH, CORNER = PATCH_IMAGE_SIZE, PATCH_SIDE, PATCH_CORNER


def inside_patch(heatmaps: np.ndarray) -> np.ndarray:
    """For each heatmap, whether its peak lies inside the patch."""
    rows, cols = np.unravel_index(heatmaps.reshape(len(heatmaps), -1).argmax(axis=1), heatmaps.shape[1:])
    return ((rows >= CORNER[0]) & (rows < CORNER[0] + PATCH) & (cols >= CORNER[1]) & (cols < CORNER[1] + PATCH))


@pytest.fixture(scope="module")
def patch_frames(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("patch")
    return patch_images(folder / "train", 200, 0), patch_images(folder / "test", 40, 1)


def train_lenet(backend: str, frame: pd.DataFrame) -> dw.DeepWaterEstimator:
    return dw.DeepWaterEstimator(problem_type="image", network="lenet", image_shape=[SIZE, SIZE], channels=1,
                                 epochs=2, backend=backend, gpu=False, seed=1, quiet_mode=True).train(
        x=["uri"], y="label", training_frame=frame)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcam_finds_the_patch_that_decides_the_class(backend, patch_frames):
    train, test = patch_frames
    model = train_lenet(backend, train)
    with_patch = test[test["label"] == "patch"]
    assert (model.predict(with_patch)["predict"] == "patch").all()
    heatmaps = model.explain(with_patch)  # Grad-CAM of LeNet's last convolutional map, the predicted class
    assert heatmaps.shape == (len(with_patch), SIZE, SIZE) and heatmaps.dtype == np.float32
    assert heatmaps.min() == 0.0 and heatmaps.max() == 1.0
    assert inside_patch(heatmaps).mean() >= 0.9
    saliency = model.explain(with_patch.iloc[:4], method="saliency", target="noise")
    assert saliency.shape == (4, SIZE, SIZE) and np.nanmax(saliency) == 1.0


def signal_frame(rows: int, seed: int) -> pd.DataFrame:
    """Twenty columns, of which only x3 and x12 decide the label; 'colour' is a categorical column of noise."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 19)), columns=[f"x{i}" for i in range(19)])
    frame["colour"] = pd.Categorical(rng.choice(["red", "green", "blue"], size=rows))
    frame["label"] = pd.Categorical(np.where(frame["x3"] - frame["x12"] > 0, "up", "down"))
    return frame


@pytest.mark.parametrize("backend", BACKENDS)
def test_integrated_gradients_rank_the_two_columns_that_carry_the_signal_first(backend):
    train, test = signal_frame(400, 0), signal_frame(60, 1)
    predictors = [c for c in train.columns if c != "label"]
    model = dw.DeepWaterEstimator(hidden=[32], epochs=8, backend=backend, gpu=False, seed=2, quiet_mode=True).train(
        x=predictors, y="label", training_frame=train)
    attributions = model.explain(test, method="integrated_gradients", steps=16)
    assert list(attributions.columns) == predictors and attributions.index.equals(test.index)
    assert set(attributions.abs().mean().nlargest(2).index) == {"x3", "x12"}
    table = model.varimp(method="integrated_gradients", frame=test, by_column=True, use_pandas=True)
    assert set(table["variable"][:2]) == {"x3", "x12"} and len(table) == 20


@pytest.mark.parametrize("backend", BACKENDS)
def test_integrated_gradients_add_up_to_the_score_minus_the_baselines(backend):
    """Completeness (Sundararajan et al.): a row's attributions sum to its logit minus the baseline's."""
    net = testing.build(get_backend(backend), "lenet")
    x, targets = testing.inputs("lenet", rows=3), np.array([0, 1, 2])
    baseline = np.full(x.shape[1:], 0.1, dtype=np.float32)
    attributions = integrated_gradients(net, x, targets, baseline, steps=64, batch_rows=50)  # 16 steps a call
    logits = net.features(x, "output")[np.arange(3), targets]
    base = net.features(np.broadcast_to(baseline, x.shape).copy(), "output")[np.arange(3), targets]
    np.testing.assert_allclose(attributions.reshape(3, -1).sum(axis=1), logits - base, rtol=2e-2, atol=2e-3)


@pytest.fixture(scope="module")
def small_image_model(tmp_path_factory) -> tuple[dw.DeepWaterEstimator, pd.DataFrame]:
    frame = patch_images(tmp_path_factory.mktemp("small"), 16, 2)
    model = dw.DeepWaterEstimator(problem_type="image", network="lenet", image_shape=[SIZE, SIZE], channels=1,
                                  epochs=1, backend=BACKENDS[0], gpu=False, seed=1, quiet_mode=True)
    return model.train(x=["uri"], y="label", training_frame=frame), frame


@pytest.mark.parametrize("call,message", [
    (lambda m, f: m.explain(f, method="shap"), "method='shap'"),
    (lambda m, f: m.explain(f, target="cat"), "target='cat' is not a class"),
    (lambda m, f: m.explain(f, layer="no_such"), "layer='no_such' is not a layer"),
    (lambda m, f: m.explain(f, layer="fc1"), "feature maps"),
    (lambda m, f: m.explain(f, method="saliency", layer="conv1"), "only Grad-CAM reads a layer"),
    (lambda m, f: m.explain(f, method="integrated_gradients", steps=0), "steps=0"),
    (lambda m, f: m.explain(f, method="integrated_gradients", baseline=np.zeros(5)), "broadcasts"),
    (lambda m, f: m.varimp(method="integrated_gradients"), "frame=..."),
])
def test_bad_requests_are_parameter_errors_that_name_the_fix(small_image_model, call, message):
    model, frame = small_image_model
    with pytest.raises(ParameterError, match=message.replace("(", r"\(").replace(".", r"\.")):
        call(model, frame)


def test_a_layer_by_position_integrated_gradients_and_an_image_baseline(small_image_model):
    model, frame = small_image_model
    by_name = model.explain(frame.iloc[:3], layer="tanh2")
    np.testing.assert_array_equal(model.explain(frame.iloc[:3], layer=model.layers().index("tanh2")), by_name)
    np.testing.assert_array_equal(model.explain(frame.iloc[:3]), by_name)  # LeNet's last convolutional map
    maps = model.explain(frame.iloc[:3], method="integrated_gradients", steps=4, baseline=0.5)
    assert maps.shape == (3, SIZE, SIZE) and ((maps >= 0) & (maps <= 1)).all()


def test_a_dataset_model_refuses_gradcam_and_an_autoencoder_refuses_explain(blobs):
    model = dw.DeepWaterEstimator(hidden=[8], epochs=1, backend=BACKENDS[0], gpu=False, seed=1, quiet_mode=True)
    model.train(x=["x1", "x2", "colour"], y="label", training_frame=blobs)
    with pytest.raises(ParameterError, match="method='gradcam' cannot explain a model of a dataset"):
        model.explain(blobs)
    auto = dw.H2OAutoEncoderEstimator(hidden=[4], epochs=1, backend=BACKENDS[0], gpu=False, quiet_mode=True)
    auto.train(x=["x1", "x2"], training_frame=blobs)
    with pytest.raises(ParameterError, match="autoencoder"):
        auto.explain(blobs, method="integrated_gradients")


def test_one_hot_levels_are_summed_into_their_column():
    attributions = np.array([[1.0, 2.0, 3.0, 4.0], [np.nan, np.nan, np.nan, np.nan]], dtype=np.float32)
    frame = column_attributions(attributions, ["a", "c", "c", "b"], pd.Index([10, 11]))
    assert list(frame.columns) == ["a", "c", "b"] and list(frame.index) == [10, 11]
    assert frame.loc[10].tolist() == [1.0, 5.0, 4.0] and frame.loc[11].isna().all()


def test_maps_are_placed_where_the_layer_sees_and_scaled_to_0_1():
    graph = build_graph("lenet", (1, 28, 28), 2)
    assert map_geometry(graph, "tanh2") == (6.5, 2.0)  # LeNet's 8x8 map: position i centred on pixel 6.5 + 2i
    peak = np.zeros((1, 8, 8))
    peak[0, 2, 5] = 1.0
    resized = resize_maps(peak, 28, 28, map_geometry(graph, "tanh2"))
    assert np.unravel_index(resized[0].argmax(), (28, 28)) == (10, 16)  # 6.5 + 2 * 2 and 6.5 + 2 * 5, rounded
    assert resize_maps(np.ones((2, 3, 3)), 7, 5).shape == (2, 7, 5)
    scaled = normalise(np.array([[[2.0, 4.0], [3.0, 6.0]], [[1.0, 1.0], [1.0, 1.0]]]))
    assert scaled[0].tolist() == [[0.0, 0.5], [0.25, 1.0]] and not scaled[1].any()


def test_a_net_without_gradients_is_a_backend_error():
    class PluginNet:  # a plug-in's net that implements the Net protocol but not GradientNet
        def predict(self, x):
            return x

    with pytest.raises(BackendError, match="PluginNet cannot explain predictions"):
        class_gradients(PluginNet(), np.zeros((1, 2), np.float32), None, np.zeros(1, np.int64))


def test_explain_grid_and_overlays_draw_the_heatmaps_over_the_images(small_image_model):
    model, frame = small_image_model
    rows = frame.iloc[:5]
    heatmaps = np.zeros((5, SIZE, SIZE), dtype=np.float32)
    heatmaps[:, 20, 5] = 1.0
    heatmaps[4] = np.nan  # a row without a heatmap (a skipped image) shows its image alone
    pictures = plots.overlays(rows, heatmaps, alpha=0.5)
    assert pictures.shape == (5, SIZE, SIZE, 3) and pictures.dtype == np.uint8
    grey = np.asarray(Image.open(rows["uri"].iloc[4]).convert("RGB"))
    np.testing.assert_array_equal(pictures[4], grey)
    image = np.asarray(Image.open(rows["uri"].iloc[0]).convert("RGB")).astype(float)
    np.testing.assert_allclose(pictures[0][20, 5], 0.5 * image[20, 5] + [63.75, 0, 0], atol=1)  # 'jet' at 1: red
    np.testing.assert_allclose(pictures[0][0, 0], 0.5 * image[0, 0] + [0, 0, 63.75], atol=1)  # at 0: blue
    heatmaps = model.explain(rows)
    figure = plots.explain_grid(rows, heatmaps, titles=model.predict(rows)["predict"].tolist(), columns=2)
    assert len(figure.axes) == 6 and figure.axes[0].get_title() in ("patch", "noise")
    with pytest.raises(ParameterError, match=r"heatmaps of shape \(5, 32, 32\)"):
        plots.explain_grid(frame.iloc[:3], heatmaps)


def test_the_explain_command_writes_one_png_overlay_per_image(small_image_model, tmp_path):
    model, frame = small_image_model
    saved = dw.save_model(model, tmp_path / "models")
    images = frame["uri"].iloc[:3].tolist()
    assert cli.main(["explain", saved, *images, "--out", str(tmp_path / "heat"), "--target", "patch"]) == 0
    written = sorted((tmp_path / "heat").iterdir())
    assert [p.name for p in written] == sorted(f"{Path(i).stem}.png" for i in images)
    assert np.asarray(Image.open(written[0])).shape == (SIZE, SIZE, 3)
    assert cli.main(["explain", saved, str(tmp_path / "none.png"), "--out", str(tmp_path / "x")]) == 2


def test_a_user_graph_without_gradients_says_it_cannot_explain(blobs, tmp_path):
    """User graph nets give no class_gradients (BaseNet's default): a BackendError, not a framework traceback."""
    torch = pytest.importorskip("torch")
    graph_file = tmp_path / "mlp.pt"
    torch.jit.save(torch.jit.script(torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Linear(8, 3))), str(graph_file))
    model = dw.DeepWaterEstimator(network="user", network_definition_file=str(graph_file), backend="torch", epochs=1,
                                  gpu=False, quiet_mode=True).train(x=["x1", "x2"], y="label", training_frame=blobs)
    with pytest.raises(BackendError, match="cannot explain predictions"):
        model.explain(blobs, method="integrated_gradients")


def test_gradcam_on_a_user_graph_needs_the_layer_named():
    with pytest.raises(ParameterError, match=r"needs the layer named.*\['conv', 'relu', 'output'\]"):
        explained_layer("gradcam", None, ["conv", "relu", "output"], None)
    assert explained_layer("gradcam", -2, ["conv", "relu", "output"], None) == "relu"
