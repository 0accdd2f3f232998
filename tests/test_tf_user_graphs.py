"""network='user' on the TensorFlow backend: Deep Water's own TF1 .meta graphs, Keras files, bad files.

The conformance suite (test_user_graph_conformance.py) checks what every format does; these tests check
what only TensorFlow's formats do, through the estimator.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepwater import DeepWaterEstimator
from deepwater.backends.tensorflow.backend import TensorflowBackend
from deepwater.datasets import mnist, mnist_images
from deepwater.errors import ModelFileError, ParameterError
from deepwater.runtime.user_graphs import graph_loader, user_graph
from deepwater.specs import CLASSIFICATION, OptimizerSpec, task_from_params

if not TensorflowBackend().available():
    pytest.skip("tensorflow is not installed", allow_module_level=True)

import keras
import tensorflow as tf
from graph_files_tensorflow import keras_image_model, make_saved_model, make_tf1_meta

# ../shared/fixtures beside the repository: graph files written by the original Deep Water
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "h2o-deepwater" / "tensorflow"
needs_fixtures = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"the h2o-deepwater fixtures are not at {FIXTURES}")

LENET = str(FIXTURES / "lenet_28x28x1_10.meta")
MLP = str(FIXTURES / "mlp_100x1x1_10.meta")


def user_model(definition: str, **params) -> DeepWaterEstimator:
    defaults = {"backend": "tensorflow", "network": "user", "network_definition_file": definition, "gpu": False,
                "quiet_mode": True, "seed": 1}
    return DeepWaterEstimator(**{**defaults, **params})


def load(definition: str | Path, parameters: str | Path | None, input_shape: tuple[int, ...], classes: int = 3):
    """The Net for a graph file, loaded as the estimator loads it."""
    graph = user_graph(definition, parameters, input_shape)
    task = task_from_params(CLASSIFICATION, classes, "AUTO", "Automatic")
    return graph_loader(graph, "tensorflow").load_user_network(graph, task, OptimizerSpec(), "cpu", 1)


def blobs(n: int, features: int, classes: int, seed: int = 0) -> pd.DataFrame:
    """`classes` well separated classes in `features` numeric columns."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(classes, features))
    codes = np.arange(n) % classes
    frame = pd.DataFrame(centres[codes] + rng.normal(size=(n, features)), columns=[f"x{i}" for i in range(features)])
    frame["label"] = pd.Categorical([f"c{c}" for c in codes])
    return frame


# --- Deep Water's own TF1 graphs ------------------------------------------------------------

@needs_fixtures
def test_lenet_meta_learns_mnist_from_784_pixel_columns() -> None:
    """H2O's dataset-as-image path: Deep Water's LeNet graph given MNIST's pixel columns with image_shape and
    channels takes each row as a (1, 28, 28) image."""
    train, test = mnist()
    train, test = train.iloc[:2000].copy(), test.iloc[:500].copy()
    for frame in (train, test):
        frame["label"] = frame["label"].astype("category")
    model = user_model(LENET, image_shape=[28, 28], channels=1, epochs=3, score_training_samples=500,
                       learning_rate=1e-3)
    model.train(y="label", training_frame=train)
    assert model.summary()["input_shape"] == (1, 28, 28) and model.summary()["problem_type"] == "dataset"
    assert model.model_performance(test).accuracy() > 0.85


@needs_fixtures
def test_lenet_meta_learns_mnist_through_its_own_train_op(tmp_path) -> None:
    train, test = mnist_images(tmp_path / "mnist", n_train=2000, n_test=500)
    # the graph's train_op is Adam: 1e-3 is the rate Deep Water fed it (deepwater's default 0.005 is for SGD)
    model = user_model(LENET, problem_type="image", image_shape=[28, 28], channels=1, epochs=3,
                       score_training_samples=500, learning_rate=1e-3)
    model.train(x=["uri"], y="label", training_frame=train)
    assert model.model_performance(test).accuracy() > 0.88
    assert model.summary()["parameters"] == model._fitted.net.parameter_count() == 4 * 1_256_080
    # the graph runs four towers on quarters of the batch: its layers are the ops that see every row
    assert model.layers() == ["reshape1/input_reshape", "concat"]
    features = model.deepfeatures(test.head(3), "concat")
    assert list(features.columns) == [f"DF.concat.C{i}" for i in range(1, 11)]
    probabilities = model.predict(test.head(3)).iloc[:, 1:].to_numpy()
    np.testing.assert_allclose(probabilities, tf.nn.softmax(features.to_numpy()).numpy(), rtol=1e-5, atol=1e-6)


@needs_fixtures
def test_mlp_meta_takes_100_inputs_and_trains_on_a_numeric_frame() -> None:
    frame = blobs(400, 100, 10)
    model = user_model(MLP, epochs=3).train(y="label", training_frame=frame)
    assert model.model_performance(frame).accuracy() > 0.9
    assert "fc2/fully_connected/BiasAdd" in model.layers()
    with pytest.raises(ModelFileError, match=r"mlp_100x1x1_10\.meta.*\(100,\).*\(20,\)"):
        user_model(MLP, epochs=1).train(y="label", training_frame=blobs(50, 20, 10))


@needs_fixtures
@pytest.mark.parametrize("given", [{"optimizer": "adamw"}, {"label_smoothing": 0.1}])
def test_a_meta_graph_refuses_an_optimiser_or_loss_its_train_op_does_not_have(given) -> None:
    name, value = next(iter(given.items()))
    with pytest.raises(ParameterError, match=rf"{name}={value!r} cannot change how .*mlp_100x1x1_10\.meta"):
        user_model(MLP, epochs=1, **given).train(y="label", training_frame=blobs(50, 100, 10))


def test_a_meta_graph_without_the_meta_collection_is_refused(tmp_path) -> None:
    path = tmp_path / "plain.meta"
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (None, 4), name="x")
        tf.identity(x * 2.0, name="y")
        tf.compat.v1.train.export_meta_graph(str(path))
    with pytest.raises(ModelFileError, match=r"plain\.meta.*no 'meta' collection"):
        user_model(str(path), epochs=1).train(y="label", training_frame=blobs(30, 4, 3))


@needs_fixtures
def test_a_meta_checkpoint_that_does_not_fit_is_refused(tmp_path) -> None:
    definition, checkpoint = make_tf1_meta(tmp_path, 3)
    frame = blobs(30, 72, 3)
    with pytest.raises(ModelFileError, match=r"lenet_small\.ckpt'.*not a checkpoint"):
        user_model(MLP, network_parameters_file=checkpoint, epochs=0).train(
            y="label", training_frame=blobs(30, 100, 10))
    with pytest.raises(ModelFileError, match=r"lenet_small\.ckpt\.index.*not a checkpoint"):
        user_model(MLP, network_parameters_file=checkpoint + ".index", epochs=0).train(
            y="label", training_frame=blobs(30, 100, 10))
    model = user_model(definition, network_parameters_file=str(tmp_path), epochs=0)
    model.train(y="label", training_frame=frame)
    assert model.predict(frame.head(2)).shape == (2, 4)  # a directory with a 'checkpoint' file is taken too


# --- Keras files ------------------------------------------------------------------------------

def test_keras_safe_mode_refuses_a_lambda_layer(tmp_path) -> None:
    inputs = keras.Input((4,))
    path = tmp_path / "with_lambda.keras"
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Lambda(lambda t: t * 2)(inputs)))\
        .save(path)
    with pytest.raises(ModelFileError, match=r"with_lambda\.keras.*safe_mode=True.*Lambda"):
        user_model(str(path), epochs=1).train(y="label", training_frame=blobs(30, 4, 3))


def test_keras_deepfeatures_columns_are_named_after_the_layers(tmp_path) -> None:
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(7, activation="relu", name="hidden")(inputs)
    path = tmp_path / "mlp.keras"
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="out")(hidden)).save(path)
    frame = blobs(60, 5, 3)
    model = user_model(str(path), epochs=1).train(y="label", training_frame=frame)
    assert model.layers() == ["hidden", "out"]
    features = model.deepfeatures(frame.head(4), "hidden")
    assert list(features.columns) == [f"DF.hidden.C{i}" for i in range(1, 8)] and (features.to_numpy() >= 0).all()


def test_keras_weights_file_must_fit(tmp_path) -> None:
    path = tmp_path / "cnn.keras"
    keras_image_model(3).save(path)
    other = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, name="out")])
    weights = tmp_path / "other.weights.h5"
    other.save_weights(weights)
    for parameters, why in [(weights, r"other\.weights\.h5.*does not fit.*expected 2 variables"),
                            (path, r"cnn\.keras.*a Keras model takes")]:
        with pytest.raises(ModelFileError, match=why):
            load(path, parameters, (3, 8, 8))


# --- broken files ------------------------------------------------------------------------------

def test_a_file_that_is_not_a_keras_zip_names_the_file(tmp_path) -> None:
    path = tmp_path / "notzip.keras"
    path.write_text("not a zip archive")
    with pytest.raises(ModelFileError, match=r"notzip\.keras.*is not a \.keras zip archive"):
        user_model(str(path), epochs=1).train(y="label", training_frame=blobs(30, 4, 3))


def test_a_meta_file_holding_something_else_names_the_file(tmp_path) -> None:
    path = tmp_path / "symbol.meta"
    path.write_text(json.dumps({"nodes": [{"op": "null", "name": "data"}]}))
    with pytest.raises(ModelFileError, match=r"symbol\.meta.*is not a readable TF1 MetaGraph"):
        load(path, None, (4,))


def test_a_saved_model_without_variables_names_the_directory(tmp_path) -> None:
    path, _ = make_saved_model(tmp_path, 3)
    shutil.rmtree(Path(path) / "variables")
    with pytest.raises(ModelFileError, match=r"small_cnn_savedmodel.*not a loadable SavedModel"):
        load(path, None, (3, 8, 8))


def test_a_saved_model_takes_no_weights_file(tmp_path) -> None:
    path, _ = make_saved_model(tmp_path, 3)
    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"")
    with pytest.raises(ModelFileError, match=r"w\.weights\.h5.*holds its weights"):
        load(path, weights, (3, 8, 8))
