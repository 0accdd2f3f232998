"""The augment parameter: random flips and shifts of training images, seeded, never at scoring or predict."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import installed_backends
from deepwater import DeepWaterEstimator, ParameterError
from deepwater.data.augment import Augmentation
from deepwater.data.images import ImageReader, ImageShape
from deepwater.data.sources import ImageSource

BACKENDS = installed_backends()


def ramp_batch(n: int = 64) -> np.ndarray:
    """uint8 (n, 1, 6, 7) images whose pixels all differ, so any move shows."""
    return (np.arange(n * 42).reshape(n, 1, 6, 7) % 251).astype(np.uint8)


# --------------------------------------------------------------------------- the changes themselves

def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """`image` (C, H, W) moved down dy and right dx pixels, zeros filling in."""
    out = np.zeros_like(image)
    h, w = image.shape[1:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = image[:, max(-dy, 0):h + min(-dy, 0),
                                                                          max(-dx, 0):w + min(-dx, 0)]
    return out


def test_shift_moves_each_image_by_at_most_the_amount_with_zeros_filling_in():
    pixels = ramp_batch()
    out = Augmentation(shift=2).apply(pixels, np.random.default_rng(0))
    assert out.shape == pixels.shape and out.dtype == np.uint8
    moves = []
    for before, after in zip(pixels, out):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(after, shifted(before, dy, dx))]
        assert len(matches) == 1
        moves.append(matches[0])
    assert len(set(moves)) > 10  # the moves are drawn, not one for all


def test_flip_mirrors_about_half_and_leaves_the_input_alone():
    pixels = ramp_batch(200)
    kept = pixels.copy()
    out = Augmentation(flip=True).apply(pixels, np.random.default_rng(1))
    np.testing.assert_array_equal(pixels, kept)  # the decoded-image cache's arrays are never changed
    flipped = np.array([np.array_equal(a, b[..., ::-1]) for a, b in zip(out, pixels)])
    same = np.array([np.array_equal(a, b) for a, b in zip(out, pixels)])
    assert (flipped ^ same).all() and 60 < flipped.sum() < 140


@pytest.mark.parametrize("value, spec", [("flip,shift", "flip,shift:2"), (" Shift:4 ", "shift:4"),
                                         (["flip"], "flip"), ("", None), ("none", None), (None, None)])
def test_names_are_read_into_one_spelling(value, spec):
    assert DeepWaterEstimator(augment=value)._params["augment"] == spec


@pytest.mark.parametrize("value", ["rotate", "flip,crop", "shift:0", "shift:x", "flip:2", 3, ["flip", 1]])
def test_an_unknown_augmentation_is_a_clear_error(value):
    with pytest.raises(ParameterError, match=r"augment=.* is not allowed.*'flip'.*'shift'.*e\.g\. 'flip,shift'"):
        DeepWaterEstimator(augment=value)


# --------------------------------------------------------------------------- the image pipeline

def test_off_by_default_gives_the_decoded_bytes(image_frame):
    assert DeepWaterEstimator()._params["augment"] is None
    reader = ImageReader(ImageShape(12, 12, 1))
    rows = np.arange(len(image_frame))
    raw, _ = reader.read_batch(image_frame["uri"].tolist(), rows.tolist())
    source = ImageSource(image_frame["uri"].tolist(), reader, None, scale=1.0)
    np.testing.assert_array_equal(source.batch(rows).x, raw.astype(np.float32))
    augmented = source.augmented(Augmentation(flip=True, shift=1), seed=3)
    assert not np.array_equal(augmented.batch(rows).x, raw)
    np.testing.assert_array_equal(source.batch(rows).x, raw.astype(np.float32))  # the source itself is unchanged
    again = source.augmented(Augmentation(flip=True, shift=1), seed=3)
    np.testing.assert_array_equal(again.batch(rows).x, source.augmented(Augmentation(flip=True, shift=1), 3).batch(rows).x)


def spy_inputs(monkeypatch):
    """Record every batch the training loop draws from an augmented source."""
    drawn = []
    original = ImageSource.batch

    def batch(self, rows):
        result = original(self, rows)
        if self.augmentation is not None:
            drawn.append(result.x.copy())
        return result

    monkeypatch.setattr(ImageSource, "batch", batch)
    return drawn


def lenet(frame, backend, **params):
    options = {"network": "lenet", "channels": 1, "image_shape": [16, 16], "epochs": 2, "mini_batch_size": 8,
               "learning_rate": 0.05, "gpu": False, "quiet_mode": True, "seed": 5, "backend": backend}
    return DeepWaterEstimator(**{**options, **params}).train(x=["uri"], y="label", training_frame=frame)


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_batches_change_but_predict_does_not(image_frame, backend, monkeypatch):
    drawn = spy_inputs(monkeypatch)
    plain = lenet(image_frame, backend)
    assert drawn == []  # off: no batch goes through an augmentation
    model = lenet(image_frame, backend, augment="flip,shift:2")
    assert len(drawn) == 6  # 2 epochs of 3 batches
    decoded = model._fitted.inputs.source(image_frame).batch(np.arange(len(image_frame))).x
    as_decoded = [image.tobytes() in {d.tobytes() for d in decoded} for batch in drawn for image in batch]
    assert sum(as_decoded) < len(as_decoded) / 2
    expected = model._fitted.net.predict(decoded)  # the unchanged images, through the trained net
    np.testing.assert_allclose(model.predict(image_frame)[["dark", "light"]].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(plain.predict(image_frame)[["dark", "light"]].to_numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_seed_repeats_the_augmented_run(image_frame, backend, monkeypatch):
    first = _drawn(image_frame, backend, monkeypatch, seed=11)
    second = _drawn(image_frame, backend, monkeypatch, seed=11)
    other = _drawn(image_frame, backend, monkeypatch, seed=12)
    assert all(np.array_equal(a, b) for a, b in zip(first, second)) and len(first) == len(second) == 6
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def _drawn(frame, backend, monkeypatch, seed):
    with monkeypatch.context() as patch:
        drawn = spy_inputs(patch)
        lenet(frame, backend, augment="flip,shift", seed=seed)
    return drawn


@pytest.mark.parametrize("backend", BACKENDS[:1])
def test_augment_on_dataset_columns_is_refused(blobs, backend):
    model = DeepWaterEstimator(augment="flip", epochs=1, backend=backend, gpu=False, quiet_mode=True, hidden=[4])
    with pytest.raises(ParameterError, match=r"augment='flip' changes images.*image URI column: leave it None"):
        model.train(x=["x1", "x2"], y="label", training_frame=blobs)
