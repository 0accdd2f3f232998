"""Autoencoders, anomaly detection, pretraining and variable importances: the same tests on every backend."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import deepwater as dw
from conftest import installed_backends, make_blobs
from deepwater.analysis.variable_importance import gedeon
from deepwater.errors import ParameterError

BACKENDS = installed_backends()
backends = pytest.mark.parametrize("backend", BACKENDS)
X = ["x1", "x2", "colour"]
QUICK = {"quiet_mode": True, "gpu": False, "seed": 7, "train_samples_per_iteration": 300, "stopping_rounds": 0}


def autoencoder(backend: str, frame: pd.DataFrame, **params) -> dw.DeepWaterEstimator:
    model = dw.H2OAutoEncoderEstimator(backend=backend, **{"hidden": [8, 2, 8], "epochs": 4, **QUICK, **params})
    return model.train(x=X, training_frame=frame)


def same_weights(model: dw.DeepWaterEstimator, reference: dw.DeepWaterEstimator) -> dw.DeepWaterEstimator:
    model._fitted.net.set_state(reference._fitted.net.get_state())
    return model


@backends
def test_an_autoencoder_learns_to_reconstruct_and_reports_mse(backend, blobs, blobs_valid):
    model = dw.H2OAutoEncoderEstimator(backend=backend, hidden=[8, 2, 8], epochs=4, **QUICK)
    model.train(x=X, training_frame=blobs, validation_frame=blobs_valid)
    history = model.scoring_history()
    assert history["training_mse"].iloc[-1] < history["training_mse"].iloc[0]
    assert {"validation_mse", "validation_rmse"} <= set(history.columns)
    assert model.model_performance(blobs).mse() == pytest.approx(model.anomaly(blobs)["Reconstruction.MSE"].mean(),
                                                                 rel=1e-5)
    assert model.params["autoencoder"]["actual"] is True and model.summary()["network"] == "mlp"


@backends
def test_anomaly_predict_and_deepfeatures_use_h2os_names_and_scales(backend, blobs):
    model = autoencoder(backend, blobs)
    names = ["x1", "x2", "colour.blue", "colour.green", "colour.red"]
    per_feature = model.anomaly(blobs, per_feature=True)
    assert list(per_feature.columns) == [f"reconstr_{n}.SE" for n in names]
    mse = model.anomaly(blobs)
    assert list(mse.columns) == ["Reconstruction.MSE"]
    np.testing.assert_allclose(mse["Reconstruction.MSE"], per_feature.mean(axis=1), rtol=1e-6)
    reconstruction = model.predict(blobs)
    assert list(reconstruction.columns) == [f"reconstr_{n}" for n in names]
    # back on the frame's scale: x2 lives around 50 with sd 10 (x1 around 0), the standardised values near 0
    assert abs(reconstruction["reconstr_x2"].mean() - blobs["x2"].mean()) < blobs["x2"].std()
    assert abs(reconstruction["reconstr_x1"].mean()) < 2 * blobs["x1"].std()
    codes = model.deepfeatures(blobs, "act2")
    assert codes.shape == (len(blobs), 2) and list(codes.columns) == ["DF.act2.C1", "DF.act2.C2"]


@backends
def test_the_reconstruction_error_finds_rows_unlike_the_training_rows(backend, blobs):
    model = autoencoder(backend, blobs, hidden=[16, 4, 16], epochs=8)
    odd = blobs.head(5).copy()
    odd["x1"], odd["x2"] = 25.0, -150.0  # far outside every blob
    errors = model.anomaly(pd.concat([blobs, odd], ignore_index=True))["Reconstruction.MSE"].to_numpy()
    assert errors[-5:].min() > errors[:-5].max()


@backends
def test_a_conv_autoencoder_reconstructs_images(backend, image_frame):
    model = dw.H2OAutoEncoderEstimator(backend=backend, image_shape=[12, 12], channels=1, epochs=3,
                                       mini_batch_size=8, learning_rate=0.05,
                                       **{**QUICK, "train_samples_per_iteration": 24})
    model.train(x=["uri"], training_frame=image_frame)
    assert model.summary()["network"] == "conv_autoencoder"
    history = model.scoring_history()
    assert history["training_mse"].iloc[-1] < history["training_mse"].iloc[0]
    assert model.anomaly(image_frame).shape == (24, 1)
    pixels = model.predict(image_frame)
    assert pixels.shape == (24, 144) and pixels.columns[0] == "reconstr_uri.C1"
    assert model.deepfeatures(image_frame, "pool2").shape == (24, 8 * 3 * 3)


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs two backends")
@pytest.mark.parametrize("case", ["mlp", "conv"])
def test_every_backend_scores_the_same_weights_alike(case, blobs, image_frame):
    """The same weights give the same reconstruction errors everywhere (the upsampling layer included)."""
    if case == "mlp":
        models = [autoencoder(b, blobs, epochs=1) for b in BACKENDS]
        frame = blobs
    else:
        models = [dw.H2OAutoEncoderEstimator(backend=b, image_shape=[12, 12], channels=1, epochs=1, **QUICK)
                  .train(x=["uri"], training_frame=image_frame) for b in BACKENDS]
        frame = image_frame
    reference = models[0].anomaly(frame, per_feature=True)
    for model in models[1:]:
        scored = same_weights(model, models[0]).anomaly(frame, per_feature=True)
        np.testing.assert_allclose(scored.to_numpy(), reference.to_numpy(), rtol=1e-3, atol=1e-5)


@backends
def test_saved_autoencoders_and_varimp_load_back(backend, blobs, tmp_path):
    model = autoencoder(backend, blobs, epochs=1)
    loaded = dw.load_model(dw.save_model(model, str(tmp_path)))
    pd.testing.assert_frame_equal(loaded.anomaly(blobs), model.anomaly(blobs))
    assert loaded.varimp() == model.varimp()
    assert loaded.scoring_history()["training_mse"].tolist() == model.scoring_history()["training_mse"].tolist()


@backends
def test_pretrained_autoencoder_starts_the_supervised_mlp_from_the_encoder(backend, blobs):
    ae = autoencoder(backend, blobs, hidden=[8, 4, 8], activation="Tanh")
    start = dw.DeepWaterEstimator(backend=backend, hidden=[8, 4], activation="Tanh", epochs=0, pretrained_autoencoder=ae,
                                  **QUICK).train(x=X, y="label", training_frame=blobs)
    ours, theirs = start._fitted.net.get_state(), ae._fitted.net.get_state()
    for name in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
        np.testing.assert_array_equal(ours[name], theirs[name])
    tuned = dw.DeepWaterEstimator(backend=backend, hidden=[8, 4], activation="Tanh", epochs=5,
                                  pretrained_autoencoder=ae.model_id, **QUICK).train(x=X, y="label", training_frame=blobs)
    assert tuned.model_performance(blobs).logloss() < start.model_performance(blobs).logloss()  # it fine-tunes
    assert not np.array_equal(tuned._fitted.net.get_state()["fc1.weight"], theirs["fc1.weight"])


def test_a_pretrained_mlp_scales_its_inputs_as_its_autoencoder_did(blobs):
    """The copied encoder sees inputs standardised with the autoencoder's statistics, not those of the labelled
    frame: before fine-tuning, the classifier's hidden layers give the autoencoder's codes on any frame."""
    ae = autoencoder(BACKENDS[0], blobs, hidden=[8, 4, 8], activation="Tanh")
    moved = blobs.assign(x1=blobs["x1"] + 5.0, x2=blobs["x2"] * 3.0)  # other means and sds than the autoencoder's
    start = dw.DeepWaterEstimator(backend=BACKENDS[0], hidden=[8, 4], activation="Tanh", epochs=0,
                                  pretrained_autoencoder=ae, **QUICK).train(x=X, y="label", training_frame=moved)
    for layer in ("act1", "act2"):
        np.testing.assert_allclose(start.deepfeatures(moved, layer).to_numpy(),
                                   ae.deepfeatures(moved, layer).to_numpy(), rtol=1e-5, atol=1e-6)


def test_gedeon_follows_h2os_loops():
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(5, 4)), rng.normal(size=(3, 5))  # 4 inputs, 5 hidden units, 3 next units
    q = np.zeros((4, 3))
    for i in range(4):
        for k in range(3):
            for j in range(5):
                q[i, k] += abs(w1[j, i]) / np.abs(w1[j]).sum() * abs(w2[k, j]) / np.abs(w2[k]).sum()
    q /= q.sum(axis=0)
    expected = q.sum(axis=1)
    np.testing.assert_allclose(gedeon(w1, w2), expected / expected.max())


@backends
def test_varimp_ranks_the_informative_column_first(backend):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"signal": rng.normal(size=400), "noise1": rng.normal(size=400),
                          "noise2": rng.normal(size=400)})
    frame["y"] = pd.Categorical(np.where(frame["signal"] > 0, "up", "down"))
    model = dw.DeepWaterEstimator(backend=backend, hidden=[16], epochs=10, l1=1e-3, **QUICK)
    model.train(x=["signal", "noise1", "noise2"], y="y", training_frame=frame)
    table = model.varimp(use_pandas=True)
    assert list(table.columns) == ["variable", "relative_importance", "scaled_importance", "percentage"]
    assert table["variable"].iloc[0] == "signal" and table["scaled_importance"].iloc[0] == 1.0
    assert table["percentage"].sum() == pytest.approx(1.0)


def test_varimp_sums_one_hot_levels_into_their_column(blobs):
    model = autoencoder(BACKENDS[0], blobs, epochs=1)
    levels = dict((name, value) for name, value, *_ in model.varimp())
    columns = dict((name, value) for name, value, *_ in model.varimp(by_column=True))
    assert set(columns) == {"x1", "x2", "colour"}
    assert columns["colour"] == pytest.approx(sum(v for k, v in levels.items() if k.startswith("colour.")))
    off = dw.H2OAutoEncoderEstimator(backend=BACKENDS[0], hidden=[4], epochs=1, variable_importances=False, **QUICK)
    with pytest.warns(UserWarning, match="variable_importances=False"):
        assert off.train(x=X, training_frame=blobs).varimp() is None


# --------------------------------------------------------------------------- bad input

def test_an_autoencoder_warns_that_y_is_ignored(blobs):
    model = dw.H2OAutoEncoderEstimator(backend=BACKENDS[0], hidden=[4], epochs=1, **QUICK)
    with pytest.warns(UserWarning, match="y='label' is ignored") as caught:
        model.train(y="label", training_frame=blobs)
    assert model._fitted.predictors == X
    assert caught[0].filename == __file__  # the warning points at the user's train() line, not inside deepwater


@pytest.mark.parametrize("params,message", [
    ({"nfolds": 3}, "nfolds=3 with autoencoder=True"),
    ({"stopping_metric": "logloss"}, "stopping_metric='logloss' cannot score an autoencoder"),
    ({"stopping_metric": "RMSE"}, "use stopping_metric='AUTO' or 'MSE'"),
    ({"network": "lenet", "problem_type": "image"}, "network='lenet' with autoencoder=True"),
])
def test_autoencoder_parameters_h2o_refuses(blobs, image_frame, params, message):
    frame, x = (image_frame, ["uri"]) if params.get("network") == "lenet" else (blobs, X)
    model = dw.H2OAutoEncoderEstimator(backend=BACKENDS[0], hidden=[4], epochs=1, **{**QUICK, **params})
    with pytest.raises(ParameterError, match=message):
        model.train(x=x, training_frame=frame)


def test_exporting_an_autoencoder_is_refused_before_writing(blobs, tmp_path):
    model = autoencoder(BACKENDS[0], blobs, epochs=1)
    with pytest.raises(ParameterError, match="is an autoencoder, which deepwater.inference cannot score yet"):
        model.export(tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_anomaly_on_a_supervised_model_is_refused(blobs):
    model = dw.DeepWaterEstimator(backend=BACKENDS[0], hidden=[4], epochs=1, **QUICK).train(
        x=X, y="label", training_frame=blobs)
    with pytest.raises(ParameterError, match="anomaly\\(\\) needs an autoencoder.*classification model"):
        model.anomaly(blobs)


def test_a_pretrained_autoencoder_with_other_inputs_is_refused(blobs):
    ae = dw.H2OAutoEncoderEstimator(backend=BACKENDS[0], hidden=[4], epochs=1, **QUICK).train(
        x=["x1", "x2"], training_frame=blobs)
    model = dw.DeepWaterEstimator(backend=BACKENDS[0], hidden=[4], epochs=1, pretrained_autoencoder=ae, **QUICK)
    with pytest.raises(ParameterError, match="trained on other inputs: x lacks \\[\\] and adds \\['colour'\\]"):
        model.train(x=X, y="label", training_frame=blobs)
    model = dw.DeepWaterEstimator(backend=BACKENDS[0], hidden=[8], epochs=1, pretrained_autoencoder=ae, **QUICK)
    with pytest.raises(ParameterError, match="hidden=\\[4\\], which does not start with this model's hidden=\\[8\\]"):
        model.train(x=["x1", "x2"], y="label", training_frame=blobs)


def test_varimp_on_a_convolutional_net_is_refused(image_frame):
    """A convolutional net trains with variable_importances=True (its default, as in H2O); varimp() says why none."""
    lenet = dict(backend=BACKENDS[0], network="lenet", image_shape=[28, 28], channels=1, epochs=1, **QUICK)
    model = dw.DeepWaterEstimator(variable_importances=True, **lenet).train(x=["uri"], y="label",
                                                                          training_frame=image_frame)
    with pytest.raises(ParameterError, match="variable importances need an MLP.*dense first layer, and network='lenet'"):
        model.varimp()
