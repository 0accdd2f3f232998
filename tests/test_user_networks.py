"""network='user': MXNet symbol JSON files written by the original Deep Water, trained, loaded and scored."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepwater import DeepWaterEstimator
from deepwater.backends.mxnet.backend import MXNetBackend
from deepwater.backends.mxnet.runtime import load_mxnet
from deepwater.data.images import ImageShape, load_mean_image
from deepwater.datasets import mnist_images
from deepwater.errors import ModelFileError, ParameterError

if not MXNetBackend().available():
    pytest.skip("mxnet is not installed", allow_module_level=True)

# ../shared/fixtures beside the repository: graph files written by the original Deep Water
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "h2o-deepwater" / "mxnet"
if not FIXTURES.is_dir():
    pytest.skip(f"the h2o-deepwater fixtures are not at {FIXTURES}", allow_module_level=True)

SYMBOLS = sorted(FIXTURES.glob("*.json"))
LENET = str(FIXTURES / "symbol_lenet-cpp.json")
MLP = str(FIXTURES / "symbol_mlp-cpp.json")
INCEPTION_BN = str(FIXTURES / "Inception_BN-symbol.json")
MEAN_224 = str(FIXTURES / "mean_224.nd")


def user_model(definition: str, **params) -> DeepWaterEstimator:
    defaults = {"backend": "mxnet", "network": "user", "network_definition_file": definition, "gpu": False,
                "quiet_mode": True, "seed": 1}
    return DeepWaterEstimator(**{**defaults, **params})


def ten_blobs(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Ten well separated classes in 20 numeric columns (the MLP symbol has 10 outputs)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(10, 20))
    codes = np.arange(n) % 10
    values = centres[codes] + rng.normal(size=(n, 20))
    frame = pd.DataFrame(values, columns=[f"x{i}" for i in range(20)])
    frame["label"] = pd.Categorical([f"c{c}" for c in codes])
    return frame


def mlp_model(**params) -> DeepWaterEstimator:
    return user_model(MLP, epochs=params.pop("epochs", 10), learning_rate=0.05, **params)


@pytest.fixture(scope="module")
def mnist(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    return mnist_images(tmp_path_factory.mktemp("mnist"), n_train=2000, n_test=500)


@pytest.fixture(scope="module")
def trained_mlp() -> tuple[DeepWaterEstimator, pd.DataFrame]:
    frame = ten_blobs()
    return mlp_model().train(y="label", training_frame=frame), frame


# --- the files load --------------------------------------------------------------------------

@pytest.mark.parametrize("path", SYMBOLS, ids=lambda p: p.name)
def test_every_fixture_symbol_loads(path: Path) -> None:
    from deepwater.backends.mxnet.user import DATA, load_symbol, logits_of

    logits = logits_of(load_symbol(str(path)), str(path))
    assert DATA in logits.list_arguments()
    assert "softmax_label" not in logits.list_arguments()
    _, outputs, _ = logits.infer_shape(data=(1, 3, 224, 224))
    assert outputs[0] == ((1, 1000) if path.name == "Inception_BN-symbol.json" else (1, 10))


# --- training -------------------------------------------------------------------------------

def test_lenet_symbol_learns_mnist(mnist) -> None:
    train, test = mnist
    model = user_model(LENET, problem_type="image", image_shape=[28, 28], channels=1, epochs=3, learning_rate=0.05)
    model.train(x=["uri"], y="label", training_frame=train)
    assert model.model_performance(test).accuracy() > 0.8
    assert model.summary()["parameters"] == model._fitted.net.parameter_count() > 0
    assert "flatten0_output" in model.layers()
    features = model.deepfeatures(test.head(3), "flatten0_output")
    assert features.shape == (3, 800)
    assert list(features.columns[:2]) == ["DF.flatten0_output.C1", "DF.flatten0_output.C2"]


def test_mlp_symbol_learns_a_numeric_frame(trained_mlp) -> None:
    model, frame = trained_mlp
    assert model.model_performance(frame).accuracy() > 0.9
    probabilities = model.predict(frame.head(5)).iloc[:, 1:].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_saved_params_round_trip_into_an_untrained_model(trained_mlp, tmp_path) -> None:
    mx = load_mxnet()

    model, frame = trained_mlp
    state = model._fitted.net.get_state()
    path = str(tmp_path / "mlp.params")
    mx.nd.save(path, {f"arg:{name}": mx.nd.array(value) for name, value in state.items()})
    fresh = mlp_model(epochs=0, network_parameters_file=path).train(y="label", training_frame=frame)
    np.testing.assert_allclose(fresh.predict(frame).iloc[:, 1:].to_numpy(),
                               model.predict(frame).iloc[:, 1:].to_numpy(), rtol=1e-5, atol=1e-6)
    plain = str(tmp_path / "plain.params")
    mx.nd.save(plain, {name: mx.nd.array(value) for name, value in state.items()})
    again = mlp_model(epochs=0, network_parameters_file=plain).train(y="label", training_frame=frame)
    np.testing.assert_allclose(again._fitted.net.get_state()["fc1_weight"], state["fc1_weight"])


def test_inception_bn_scores_with_epochs_zero(tmp_path) -> None:
    classes = [line.strip() for line in (FIXTURES / "synset.txt").read_text().splitlines() if line.strip()]
    uris = []
    for i in range(2):
        pixels = np.random.default_rng(i).integers(0, 255, size=(230, 240, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i}.png")
        uris.append(str(tmp_path / f"{i}.png"))
    frame = pd.DataFrame({"uri": [uris[i % 2] for i in range(len(classes))],
                          "label": pd.Categorical(classes, categories=classes)})
    model = user_model(INCEPTION_BN, problem_type="image", image_shape=[224, 224], channels=3, epochs=0,
                       mean_image_file=MEAN_224, score_training_samples=2)
    model.train(x=["uri"], y="label", training_frame=frame)
    assert model.deepfeatures(frame.head(2), "global_pool_output").shape == (2, 1024)
    assert model.predict(frame.head(2)).shape == (2, 1 + len(classes))
    assert len(model.scoring_history()) <= 1


# --- errors ---------------------------------------------------------------------------------

def test_output_count_must_match_the_classes_unless_the_output_layer_is_replaced(blobs, trained_mlp,
                                                                                 tmp_path) -> None:
    with pytest.raises(ModelFileError, match=r"symbol_mlp-cpp\.json.*10 outputs.*needs 3.*replace_output_layer"):
        mlp_model(epochs=1).train(y="label", training_frame=blobs)
    mx = load_mxnet()
    trained, _ = trained_mlp
    weights = str(tmp_path / "ten-classes.params")
    mx.nd.save(weights, {f"arg:{k}": mx.nd.array(v) for k, v in trained._fitted.net.get_state().items()})
    three = ten_blobs(900, seed=0)
    three = three[three["label"].isin(["c0", "c1", "c2"])].copy()
    three["label"] = three["label"].cat.remove_unused_categories()
    tuned = mlp_model(epochs=5, network_parameters_file=weights, replace_output_layer=True)
    tuned.train(y="label", training_frame=three)
    assert tuned.model_performance(three).accuracy() > 0.9
    state = tuned._fitted.net.get_state()
    assert state["new_output_weight"].shape[0] == 3 and "fc3_weight" not in state
    np.testing.assert_array_equal(state["fc1_weight"].shape, trained._fitted.net.get_state()["fc1_weight"].shape)


@pytest.mark.parametrize("content", ['{"nodes": [{"op": "null", "name": "data"', "not json at all"],
                         ids=["truncated", "not-json"])
def test_broken_definition_files_name_the_file(tmp_path, content: str) -> None:
    path = tmp_path / "broken-symbol.json"
    path.write_text(content)
    with pytest.raises(ModelFileError, match="broken-symbol.json"):
        user_model(str(path), epochs=1).train(y="label", training_frame=ten_blobs(50))


def test_missing_files_name_the_file(tmp_path) -> None:
    with pytest.raises(ModelFileError, match="nowhere-symbol.json.*no such file"):
        user_model(str(tmp_path / "nowhere-symbol.json")).train(y="label", training_frame=ten_blobs(50))
    with pytest.raises(ModelFileError, match="nowhere.params.*no such file"):
        mlp_model(network_parameters_file=str(tmp_path / "nowhere.params")).train(
            y="label", training_frame=ten_blobs(50))


def test_params_with_wrong_shapes_or_names_are_refused(tmp_path) -> None:
    mx = load_mxnet()

    wrong = str(tmp_path / "wrong.params")
    mx.nd.save(wrong, {"arg:fc1_weight": mx.nd.zeros((3, 3))})
    with pytest.raises(ModelFileError, match=r"wrong\.params.*fc1_weight"):
        mlp_model(network_parameters_file=wrong).train(y="label", training_frame=ten_blobs(50))
    unknown = str(tmp_path / "unknown.params")
    mx.nd.save(unknown, {"arg:nothere_weight": mx.nd.zeros((3, 3))})
    with pytest.raises(ModelFileError, match=r"unknown\.params.*nothere_weight"):
        mlp_model(network_parameters_file=unknown).train(y="label", training_frame=ten_blobs(50))


def test_user_network_needs_a_definition_file() -> None:
    with pytest.raises(ParameterError, match="network_definition_file.*network_parameters_file"):
        DeepWaterEstimator(network="user")


def test_user_network_with_backend_auto_takes_the_backend_that_reads_the_file(trained_mlp) -> None:
    _, frame = trained_mlp
    model = user_model(MLP, backend="auto", epochs=0.2).train(y="label", training_frame=frame)
    assert model.summary()["backend"] == "mxnet"


def test_user_network_on_a_backend_without_a_loader() -> None:
    pytest.importorskip("torch")
    model = DeepWaterEstimator(backend="torch", network="user", network_definition_file=MLP, gpu=False)
    with pytest.raises(ModelFileError, match="backend='torch'.*backend='mxnet'"):
        model.train(y="label", training_frame=ten_blobs(50))


def test_unknown_network_mentions_user() -> None:
    with pytest.raises(ParameterError, match="'user'"):
        DeepWaterEstimator(network="nonet", epochs=1).train(y="label", training_frame=ten_blobs(50))


# --- MXNet mean images ----------------------------------------------------------------------

def test_mxnet_mean_image_loads_and_checks_its_shape() -> None:
    mean = load_mean_image(MEAN_224, ImageShape(224, 224, 3))
    assert mean.shape == (3, 224, 224) and mean.dtype == np.float32
    with pytest.raises(ParameterError, match=r"mean_224\.nd.*\(3, 224, 224\)"):
        load_mean_image(MEAN_224, ImageShape(28, 28, 3))
    with pytest.raises(ParameterError, match=r"mean_224\.nd"):
        load_mean_image(MEAN_224, ImageShape(224, 224, 1))
