"""mixup, cutmix and ema on every backend: soft targets in each backend's cross entropy, the numpy mixing,
the averaged weights (step by step, in predict, in saved models and across checkpoint restarts) and the errors."""
from __future__ import annotations

import numpy as np
import pytest

import deepwater as dw
from conftest import installed_backends, make_blobs, make_linear, reproducible_mlp
from deepwater import networks
from deepwater.backends.base import TRAINING_WEIGHTS, configure_average
from deepwater.errors import ParameterError
from deepwater.runtime.registry import get_backend
from deepwater.specs import OptimizerSpec, TaskSpec
from deepwater.training.mixing import Mixing, paste_box
from deepwater.training.parameters import PARAMETERS

BACKENDS = installed_backends()
EXACT = 1e-6
ROWS = 96
SGD = OptimizerSpec(learning_rate=0.1, momentum_start=0.5, momentum_stable=0.5, learning_rate_annealing=0.0)


def small_net(backend: str, label_smoothing: float = 0.0, optimizer: OptimizerSpec = SGD):
    """An MLP of 5 inputs, 6 hidden units and 3 classes, built the same way on every backend (seed 3)."""
    params = {name: row.default for name, row in PARAMETERS.items()} | {"hidden": [6]}
    graph = networks.build_graph("MLP", (5,), 3, params)
    task = TaskSpec("classification", 3, "cross_entropy", "multinomial", label_smoothing)
    return get_backend(backend).build(graph, task, optimizer, "cpu", 3)


def batch(seed: int = 0, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)).astype(np.float32), rng.integers(0, 3, n)


def mlp(backend: str, **params) -> dw.DeepWaterEstimator:
    """A small MLP scored once per epoch that keeps its last weights (a reproducible run)."""
    return dw.DeepWaterEstimator(**{**reproducible_mlp(backend, ROWS), **params})


def small_like(model: dw.DeepWaterEstimator, backend: str):
    """A fresh net of `model`'s graph on `backend`, without ema."""
    f = model._fitted
    params = {name: row.default for name, row in PARAMETERS.items()} | {"hidden": model.hidden}
    graph = networks.build_graph(f.network, f.inputs.input_shape, f.task.n_outputs, params)
    return get_backend(backend).build(graph, f.task, OptimizerSpec(), "cpu", 0)


@pytest.fixture(scope="module")
def frame():
    return make_blobs(ROWS, seed=11)


def assert_states_equal(a: dict, b: dict, tolerance: float = EXACT) -> None:
    assert sorted(a) == sorted(b)
    for name in b:
        np.testing.assert_allclose(a[name], b[name], atol=tolerance, rtol=tolerance, err_msg=name)


def states_differ(a: dict, b: dict) -> bool:
    return any(not np.allclose(a[name], b[name], atol=1e-5) for name in b)


def training_weights(net) -> dict[str, np.ndarray]:
    """The weights an ema net is training (its training_state()'s), by their own names."""
    return {name[len(TRAINING_WEIGHTS):]: value for name, value in net.training_state().items()
            if name.startswith(TRAINING_WEIGHTS)}


# --------------------------------------------------------------------------- soft targets

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_one_hot_soft_targets_train_as_the_class_codes_do(backend, smoothing):
    """lam = 1: soft targets that are one-hot give the hard targets' loss and step, label smoothing included."""
    x, y = batch()
    hard, soft = small_net(backend, smoothing), small_net(backend, smoothing)
    hard_losses = [hard.train_batch(x, y) for _ in range(2)]
    soft_losses = [soft.train_batch(x, np.eye(3, dtype=np.float32)[y]) for _ in range(2)]
    np.testing.assert_allclose(soft_losses, hard_losses, rtol=1e-5)
    assert_states_equal(soft.get_state(), hard.get_state(), 1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_blended_soft_targets_give_the_blend_of_the_two_losses(backend):
    """Cross entropy is linear in its target: q = 0.3 * onehot(a) + 0.7 * onehot(b) costs 0.3 * CE(a) + 0.7 * CE(b)
    (compared on the first step's loss, computed before the update)."""
    x, y = batch(1)
    other = (y + 1) % 3
    eye = np.eye(3, dtype=np.float32)
    loss_a = small_net(backend).train_batch(x, y)
    loss_b = small_net(backend).train_batch(x, other)
    mixed = small_net(backend).train_batch(x, 0.3 * eye[y] + 0.7 * eye[other])
    np.testing.assert_allclose(mixed, 0.3 * loss_a + 0.7 * loss_b, rtol=1e-5)


# --------------------------------------------------------------------------- the numpy mixing

def test_cutmix_pastes_one_box_whose_area_is_one_minus_lam():
    rng = np.random.default_rng(0)
    x = np.zeros((4, 3, 20, 30), np.float32)
    donors = np.ones_like(x)
    for drawn in (0.1, 0.5, 0.8, 0.97):
        out, lam = paste_box(x, donors, drawn, rng)
        pasted = out[0, 0] == 1
        rows, cols = np.nonzero(pasted)
        assert pasted.mean() == pytest.approx(1.0 - lam)
        assert pasted.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # one rectangle
        assert (out == out[:1]).all() and (out[:, :1] == out).all()  # the same box in every image and channel
    assert (x == 0).all()  # the batch itself is left as it was


def test_mixup_blends_inputs_targets_and_weights_with_one_lam():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(12, 5)).astype(np.float32)
    y = np.arange(12) % 3
    w = rng.random(12).astype(np.float32)
    mixed, targets, weights = Mixing(0.4, 0.0, 3).mix(x, y, w, np.random.default_rng(9))
    # replay the draws: lam, then the pairing
    replay = np.random.default_rng(9)
    lam = replay.beta(0.4, 0.4)
    pairs = replay.permutation(12)
    np.testing.assert_allclose(mixed, lam * x + (1 - lam) * x[pairs], rtol=1e-6)
    np.testing.assert_allclose(targets, lam * np.eye(3)[y] + (1 - lam) * np.eye(3)[y[pairs]], rtol=1e-6)
    np.testing.assert_allclose(weights, lam * w + (1 - lam) * w[pairs], rtol=1e-6)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, rtol=1e-6)


def test_with_both_alphas_each_batch_picks_mixup_or_cutmix():
    x = np.random.default_rng(0).normal(size=(6, 1, 8, 8)).astype(np.float32)
    y = np.arange(6) % 2
    mixing, rng = Mixing(1.0, 1.0, 2), np.random.default_rng(1)
    kinds = set()
    for _ in range(20):
        mixed, _, _ = mixing.mix(x, y, None, rng)
        lam_rows = (mixed == x).reshape(6, -1).mean(axis=1)  # a pasted image keeps a share of its pixels exactly
        kinds.add("cutmix" if (lam_rows > 0).all() else "mixup")
    assert kinds == {"mixup", "cutmix"}


# --------------------------------------------------------------------------- mixup and cutmix in training

@pytest.mark.parametrize("backend", BACKENDS)
def test_mixup_changes_the_run_and_a_seed_repeats_it(backend, frame):
    plain = mlp(backend).train(y="label", training_frame=frame)
    mixed = mlp(backend, mixup=0.4).train(y="label", training_frame=frame)
    again = mlp(backend, mixup=0.4).train(y="label", training_frame=frame)
    assert states_differ(mixed._fitted.net.get_state(), plain._fitted.net.get_state())
    assert_states_equal(again._fitted.net.get_state(), mixed._fitted.net.get_state(), 0.0)
    # scoring reads the clean rows: the training metrics are those of the model on the frame itself
    logloss = mixed.model_performance(frame).logloss()
    assert mixed.scoring_history()["training_logloss"].iloc[-1] == pytest.approx(logloss, rel=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_cutmix_trains_an_image_network_and_a_seed_repeats_it(backend, image_frame):
    options = {"network": "lenet", "channels": 1, "image_shape": [16, 16], "epochs": 1, "mini_batch_size": 8,
               "learning_rate": 0.05, "gpu": False, "quiet_mode": True, "seed": 5, "backend": backend}
    runs = [dw.DeepWaterEstimator(**options, **extra).train(x=["uri"], y="label", training_frame=image_frame)
            for extra in ({}, {"cutmix": 1.0}, {"cutmix": 1.0})]
    plain, cut, again = (run._fitted.net.get_state() for run in runs)
    assert states_differ(cut, plain)
    assert_states_equal(again, cut, 0.0)


# --------------------------------------------------------------------------- ema

@pytest.mark.parametrize("backend", BACKENDS)
def test_the_average_follows_every_step_and_predict_uses_it(backend):
    net = small_net(backend)
    net.configure_average(0.6)
    average = net.get_state()
    for step in range(4):
        x, y = batch(step)
        net.train_batch(x, y)
        trained = training_weights(net)
        average = {name: 0.6 * average[name] + 0.4 * trained[name] for name in average}
        assert_states_equal(net.get_state(), average, 1e-5)
    assert states_differ(trained, average)
    x, _ = batch(9)
    plain = small_net(backend)
    plain.set_state(average)
    np.testing.assert_allclose(net.predict(x), plain.predict(x), rtol=1e-5, atol=1e-6)
    layer = net.layers()[0]
    np.testing.assert_allclose(net.features(x, layer), plain.features(x, layer), rtol=1e-5, atol=1e-6)
    # and the steps go on from the weights being trained, not from the average
    twin = small_net(backend)
    twin.set_state(trained)
    twin.set_training_state({k: v for k, v in net.training_state().items() if not k.startswith(TRAINING_WEIGHTS)})
    x, y = batch(5)
    net.train_batch(x, y)
    twin.train_batch(x, y)
    assert_states_equal(training_weights(net), twin.get_state(), 1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_saved_model_predicts_with_the_average(backend, frame, tmp_path):
    model = mlp(backend, ema=0.9).train(y="label", training_frame=frame)
    net = model._fitted.net
    assert states_differ(training_weights(net), net.get_state())
    loaded = dw.load_model(dw.save_model(model, tmp_path))
    assert_states_equal(loaded._fitted.net.get_state(), net.get_state(), 0.0)
    predicted = model.predict(frame)
    np.testing.assert_allclose(loaded.predict(frame)[["a", "b", "c"]].to_numpy(),
                               predicted[["a", "b", "c"]].to_numpy(), rtol=1e-6)
    x = model._fitted.inputs.source(frame).batch(np.arange(len(frame))).x
    plain = small_like(model, backend)  # the same network without ema, given the average
    plain.set_state(net.get_state())
    np.testing.assert_allclose(predicted[["a", "b", "c"]].to_numpy(), plain.predict(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_restart_continues_the_average_and_the_weights_being_trained(backend, frame, tmp_path):
    straight = mlp(backend, epochs=4, ema=0.8).train(y="label", training_frame=frame)
    first = mlp(backend, ema=0.8).train(y="label", training_frame=frame)
    path = dw.save_model(first, tmp_path)
    continued = dw.DeepWaterEstimator(checkpoint=path, epochs=4).train(y="label", training_frame=frame)
    a, b = continued._fitted.net, straight._fitted.net
    assert_states_equal(a.get_state(), b.get_state())
    assert_states_equal(training_weights(a), training_weights(b))
    history = ["training_loss", "training_logloss"]
    np.testing.assert_allclose(continued.scoring_history()[history].to_numpy(float),
                               straight.scoring_history()[history].to_numpy(float), atol=EXACT, rtol=EXACT)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_restart_of_a_mixed_run_draws_what_the_run_would_have(backend, frame, tmp_path):
    """2 epochs with mixup and ema, saved, restarted to 4 == 4 straight: the mixing draws go on."""
    straight = mlp(backend, epochs=4, mixup=0.4, ema=0.5).train(y="label", training_frame=frame)
    first = mlp(backend, mixup=0.4, ema=0.5).train(y="label", training_frame=frame)
    continued = dw.DeepWaterEstimator(checkpoint=dw.save_model(first, tmp_path), epochs=4).train(
        y="label", training_frame=frame)
    assert_states_equal(continued._fitted.net.get_state(), straight._fitted.net.get_state())
    np.testing.assert_allclose(continued.scoring_history()["training_loss"].to_numpy(float),
                               straight.scoring_history()["training_loss"].to_numpy(float), atol=EXACT, rtol=EXACT)


# --------------------------------------------------------------------------- errors

@pytest.mark.parametrize("backend", BACKENDS[:1])
def test_mixing_a_regression_or_cutmix_on_rows_is_refused(backend, frame):
    with pytest.raises(ParameterError, match=r"mixup=0\.2: mixing blends class targets, but this model's task is "
                                             r"regression"):
        mlp(backend, mixup=0.2).train(y="y", training_frame=make_linear(60))
    with pytest.raises(ParameterError, match=r"cutmix=1\.0 pastes a box.*columns of a dataset, not images"):
        mlp(backend, cutmix=1.0).train(y="label", training_frame=frame)
    with pytest.raises(ParameterError, match=r"mixup=0\.2.*autoencoder"):
        mlp(backend, mixup=0.2, autoencoder=True).train(x=["x1", "x2"], training_frame=frame)


@pytest.mark.parametrize("name, value", [("ema", 1.0), ("ema", -0.1), ("mixup", -1), ("cutmix", "big")])
def test_values_out_of_range_name_the_parameter(name, value):
    with pytest.raises(ParameterError, match=rf"{name}={value!r} is not allowed"):
        dw.DeepWaterEstimator(**{name: value})


def test_the_three_are_checkpoint_mutable():
    assert all(PARAMETERS[name].checkpoint_mutable for name in ("mixup", "cutmix", "ema"))


def test_ema_is_refused_where_no_step_reaches_the_average():
    net = small_net(BACKENDS[0])
    with pytest.raises(ParameterError, match=r"ema=0\.9 cannot average.*several devices or workers"):
        configure_average(net, 0.9, replicated=True)

    class PlugInNet:  # a plug-in backend's net without configure_average()
        pass

    with pytest.raises(ParameterError, match=r"ema=0\.9 cannot average.*PlugInNet, which has no configure_average"):
        configure_average(PlugInNet(), 0.9)
    configure_average(PlugInNet(), None)  # off: nothing asked of it


@pytest.mark.parametrize("extra, refusal", [
    ({"ema": 0.9}, r"ema=0\.9 cannot average.*several devices"),
    ({"mixup": 0.2}, r"mixup=0\.2: mixing is not available.*several devices")])
def test_replicas_on_several_devices_refuse_ema_and_mixing(frame, extra, refusal):
    with pytest.raises(ParameterError, match=refusal):
        mlp(BACKENDS[0], device_id=[0, 1], **extra).train(y="label", training_frame=frame)
