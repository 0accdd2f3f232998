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
from user_graph_cases import GraphCase, all_cases, fit_case

import deepwater as dw
from conftest import installed_backends
from deepwater import cli, plots
from deepwater.analysis.explain import (
    CANDIDATES_SHOWN,
    chosen_layer,
    column_attributions,
    integrated_gradients,
    normalise,
    resize_maps,
)
from deepwater.backends import testing
from deepwater.backends.base import class_gradients, convolutional_layers
from deepwater.datasets import PATCH_CORNER, PATCH_IMAGE_SIZE, PATCH_SIDE, patch_images
from deepwater.errors import BackendError, ParameterError
from deepwater.networks import build_graph, map_geometry
from deepwater.runtime.registry import get_backend
from deepwater.runtime.user_graphs import graph_loader, user_graph

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


def test_overlays_of_a_crop_model_show_the_centre_of_a_wide_photo(tmp_path):
    wide = np.zeros((SIZE, 2 * SIZE, 3), dtype=np.uint8)
    wide[:, SIZE // 2:SIZE // 2 + SIZE] = 200  # the centre square is light, the sides dark
    Image.fromarray(wide).save(tmp_path / "wide.png")
    frame = pd.DataFrame({"uri": [str(tmp_path / "wide.png")]})
    heatmaps = np.full((1, SIZE, SIZE), np.nan, dtype=np.float32)  # the image alone
    cropped = plots.overlays(frame, heatmaps, resize="crop")[0]
    stretched = plots.overlays(frame, heatmaps)[0]
    assert (cropped == 200).all()  # only the centre, as a crop model reads it
    assert stretched[:, 0].max() == 0 and stretched[:, SIZE // 2].min() == 200  # the whole width, squeezed


def test_the_explain_command_writes_one_png_overlay_per_image(small_image_model, tmp_path):
    model, frame = small_image_model
    saved = dw.save_model(model, tmp_path / "models")
    images = frame["uri"].iloc[:3].tolist()
    assert cli.main(["explain", saved, *images, "--out", str(tmp_path / "heat"), "--target", "patch"]) == 0
    written = sorted((tmp_path / "heat").iterdir())
    assert [p.name for p in written] == sorted(f"{Path(i).stem}.png" for i in images)
    assert np.asarray(Image.open(written[0])).shape == (SIZE, SIZE, 3)
    assert cli.main(["explain", saved, str(tmp_path / "none.png"), "--out", str(tmp_path / "x")]) == 2


def test_gradcam_on_a_user_graph_needs_the_layer_named_and_suggests_convolutional_ones_first():
    layers = ["conv1", "relu1", "conv2", "relu2", "fc"]
    with pytest.raises(ParameterError, match=r"needs layer=.*convolutional layers first, nearest the output first\): "
                                             r"\['conv2', 'conv1', 'fc', 'relu2', 'relu1'\]\. method='saliency'"):
        chosen_layer("gradcam", None, layers, None, ["conv1", "conv2"])
    with pytest.raises(ParameterError, match=r"candidates \(nearest the output first\): \['fc', 'relu2', 'conv2', "):
        chosen_layer("gradcam", None, layers, None)  # a format that does not tell which layers are convolutions
    many = [f"layer{i}" for i in range(CANDIDATES_SHOWN + 5)]
    with pytest.raises(ParameterError, match=r"'layer5'\] and 5 more \(model\.layers\(\) lists them all\)"):
        chosen_layer("gradcam", None, many, None)
    assert chosen_layer("gradcam", -2, layers, None) == "relu2"
    assert chosen_layer("saliency", None, layers, None) is None


# --------------------------------------------------------------------------- user graphs (network='user')

USER_CASES = all_cases()
NO_FEATURE_MAPS = {"saved-model"}  # a SavedModel's only layer is its output: saliency and integrated gradients


@pytest.fixture(params=USER_CASES, ids=[case.id for case in USER_CASES])
def user_case(request) -> GraphCase:
    return request.param.installed()


def differentiable(case: GraphCase) -> bool:
    """False for ONNX graphs, which onnxruntime runs forward only."""
    return not case.id.startswith("onnx")


def test_user_graph_nets_give_class_gradients_or_say_they_cannot(user_case, tmp_path):
    """Input gradients agree with finite differences of the graph's own outputs; a convolutional layer's values
    are its features, channels-first; ONNX graphs raise the BackendError that says what to do."""
    definition, parameters = user_case.make(tmp_path, testing.CLASSES)
    graph = user_graph(definition, parameters, user_case.input_shape)
    net = graph_loader(graph, "auto").load_user_network(graph, testing.CLASSIFY, testing.SGD, "cpu", 1)
    x = np.random.default_rng(3).normal(size=(3, *user_case.input_shape)).astype(np.float32)
    target = np.array([0, 2, 1])
    if not differentiable(user_case):
        with pytest.raises(BackendError, match=r"onnxruntime runs an ONNX graph forward only.*TorchScript"):
            class_gradients(net, x, None, target)
        return
    before = net.get_state()
    values, gradients = class_gradients(net, x, None, target)
    assert values.shape == gradients.shape == x.shape and gradients.dtype == np.float32
    np.testing.assert_array_equal(values, x)
    # logit 0 - logit 1 = log p0 - log p1 (the softmax's sum cancels): along its gradient it changes by the norm
    difference = (class_gradients(net, x, None, np.zeros(3, np.int64))[1]
                  - class_gradients(net, x, None, np.ones(3, np.int64))[1]).astype(np.float64)
    norms = np.sqrt((difference.reshape(3, -1) ** 2).sum(axis=1))
    direction = (difference / norms.reshape((-1,) + (1,) * (x.ndim - 1))).astype(np.float32)
    log_ratio = [np.log(p[:, 0].astype(np.float64) / p[:, 1]) for p in
                 (net.predict(x + 1e-3 * direction), net.predict(x - 1e-3 * direction))]
    np.testing.assert_allclose((log_ratio[0] - log_ratio[1]) / 2e-3, norms, rtol=2e-2, atol=1e-3)
    convolutional = convolutional_layers(net)
    assert bool(convolutional) == (len(x.shape) == 4 and user_case.id not in NO_FEATURE_MAPS), convolutional
    if convolutional:
        values, gradients = class_gradients(net, x, convolutional[-1], target)
        assert values.ndim == 4 and values.shape == gradients.shape and np.abs(gradients).max() > 0
        np.testing.assert_allclose(values.reshape(3, -1), net.features(x, convolutional[-1]), atol=1e-5)
    after = net.get_state()
    assert all(np.array_equal(before[name], after[name]) for name in before), "class_gradients() changed the state"


FITTED_CASES = [case for case in USER_CASES if len(case.input_shape) == 1 or case.input_shape[0] in (1, 3)]


@pytest.mark.parametrize("case", FITTED_CASES, ids=[case.id for case in FITTED_CASES])
def test_models_of_user_graphs_explain_by_every_method_their_gradients_allow(case, image_frame, tmp_path):
    if case.missing():
        pytest.skip(f"{case.missing()} not installed")
    model, frame = fit_case(case, tmp_path / "graph", image_frame)
    rows = frame.iloc[:4]
    if not differentiable(case):
        methods = ("gradcam", "integrated_gradients") if len(case.input_shape) == 3 else ("integrated_gradients",)
        for method in methods:  # Grad-CAM too is refused before it asks for a layer
            with pytest.raises(BackendError, match="cannot explain predictions: onnxruntime"):
                model.explain(rows, method=method)
        return
    if len(case.input_shape) == 1:
        attributions = model.explain(rows, method="integrated_gradients", steps=4)
        assert list(attributions.columns) == [c for c in frame.columns if c != "label"] and len(attributions) == 4
        return
    size = case.input_shape[1:]
    for method in ("saliency", "integrated_gradients"):
        maps = model.explain(rows, method=method, steps=4)
        assert maps.shape == (4, *size) and maps.dtype == np.float32 and np.nanmax(maps) == 1.0
    with pytest.raises(ParameterError, match=r"layer=None: Grad-CAM on a user graph needs layer=.*candidates"):
        model.explain(rows)
    convolutional = convolutional_layers(model._fitted.net)
    if case.id in NO_FEATURE_MAPS:
        with pytest.raises(ParameterError, match="feature maps"):
            model.explain(rows, layer=model.layers()[-1])
        return
    heatmaps = model.explain(rows, layer=convolutional[-1], target="light")
    assert heatmaps.shape == (4, *size) and ((heatmaps >= 0) & (heatmaps <= 1)).all()


def test_a_built_in_network_exported_as_a_user_graph_explains_as_the_built_in_one(tmp_path):
    """The torch backend's LeNet, saved by torch.export with its weights and read back as a user graph, gives the
    built-in net's input gradients and the values and gradients of its last convolutional map (tanh2, which the
    program calls 'tanh_1')."""
    torch = pytest.importorskip("torch")
    built = testing.build(get_backend("torch"), "lenet")
    shape = testing.NETWORKS["lenet"]
    program = torch.export.export(built.module.eval(), (torch.zeros((2, *shape)),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(tmp_path / "lenet.pt2"))
    graph = user_graph(str(tmp_path / "lenet.pt2"), None, shape)
    net = graph_loader(graph, "torch").load_user_network(graph, testing.CLASSIFY, testing.SGD, "cpu", 1)
    assert convolutional_layers(net) == ["conv2d", "conv2d_1"]
    x, target = testing.inputs("lenet", rows=3), np.array([0, 2, 1])
    for mine, theirs in ((None, None), ("tanh_1", "tanh2")):
        for value, expected in zip(class_gradients(net, x, mine, target), class_gradients(built, x, theirs, target)):
            np.testing.assert_allclose(value, expected, atol=1e-6, err_msg=f"layer {mine!r}")
