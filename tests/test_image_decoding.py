"""How photos become arrays (issue 25, items 3 and 4): JPEGs decoded at a reduced size when the target is much
smaller, image_resize='stretch' or 'crop' (in training, the saved model, the bundle and the prediction service),
and decoding in worker processes with the same results and errors as on threads."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageOps
from skimage import data

import deepwater as dw
from deepwater import inference
from deepwater.data.images import ImageReader, ImageShape, decode_image, load_reduced
from deepwater.errors import ImageError, ParameterError
from deepwater.serving import ServeConfig
from deepwater.serving.rows import RowEncoder

THIRDS = (30, 130, 230)  # grey levels of the left, middle and right thirds of a wide test image


def jpeg_bytes(image: Image.Image, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def big_photo() -> bytes:
    """scikit-image's astronaut, enlarged to 2048 x 1536 (a camera photo's proportions), as a JPEG."""
    return jpeg_bytes(Image.fromarray(data.astronaut()).resize((2048, 1536), Image.BICUBIC))


def full_decode(encoded: bytes, shape: ImageShape) -> np.ndarray:
    """The reference: the whole JPEG decoded, then resized to `shape` (stretched), as (C, H, W)."""
    with Image.open(io.BytesIO(encoded)) as image:
        image.load()
        resized = image.convert("L" if shape.channels == 1 else "RGB").resize((shape.width, shape.height),
                                                                              Image.BILINEAR)
    array = np.asarray(resized)
    return array[np.newaxis] if array.ndim == 2 else array.transpose(2, 0, 1)


def thirds_image(width: int = 300, height: int = 100) -> Image.Image:
    """A grey image in three vertical bands (THIRDS): cropping keeps only the middle one."""
    pixels = np.empty((height, width), dtype=np.uint8)
    for band, level in enumerate(THIRDS):
        pixels[:, band * width // 3:(band + 1) * width // 3] = level
    return Image.fromarray(pixels, mode="L")


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------------- reduced-size JPEG decoding

@pytest.mark.parametrize("channels", [3, 1])
def test_a_jpeg_much_larger_than_the_target_decodes_reduced_and_close_to_a_full_decode(big_photo, channels):
    shape = ImageShape(96, 128, channels)
    with Image.open(io.BytesIO(big_photo)) as image:
        load_reduced(image, channels, (shape.width, shape.height), "stretch")
        assert image.size == (256, 192)  # 1/8: still 2x the target each way
    got = decode_image(big_photo, shape).astype(float)
    expected = full_decode(big_photo, shape).astype(float)
    assert got.shape == expected.shape == (channels, 96, 128)
    assert np.abs(got - expected).mean() < 1.0  # grey levels of 255
    assert np.abs(got - expected).max() < 32


def test_a_jpeg_near_the_target_size_and_other_formats_decode_whole(big_photo):
    near = ImageShape(1000, 1000, 3)
    with Image.open(io.BytesIO(big_photo)) as image:
        load_reduced(image, 3, (near.width, near.height), "stretch")
        assert image.size == (2048, 1536)
    np.testing.assert_array_equal(decode_image(big_photo, near), full_decode(big_photo, near))
    with Image.open(io.BytesIO(png_bytes(thirds_image(2400, 800)))) as image:
        load_reduced(image, 1, (30, 10), "stretch")
        assert image.size == (2400, 800)


def test_crop_reduces_by_what_the_crop_keeps(big_photo):
    with Image.open(io.BytesIO(big_photo)) as image:  # crop: the 1536-pixel short side meets 192, so 1/4
        load_reduced(image, 3, (192, 192), "crop")
        assert image.size == (512, 384)
    with Image.open(io.BytesIO(big_photo)) as image:  # stretch: the height, 1536 to 192, allows 1/4 too, the
        load_reduced(image, 3, (1024, 96), "stretch")  # width (2048 to 1024) none
        assert image.size == (2048, 1536)


# --------------------------------------------------------------------------- image_resize

def test_crop_keeps_the_centre_and_stretch_the_whole_image():
    encoded = png_bytes(thirds_image(400, 100))  # the centred 100 x 100 box lies well inside the middle band
    cropped = decode_image(encoded, ImageShape(20, 20, 1, "crop"))
    stretched = decode_image(encoded, ImageShape(20, 20, 1))
    assert (cropped == THIRDS[1]).all()
    assert set(np.unique(stretched)) >= set(THIRDS)
    tall = png_bytes(thirds_image(400, 100).rotate(90, expand=True))  # 100 wide, 400 high: bands across
    assert (decode_image(tall, ImageShape(10, 10, 1, "crop")) == THIRDS[1]).all()


def test_crop_matches_pillows_fit_on_a_photo():
    photo = Image.fromarray(data.chelsea())  # 451 x 300
    shape = ImageShape(64, 48, 3, "crop")
    got = decode_image(png_bytes(photo), shape).transpose(1, 2, 0).astype(float)
    expected = np.asarray(ImageOps.fit(photo, (48, 64), Image.BILINEAR)).astype(float)
    assert np.abs(got - expected).mean() < 2.0  # fit rounds its box to whole pixels


def test_an_unknown_resize_is_a_parameter_error():
    with pytest.raises(ParameterError, match=r"image_resize='squash'.*'stretch', 'crop'"):
        ImageShape(8, 8, 3, "squash")
    with pytest.raises(ParameterError, match="image_resize.*'squash'.*stretch"):
        dw.DeepWaterEstimator(image_resize="squash")


def test_the_disk_cache_keeps_stretched_and_cropped_images_apart(tmp_path):
    path = tmp_path / "wide.png"
    path.write_bytes(png_bytes(thirds_image()))
    arrays = {}
    for resize in ("stretch", "crop", "crop"):
        with ImageReader(ImageShape(10, 10, 1, resize), cache_dir=tmp_path / "cache", cache_mb=0) as reader:
            batch, _ = reader.read_batch([str(path)], [0])
            assert reader.decoded == (0 if resize in arrays else 1)
            arrays.setdefault(resize, batch[0])
            np.testing.assert_array_equal(batch[0], arrays[resize])
    assert not np.array_equal(arrays["stretch"], arrays["crop"])


@pytest.fixture
def wide_frame(tmp_path: Path) -> pd.DataFrame:
    """12 wide images: 'dark' ones darker in the middle third, 'light' ones lighter there."""
    uris, labels = [], []
    for i in range(12):
        light = i % 2 == 1
        pixels = np.asarray(thirds_image(36, 12), dtype=np.int16)
        pixels[:, 12:24] += 80 if light else -80
        path = tmp_path / f"wide{i:02d}.png"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L").save(path)
        uris.append(str(path))
        labels.append("light" if light else "dark")
    return pd.DataFrame({"uri": uris, "label": pd.Categorical(labels)})


def test_a_model_trained_with_crop_in_processes_scores_with_crop_when_saved_exported_and_served(wide_frame, tmp_path):
    model = dw.DeepWaterEstimator(network="mlp", hidden=[8], backend="torch", gpu=False, image_shape=[6, 6],
                                  channels=1, image_resize="crop", epochs=1, mini_batch_size=4, seed=3,
                                  quiet_mode=True, image_decode_processes=1)
    model.train(x=["uri"], y="label", training_frame=wide_frame)
    cropped = ImageShape(6, 6, 1, "crop")
    assert model._fitted.inputs.shape == cropped
    assert model._fitted.inputs.reader.decode_processes == 1 and model._fitted.inputs.reader.decoded == 12
    expected = model.predict(wide_frame)
    loaded = dw.load_model(dw.save_model(model, str(tmp_path / "saved")))
    assert loaded._fitted.inputs.shape == cropped
    pd.testing.assert_frame_equal(loaded.predict(wide_frame), expected)
    scorer = inference.load(model.export(tmp_path / "bundle"), device="cpu")
    assert scorer.inputs.shape == cropped
    np.testing.assert_allclose(scorer.predict(wide_frame).iloc[:, 1:].to_numpy(float),
                               expected.iloc[:, 1:].to_numpy(float), atol=1e-4)
    encoded = Path(wide_frame["uri"][1]).read_bytes()
    served = RowEncoder(scorer, ServeConfig(str(tmp_path / "bundle"))).encode_images([encoded], ["image"])
    np.testing.assert_array_equal(served, scorer.encode_images(decode_image(encoded, cropped)[np.newaxis]))
    stretched = scorer.encode_images(decode_image(encoded, ImageShape(6, 6, 1))[np.newaxis])
    assert not np.array_equal(served, stretched)


# --------------------------------------------------------------------------- decoding in worker processes

@pytest.fixture
def photo_files(tmp_path: Path, big_photo: bytes) -> list[str]:
    """Two JPEG photos, a PNG, a file that is no image, a missing file and a truncated JPEG."""
    paths = [tmp_path / "big.jpg", tmp_path / "cat.jpg", tmp_path / "thirds.png", tmp_path / "notes.jpg"]
    paths[0].write_bytes(big_photo)
    paths[1].write_bytes(jpeg_bytes(Image.fromarray(data.chelsea())))
    paths[2].write_bytes(png_bytes(thirds_image()))
    paths[3].write_text("not an image")
    (tmp_path / "cut.jpg").write_bytes(big_photo[:len(big_photo) // 3])
    return [str(p) for p in paths] + [str(tmp_path / "missing.jpg"), str(tmp_path / "cut.jpg")]


def read_all(uris: list[str], bad_images: str, **options: object) -> tuple[np.ndarray, np.ndarray, int]:
    with ImageReader(ImageShape(32, 40, 3, "crop"), bad_images=bad_images, cache_mb=0, **options) as reader:
        batch, mask = reader.read_batch(uris, list(range(len(uris))))
        return batch, mask, reader.skipped


def test_worker_processes_decode_as_threads_do_and_skip_the_same_images(photo_files):
    threads = read_all(photo_files, "skip", workers=2)
    processes = read_all(photo_files, "skip", workers=1, decode_processes=2)
    np.testing.assert_array_equal(processes[0], threads[0])
    np.testing.assert_array_equal(processes[1], [True, True, True, False, False, False])
    np.testing.assert_array_equal(processes[1], threads[1])
    assert processes[2] == threads[2] == 3


@pytest.mark.parametrize("bad", [3, 4, 5])
def test_worker_processes_raise_the_image_error_threads_raise(photo_files, bad):
    uris = photo_files[:3] + [photo_files[bad]]
    errors = []
    for options in ({"workers": 1}, {"decode_processes": 1}):
        with pytest.raises(ImageError) as raised:
            read_all(uris, "error", **options)
        errors.append(str(raised.value))
    assert errors[0] == errors[1]
    assert photo_files[bad] in errors[0]


def test_a_bad_process_count_is_a_parameter_error():
    for value in (-1, 1.5, True):
        with pytest.raises(ParameterError, match="image_decode_processes=.*integer >= 0"):
            ImageReader(ImageShape(8, 8, 1), decode_processes=value)
    with pytest.raises(ParameterError, match="image_decode_processes"):
        dw.DeepWaterEstimator(image_decode_processes=-1)


def kill_decoding_processes(reader: ImageReader) -> None:
    """Kill the reader's decoding processes, as the kernel kills a process for memory."""
    for process in list(reader._processes._processes.values()):
        process.kill()
        process.join()


def test_a_decoding_process_that_dies_fails_its_image_and_the_next_images_decode_again(photo_files):
    with ImageReader(ImageShape(16, 16, 3), bad_images="skip", cache_mb=0, decode_processes=1) as reader:
        assert reader.read_batch(photo_files[:1], [0])[1].all()
        kill_decoding_processes(reader)
        _, mask = reader.read_batch(photo_files[1:2], [1])
        assert not mask.any() and reader.skipped == 1
        batch, mask = reader.read_batch(photo_files[2:3], [2])
        assert mask.all() and batch.shape == (1, 3, 16, 16)
    with ImageReader(ImageShape(16, 16, 3), cache_mb=0, decode_processes=1) as reader:
        reader.read_batch(photo_files[:1], [0])
        kill_decoding_processes(reader)
        with pytest.raises(ImageError, match="cat.jpg.*its decoding process stopped"):
            reader.read_batch(photo_files[1:2], [1])
