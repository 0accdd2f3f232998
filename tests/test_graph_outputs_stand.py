"""Booklet section 11: a user graph scored with epochs=0 keeps its own outputs (ImageNet's 1000 classes on a
frame of 3), named by a synset.txt beside the graph file, else by index; deepfeatures works; metrics against
classes the graph does not have are a clear error. A built-in network with epochs=0 and no weights warns."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import deepwater as dw
from conftest import installed_backends, make_blobs
from deepwater.errors import FrameError

BACKENDS = installed_backends()
LENET_SYMBOL = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "h2o-deepwater" / "mxnet" / \
    "symbol_lenet-cpp.json"


def scorer(definition: str, **params) -> dw.DeepWaterEstimator:
    defaults = {"network": "user", "network_definition_file": definition, "epochs": 0, "gpu": False,
                "quiet_mode": True, "seed": 2}
    return dw.DeepWaterEstimator(**{**defaults, **params})


@pytest.mark.skipif("mxnet" not in BACKENDS or not LENET_SYMBOL.is_file(), reason="needs mxnet and the fixtures")
def test_a_graph_of_ten_classes_scores_a_frame_of_two_with_its_synset_names(image_frame, tmp_path):
    graph = tmp_path / "lenet-symbol.json"
    shutil.copy(LENET_SYMBOL, graph)
    names = [f"n{i:08d} digit {i}" for i in range(10)]
    (tmp_path / "synset.txt").write_text("\n".join(names) + "\n")
    model = scorer(str(graph), backend="mxnet", image_shape=[28, 28], channels=1)
    model.train(x=["uri"], y="label", training_frame=image_frame)
    predictions = model.predict(image_frame)
    assert list(predictions.columns) == ["predict", *names]
    assert set(predictions["predict"].astype(str)) <= set(names)
    np.testing.assert_allclose(predictions[names].sum(axis=1), 1.0, rtol=1e-5)
    assert model.deepfeatures(image_frame, model.layers()[0]).shape[0] == len(image_frame)
    with pytest.raises(FrameError, match="never saw in training: \\['dark', 'light'\\]"):
        model.model_performance(image_frame)


@pytest.mark.skipif("torch" not in BACKENDS, reason="needs torch")
def test_without_a_synset_the_outputs_are_named_by_index(tmp_path):
    import torch

    graph = tmp_path / "five.pt"
    module = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 5))
    torch.jit.save(torch.jit.script(module), str(graph))
    frame = make_blobs(30, seed=3)
    model = scorer(str(graph), backend="torch").train(y="label", training_frame=frame)
    predictions = model.predict(frame)
    assert list(predictions.columns) == ["predict", "0", "1", "2", "3", "4"]
    assert model.summary()["stop_reason"] == "epochs=0: the graph's own outputs"
    loaded = dw.load_model(dw.save_model(model, tmp_path / "saved"))
    np.testing.assert_allclose(loaded.predict(frame).iloc[:, 1:], predictions.iloc[:, 1:], atol=1e-6)
    with pytest.raises(dw.ModelFileError, match="has 5 outputs but the response needs 3"):
        scorer(str(graph), backend="torch", epochs=1).train(y="label", training_frame=frame)


def test_epochs_0_on_a_built_in_network_without_weights_warns():
    with pytest.warns(UserWarning, match="epochs=0 and no network_parameters_file"):
        dw.DeepWaterEstimator(epochs=0, hidden=[4], gpu=False, quiet_mode=True).train(
            y="label", training_frame=make_blobs(30))


def test_epochs_too_few_to_train_one_row_warns_as_epochs_0_does():
    with pytest.warns(UserWarning, match=r"epochs=0.01 trains round\(0.01 x 30 rows\) = 0 samples, so nothing is "
                                         r"trained.*epochs >= 0.0333"):
        model = dw.DeepWaterEstimator(epochs=0.01, hidden=[4], gpu=False, quiet_mode=True).train(
            y="label", training_frame=make_blobs(30))
    assert model.summary()["samples"] == 0
