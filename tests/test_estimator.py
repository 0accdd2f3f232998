"""DeepWaterEstimator end to end: training, prediction, metrics, backends, devices, networks and images."""
from __future__ import annotations

import importlib
import warnings

import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as skm

import deepwater as dw
from deepwater import (
    DeepWaterEstimator,
    DeviceError,
    FrameError,
    H2ODeepWaterEstimator,
    ImageError,
    MissingDependencyError,
    NotFittedError,
    ParameterError,
)
from deepwater.backends.torch.backend import TorchBackend
from deepwater.training.parameters import ACTIVATIONS

FAST = {"gpu": False, "quiet_mode": True, "hidden": [16], "mini_batch_size": 32, "seed": 1234}
CLASSES = ["a", "b", "c"]


def fit(frame, y="label", x=None, validation_frame=None, **params):
    options = {**FAST, "epochs": 3, "learning_rate": 0.05, **params}
    return DeepWaterEstimator(**options).train(x=x, y=y, training_frame=frame, validation_frame=validation_frame)


def huber(residual, delta=1.0):
    a = np.abs(residual)
    return np.where(a <= delta, 0.5 * residual ** 2, delta * (a - 0.5 * delta))


# --------------------------------------------------------------------------- classification and regression

def test_classification_learns_the_blobs(blobs, blobs_valid):
    model = fit(blobs, validation_frame=blobs_valid, epochs=5)
    assert model.model_performance(train=True).accuracy() > 0.9
    assert model.model_performance(valid=True).accuracy() > 0.9
    predicted = model.predict(blobs_valid)["predict"].astype(str).to_numpy()
    assert np.mean(predicted == blobs_valid["label"].astype(str).to_numpy()) > 0.9


def test_adaptive_rate_also_learns(blobs):
    model = fit(blobs, adaptive_rate=True, epochs=20)
    assert model.model_performance(train=True).accuracy() > 0.9


def test_classification_predict_columns(blobs):
    model = fit(blobs, epochs=1)
    frame = blobs.head(40).set_axis(np.arange(1000, 1040))
    predictions = model.predict(frame)
    assert list(predictions.columns) == ["predict"] + CLASSES
    assert list(predictions.index) == list(frame.index)
    probabilities = predictions[CLASSES].to_numpy()
    assert ((probabilities >= 0) & (probabilities <= 1)).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    expected = np.array(CLASSES)[probabilities.argmax(axis=1)]
    assert predictions["predict"].astype(str).tolist() == expected.tolist()
    assert list(predictions["predict"].cat.categories) == CLASSES


def test_regression_fits_a_linear_target(linear, linear_valid):
    valid = linear_valid
    model = fit(linear, y="y", validation_frame=valid, epochs=10)
    assert model.model_performance(train=True).r2() > 0.8
    assert model.model_performance(valid=True).r2() > 0.8
    predictions = model.predict(valid)
    assert list(predictions.columns) == ["predict"]
    y = valid["y"].to_numpy()
    # predictions come back on the original scale (y is about 100), not the standardised one
    assert abs(predictions["predict"].mean() - y.mean()) < 0.1 * y.std()
    assert skm.r2_score(y, predictions["predict"].to_numpy()) > 0.8


def test_regression_without_standardize(linear):
    model = fit(linear, y="y", standardize=False, epochs=10, learning_rate=0.01)
    predictions = model.predict(linear)["predict"].to_numpy()
    assert np.isfinite(predictions).all()
    assert model.model_performance(train=True).rmse() == pytest.approx(
        np.sqrt(skm.mean_squared_error(linear["y"], predictions)), rel=1e-4)


def test_h2o_name_is_the_same_class():
    assert H2ODeepWaterEstimator is DeepWaterEstimator
    assert dw.H2ODeepWaterEstimator is dw.DeepWaterEstimator


# --------------------------------------------------------------------------- model_performance

def test_model_performance_train_valid_and_frame(blobs, blobs_valid):
    model = fit(blobs, validation_frame=blobs_valid, epochs=2)
    codes_valid = blobs_valid["label"].cat.codes.to_numpy()

    probabilities = model.predict(blobs_valid)[CLASSES].to_numpy()
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    expected_logloss = skm.log_loss(codes_valid, probabilities, labels=[0, 1, 2])
    expected_error = 1 - skm.accuracy_score(codes_valid, probabilities.argmax(axis=1))

    valid = model.model_performance(valid=True)
    on_frame = model.model_performance(blobs_valid)
    assert valid.logloss() == pytest.approx(expected_logloss, rel=1e-4)
    assert on_frame.logloss() == pytest.approx(expected_logloss, rel=1e-4)
    assert valid.classification_error() == pytest.approx(expected_error, abs=1e-12)
    assert valid.nobs == len(blobs_valid)

    train_probabilities = model.predict(blobs)[CLASSES].to_numpy()
    train_probabilities = train_probabilities / train_probabilities.sum(axis=1, keepdims=True)
    train = model.model_performance(train=True)
    assert train.logloss() == pytest.approx(
        skm.log_loss(blobs["label"].cat.codes.to_numpy(), train_probabilities, labels=[0, 1, 2]), rel=1e-4)
    assert model.model_performance().logloss() == train.logloss()  # the default is the training metrics

    matrix = valid.confusion_matrix()
    np.testing.assert_array_equal(
        matrix[CLASSES].to_numpy(), skm.confusion_matrix(codes_valid, probabilities.argmax(axis=1)))


def test_valid_or_xval_performance_the_model_lacks_is_none_with_a_warning(blobs):
    """H2O's model_performance(valid=True) without a validation frame, or xval=True without folds: None."""
    model = fit(blobs, epochs=0.5)
    with pytest.warns(UserWarning, match=r"model_performance\(valid=True\) is None: .* without a validation_frame"):
        assert model.model_performance(valid=True) is None
    with pytest.warns(UserWarning, match=r"model_performance\(xval=True\) is None: .* not cross-validated; train it "
                                         r"with nfolds >= 2"):
        assert model.model_performance(xval=True) is None
    assert model.model_performance(train=True) is not None


def test_score_training_samples_limits_the_scored_rows(blobs):
    model = fit(blobs, epochs=0.5, score_training_samples=100)
    assert model.model_performance(train=True).nobs == 100
    assert fit(blobs, epochs=0.5, score_training_samples=0).model_performance(train=True).nobs == len(blobs)


@pytest.mark.parametrize("call", [
    lambda m, f: m.predict(f),
    lambda m, f: m.model_performance(f),
    lambda m, f: m.model_performance(train=True),
    lambda m, f: m.scoring_history(),
    lambda m, f: m.summary(),
])
def test_using_an_untrained_model_is_an_error(blobs, call):
    model = DeepWaterEstimator(**FAST)
    with pytest.raises(NotFittedError) as info:
        call(model, blobs)
    assert "not trained" in str(info.value)
    assert model.model_id in str(info.value)


def test_model_id_is_kept_or_generated(blobs):
    assert DeepWaterEstimator(model_id="mine").model_id == "mine"
    first, second = DeepWaterEstimator(), DeepWaterEstimator()
    assert first.model_id != second.model_id


def test_summary_and_repr(blobs):
    model = fit(blobs, epochs=1)
    summary = model.summary()
    assert summary["backend"] == "torch"
    assert summary["device"] == "cpu"
    assert summary["network"] == "mlp"
    assert summary["problem_type"] == "dataset"
    assert summary["input_shape"] == (5,)
    # x1, x2 and colour (3 levels) -> 16 -> 3
    assert summary["parameters"] == (5 * 16 + 16) + (16 * 3 + 3)
    assert summary["samples"] == len(blobs)
    assert summary["epochs"] == 1.0
    assert summary["stop_reason"] == "epochs done"
    assert summary["seed"] == 1234
    assert "multinomial" in summary["response"]
    text = repr(model)
    assert model.model_id in text and "torch" in text and "logloss" in text


def test_random_seed_is_picked_and_reported(blobs):
    model = DeepWaterEstimator(epochs=0.2, gpu=False, quiet_mode=True, hidden=[4]).train(
        y="label", training_frame=blobs)
    assert 0 <= model.summary()["seed"] < 2 ** 32


# --------------------------------------------------------------------------- backends and devices

def test_backend_auto_picks_torch(blobs):
    assert fit(blobs, epochs=0.2, backend="auto").summary()["backend"] == "torch"
    assert fit(blobs, epochs=0.2, backend="torch").summary()["backend"] == "torch"


def test_unknown_backend_lists_the_known_ones(blobs):
    with pytest.raises(ParameterError) as info:
        fit(blobs, backend="nope")
    assert "'nope'" in str(info.value)
    assert "'torch'" in str(info.value)


def test_backend_without_its_framework_names_the_extra(blobs, monkeypatch):
    monkeypatch.setattr(TorchBackend, "available", lambda self: False)
    with pytest.raises(MissingDependencyError) as info:
        fit(blobs, backend="torch")
    assert "deepwater[torch]" in str(info.value)


def test_auto_backend_without_any_framework_names_an_extra(blobs, monkeypatch):
    from deepwater.runtime import registry

    for target in registry.backend_targets().values():
        module_name, _, class_name = target.partition(":")
        backend_class = getattr(importlib.import_module(module_name), class_name)
        monkeypatch.setattr(backend_class, "available", lambda self: False)
    with pytest.raises(MissingDependencyError, match=r"deepwater\[torch\]"):
        fit(blobs, backend="auto")


def test_auto_backend_takes_the_first_installed_in_deepwater_order(blobs, monkeypatch):
    from deepwater.runtime import registry

    installed = [name for name in registry.AUTO_ORDER if name in registry.backend_targets()]
    if len(installed) < 2:
        pytest.skip("needs two backends")
    monkeypatch.setattr(TorchBackend, "available", lambda self: False)
    assert fit(blobs, backend="auto", epochs=0.2).summary()["backend"] == installed[1]


def test_gpu_without_a_gpu_warns_and_uses_the_cpu(blobs, monkeypatch):
    monkeypatch.setattr(TorchBackend, "devices", lambda self: ["cpu"])
    with pytest.warns(RuntimeWarning, match="no GPU"):
        model = fit(blobs, epochs=0.2, gpu=True)
    assert model.summary()["device"] == "cpu"


def test_gpu_default_on_this_machine(blobs):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    options = {k: v for k, v in FAST.items() if k != "gpu"}
    with pytest.warns(RuntimeWarning):
        model = DeepWaterEstimator(epochs=0.2, **options).train(y="label", training_frame=blobs)
    assert model.summary()["device"] == "cpu"


def test_gpu_false_does_not_warn(blobs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fit(blobs, epochs=0.2, gpu=False)


def test_device_id_that_does_not_exist(blobs, monkeypatch):
    monkeypatch.setattr(TorchBackend, "devices", lambda self: ["cpu", "cuda:0"])
    with pytest.raises(DeviceError) as info:
        fit(blobs, gpu=True, device_id=[3])
    message = str(info.value)
    assert "device_id=[3]" in message
    assert "cuda:0" in message


# --------------------------------------------------------------------------- activations and distributions

@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_trains(blobs, activation):
    model = fit(blobs, activation=activation, epochs=3)
    assert model.model_performance(train=True).accuracy() > 0.8
    graph_names = model._fitted.net.layers()
    if activation.startswith("Maxout"):
        assert "maxout1" in graph_names
    if activation.endswith("WithDropout"):
        assert "dropout1" in graph_names
    else:
        assert "dropout1" not in graph_names


@pytest.mark.parametrize("distribution, frame_name, y", [
    ("bernoulli", "binary_blobs", "label"),
    ("multinomial", "blobs", "label"),
    ("multinomial", "binary_blobs", "label"),
    ("gaussian", "linear", "y"),
    ("laplace", "linear", "y"),
    ("huber", "linear", "y"),
])
def test_every_distribution_trains(request, distribution, frame_name, y):
    frame = request.getfixturevalue(frame_name)
    model = fit(frame, y=y, distribution=distribution, epochs=4)
    assert distribution in model.summary()["response"]
    performance = model.model_performance(train=True)
    if distribution in ("bernoulli", "multinomial"):
        assert performance.classification_error() < 0.1  # accuracy() of two classes is H2O's [[threshold, value]]
        return
    predicted = model.predict(frame)["predict"].to_numpy()
    residual = frame[y].to_numpy() - predicted
    expected = {"gaussian": np.mean(residual ** 2), "laplace": np.mean(np.abs(residual)),
                "huber": np.mean(huber(residual))}[distribution]
    assert performance.mean_residual_deviance() == pytest.approx(expected, rel=1e-4)
    assert performance.r2() > 0.5


def test_auto_distribution_follows_the_response(blobs, binary_blobs, linear):
    assert "multinomial" in fit(blobs, epochs=0.2).summary()["response"]
    assert "bernoulli" in fit(binary_blobs, epochs=0.2).summary()["response"]
    assert "gaussian" in fit(linear, y="y", epochs=0.2).summary()["response"]


@pytest.mark.parametrize("frame_name, y, params, words", [
    ("blobs", "label", {"distribution": "gaussian"}, ["distribution='gaussian'", "classification"]),
    ("linear", "y", {"distribution": "multinomial"}, ["distribution='multinomial'", "regression"]),
    ("blobs", "label", {"distribution": "bernoulli"}, ["bernoulli", "3"]),
    ("linear", "y", {"loss": "CrossEntropy"}, ["loss='CrossEntropy'"]),
    ("blobs", "label", {"loss": "Quadratic"}, ["loss='Quadratic'"]),
    ("blobs", "label", {"stopping_metric": "AUC"}, ["AUC", "two classes"]),
    ("linear", "y", {"stopping_metric": "logloss"}, ["logloss"]),
    ("linear", "y", {"stopping_metric": "misclassification"}, ["misclassification"]),
])
def test_settings_that_do_not_fit_the_response(request, frame_name, y, params, words):
    with pytest.raises(ParameterError) as info:
        fit(request.getfixturevalue(frame_name), y=y, **params)
    for word in words:
        assert word in str(info.value)


def test_auc_stopping_metric_on_two_classes(binary_blobs):
    model = fit(binary_blobs, stopping_metric="AUC", epochs=1, train_samples_per_iteration=50)
    history = model.scoring_history()
    assert "training_auc" in history.columns
    assert history["training_auc"].between(0, 1).all()


# --------------------------------------------------------------------------- networks

def test_unknown_network_lists_the_networks(blobs):
    with pytest.raises(ParameterError) as info:
        fit(blobs, network="unknown")
    message = str(info.value)
    assert "'unknown'" in message
    for name in ("'auto'", "'mlp'", "'lenet'"):
        assert name in message


def test_image_network_on_columns_that_are_no_image_is_refused(blobs):
    """LeNet takes a dataset's numeric columns as pixels (booklet section 10); 2 columns and a categorical
    one are no 28x28 image: the error says so and points to the MLP."""
    with pytest.raises(FrameError) as info:
        fit(blobs, network="lenet")
    assert "28 x 28 x 3 = 2352" in str(info.value) and "network='mlp'" in str(info.value)


def test_mlp_network_on_images_flattens_them(image_frame):
    model = fit(image_frame, x=["uri"], network="mlp", channels=1, image_shape=[8, 8], epochs=1)
    assert model.summary()["input_shape"] == (1, 8, 8)
    assert model.summary()["parameters"] == (64 * 16 + 16) + (16 * 2 + 2)


# --------------------------------------------------------------------------- images

def lenet_smallest_side() -> int:
    """The smallest square side LeNet accepts: 5x5 conv, 2x2/2 pool, 5x5 conv, 2x2/2 pool."""

    def fits(side: int) -> bool:
        for kernel, stride in [(5, 1), (2, 2), (5, 1), (2, 2)]:
            if side < kernel:
                return False
            side = (side - kernel) // stride + 1
        return True

    return next(s for s in range(1, 200) if fits(s))


def image_fit(frame, **params):
    options = {"network": "lenet", "channels": 1, "image_shape": [16, 16], "epochs": 4, "mini_batch_size": 8,
               "learning_rate": 0.05, "gpu": False, "quiet_mode": True, "seed": 5}
    options.update(params)
    return DeepWaterEstimator(**options).train(x=["uri"], y="label", training_frame=frame)


def test_lenet_trains_on_tiny_images_and_predicts(image_frame):
    model = image_fit(image_frame)
    summary = model.summary()
    assert summary["problem_type"] == "image"  # detected from the URI column
    assert summary["network"] == "lenet"
    assert summary["input_shape"] == (1, 16, 16)
    predictions = model.predict(image_frame)
    assert list(predictions.columns) == ["predict", "dark", "light"]
    np.testing.assert_allclose(predictions[["dark", "light"]].sum(axis=1), 1.0, atol=1e-5)
    accuracy = np.mean(predictions["predict"].astype(str) == image_frame["label"].astype(str))
    assert accuracy >= 0.9


def test_lenet_default_image_shape_is_28(image_frame):
    model = image_fit(image_frame, image_shape=None, epochs=0.5)
    assert model.summary()["input_shape"] == (1, 28, 28)


def test_three_channels_from_grey_files(image_frame):
    model = image_fit(image_frame, channels=3, epochs=0.5)
    assert model.summary()["input_shape"] == (3, 16, 16)


@pytest.mark.parametrize("channels", [0, 2, 4])
def test_channels_other_than_1_or_3_are_refused(channels):
    with pytest.raises(ParameterError) as info:
        DeepWaterEstimator(channels=channels)
    assert f"channels={channels}" in str(info.value)


def test_image_shape_too_small_for_lenet_names_the_smallest(image_frame):
    smallest = lenet_smallest_side()
    with pytest.raises(ParameterError) as info:
        image_fit(image_frame, image_shape=[smallest - 1, smallest - 1])
    message = str(info.value)
    assert f"[{smallest}, {smallest}]" in message
    assert "lenet" in message
    image_fit(image_frame, image_shape=[smallest, smallest], epochs=0.2)  # the smallest one builds and runs


def test_missing_image_names_the_uri_and_row(image_frame, tmp_path):
    frame = image_frame.copy()
    ghost = str(tmp_path / "images" / "ghost.png")
    frame.loc[5, "uri"] = ghost
    with pytest.raises(ImageError) as info:
        image_fit(frame, epochs=1)
    assert info.value.uri == ghost
    assert info.value.row == 5
    assert ghost in str(info.value) and "row 5" in str(info.value)
    assert "bad_images='skip'" in str(info.value)


def test_corrupt_image_is_an_image_error(image_frame, tmp_path):
    broken = tmp_path / "images" / "broken.png"
    broken.write_bytes(b"this is not a png file at all")
    frame = image_frame.copy()
    frame.loc[2, "uri"] = str(broken)
    with pytest.raises(ImageError) as info:
        image_fit(frame, epochs=1)
    assert info.value.uri == str(broken)
    assert info.value.row == 2


def test_bad_images_skip_trains_and_predicts_nan_for_bad_rows(image_frame, tmp_path):
    broken = tmp_path / "images" / "broken.png"
    broken.write_bytes(b"garbage")
    frame = image_frame.copy()
    frame.loc[3, "uri"] = str(tmp_path / "images" / "ghost.png")
    frame.loc[8, "uri"] = str(broken)
    model = image_fit(frame, bad_images="skip", epochs=2)
    summary = model.summary()
    assert summary["skipped_images"] == 2
    assert summary["samples"] == 2 * (len(frame) - 2)  # skipped rows are not trained on
    predictions = model.predict(frame)
    bad = predictions.index.isin([3, 8])
    assert predictions.loc[bad, ["dark", "light"]].isna().all().all()
    assert predictions.loc[bad, "predict"].isna().all()
    assert predictions.loc[~bad, ["dark", "light"]].notna().all().all()
    assert predictions.loc[~bad, "predict"].notna().all()
    assert model.model_performance(train=True).nobs == len(frame) - 2


def test_mean_image_file_is_subtracted(image_frame, tmp_path):
    mean = np.full((16, 16), 128, dtype=np.uint8)
    path = tmp_path / "mean.png"
    Image.fromarray(mean, mode="L").save(path)
    model = image_fit(image_frame, mean_image_file=str(path), epochs=2)
    assert model.model_performance(train=True).classification_error() <= 0.1
    with pytest.raises(ParameterError) as info:
        image_fit(image_frame, mean_image_file=str(path), image_shape=[20, 20])
    assert "mean_image_file" in str(info.value)


def test_image_predict_frame_without_the_uri_column(image_frame):
    model = image_fit(image_frame, epochs=0.5)
    with pytest.raises(FrameError) as info:
        model.predict(image_frame.rename(columns={"uri": "path"}))
    assert "'uri'" in str(info.value)
