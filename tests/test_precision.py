"""precision= and compile=, and lean steps: mixed precision trains like float32 with float32 weights, saved models
and predictions; compiled steps train to the same loss; a step's loss stays on the device until the loop scores;
the next batch is handed to the net ahead of its step."""
from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load

import deepwater as dw
from conftest import installed_backends
from deepwater.analysis.metrics import ModelMetrics
from deepwater.backends import testing
from deepwater.backends.base import resolve_precision
from deepwater.data.sources import ArraySource, ahead, iterate_epochs
from deepwater.errors import ParameterError
from deepwater.runtime.registry import get_backend
from deepwater.specs import OptimizerSpec
from deepwater.training.trainer import LoopSettings, StoppingRule, Trainer

BACKENDS = installed_backends()
FAST = {"gpu": False, "quiet_mode": True, "hidden": [32], "mini_batch_size": 32, "learning_rate": 0.05,
        "stopping_rounds": 0, "seed": 3, "train_samples_per_iteration": 400}


def noisy_classes(n: int, seed: int) -> pd.DataFrame:
    """Three classes from a non-linear rule on 8 features, 10% of labels flipped: not separable, so that
    accuracy has room to differ between precisions."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8))
    score = x[:, 0] + np.sin(2 * x[:, 1]) + x[:, 2] * x[:, 3]
    label = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    flip = rng.random(n) < 0.1
    label[flip] = rng.integers(0, 3, size=flip.sum())
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(8)])
    frame["label"] = pd.Categorical(np.array(["a", "b", "c"])[label])
    return frame


TRAIN, TEST = noisy_classes(1500, 0), noisy_classes(1000, 1)


def mixed_precisions(backend: str) -> tuple[str, ...]:
    """The mixed precisions `backend`'s built-in networks train in."""
    net = testing.build(get_backend(backend), "mlp")
    return tuple(p for p in net.precisions() if p != "float32")


def fit(backend: str, **params) -> dw.DeepWaterEstimator:
    model = dw.DeepWaterEstimator(backend=backend, **{"epochs": 3, **FAST, **params})
    return model.train(y="label", training_frame=TRAIN)


def accuracy(model: dw.DeepWaterEstimator) -> float:
    return float((model.predict(TEST)["predict"].astype(str).to_numpy() == TEST["label"].astype(str)).mean())


# --------------------------------------------------------------------------- mixed precision

@pytest.mark.parametrize("backend", BACKENDS)
def test_bfloat16_trains_as_well_as_float32_or_names_the_limit(backend):
    if "bfloat16" not in mixed_precisions(backend):
        with pytest.raises(ParameterError, match=f"precision='bfloat16' is not available.*{backend}"):
            fit(backend, precision="bfloat16")
        return
    full, mixed = fit(backend, precision="auto"), fit(backend, precision="bfloat16")
    assert (full.summary()["precision"], mixed.summary()["precision"]) == ("float32", "bfloat16")  # auto: the CPU's
    losses = mixed.scoring_history()["training_loss"].to_numpy()
    assert len(losses) >= 3 and losses[-1] < losses[0], losses
    assert accuracy(full) > 0.6  # the task is learnable, so the comparison means something
    assert abs(accuracy(mixed) - accuracy(full)) <= 0.01, (accuracy(mixed), accuracy(full))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_mixed_precision_model_saves_float32_and_predicts_float32(backend, tmp_path):
    precisions = mixed_precisions(backend)
    if not precisions:
        pytest.skip(f"{backend} trains in float32 only (test_bfloat16_... checks its error)")
    model = fit(backend, precision=precisions[0], epochs=1)
    path = dw.save_model(model, str(tmp_path))
    with zipfile.ZipFile(path) as archive:
        arrays = load(archive.read("arrays.safetensors"))
    weights = {k: v for k, v in arrays.items() if k.startswith(("net/", "training/")) and k != "training/samples"}
    assert weights and {str(v.dtype) for v in weights.values()} == {"float32"}
    loaded = dw.load_model(path)
    assert loaded.params["precision"]["actual"] == precisions[0]
    probabilities = loaded.predict(TEST)[["a", "b", "c"]].to_numpy()  # the net's float32 (conformance checks)
    np.testing.assert_allclose(probabilities, model.predict(TEST)[["a", "b", "c"]].to_numpy(), atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_float16_checkpoint_keeps_its_loss_scale(backend, tmp_path):
    if "float16" not in mixed_precisions(backend):
        pytest.skip(f"{backend} trains in float32 only (test_bfloat16_... checks its error)")
    model = fit(backend, precision="float16", epochs=1)
    steps = -(-len(TRAIN) // FAST["mini_batch_size"])
    assert model._fitted.net.training_state()["loss_scale"].tolist() == [2.0 ** 16, steps]  # no overflow here
    model._fitted.net.set_training_state({**model._fitted.net.training_state(), "loss_scale": np.float32([1024, 5])})
    path = dw.save_model(model, str(tmp_path))
    loaded = dw.load_model(path)
    assert loaded._fitted.net.training_state()["loss_scale"].tolist() == [1024.0, 5.0]
    restarted = dw.DeepWaterEstimator(checkpoint=loaded, backend=backend, precision="float16", **{**FAST, "epochs": 2})
    restarted.train(y="label", training_frame=TRAIN)
    assert restarted._fitted.net.training_state()["loss_scale"].tolist() == [1024.0, 5 + steps]
    in_float32 = dw.DeepWaterEstimator(checkpoint=loaded, backend=backend, precision="float32", **{**FAST, "epochs": 2})
    assert "loss_scale" not in in_float32.train(y="label", training_frame=TRAIN)._fitted.net.training_state()


def test_bad_values_name_the_parameter_and_the_choices():
    with pytest.raises(ParameterError, match=r"precision='half'.*'auto', 'float32', 'bfloat16', 'float16'"):
        dw.DeepWaterEstimator(precision="half")
    with pytest.raises(ParameterError, match=r"compile='yes'.*True or False"):
        dw.DeepWaterEstimator(compile="yes")


def test_auto_is_float32_on_the_cpu_and_the_gpus_mixed_precision_elsewhere():
    both = ("float32", "bfloat16", "float16")
    assert resolve_precision("auto", "cpu", both, False) == "float32"
    assert resolve_precision("auto", "cuda:0", both, True) == "bfloat16"
    assert resolve_precision("auto", "cuda:0", both, False) == "float16"
    assert resolve_precision("auto", "cuda:0", ("float32",), True) == "float32"
    assert resolve_precision("bfloat16", "cpu", both, False) == "bfloat16"


def test_a_checkpoint_restart_may_change_precision_and_compile():
    first = fit("torch", epochs=1)
    restarted = dw.DeepWaterEstimator(checkpoint=first, epochs=2, precision="bfloat16", **{
        k: v for k, v in FAST.items() if k not in ("hidden",)}).train(y="label", training_frame=TRAIN)
    losses = restarted.scoring_history()["training_loss"].to_numpy()
    assert len(losses) > len(first.scoring_history()) and np.isfinite(losses).all()


# --------------------------------------------------------------------------- compiled steps

@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_steps_train_to_the_same_loss(backend):
    x = testing.inputs("mlp", rows=16, seed=2)
    y = np.arange(len(x)) % testing.CLASSES
    losses = {}
    for compile in (False, True):
        net = testing.build(get_backend(backend), "mlp", optimizer=OptimizerSpec(learning_rate=0.05))
        net.configure_steps("float32", compile)
        assert net.compiled is compile
        losses[compile] = [net.train_batch(x, y) for _ in range(6)]
    assert losses[False][-1] < losses[False][0]
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-4)


# --------------------------------------------------------------------------- lean steps

@pytest.mark.parametrize("backend", BACKENDS)
def test_a_step_leaves_its_loss_on_the_device_until_it_is_read(backend):
    x = testing.inputs("mlp", rows=8, seed=2)
    y = np.arange(len(x)) % testing.CLASSES
    lazy, eager = testing.build(get_backend(backend), "mlp"), testing.build(get_backend(backend), "mlp")
    pending = [lazy.train_step(x, y) for _ in range(3)]
    assert not any(isinstance(loss, float) for loss in pending)  # a framework value, not read yet
    np.testing.assert_allclose([float(loss) for loss in pending], [eager.train_batch(x, y) for _ in range(3)],
                               rtol=1e-6)


class LazyCountingNet:
    """Gives losses that log when they are read, so that the test sees when the loop reads them."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.steps = 0

    def train_step(self, x, y, weights=None):
        self.steps += 1
        self.log.append("step")
        net, value = self, float(self.steps)

        class Loss:
            def __float__(self) -> float:
                net.log.append("read")
                return value

        return Loss()

    def train_batch(self, x, y, weights=None) -> float:
        return float(self.train_step(x, y, weights))

    def get_state(self) -> dict:
        return {"steps": np.array(self.steps)}

    def set_state(self, state: dict) -> None:
        self.steps = int(state["steps"])


def test_the_loop_reads_the_losses_only_when_it_scores():
    net = LazyCountingNet()
    source = ArraySource(np.zeros((20, 1), dtype=np.float32), np.zeros(20, dtype=np.int64))
    scorings = []

    def evaluate():
        scorings.append(list(net.log))
        return {"training": ModelMetrics("classification", {"logloss": 1.0}, 20)}

    settings = LoopSettings(2, 5, 5.0, 0.1, 10, 0.0, False, True, "test")
    outcome = Trainer(net, source, evaluate, StoppingRule("logloss", False, 0, 0.0, "training"), settings,
                      np.random.default_rng(0)).run()
    # 8 steps of 5 rows, a scoring every 10 rows: each scoring reads the two losses since the last one
    assert [row["training_loss"] for row in outcome.history] == [1.5, 3.5, 5.5, 7.5]
    assert all(log[-1] == "read" and log.count("step") == 2 * (i + 1) for i, log in enumerate(scorings))
    steps_then_reads = "".join("s" if entry == "step" else "r" for entry in net.log)
    assert steps_then_reads.startswith("ssr") and "sss" not in steps_then_reads


def test_each_next_batch_is_handed_over_before_the_current_one_within_an_epoch():
    seen: list[tuple[str, int]] = []
    for item in ahead(iter([1, 2, 3]), lambda b: seen.append(("ahead", b))):
        seen.append(("use", item))
    assert seen == [("ahead", 1), ("ahead", 2), ("use", 1), ("ahead", 3), ("use", 2), ("use", 3)]
    source = ArraySource(np.arange(6, dtype=np.float32).reshape(6, 1), np.zeros(6, dtype=np.int64))
    handed: list[float] = []
    epochs = [[np.array([0, 1]), np.array([2, 3])], [np.array([4, 5])]]
    batches = list(iterate_epochs(source, epochs, lambda b: handed.append(float(b.x[0, 0]))))
    assert [float(b.x[0, 0]) for b in batches] == [0.0, 2.0, 4.0] and handed == [0.0, 2.0, 4.0]


@pytest.mark.skipif("torch" not in BACKENDS, reason="torch is not installed")
def test_a_batch_copied_ahead_trains_as_one_copied_in_the_step():
    from deepwater.backends.torch.net import DeviceCopies

    x = testing.inputs("lenet", rows=8, seed=2)
    y = np.arange(len(x)) % testing.CLASSES
    ahead_net, plain = testing.build(get_backend("torch"), "lenet"), testing.build(get_backend("torch"), "lenet")
    copies = DeviceCopies(ahead_net._device, ahead_net._to_device)  # what a GPU net uses, here on the CPU
    ahead_net._copies = copies
    copies.prefetch(x, y, None)
    assert copies.take(x.copy()) is None  # another array with the same values is not the batch copied
    assert float(ahead_net.train_step(x, y)) == pytest.approx(plain.train_batch(x, y), rel=1e-6)
    assert copies.take(x) is None  # the step took it
