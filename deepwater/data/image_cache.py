"""Decoded images kept on local disk (`image_cache_dir`): one uint8 (C, H, W) array per file, in NumPy's .npy format
(read without pickle), named by a hash of the image's URI and the decoding settings, so that a later epoch, run or
cross-validation fold reads the array instead of fetching and decoding the image again.

Each array is written to a temporary name and renamed, so a crash leaves either the whole file or none; a file
that does not read back as the expected array (damaged, or from another version) counts as missing and is removed.
The folder is bounded by size: past the limit the oldest files are removed first.
"""
from __future__ import annotations

import hashlib
import io
import os
import threading
import warnings
from pathlib import Path

import numpy as np

from deepwater.errors import ParameterError
from deepwater.files import write_atomically

FORMAT = "deepwater-image-cache-1"  # part of every key: a new layout or resize method makes new keys
SUFFIX = ".npy"


class DiskImageCache:
    """Decoded images under `directory`, at most `limit_mb` megabytes of them (oldest removed first)."""

    def __init__(self, directory: str | os.PathLike, limit_mb: float) -> None:
        if not limit_mb > 0:
            raise ParameterError(f"image_cache_dir_mb={limit_mb!r} must be > 0 megabytes; set image_cache_dir=None "
                                 "to keep no decoded images on disk.")
        self.directory = Path(directory).expanduser()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ParameterError(f"image_cache_dir={str(directory)!r} cannot be used as a folder ({error}); pass a "
                                 "folder on local disk that this process may write, or None.") from error
        self.limit = int(limit_mb * 1024 * 1024)
        self._lock = threading.Lock()
        self._sizes: dict[Path, int] = {}  # the files this cache knows, oldest first
        self._bytes = 0
        self._warned = False
        for path in sorted(self.directory.glob(f"*/*{SUFFIX}"), key=_modified):
            self._remember(path, _size(path))

    @property
    def bytes(self) -> int:
        """The bytes of the arrays the folder holds (as this process knows them)."""
        with self._lock:
            return self._bytes

    def key(self, identity: str, settings: str) -> str:
        """The name of an image's file: a hash of what identifies the image and how it was decoded."""
        return hashlib.sha256(f"{FORMAT}\n{settings}\n{identity}".encode("utf-8")).hexdigest()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}{SUFFIX}"

    def get(self, key: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """The array kept under `key` when it holds a uint8 array of `shape`, else None (a damaged file is removed)."""
        path = self._path(key)
        try:
            array = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            array = None
        if isinstance(array, np.ndarray) and array.dtype == np.uint8 and array.shape == shape:
            return array
        self._forget(path)
        return None

    def put(self, key: str, array: np.ndarray) -> None:
        """Keep `array` under `key` (written whole or not at all), removing the oldest files past the limit."""
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        data = buffer.getvalue()
        if len(data) > self.limit:
            return
        try:
            path = write_atomically(self._path(key), data)
        except OSError as error:  # a full or read-only disk: the images go on being decoded, as without the cache
            if not self._warned:
                self._warned = True
                warnings.warn(f"image_cache_dir={str(self.directory)!r}: a decoded image could not be written "
                              f"({error}); images not kept there are decoded again each epoch. Free space or "
                              "choose another folder.", RuntimeWarning, stacklevel=2)
            return
        with self._lock:
            self._remember(path, len(data))
            oldest = iter(list(self._sizes))
            while self._bytes > self.limit:
                victim = next(oldest)
                if victim != path:
                    self._drop(victim)

    def _remember(self, path: Path, size: int) -> None:
        self._bytes += size - self._sizes.pop(path, 0)
        self._sizes[path] = size

    def _drop(self, path: Path) -> None:
        """Remove `path` from the folder and from the count (under the lock)."""
        self._bytes -= self._sizes.pop(path, 0)
        path.unlink(missing_ok=True)

    def _forget(self, path: Path) -> None:
        with self._lock:
            self._drop(path)


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
