"""The augment parameter: flips, shifts and the photo policies (crop, RandAugment, TrivialAugment, colour jitter)
of training images, seeded, the same on every backend, never at scoring or predict."""
from __future__ import annotations

import re
import sys
import threading

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import installed_backends
from deepwater import DeepWaterEstimator, ParameterError
from deepwater.data.augment import Augmentation
from deepwater.data.images import ImageReader, ImageShape
from deepwater.data.sources import ImageSource, image_input

BACKENDS = installed_backends()
PHOTO_SPECS = ["crop", "crop:0.5", "randaugment", "randaugment:3:20", "trivial", "color_jitter:0.4:0.1",
               "crop,trivial,color_jitter,flip,shift"]


def ramp_batch(n: int = 64) -> np.ndarray:
    """uint8 (n, 1, 6, 7) images whose pixels all differ, so any move shows."""
    return (np.arange(n * 42).reshape(n, 1, 6, 7) % 251).astype(np.uint8)


def photo_batch(n: int = 32, channels: int = 3, size: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 (n, channels, size, size) images: a colour ramp across, a bright square at a random place, noise."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(20, 230, size)
    pixels = np.empty((n, channels, size, size))
    for image in pixels:
        for c, channel in enumerate(image):
            channel[:] = ramp[None, :] if c % 2 == 0 else ramp[:, None]
        top, left = rng.integers(0, size // 2, 2)
        image[:, top:top + size // 3, left:left + size // 3] = 250
    return np.clip(pixels + rng.normal(0, 4, pixels.shape), 0, 255).astype(np.uint8)


def apply(spec: str, pixels: np.ndarray, seed: int) -> np.ndarray:
    augmentation = Augmentation.parse("augment", spec)
    return augmentation.apply(pixels, augmentation.generator(seed))


# --------------------------------------------------------------------------- flips and shifts

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


# --------------------------------------------------------------------------- the grammar

@pytest.mark.parametrize("value, spec", [
    ("flip,shift", "flip,shift:2"), (" Shift:4 ", "shift:4"), (["flip"], "flip"), ("", None), ("none", None),
    (None, None), ("crop", "crop:0.08"), ("rrc:0.25", "crop:0.25"), ("random_resized_crop:1", "crop:1"),
    ("randaugment", "randaugment:2:9"), ("randaugment:3", "randaugment:3:9"), ("RandAugment:1:30", "randaugment:1:30"),
    ("trivialaugment", "trivial"), ("color_jitter", "color_jitter:0.4"),
    ("color_jitter:0.2:0.05", "color_jitter:0.2:0.05"),
    ("flip,color_jitter:0.3,trivial,crop:0.5,shift:1", "crop:0.5,trivial,color_jitter:0.3,flip,shift:1"),
    (["crop", "randaugment:2:9", "flip"], "crop:0.08,randaugment:2:9,flip"),
])
def test_names_are_read_into_one_spelling(value, spec):
    assert DeepWaterEstimator(augment=value)._params["augment"] == spec


@pytest.mark.parametrize("value, reason", [
    ("rotate", r"'rotate' is not an augmentation"),
    ("flip,crop:0", r"'crop:0' needs its smallest area to be a number from 0.001 to 1"),
    ("crop:2", "smallest area"), ("crop:x", "smallest area"), ("crop:nan", "smallest area"),
    ("shift:0", r"'shift:0' needs its pixels to be an integer from 1 up"), ("shift:x", "pixels"),
    ("flip:2", r"'flip:2' takes no number"), ("trivial:1", "takes no number"),
    ("randaugment:0", r"its operations to be an integer from 1 to 14"), ("randaugment:2:31", "magnitude .* 0 to 30"),
    ("randaugment:2.5", "operations"), ("randaugment:1:2:3", "at most 2 numbers"),
    ("color_jitter:1.5", "strength"), ("color_jitter:0.4:0.6", "hue .* 0 to 0.5"),
    ("flip,Flip", r"'flip' is given twice"), (3, "use None"), (["flip", 1], "use None"),
])
def test_an_unknown_augmentation_is_a_clear_error(value, reason):
    with pytest.raises(ParameterError, match=re.escape(f"augment={value!r}") + rf" is not allowed: .*{reason}"
                       r".*'flip'.*'shift.*'crop.*'color_jitter.*'randaugment.*'trivial'.*e\.g\. 'flip,shift'"):
        DeepWaterEstimator(augment=value)


def test_two_policies_are_refused():
    with pytest.raises(ParameterError, match=r"augment='trivial,randaugment:2:9' is not allowed: it names two "
                                             r"policies, 'randaugment' and 'trivial'; keep one of them"):
        DeepWaterEstimator(augment="trivial,randaugment:2:9")


# --------------------------------------------------------------------------- the photo policies

@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("spec", PHOTO_SPECS)
def test_a_policy_changes_images_keeping_shape_dtype_and_the_input(spec, channels):
    pixels = photo_batch(channels=channels)
    kept = pixels.copy()
    out = apply(spec, pixels, seed=1)
    np.testing.assert_array_equal(pixels, kept)
    assert out.shape == pixels.shape and out.dtype == np.uint8 and out.flags.c_contiguous
    changed = [not np.array_equal(a, b) for a, b in zip(out, pixels)]
    assert sum(changed) >= len(pixels) * 0.6  # TrivialAugment may draw identity, or saturation of a grey image


@pytest.mark.parametrize("spec", ["flip,shift", "crop,trivial,color_jitter"])
def test_an_empty_batch_stays_empty(spec):  # every image of a batch skipped as bad
    empty = np.zeros((0, 3, 16, 16), dtype=np.uint8)
    assert apply(spec, empty, seed=0).shape == empty.shape


@pytest.mark.parametrize("spec", PHOTO_SPECS)
def test_a_seed_repeats_the_batch_and_another_seed_changes_it(spec):
    pixels = photo_batch()
    first, again, other = apply(spec, pixels, 7), apply(spec, pixels, 7), apply(spec, pixels, 8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_the_draws_follow_the_batch_order_not_the_thread():
    augmentation = Augmentation.parse("augment", "crop,randaugment,color_jitter,flip")
    batches = [photo_batch(8, seed=i) for i in range(6)]

    def run(out: list) -> None:
        rng = augmentation.generator(3)
        out.extend(augmentation.apply(batch, rng) for batch in batches)

    alone: list = []
    run(alone)
    together: list[list] = [[], []]
    threads = [threading.Thread(target=run, args=(out,)) for out in together]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for out in together:
        assert all(np.array_equal(a, b) for a, b in zip(alone, out)) and len(out) == len(batches)


def test_colour_jitter_saturates_at_255_instead_of_wrapping():
    bright = np.full((64, 3, 16, 16), 250, dtype=np.uint8)
    out = apply("color_jitter:0.4", bright, seed=0)
    assert out.max() == 255 and out.min() >= 149  # factors 0.6..1.4 of 250, clipped (a wrap would give ~94)


def test_a_higher_randaugment_magnitude_changes_images_more():
    pixels = photo_batch(64)

    def change(spec: str) -> float:
        return float(np.abs(apply(spec, pixels, 2).astype(float) - pixels).mean())

    assert change("randaugment:2:0") < change("randaugment:2:9") < change("randaugment:2:30")


def test_a_random_resized_crop_zooms_in():
    ramp = np.broadcast_to(np.linspace(0, 255, 32).astype(np.uint8), (64, 3, 32, 32))  # dark left to bright right
    spans = np.ptp(apply("crop:0.08", ramp, seed=4).astype(int), axis=3)  # each row's range, at most the ramp's
    assert spans.max() <= 255 and np.median(spans) < 0.8 * 255  # a crop of 8%..100% of the area, resized back


def test_without_albumentations_a_policy_names_the_extra_and_flips_still_work(monkeypatch):
    monkeypatch.setitem(sys.modules, "albumentations", None)  # what `import albumentations` meets when absent
    assert DeepWaterEstimator(augment="trivial")._params["augment"] == "trivial"  # saved models still load
    source = ImageSource(["unused.png"], ImageReader(ImageShape(8, 8, 1)), None)
    with pytest.raises(ParameterError, match=r"augment='crop:0.08,trivial' needs albumentations, which is not "
                                             r"installed: pip install 'deepwater\[augment\]'"):
        source.augmented(Augmentation.parse("augment", "crop,trivial"), seed=1)
    flips = Augmentation.parse("augment", "flip,shift:1")
    assert apply("flip,shift:1", ramp_batch(), 0).shape == ramp_batch().shape
    assert source.augmented(flips, seed=1).augmentation == flips


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
    again, once_more = (source.augmented(Augmentation(flip=True, shift=1), seed=3) for _ in range(2))
    np.testing.assert_array_equal(again.batch(rows).x, once_more.batch(rows).x)


def test_the_normalisation_comes_after_the_augmentation(photo_frame):
    """The zoo's per-channel mean and std (here ImageNet's) act on the changed uint8 pixels."""
    reader = ImageReader(ImageShape(28, 28, 3))
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32).reshape(3, 1, 1) * 255
    scale = 1 / (np.array([0.229, 0.224, 0.225], dtype=np.float32).reshape(3, 1, 1) * 255)
    source = ImageSource(photo_frame["uri"].tolist(), reader, mean, scale=scale)
    augmentation = Augmentation.parse("augment", "crop,trivial,color_jitter")
    rows = np.arange(len(photo_frame))
    raw, _ = reader.read_batch(photo_frame["uri"].tolist(), rows.tolist())
    expected = image_input(augmentation.apply(raw, augmentation.generator(9)), mean, scale)
    np.testing.assert_array_equal(source.augmented(augmentation, seed=9).batch(rows).x, expected)


@pytest.fixture
def photo_frame(tmp_path) -> pd.DataFrame:
    """8 RGB 32x32 PNGs (photo_batch's), labelled 'low' and 'square' in turn."""
    uris, labels = [], []
    for i, image in enumerate(photo_batch(8, seed=5)):
        path = tmp_path / f"photo{i}.png"
        Image.fromarray(image.transpose(1, 2, 0)).save(path)
        uris.append(str(path))
        labels.append(("low", "square")[i % 2])
    return pd.DataFrame({"uri": uris, "label": pd.Categorical(labels, categories=["low", "square"])})


def spy_inputs(monkeypatch):
    """Record the rows and inputs of every batch the training loop draws from an augmented source."""
    drawn = []
    original = ImageSource.batch

    def batch(self, rows):
        result = original(self, rows)
        if self.augmentation is not None:
            drawn.append((rows.copy(), result.x.copy()))
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
    as_decoded = [image.tobytes() in {d.tobytes() for d in decoded} for _, batch in drawn for image in batch]
    assert sum(as_decoded) < len(as_decoded) / 2
    expected = model._fitted.net.predict(decoded)  # the unchanged images, through the trained net
    np.testing.assert_allclose(model.predict(image_frame)[["dark", "light"]].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(plain.predict(image_frame)[["dark", "light"]].to_numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_trains_on_the_same_seeded_policy_batches(photo_frame, backend, monkeypatch):
    """The batches a backend trains on are the framework-free pipeline's for the seed, whichever the backend."""
    drawn = spy_inputs(monkeypatch)
    spec = "crop:0.3,randaugment:2:9,color_jitter:0.2,flip"
    model = lenet(photo_frame, backend, channels=3, image_shape=[28, 28], epochs=1, mini_batch_size=4, augment=spec,
                  seed=21)
    assert model._params["augment"] == "crop:0.3,randaugment:2:9,color_jitter:0.2,flip" and len(drawn) == 2
    fresh = model._fitted.inputs.source(photo_frame).augmented(Augmentation.parse("augment", spec), seed=21)
    for rows, x in list(drawn):  # (the spy records the fresh batches too)
        np.testing.assert_array_equal(fresh.batch(rows).x, x)
    plain = model._fitted.inputs.source(photo_frame)
    assert not any(np.array_equal(plain.batch(rows).x, x) for rows, x in drawn)
    probabilities = model.predict(photo_frame)[["low", "square"]].to_numpy()
    assert np.isfinite(probabilities).all() and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS[:1])
def test_augment_on_dataset_columns_is_refused(blobs, backend):
    model = DeepWaterEstimator(augment="flip", epochs=1, backend=backend, gpu=False, quiet_mode=True, hidden=[4])
    with pytest.raises(ParameterError, match=r"augment='flip' changes images.*image URI column: leave it None"):
        model.train(x=["x1", "x2"], y="label", training_frame=blobs)
