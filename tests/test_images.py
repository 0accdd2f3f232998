"""Tests for deepwater.data.images: URI recognition, decoding, caching, downloads and mean images."""
from __future__ import annotations

import http.server
import io
import os
import socket
import threading
import urllib.error
import urllib.request
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import outcome
from deepwater.data.images import (
    ImageReader,
    ImageShape,
    is_image_uri,
    load_mean_image,
    looks_like_image_column,
)
from deepwater.errors import ImageError, ParameterError

GREY = ImageShape(4, 5, 1)
RGB = ImageShape(4, 5, 3)


def rgb_pixels(height: int = 4, width: int = 5) -> np.ndarray:
    """A deterministic (H, W, 3) uint8 pattern."""
    h, w = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([h * 40, w * 30, (h + w) * 10 + 5], axis=-1).astype(np.uint8)


def save(path: Path, pixels: np.ndarray, **kwargs: object) -> Path:
    """Write `pixels` ((H, W) or (H, W, 3) uint8) as an image file and return its path."""
    Image.fromarray(pixels).save(path, **kwargs)
    return path


def reader(shape: ImageShape, tmp_path: Path, **kwargs: object) -> ImageReader:
    kwargs.setdefault("download_dir", tmp_path / "downloads")
    return ImageReader(shape, **kwargs)


# ---------------------------------------------------------------------------
# URI recognition
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "value",
    [
        "a.png", "dir/b.JPG", "/abs/c.jpeg", "x.bmp", "y.gif", "z.tif", "z.TIFF", "w.webp",
        "http://host/cat.png", "https://host/d/cat.jpg?size=large&x=1",
        "HTTPS://host/cat.PNG#frag", "file:///tmp/cat.png",
    ],
)
def test_is_image_uri_true(value: str) -> None:
    assert is_image_uri(value)


@pytest.mark.parametrize(
    "value",
    [
        "", "cat", "notes.txt", "data.csv", "https://host/page.html", "https://host/x?f=a.png",
        3, 2.5, None, float("nan"), b"a.png", Path("a.png"),
    ],
)
def test_is_image_uri_false(value: object) -> None:
    assert not is_image_uri(value)


def test_looks_like_image_column() -> None:
    uris = [f"img/{i}.png" for i in range(30)]
    assert looks_like_image_column(pd.Series(uris, dtype=object))
    assert looks_like_image_column(pd.Series(uris, dtype="string"))
    assert looks_like_image_column(pd.Series(uris).astype("category"))
    assert looks_like_image_column(pd.Series([None, "a.jpg", np.nan, "http://h/b.png"], dtype=object))
    # only the first `sample` non-null values are looked at
    assert looks_like_image_column(pd.Series(uris + ["label"]), sample=30)
    assert not looks_like_image_column(pd.Series(uris + ["label"]), sample=31)
    assert not looks_like_image_column(pd.Series(["a.png", "cat"], dtype=object))
    assert not looks_like_image_column(pd.Series([1, 2, 3]))
    assert not looks_like_image_column(pd.Series([1.0, 2.0]).astype("category"))
    assert not looks_like_image_column(pd.Series([], dtype=object))
    assert not looks_like_image_column(pd.Series([None, np.nan], dtype=object))


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------

def test_rgb_decode_exact_pixels(tmp_path: Path) -> None:
    pixels = rgb_pixels()
    path = save(tmp_path / "a.png", pixels)
    with reader(RGB, tmp_path) as r:
        batch, mask = r.read_batch([str(path)], [0])
    assert batch.dtype == np.uint8 and batch.shape == (1, 3, 4, 5)
    assert batch.flags.c_contiguous
    assert mask.tolist() == [True]
    np.testing.assert_array_equal(batch[0], pixels.transpose(2, 0, 1))


def test_grey_decode_exact_pixels(tmp_path: Path) -> None:
    pixels = (np.arange(20, dtype=np.uint8) * 12).reshape(4, 5)
    path = save(tmp_path / "g.png", pixels)
    with reader(GREY, tmp_path) as r:
        batch, _ = r.read_batch([str(path)], [0])
    assert batch.shape == (1, 1, 4, 5)
    np.testing.assert_array_equal(batch[0, 0], pixels)


def test_rgb_to_grey_conversion(tmp_path: Path) -> None:
    pixels = rgb_pixels()
    path = save(tmp_path / "a.png", pixels)
    with reader(GREY, tmp_path) as r:
        batch, _ = r.read_batch([str(path)], [0])
    expected = np.asarray(Image.fromarray(pixels).convert("L"))
    np.testing.assert_array_equal(batch[0, 0], expected)
    # ITU-R 601 luma: a pure red pixel becomes ~76
    red = save(tmp_path / "red.png", np.full((4, 5, 3), (255, 0, 0), dtype=np.uint8))
    with reader(GREY, tmp_path) as r:
        assert int(r.read_batch([str(red)], [0])[0][0, 0, 0, 0]) == 76


def test_grey_to_rgb_conversion(tmp_path: Path) -> None:
    pixels = (np.arange(20, dtype=np.uint8) * 12).reshape(4, 5)
    path = save(tmp_path / "g.png", pixels)
    with reader(RGB, tmp_path) as r:
        batch, _ = r.read_batch([str(path)], [0])
    assert batch.shape == (1, 3, 4, 5)
    for channel in range(3):
        np.testing.assert_array_equal(batch[0, channel], pixels)


def test_jpeg_decode(tmp_path: Path) -> None:
    path = save(tmp_path / "c.jpg", np.full((4, 5, 3), (200, 100, 50), dtype=np.uint8), quality=95)
    with reader(RGB, tmp_path) as r:
        batch, _ = r.read_batch([str(path)], [0])
    assert np.abs(batch[0].astype(int) - np.array([200, 100, 50])[:, None, None]).max() <= 3


def test_resize_to_shape(tmp_path: Path) -> None:
    big = save(tmp_path / "big.png", np.full((40, 30, 3), (10, 120, 250), dtype=np.uint8))
    grey = save(tmp_path / "grey.png", np.full((7, 9), 99, dtype=np.uint8))
    with reader(ImageShape(8, 6, 3), tmp_path) as r:
        batch, _ = r.read_batch([str(big), str(grey)], [0, 1])
    assert batch.shape == (2, 3, 8, 6)
    np.testing.assert_array_equal(batch[0], np.broadcast_to([[[10]], [[120]], [[250]]], (3, 8, 6)))
    np.testing.assert_array_equal(batch[1], np.full((3, 8, 6), 99))


def test_resize_matches_pillow_bilinear(tmp_path: Path) -> None:
    pixels = rgb_pixels(16, 12)
    path = save(tmp_path / "p.png", pixels)
    with reader(ImageShape(5, 7, 3), tmp_path) as r:
        batch, _ = r.read_batch([str(path)], [0])
    expected = np.asarray(Image.fromarray(pixels).resize((7, 5), Image.BILINEAR)).transpose(2, 0, 1)
    np.testing.assert_array_equal(batch[0], expected)


def test_output_order_follows_input_order(tmp_path: Path) -> None:
    paths = [save(tmp_path / f"{v}.png", np.full((4, 5), v, dtype=np.uint8)) for v in range(0, 240, 20)]
    uris = [str(p) for p in paths][::-1] + [str(paths[3])]
    with reader(GREY, tmp_path, workers=4) as r:
        batch, mask = r.read_batch(uris, list(range(len(uris))))
    assert mask.all()
    assert batch[:, 0, 0, 0].tolist() == list(range(220, -1, -20)) + [60]


def test_empty_batch(tmp_path: Path) -> None:
    with reader(GREY, tmp_path) as r:
        batch, mask = r.read_batch([], [])
    assert batch.shape == (0, 1, 4, 5) and batch.dtype == np.uint8
    assert mask.shape == (0,) and mask.dtype == bool


# ---------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------

def test_cache_hit_does_not_touch_file(tmp_path: Path) -> None:
    pixels = rgb_pixels()
    path = save(tmp_path / "a.png", pixels)
    with reader(RGB, tmp_path) as r:
        first, _ = r.read_batch([str(path)], [0])
        assert r.cache_bytes == 3 * 4 * 5
        path.unlink()
        second, mask = r.read_batch([str(path)], [7])
        assert mask.tolist() == [True]
        np.testing.assert_array_equal(first, second)
        second[...] = 0  # the cached copy is not shared with callers
        third, _ = r.read_batch([str(path)], [7])
        np.testing.assert_array_equal(first, third)


def test_cache_disabled(tmp_path: Path) -> None:
    path = save(tmp_path / "a.png", rgb_pixels())
    with reader(RGB, tmp_path, cache_mb=0) as r:
        r.read_batch([str(path)], [0])
        assert r.cache_bytes == 0
        path.unlink()
        with pytest.raises(ImageError, match="file not found"):
            r.read_batch([str(path)], [0])


def test_cache_is_bounded(tmp_path: Path) -> None:
    paths = [str(save(tmp_path / f"{i}.png", np.full((4, 5), i, dtype=np.uint8))) for i in range(5)]
    limit_mb = (2 * 20 + 5) / (1024 * 1024)  # room for two 20-byte images
    with reader(GREY, tmp_path, cache_mb=limit_mb) as r:
        batch, _ = r.read_batch(paths, range(5))
        assert r.cache_bytes == 40
        assert batch[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4]


def test_preload_decodes_a_fitting_frame_so_batches_touch_no_file(tmp_path: Path) -> None:
    paths = [str(save(tmp_path / f"{i}.png", np.full((4, 5), i % 256, dtype=np.uint8))) for i in range(600)]
    told = []
    with reader(GREY, tmp_path) as r:
        assert r.preload(paths + paths[:3], told.append) is True  # a repeated URI is decoded once
        assert sum(told) == 600 and len(told) == 3  # one call per chunk of 256
        assert r.cache_bytes == 600 * 20
        for path in paths:
            Path(path).unlink()
        batch, mask = r.read_batch(paths[::-1], range(600))
    assert mask.all() and batch[:, 0, 0, 0].tolist() == [i % 256 for i in range(599, -1, -1)]


def test_preload_leaves_a_frame_that_does_not_fit_to_the_batches(tmp_path: Path) -> None:
    paths = [str(save(tmp_path / f"{i}.png", np.full((4, 5), i, dtype=np.uint8))) for i in range(5)]
    with reader(GREY, tmp_path, cache_mb=(4 * 20) / (1024 * 1024)) as r:  # room for four of the five
        assert r.preload(paths) is False
        assert r.cache_bytes == 0
        batch, _ = r.read_batch(paths, range(5))
    assert batch[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4]


def test_preload_raises_the_first_bad_image_or_skips_it(tmp_path: Path) -> None:
    good = str(save(tmp_path / "ok.png", rgb_pixels()))
    missing = str(tmp_path / "gone.png")
    with reader(RGB, tmp_path) as r:
        with pytest.raises(ImageError, match="file not found") as info:
            r.preload([good, missing])
        assert info.value.row == 1
    with reader(RGB, tmp_path, bad_images="skip") as r:
        assert r.preload([good, missing]) is True
        assert r.skipped == 1
        batch, mask = r.read_batch([missing, good], [0, 1])
    assert mask.tolist() == [False, True] and batch.shape == (1, 3, 4, 5)


def test_preload_decodes_slow_images_on_the_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import deepwater.data.images as images

    paths = [str(save(tmp_path / f"{i}.png", rgb_pixels())) for i in range(300)]
    threads = set()
    decode = images._decode_file

    def recording(*args):
        threads.add(threading.current_thread().name)
        return decode(*args)

    monkeypatch.setattr(images, "_decode_file", recording)
    monkeypatch.setattr(images, "THREADED_DECODE_SECONDS", 0.0)  # every image counts as slow
    with reader(RGB, tmp_path, workers=2) as r:
        r.preload(paths)
    assert threading.current_thread().name in threads and any(n.startswith("deepwater-images") for n in threads)
    threads.clear()
    monkeypatch.setattr(images, "THREADED_DECODE_SECONDS", 1e9)  # fast images stay on the calling thread
    with reader(RGB, tmp_path, workers=2) as r:
        r.preload(paths)
    assert threads == {threading.current_thread().name}


# ---------------------------------------------------------------------------
# Bad images
# ---------------------------------------------------------------------------

def test_garbage_file_raises_with_uri_and_row(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.png"
    bad.write_bytes(b"this is not an image at all" * 10)
    good = save(tmp_path / "ok.png", rgb_pixels())
    with reader(RGB, tmp_path) as r:
        with pytest.raises(ImageError) as info:
            r.read_batch([str(good), str(bad)], [10, 11])
    message = str(info.value)
    assert str(bad) in message and "row 11" in message
    assert "not a readable image" in message
    assert info.value.uri == str(bad) and info.value.row == 11


def test_truncated_png_raises(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    data = buffer.getvalue()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    with reader(RGB, tmp_path) as r:
        with pytest.raises(ImageError) as info:
            r.read_batch([str(cut)], [42])
    assert str(cut) in str(info.value) and "row 42" in str(info.value)
    assert info.value.reason.startswith("not a readable image")


def test_missing_file_raises(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.png")
    with reader(RGB, tmp_path) as r:
        with pytest.raises(ImageError) as info:
            r.read_batch([missing], [3])
    assert info.value.reason == "file not found"
    assert missing in str(info.value) and "row 3" in str(info.value)


def test_skip_mode_mask_and_count(tmp_path: Path) -> None:
    good = str(save(tmp_path / "ok.png", np.full((4, 5), 50, dtype=np.uint8)))
    garbage = tmp_path / "bad.png"
    garbage.write_bytes(b"\x89PNG nope")
    missing = str(tmp_path / "missing.png")
    uris = [good, str(garbage), missing, good, missing, None]
    with reader(GREY, tmp_path, bad_images="skip") as r:
        batch, mask = r.read_batch(uris, range(6))
        assert mask.tolist() == [True, False, False, True, False, False]
        assert batch.shape == (2, 1, 4, 5) and (batch == 50).all()
        assert r.skipped == 3
        # known-bad URIs are not retried, even once the file becomes readable
        save(Path(missing), np.full((4, 5), 9, dtype=np.uint8))
        _, mask = r.read_batch([missing, good], [0, 1])
        assert mask.tolist() == [False, True]
        assert r.skipped == 3


def test_bad_images_value_error(tmp_path: Path) -> None:
    with pytest.raises(ParameterError) as info:
        ImageReader(RGB, bad_images="ignore")
    message = str(info.value)
    assert "bad_images" in message and "'ignore'" in message
    assert "error" in message and "skip" in message


def test_other_parameter_errors() -> None:
    with pytest.raises(ParameterError, match="cache_mb"):
        ImageReader(RGB, cache_mb=-1)
    with pytest.raises(ParameterError, match="workers"):
        ImageReader(RGB, workers=0)
    with pytest.raises(ParameterError, match="channels"):
        ImageShape(4, 4, 2)
    with pytest.raises(ParameterError):
        ImageReader(RGB).read_batch(["a.png"], [])


# ---------------------------------------------------------------------------
# file:// and http(s)://
# ---------------------------------------------------------------------------

def test_file_uri(tmp_path: Path) -> None:
    folder = tmp_path / "with space"
    folder.mkdir()
    pixels = rgb_pixels()
    path = save(folder / "a.png", pixels)
    uri = path.as_uri()
    assert "%20" in uri
    with reader(RGB, tmp_path) as r:
        batch, _ = r.read_batch([uri], [0])
        np.testing.assert_array_equal(batch[0], pixels.transpose(2, 0, 1))
        with pytest.raises(ImageError, match="file not found"):
            r.read_batch([(folder / "gone.png").as_uri()], [1])


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder and counts GET requests per path."""

    counts: dict[str, int]

    def do_GET(self) -> None:
        self.counts[self.path] = self.counts.get(self.path, 0) + 1
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path):
    """(base URL, request counts, served folder) of a local HTTP server."""
    root = tmp_path / "www"
    root.mkdir()
    handler = type("Handler", (CountingHandler,), {"counts": {}})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler.counts, root
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_http_download_and_disk_cache(tmp_path: Path, server) -> None:
    base, counts, root = server
    pixels = rgb_pixels()
    save(root / "cat.png", pixels)
    url = f"{base}/cat.png"
    downloads = tmp_path / "dl"
    with ImageReader(RGB, download_dir=downloads) as r:
        batch, _ = r.read_batch([url], [0])
    np.testing.assert_array_equal(batch[0], pixels.transpose(2, 0, 1))
    assert counts == {"/cat.png": 1}
    files = list(downloads.iterdir())
    assert len(files) == 1 and files[0].suffix == ".png" and len(files[0].stem) == 64
    # a fresh reader (empty memory cache) uses the file on disk
    with ImageReader(RGB, download_dir=downloads) as r:
        again, _ = r.read_batch([url], [0])
    np.testing.assert_array_equal(again, batch)
    assert counts == {"/cat.png": 1}
    assert len(list(downloads.iterdir())) == 1  # no temp files left behind


def test_http_404(tmp_path: Path, server) -> None:
    base, _, _ = server
    url = f"{base}/missing.png"
    with ImageReader(RGB, download_dir=tmp_path / "dl") as r:
        with pytest.raises(ImageError) as info:
            r.read_batch([url], [5])
    assert info.value.reason == "HTTP 404"
    assert url in str(info.value) and "row 5" in str(info.value)
    assert not (tmp_path / "dl").exists() or not any((tmp_path / "dl").iterdir())


def test_http_timeout_reason(tmp_path: Path, monkeypatch) -> None:
    def slow_urlopen(url: str, timeout: float) -> None:
        assert timeout == 2.5
        raise urllib.error.URLError(socket.timeout("timed out"))

    monkeypatch.setattr(urllib.request, "urlopen", slow_urlopen)
    with ImageReader(RGB, download_dir=tmp_path / "dl", http_timeout=2.5) as r:
        with pytest.raises(ImageError) as info:
            r.read_batch(["https://example.invalid/a.png"], [1])
    assert info.value.reason == "timed out after 2.5s"


def test_http_skip_mode(tmp_path: Path, server) -> None:
    base, counts, root = server
    save(root / "ok.png", np.full((4, 5), 7, dtype=np.uint8))
    uris = [f"{base}/ok.png", f"{base}/missing.png", f"{base}/missing.png"]
    with ImageReader(GREY, download_dir=tmp_path / "dl", bad_images="skip") as r:
        _, mask = r.read_batch(uris, [0, 1, 2])
        _, mask2 = r.read_batch(uris, [0, 1, 2])
    assert mask.tolist() == mask2.tolist() == [True, False, False]
    assert counts["/missing.png"] == 1 and counts["/ok.png"] == 1


def test_download_dir_from_env(tmp_path: Path, monkeypatch, server) -> None:
    base, _, root = server
    save(root / "e.png", rgb_pixels())
    monkeypatch.setenv("DEEPWATER_CACHE", str(tmp_path / "envcache"))
    with ImageReader(RGB) as r:
        r.read_batch([f"{base}/e.png"], [0])
    assert len(list((tmp_path / "envcache" / "images").glob("*.png"))) == 1


# ---------------------------------------------------------------------------
# Mean image
# ---------------------------------------------------------------------------

def test_mean_image_npy_chw_and_hwc(tmp_path: Path) -> None:
    chw = np.arange(60, dtype=np.float64).reshape(3, 4, 5)
    np.save(tmp_path / "chw.npy", chw)
    np.save(tmp_path / "hwc.npy", chw.transpose(1, 2, 0))
    for name in ("chw.npy", "hwc.npy"):
        mean = load_mean_image(tmp_path / name, RGB)
        assert mean.dtype == np.float32 and mean.shape == (3, 4, 5)
        np.testing.assert_array_equal(mean, chw)


def test_mean_image_npy_2d_grey(tmp_path: Path) -> None:
    hw = np.arange(20, dtype=np.float32).reshape(4, 5)
    np.save(tmp_path / "m.npy", hw)
    np.testing.assert_array_equal(load_mean_image(str(tmp_path / "m.npy"), GREY), hw[None])
    with pytest.raises(ParameterError, match="mean_image_file"):
        load_mean_image(tmp_path / "m.npy", RGB)


def test_mean_image_from_image_file(tmp_path: Path) -> None:
    pixels = rgb_pixels()
    path = save(tmp_path / "mean.png", pixels)
    mean = load_mean_image(path, RGB)
    assert mean.dtype == np.float32
    np.testing.assert_array_equal(mean, pixels.transpose(2, 0, 1).astype(np.float32))
    grey = load_mean_image(path, GREY)
    np.testing.assert_array_equal(grey[0], np.asarray(Image.fromarray(pixels).convert("L")))


def test_mean_image_shape_mismatch(tmp_path: Path) -> None:
    np.save(tmp_path / "m.npy", np.zeros((3, 6, 6), dtype=np.float32))
    with pytest.raises(ParameterError) as info:
        load_mean_image(tmp_path / "m.npy", RGB)
    message = str(info.value)
    assert "mean_image_file" in message and str(tmp_path / "m.npy") in message
    assert "(3, 6, 6)" in message and "4 x 5 x 3" in message
    save(tmp_path / "big.png", np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(ParameterError) as info:
        load_mean_image(tmp_path / "big.png", RGB)
    assert "mean_image_file" in str(info.value) and "8 x 8 x 3" in str(info.value)
    assert "4 x 5 x 3" in str(info.value)


def test_mean_image_missing_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="mean_image_file.*no such file"):
        load_mean_image(tmp_path / "none.npy", RGB)
    (tmp_path / "m.txt").write_text("1 2 3")
    with pytest.raises(ParameterError, match="mean_image_file.*unknown file type"):
        load_mean_image(tmp_path / "m.txt", RGB)


def test_problem_type_image_takes_image_files_without_an_extension(tmp_path, image_frame):
    """problem_type='image' honours what the values are, not their names: PNGs saved without a suffix train."""
    import deepwater as dw

    renamed = []
    for uri in image_frame["uri"]:
        target = tmp_path / Path(uri).stem
        Path(uri).rename(target)
        renamed.append(str(target))
    frame = image_frame.assign(uri=renamed)
    model = dw.DeepWaterEstimator(problem_type="image", network="lenet", image_shape=[28, 28], channels=1,
                                  epochs=1, gpu=False, quiet_mode=True, seed=1)
    model.train(x=["uri"], y="label", training_frame=frame)
    assert model.summary()["problem_type"] == "image"
    assert len(model.predict(frame)) == len(frame)


def test_problem_type_image_names_the_first_value_that_is_no_image(tmp_path, image_frame):
    import deepwater as dw
    from deepwater.errors import ParameterError

    notes = tmp_path / "notes"
    notes.write_text("not an image")
    frame = image_frame.assign(uri=[str(notes)] + list(image_frame["uri"][1:]))
    with pytest.raises(ParameterError, match=f"holds '{notes}', which is none"):
        dw.DeepWaterEstimator(problem_type="image", network="lenet", epochs=1, gpu=False).train(
            x=["uri"], y="label", training_frame=frame)


# ---------------------------------------------------------------------------
# Files that are not regular files: refused at once, never opened
# ---------------------------------------------------------------------------

@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    """A FIFO named like an image: opening it for reading blocks until a writer comes."""
    path = tmp_path / "pipe.png"
    os.mkfifo(path)
    return path


def special_uris(fifo: Path) -> dict[str, str]:
    """URIs of files that are not regular files, by what they are: the FIFO (as a path and a file:// URL), a
    directory, and a character device reached through a symbolic link named like an image."""
    folder = fifo.parent / "folder.png"
    folder.mkdir()
    device = fifo.parent / "null.png"
    os.symlink(os.devnull, device)
    return {"a FIFO": str(fifo), "a FIFO by file://": fifo.as_uri(), "a directory": str(folder),
            "a character device": str(device)}


def test_a_fifo_a_folder_or_a_device_named_like_an_image_is_refused_at_once(tmp_path: Path, fifo: Path) -> None:
    good = str(save(tmp_path / "ok.png", rgb_pixels()))
    for kind, uri in special_uris(fifo).items():
        with reader(RGB, tmp_path, workers=2) as r:
            error = outcome(partial(r.read_batch, [good, uri], [0, 7]), fifo)
        assert isinstance(error, ImageError), (kind, error)
        assert error.uri == uri and error.row == 7
        assert error.reason == f"not a regular file ({kind.split(' by ')[0]})"
        assert uri in str(error) and "row 7" in str(error) and "bad_images='skip'" in str(error)


def test_preload_refuses_a_fifo_and_skip_mode_counts_it_like_any_bad_image(tmp_path: Path, fifo: Path) -> None:
    good = str(save(tmp_path / "ok.png", np.full((4, 5), 50, dtype=np.uint8)))
    garbage = tmp_path / "bad.png"
    garbage.write_bytes(b"\x89PNG nope")
    with reader(GREY, tmp_path) as r:
        error = outcome(lambda: r.preload([good, str(fifo)]), fifo)
    assert isinstance(error, ImageError) and "not a regular file (a FIFO)" in str(error)
    uris = [good, str(fifo), str(garbage), fifo.as_uri(), good]
    with reader(GREY, tmp_path, bad_images="skip") as r:
        batch, mask = outcome(lambda: r.read_batch(uris, range(5)), fifo)
        assert mask.tolist() == [True, False, False, False, True]
        assert batch.shape == (2, 1, 4, 5) and (batch == 50).all()
        assert r.skipped == 3
        assert outcome(lambda: r.preload(uris), fifo) is True and r.skipped == 3


def test_a_fifo_as_mean_image_or_extensionless_image_value_is_refused(tmp_path: Path) -> None:
    from deepwater.data.images import first_non_image

    pipe = tmp_path / "mean.npy"
    os.mkfifo(pipe)
    error = outcome(lambda: load_mean_image(pipe, RGB), pipe)
    assert isinstance(error, ParameterError) and "mean_image_file" in str(error)
    assert "not a regular file (a FIFO)" in str(error)
    bare = tmp_path / "pipe"  # no image extension: problem_type='image' looks inside, and must not block
    os.mkfifo(bare)
    good = str(save(tmp_path / "ok", rgb_pixels(), format="PNG"))
    assert outcome(lambda: first_non_image(pd.Series([good, str(bare)])), bare) == str(bare)


def test_reasons_show_no_python_object_reprs(tmp_path: Path) -> None:
    from deepwater.data.images import decode_image

    with pytest.raises(ValueError) as info:
        decode_image(b"no image at all", RGB)
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff" + b"junk" * 20)
    with reader(RGB, tmp_path) as r, pytest.raises(ImageError) as from_file:
        r.read_batch([str(garbage)], [0])
    for message in (str(info.value), from_file.value.reason):
        assert message.startswith("not a readable image: ")
        assert "<" not in message and " at 0x" not in message and "BytesIO" not in message


def test_predict_on_a_frame_naming_a_fifo_raises_or_skips(tmp_path: Path, image_frame: pd.DataFrame,
                                                          fifo: Path) -> None:
    """A model's predict() (and train() with bad_images='skip') reads the frame's FIFO row as a bad image."""
    import deepwater as dw

    settings = {"problem_type": "image", "network": "lenet", "image_shape": [28, 28], "channels": 1, "epochs": 1,
                "gpu": False, "quiet_mode": True, "seed": 1}
    model = dw.DeepWaterEstimator(**settings).train(x=["uri"], y="label", training_frame=image_frame)
    with_fifo = image_frame.assign(uri=list(image_frame["uri"][:3]) + [str(fifo)] + list(image_frame["uri"][4:]))
    error = outcome(lambda: model.predict(with_fifo), fifo)
    assert isinstance(error, ImageError), error
    assert error.uri == str(fifo) and error.row == 3 and "not a regular file (a FIFO)" in str(error)
    skipping = outcome(lambda: dw.DeepWaterEstimator(bad_images="skip", **settings).train(
        x=["uri"], y="label", training_frame=with_fifo), fifo)
    assert isinstance(skipping, dw.DeepWaterEstimator), skipping
    assert skipping.summary()["skipped_images"] == 1
    predictions = outcome(lambda: skipping.predict(with_fifo), fifo)
    assert predictions["predict"].isna().tolist() == [i == 3 for i in range(len(with_fifo))]
