"""Booklet section 10: an image network on a dataset frame takes its numeric columns as the image
(row-major, channels first), on every backend; any other column count is an error naming the numbers."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from user_graph_cases import all_cases, fit_case

import deepwater as dw
from conftest import installed_backends
from deepwater.data.images import ImageReader, ImageShape
from deepwater.errors import FrameError

BACKENDS = installed_backends()


@pytest.fixture(scope="module")
def digits() -> tuple[pd.DataFrame, pd.DataFrame]:
    train, test = dw.datasets.mnist()
    train, test = train.iloc[:600].copy(), test.iloc[:200].copy()
    for frame in (train, test):
        frame["label"] = frame["label"].astype("category")
    return train, test


def lenet(**params) -> dw.DeepWaterEstimator:
    return dw.DeepWaterEstimator(**{"network": "lenet", "image_shape": [28, 28], "channels": 1, "epochs": 2,
                                    "gpu": False, "quiet_mode": True, "seed": 1, "learning_rate": 0.01, **params})


@pytest.mark.parametrize("backend", BACKENDS)
def test_lenet_trains_on_784_pixel_columns(digits, backend):
    train, test = digits
    model = lenet(backend=backend).train(y="label", training_frame=train)
    assert model.summary()["input_shape"] == (1, 28, 28) and model.summary()["network"] == "lenet"
    assert model.model_performance(test).accuracy() > 0.5  # ten classes: chance is 0.1


def test_the_rows_are_the_images_row_major(digits):
    """The first conv layer sees pixel (r, c) at row r, column c: the column order C1..C784 is row-major."""
    train, _ = digits
    model = lenet(epochs=1).train(y="label", training_frame=train)
    x = model._fitted.inputs.source(train.iloc[:2]).x
    encoder = model._fitted.inputs.encoder
    flat = encoder.transform(train.iloc[:2])
    np.testing.assert_array_equal(x[:, 0, 3, 5], flat[:, 3 * 28 + 5])
    assert x.shape == (2, 1, 28, 28)


def test_a_saved_pixel_model_predicts_the_same(digits, tmp_path):
    train, test = digits
    model = lenet(epochs=1).train(y="label", training_frame=train)
    loaded = dw.load_model(dw.save_model(model, tmp_path))
    np.testing.assert_allclose(loaded.predict(test).iloc[:, 1:], model.predict(test).iloc[:, 1:], atol=1e-6)


@pytest.mark.parametrize("params,named", [({"channels": 3}, "28 x 28 x 3 = 2352"),
                                          ({"image_shape": [20, 20]}, "20 x 20 x 1 = 400")])
def test_another_count_names_the_three_numbers(digits, params, named):
    with pytest.raises(FrameError, match=f"784 numeric column.*{named}"):
        lenet(**params).train(y="label", training_frame=digits[0])


def test_a_categorical_column_is_not_a_pixel(digits):
    frame = digits[0].assign(colour=pd.Categorical(["red"] * len(digits[0])))
    with pytest.raises(FrameError, match="categorical"):
        lenet().train(y="label", training_frame=frame)


# --------------------------------------------------------------------------- user graphs on pixel columns

IMAGE_CASES = [case for case in all_cases() if len(case.input_shape) == 3 and case.input_shape[0] in (1, 3)]


def pixel_columns(image_frame: pd.DataFrame, shape: tuple[int, int, int]) -> pd.DataFrame:
    """The frame's images decoded as a URI model reads them, as (channels x height x width) columns of pixels / 255,
    row-major and channels first: what ImageInputs feeds the network, so both models see the same numbers."""
    channels, height, width = shape
    reader = ImageReader(ImageShape(height, width, channels))
    pixels, decoded = reader.read_batch(list(image_frame["uri"]), list(range(len(image_frame))))
    assert decoded.all()
    values = pixels.reshape(len(pixels), -1).astype(np.float32) / 255.0
    frame = pd.DataFrame(values, columns=[f"p{i}" for i in range(values.shape[1])])
    return frame.assign(label=image_frame["label"].to_numpy())


@pytest.mark.parametrize("case", IMAGE_CASES, ids=[case.id for case in IMAGE_CASES])
def test_a_user_graph_that_wants_images_takes_pixel_columns_with_image_shape(case, image_frame, tmp_path):
    """H2O's dataset-as-image path for network='user': the rows reshaped to (channels, height, width), for every
    user graph format; the graph then predicts what it predicts for the same images given as URIs."""
    if case.missing():
        pytest.skip(f"{case.missing()} not installed")
    by_uri, _ = fit_case(case, tmp_path / "graph", image_frame)
    p = by_uri._fitted.params
    columns = pixel_columns(image_frame, case.input_shape)
    given = {name: p[name] for name in ("network", "network_definition_file", "network_parameters_file", "epochs",
                                        "mini_batch_size", "gpu", "quiet_mode", "seed", "image_shape", "channels")}
    by_pixels = dw.DeepWaterEstimator(**given, standardize=False).train(y="label", training_frame=columns)
    assert by_pixels.summary()["input_shape"] == case.input_shape
    np.testing.assert_allclose(by_pixels.predict(columns).iloc[:, 1:].to_numpy(),
                               by_uri.predict(image_frame).iloc[:, 1:].to_numpy(), atol=1e-5)
