"""tta: predictions and metrics averaged over the flipped image and its crops, on every backend."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import installed_backends
from deepwater import DeepWaterEstimator, ParameterError
from deepwater.analysis.tta import corner_and_centre_crops

BACKENDS = installed_backends()
SIZE, LARGER = 28, 32  # the model's image_shape, and the files' size: the crops' resize (28 * 8 / 7) reads them as is
CLASSES = ["left", "right"]


def _digit_like(rng: np.random.Generator, label: str) -> np.ndarray:
    """A 32x32 grey image with a bright bar on one side (the class) and noise: nothing in it is symmetric."""
    pixels = rng.integers(0, 60, size=(LARGER, LARGER))
    column = rng.integers(3, 10) if label == "left" else rng.integers(20, 27)
    pixels[4 + rng.integers(0, 6):26, column:column + 4] = 230
    return pixels.astype(np.uint8)


def _frame(folder: Path, images: list[np.ndarray], labels: list[str]) -> pd.DataFrame:
    folder.mkdir(exist_ok=True)
    uris = []
    for i, pixels in enumerate(images):
        uris.append(str(folder / f"img{i}.png"))
        Image.fromarray(np.ascontiguousarray(pixels), mode="L").save(uris[-1])
    return pd.DataFrame({"uri": uris, "label": pd.Categorical(labels, categories=CLASSES)})


@pytest.fixture
def photos(tmp_path: Path) -> tuple[pd.DataFrame, list[np.ndarray]]:
    rng = np.random.default_rng(3)
    labels = [CLASSES[i % 2] for i in range(8)]
    images = [_digit_like(rng, label) for label in labels]
    return _frame(tmp_path / "images", images, labels), images


def _lenet(frame: pd.DataFrame, backend: str) -> DeepWaterEstimator:
    return DeepWaterEstimator(network="lenet", image_shape=[SIZE, SIZE], channels=1, epochs=1, mini_batch_size=4,
                              learning_rate=0.05, backend=backend, gpu=False, quiet_mode=True, seed=7,
                              ).train(x=["uri"], y="label", training_frame=frame)


def _probabilities(model: DeepWaterEstimator, frame: pd.DataFrame, **tta) -> np.ndarray:
    return model.predict(frame, **tta)[CLASSES].to_numpy(dtype=np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
def test_tta_averages_the_predictions_of_the_flipped_and_cropped_images(photos, backend, tmp_path):
    frame, images = photos
    model = _lenet(frame, backend)
    labels = frame["label"].tolist()
    as_files = lambda name, views: _probabilities(model, _frame(tmp_path / name, views, labels))  # noqa: E731
    plain = _probabilities(model, frame)
    flipped = as_files("flipped", [image[:, ::-1] for image in images])
    crops = [corner_and_centre_crops(image[None, None], (SIZE, SIZE)) for image in images]
    cropped = [as_files(f"crop{c}", [views[c][0, 0] for views in crops]) for c in range(5)]
    mirrored = [as_files(f"mirrored{c}", [views[c][0, 0, :, ::-1] for views in crops]) for c in range(5)]

    flip = _probabilities(model, frame, tta=["flip"])
    both = _probabilities(model, frame, tta=True)
    np.testing.assert_allclose(flip, (plain + flipped) / 2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_probabilities(model, frame, tta="crops"), np.mean([plain, *cropped], axis=0),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(both, np.mean([plain, *cropped, flipped, *mirrored], axis=0), rtol=1e-5, atol=1e-6)
    for averaged in (flip, both):
        assert np.all((averaged >= 0) & (averaged <= 1)) and np.allclose(averaged.sum(axis=1), 1, atol=1e-5)
        assert not np.allclose(averaged, plain, atol=1e-4)

    model.tta = ["flip"]  # the parameter: predict's and model_performance's default
    np.testing.assert_allclose(_probabilities(model, frame), flip, rtol=1e-6)
    metrics = model.model_performance(frame)
    true_class = np.asarray([CLASSES.index(label) for label in labels])
    assert metrics.logloss() == pytest.approx(-np.mean(np.log(flip[np.arange(len(flip)), true_class])), rel=1e-4)
    assert model.model_performance(frame, tta=False).logloss() != pytest.approx(metrics.logloss(), rel=1e-4)


def test_tta_is_refused_where_there_are_no_images(blobs, photos):
    model = DeepWaterEstimator(hidden=[8], epochs=1, gpu=False, quiet_mode=True, seed=1).train(
        y="label", training_frame=blobs)
    with pytest.raises(ParameterError, match=r"tta=\['flip', 'crops'\].*not a column of image URIs"):
        model.predict(blobs, tta=True)
    with pytest.raises(ParameterError, match="tta=.*not a column of image URIs"):
        model.model_performance(blobs, tta=["crops"])
    with pytest.raises(ParameterError, match=r"tta='mirror' is not allowed.*\['flip', 'crops'\]"):
        model.predict(blobs, tta="mirror")
    with pytest.raises(ParameterError, match="pass the frame"):
        model.model_performance(train=True, tta=True)
    with pytest.raises(ParameterError, match="tta="):
        DeepWaterEstimator(tta=["flip", 3])
