"""Decoded images on local disk (image_cache_dir): reused by later epochs, readers and runs, keyed by the image and
the decoding settings, safe files (.npy without pickle, written whole), bounded by size; and training on images
that do not fit in the memory cache (image_cache_mb=0), on every backend."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import installed_backends, write_png
from deepwater import DeepWaterEstimator, ParameterError
from deepwater.data.image_cache import DiskImageCache
from deepwater.data.images import ImageReader, ImageShape

BACKENDS = installed_backends()
SHAPE = ImageShape(8, 8, 1)


def pngs(folder: Path, n: int) -> list[str]:
    folder.mkdir(exist_ok=True)
    return [str(write_png(folder / f"img{i:02d}.png", 20 * i, seed=i)) for i in range(n)]


def read_all(reader: ImageReader, uris: list[str]) -> np.ndarray:
    pixels, ok = reader.read_batch(uris, list(range(len(uris))))
    assert ok.all()
    return pixels


def test_epoch_two_and_a_second_reader_decode_nothing(tmp_path: Path) -> None:
    uris = pngs(tmp_path / "images", 6)
    with ImageReader(SHAPE, cache_mb=0) as without:  # nothing kept: every epoch decodes every image
        expected = read_all(without, uris)
        read_all(without, uris)
        assert without.decoded == 12
    with ImageReader(SHAPE, cache_mb=0, cache_dir=tmp_path / "cache") as first:
        np.testing.assert_array_equal(read_all(first, uris), expected)
        np.testing.assert_array_equal(read_all(first, uris), expected)
        assert first.decoded == 6
    with ImageReader(SHAPE, cache_mb=0, cache_dir=tmp_path / "cache") as second:  # another run, or a CV fold
        np.testing.assert_array_equal(read_all(second, uris), expected)
        assert second.decoded == 0


def test_another_shape_or_a_changed_file_is_decoded_again(tmp_path: Path) -> None:
    uris = pngs(tmp_path / "images", 3)
    cache = tmp_path / "cache"
    with ImageReader(SHAPE, cache_dir=cache) as reader:
        read_all(reader, uris)
    with ImageReader(ImageShape(6, 6, 1), cache_dir=cache) as smaller:
        assert read_all(smaller, uris).shape == (3, 1, 6, 6) and smaller.decoded == 3
    write_png(Path(uris[1]), 250, seed=9)
    later = os.stat(uris[1]).st_mtime_ns + 10**9
    os.utime(uris[1], ns=(later, later))
    with ImageReader(SHAPE, cache_dir=cache) as again, ImageReader(SHAPE) as plain:
        np.testing.assert_array_equal(read_all(again, uris), read_all(plain, uris))
        assert again.decoded == 1


def test_the_files_are_whole_npy_arrays_read_without_pickle(tmp_path: Path) -> None:
    uris = pngs(tmp_path / "images", 4)
    with ImageReader(SHAPE, cache_dir=tmp_path / "cache") as reader:
        expected = read_all(reader, uris)
    files = sorted((tmp_path / "cache").rglob("*"))
    arrays = [np.load(path, allow_pickle=False) for path in files if path.is_file()]
    assert len(arrays) == 4 and all(path.suffix == ".npy" for path in files if path.is_file())  # no temporary left
    assert sorted(a.tobytes() for a in arrays) == sorted(e.tobytes() for e in expected)


def test_a_damaged_file_is_decoded_again_and_replaced(tmp_path: Path) -> None:
    uris = pngs(tmp_path / "images", 3)
    with ImageReader(SHAPE, cache_dir=tmp_path / "cache") as reader:
        expected = read_all(reader, uris)
    damaged = next((tmp_path / "cache").rglob("*.npy"))
    damaged.write_bytes(damaged.read_bytes()[:-10])  # a copy cut short, or a disk's error
    with ImageReader(SHAPE, cache_dir=tmp_path / "cache") as again:
        np.testing.assert_array_equal(read_all(again, uris), expected)
        assert again.decoded == 1
    with ImageReader(SHAPE, cache_dir=tmp_path / "cache") as third:
        read_all(third, uris)
        assert third.decoded == 0


def test_the_folder_stays_within_its_size_the_oldest_removed_first(tmp_path: Path) -> None:
    uris = pngs(tmp_path / "images", 12)
    limit_mb = 1000 / 2**20  # 1,000 bytes: five 192-byte arrays (64 pixels and the .npy header)
    with ImageReader(SHAPE, workers=1, cache_dir=tmp_path / "cache", cache_dir_mb=limit_mb) as reader:
        for row, uri in enumerate(uris):
            reader.read_batch([uri], [row])
    sizes = [path.stat().st_size for path in (tmp_path / "cache").rglob("*.npy")]
    assert len(sizes) == 5 and sum(sizes) <= 1000
    with ImageReader(SHAPE, cache_dir=tmp_path / "cache", cache_dir_mb=limit_mb) as again:
        read_all(again, uris[-5:])
        assert again.decoded == 0
        read_all(again, uris[:1])
        assert again.decoded == 1
    assert DiskImageCache(tmp_path / "cache", limit_mb).bytes == sum(sizes)


def test_bad_cache_settings_are_parameter_errors(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ParameterError, match="image_cache_dir='.*a-file/cache' cannot be used as a folder"):
        ImageReader(SHAPE, cache_dir=tmp_path / "a-file" / "cache")
    with pytest.raises(ParameterError, match="image_cache_dir_mb=0 must be > 0"):
        ImageReader(SHAPE, cache_dir=tmp_path, cache_dir_mb=0)
    with pytest.raises(ParameterError, match="image_cache_dir_mb=-1"):
        DeepWaterEstimator(image_cache_dir_mb=-1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_on_images_beyond_the_memory_cache_decodes_each_once_with_the_disk_cache(
        image_frame: pd.DataFrame, backend: str, tmp_path: Path) -> None:
    options = {"network": "lenet", "channels": 1, "image_shape": [16, 16], "epochs": 2, "mini_batch_size": 8,
               "gpu": False, "quiet_mode": True, "seed": 5, "backend": backend, "image_cache_mb": 0}

    def trained(**changed: object) -> DeepWaterEstimator:
        return DeepWaterEstimator(**options, **changed).train(x=["uri"], y="label", training_frame=image_frame)

    streamed = trained()  # nothing fits in memory: decoded again each epoch and at each scoring
    assert streamed._fitted.inputs.reader.decoded >= 2 * len(image_frame)
    first = trained(image_cache_dir=str(tmp_path / "cache"))
    assert first._fitted.inputs.reader.decoded == len(image_frame)  # epoch 2 and the scoring decode nothing
    second = trained(image_cache_dir=str(tmp_path / "cache"))  # another run on the same images
    assert second._fitted.inputs.reader.decoded == 0
    expected = streamed.predict(image_frame)[["dark", "light"]].to_numpy()
    for model in (first, second):
        np.testing.assert_allclose(model.predict(image_frame)[["dark", "light"]].to_numpy(), expected, rtol=1e-5)


def test_the_progress_line_shows_images_per_second_and_the_share_waiting_for_data(
        image_frame: pd.DataFrame, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPWATER_PROGRESS", "lines")
    DeepWaterEstimator(network="lenet", channels=1, image_shape=[16, 16], epochs=1, mini_batch_size=8, gpu=False,
                       seed=5, backend=BACKENDS[0], image_cache_mb=0).train(x=["uri"], y="label",
                                                                           training_frame=image_frame)
    lines = [line for line in capsys.readouterr().err.splitlines() if "24/24" in line]
    assert lines and re.search(r"images/s, .*data_wait=\d+%", lines[-1]), lines
