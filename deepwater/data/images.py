"""Turn image URIs (local paths, file:// and http(s):// URLs, object store URIs such as s3://, members of zip
files) into uint8 (C, H, W) arrays."""
from __future__ import annotations

import ctypes
import hashlib
import io
import itertools
import math
import multiprocessing
import os
import re
import socket
import stat
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import BrokenExecutor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from deepwater.data.image_cache import DiskImageCache
from deepwater.data.stores import ZIP_SCHEME, ObjectStores, store_path, store_scheme
from deepwater.errors import ImageError, ModelFileError, ParameterError
from deepwater.files import write_atomically
from deepwater.runtime import registry

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
BAD_IMAGES_CHOICES = ("error", "skip")
_URL_SCHEMES = ("http", "https", "file")
PRELOAD_CHUNK = 256  # images one decode thread takes at a time in ImageReader.preload
# Mean seconds per image above which preload decodes on threads: a 28 x 28 PNG takes about 60 us (mostly Python,
# where threads gain nothing), a 320 x 240 JPEG about 900 us (mostly in Pillow's C code, which threads share).
THREADED_DECODE_SECONDS = 250e-6
RESIZE_CHOICES = ("stretch", "crop")  # image_resize: every image stretched to the shape, or its centre cropped
# A JPEG is decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling, PIL's draft mode) when that still leaves
# at least DRAFT_GAP times the target's pixels each way; the exact resize follows. 2, as Pillow's thumbnail() takes:
# a 12-megapixel photo to 224 x 224 decoded 6.5x faster, 0.16 grey levels from the full decode's mean (1.0: 9x, 0.47).
DRAFT_GAP = 2
RESIZE_METHOD = f"bilinear, JPEG reduced to >= {DRAFT_GAP}x the target"  # a part of the disk cache's keys
# A Python object's repr in a library's message ("<_io.BytesIO object at 0x...>", "<PIL.Image.Image image mode=L
# ...>"): left out of the reasons we quote, which name the image by its URI or field instead.
_OBJECT_REPR = re.compile(r"\s*<[A-Za-z_][\w.]*(?:\s[^<>]*)?>")
_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


@dataclass(frozen=True)
class ImageShape:
    """Size every image is converted to: height x width pixels, 1 (grey) or 3 (RGB) channels, and how a photo of
    another aspect ratio meets it (`resize`: 'stretch' the whole photo, or 'crop' its centre after resizing its
    short side)."""

    height: int
    width: int
    channels: int
    resize: str = "stretch"

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_CHOICES:
            raise ParameterError(f"image_resize={self.resize!r} is not supported; use one of {RESIZE_CHOICES}.")
        if self.channels not in (1, 3):
            raise ParameterError(
                f"image channels={self.channels!r} is not supported; use 1 (grey) or 3 (RGB)."
            )
        for name in ("height", "width"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ParameterError(f"image {name}={value!r} must be a positive integer.")

    def describe(self) -> str:
        """The shape as 'H x W x C'."""
        return f"{self.height} x {self.width} x {self.channels}"


# ---------------------------------------------------------------------------
# URI recognition
# ---------------------------------------------------------------------------

def _url_scheme(value: str) -> str | None:
    """The lower-cased scheme when `value` is an http(s):// or file:// URL, else None."""
    head, sep, _ = value.partition("://")
    scheme = head.lower()
    return scheme if sep and scheme in _URL_SCHEMES else None


def _uri_suffix(value: str) -> str:
    """Lower-cased file suffix of a path, of a URL's path (query and fragment ignored) or of a store URI."""
    if _url_scheme(value):
        return Path(urllib.parse.urlsplit(value).path).suffix.lower()
    return Path(store_path(value) if store_scheme(value) else value).suffix.lower()


def is_image_uri(value: object) -> bool:
    """True for a string path, http(s)/file URL or object store URI whose suffix is an image extension."""
    if not isinstance(value, str):
        return False
    value = value.strip()
    return bool(value) and _uri_suffix(value) in IMAGE_EXTENSIONS


def first_non_image(series: pd.Series, sample: int = 5) -> object | None:
    """The first of the first `sample` values that is not an image URI, None when all are: an image
    extension, an http(s) URL or an object store URI (checked when fetched), or a local file that PIL recognises
    as an image (file names without an extension included)."""
    for value in series.dropna().head(sample):
        text = value.strip() if isinstance(value, str) else ""
        if not text:
            return value
        if is_image_uri(text) or text.lower().startswith(("http://", "https://")) or store_scheme(text):
            continue
        try:
            with open_regular_file(file_url_to_path(text) if text.startswith("file://") else text) as stream, \
                    Image.open(stream) as image:
                image.verify()
        except (OSError, ValueError, SyntaxError):
            return value
    return None


def _holds_strings(series: pd.Series) -> bool:
    """True when the column stores strings: object/string dtype, or a categorical of those."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype
    return dtype == object or pd.api.types.is_string_dtype(dtype)


def looks_like_image_column(series: pd.Series, sample: int = 20) -> bool:
    """True when the first `sample` non-null values of a string column are all image URIs."""
    if not _holds_strings(series):
        return False
    head = series.dropna().head(sample)
    return len(head) > 0 and all(is_image_uri(v) for v in head)


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------

def _to_chw(image: Image.Image) -> np.ndarray:
    """A contiguous uint8 (C, H, W) array from an "L" or "RGB" PIL image."""
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[np.newaxis]
    else:
        array = array.transpose(2, 0, 1)
    return np.ascontiguousarray(array)


def _file_kind(mode: int) -> str:
    """What a file that is not a regular one is, in words: 'a FIFO', 'a directory', ..."""
    return next((kind for is_kind, kind in _FILE_KINDS if is_kind(mode)), "a special file")


def open_regular_file(path: str) -> BinaryIO:
    """`path` opened for reading in binary, when it is a regular file (symbolic links followed).

    Raises FileNotFoundError for a missing file and ValueError('not a regular file (a FIFO)') for a FIFO, a
    directory, a device or a socket, which is never opened: opening a FIFO blocks until a writer comes. The file
    is opened without blocking and checked again, in case it was replaced in between.
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise ValueError(f"not a regular file ({_file_kind(mode)})")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"not a regular file ({_file_kind(mode)})")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _decode_file(path: str, channels: int, size: tuple[int, int] | None, resize: str = "stretch") -> np.ndarray:
    """Open, fully load, convert and (if `size`=(width, height) differs) resize an image file, as `resize` says.

    Raises FileNotFoundError for a missing file and ValueError for anything unreadable, a file that is not a
    regular one included (never opened).
    """
    with open_regular_file(path) as stream:
        return _decode(stream, channels, size, resize=resize)


def decode_image(data: bytes, shape: ImageShape, max_pixels: int | None = None) -> np.ndarray:
    """The uint8 (C, H, W) array of an encoded image (PNG, JPEG, ... bytes) converted and resized to `shape`, as
    an image file is read; ValueError for bytes that are no image, or one of more than `max_pixels` pixels."""
    return _decode(io.BytesIO(data), shape.channels, (shape.width, shape.height), max_pixels, shape.resize)


def decode_source(source: str | bytes, shape: ImageShape) -> np.ndarray:
    """The uint8 (C, H, W) array of an image file (its path) or of its encoded bytes, converted and resized to
    `shape`: the work one image gives a decoding thread or process (FileNotFoundError, ValueError as _decode)."""
    if isinstance(source, bytes):
        return decode_image(source, shape)
    return _decode_file(source, shape.channels, (shape.width, shape.height), shape.resize)


def resize_box(size: tuple[int, int], target: tuple[int, int], resize: str) -> tuple[float, float, float, float]:
    """The part (left, top, right, bottom) of an image of `size` (width, height) that becomes the `target`: all of
    it to stretch, the largest centred box of the target's aspect ratio to crop (resizing the short side)."""
    width, height = size
    if resize == "stretch":
        return 0.0, 0.0, float(width), float(height)
    scale = min(width / target[0], height / target[1])  # source pixels per target pixel
    box_width, box_height = target[0] * scale, target[1] * scale
    left, top = (width - box_width) / 2, (height - box_height) / 2
    return left, top, left + box_width, top + box_height


def load_reduced(image: Image.Image, channels: int, size: tuple[int, int] | None, resize: str) -> None:
    """Load an opened image's pixels, a JPEG at 1/2, 1/4 or 1/8 scale (draft mode: libjpeg skips the detail)
    where that leaves at least DRAFT_GAP times what the resize to `size` keeps, each way; `image.size` tells the
    size decoded."""
    if size is not None and image.format == "JPEG":
        left, top, right, bottom = resize_box(image.size, size, resize)
        reduction = min((right - left) / size[0], (bottom - top) / size[1]) / DRAFT_GAP
        if reduction >= 2:
            request = (math.ceil(image.width / reduction), math.ceil(image.height / reduction))
            image.draft("L" if channels == 1 else "RGB", request)
    image.load()


def _decode(source: BinaryIO, channels: int, size: tuple[int, int] | None,
            max_pixels: int | None = None, resize: str = "stretch") -> np.ndarray:
    """_decode_file's work on an open file or a stream of bytes."""
    try:
        with Image.open(source) as image:
            if max_pixels is not None and image.width * image.height > max_pixels:
                raise ValueError(f"{image.width} x {image.height} pixels, more than the {max_pixels:,} allowed")
            load_reduced(image, channels, size, resize)
            image = image.convert("L" if channels == 1 else "RGB")
            if size is not None and image.size != size:
                image = image.resize(size, Image.BILINEAR, box=resize_box(image.size, size, resize))
            return _to_chw(image)
    except FileNotFoundError:
        raise
    except Exception as exc:  # PIL raises many types for bad data
        raise ValueError(f"not a readable image: {_reason(exc)}") from exc


def _reason(error: Exception) -> str:
    """Why Pillow could not read an image, in words: without the reprs of Python objects its messages hold."""
    if isinstance(error, UnidentifiedImageError):
        return "not in a format Pillow knows (PNG, JPEG, BMP, GIF, TIFF, WebP, ...)"
    message = " ".join(_OBJECT_REPR.sub("", str(error)).split()).rstrip(" :")
    return message or type(error).__name__


# ---------------------------------------------------------------------------
# Mean image
# ---------------------------------------------------------------------------

def _mean_image_error(path: object, found: str, shape: ImageShape, fix: str) -> ParameterError:
    """A ParameterError naming mean_image_file, the path, what was found, what was expected and the fix."""
    return ParameterError(
        f"mean_image_file={str(path)!r}: {found}, but the images are "
        f"{shape.describe()} (H x W x C). {fix}"
    )


def _mean_from_array(array: np.ndarray, path: object, shape: ImageShape) -> np.ndarray:
    """Arrange a loaded .npy array as (C, H, W) or raise a shape-mismatch ParameterError."""
    c, h, w = shape.channels, shape.height, shape.width
    if array.shape == (c, h, w):
        chw = array
    elif array.shape == (h, w, c):
        chw = array.transpose(2, 0, 1)
    elif array.shape == (h, w) and c == 1:
        chw = array[np.newaxis]
    else:
        raise _mean_image_error(
            path, f"the array has shape {array.shape}", shape,
            f"Save an array shaped ({c}, {h}, {w}) or ({h}, {w}, {c})"
            + (f" or ({h}, {w})" if c == 1 else "")
            + ", or change the image shape to match.",
        )
    return np.ascontiguousarray(chw, dtype=np.float32)


def _read_with_backend(text: str, path: object, shape: ImageShape) -> np.ndarray | None:
    """The array of a mean-image file in a framework's own format (MXNet .nd), read by the backend that
    declares its suffix; None when no backend does."""
    reader = registry.mean_image_reader(Path(text).suffix.lower())
    if reader is None:
        return None
    try:
        return reader.read_mean_image(text)
    except ModelFileError as error:
        raise _mean_image_error(path, str(error), shape, "") from error


def load_mean_image(path: str | os.PathLike, shape: ImageShape) -> np.ndarray:
    """Load a mean image (.npy, MXNet .nd or image file) as float32 (C, H, W) in pixel units 0..255."""
    text = os.fspath(path)
    fix_size = "Pass a .npy array or an image file of exactly that size."
    if not os.path.isfile(text):
        found = f"not a regular file ({_file_kind(os.stat(text).st_mode)})" if os.path.exists(text) else "no such file"
        raise _mean_image_error(path, found, shape, "Pass the path of an existing file.")
    suffix = Path(text).suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(text, allow_pickle=False)
        except Exception as exc:
            raise _mean_image_error(
                path, f"not a readable .npy array ({exc})", shape, fix_size
            ) from exc
        if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number):
            raise _mean_image_error(path, "the .npy file holds no numeric array", shape, fix_size)
        return _mean_from_array(array, path, shape)
    framework_array = _read_with_backend(text, path, shape)
    if framework_array is not None:
        return _mean_from_array(framework_array, path, shape)
    if suffix in IMAGE_EXTENSIONS:
        try:
            chw = _decode_file(text, shape.channels, None)
        except ValueError as exc:
            raise _mean_image_error(path, str(exc), shape, fix_size) from exc
        found = (chw.shape[1], chw.shape[2], chw.shape[0])
        if found != (shape.height, shape.width, shape.channels):
            raise _mean_image_error(
                path, f"the image is {found[0]} x {found[1]} x {found[2]}", shape,
                "Resize the mean image to that size (it is not resized for you), "
                "or change the image shape to match.",
            )
        return chw.astype(np.float32)
    raise _mean_image_error(
        path, f"unknown file type {suffix or '(no suffix)'!r}", shape,
        f"Use a .npy array, an MXNet .nd file or an image file ({', '.join(IMAGE_EXTENSIONS)}).",
    )


# ---------------------------------------------------------------------------
# Downloads
# ---------------------------------------------------------------------------

def default_download_dir() -> Path:
    """$DEEPWATER_CACHE/images when that variable is set, else ~/.cache/deepwater/images."""
    root = os.environ.get("DEEPWATER_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "deepwater"
    return base / "images"


def _download_name(url: str) -> str:
    """File name of a downloaded URL: sha256 of the URL plus the URL's suffix when it is sane."""
    suffix = _uri_suffix(url)
    if not (1 < len(suffix) <= 6 and suffix[1:].isalnum()):
        suffix = ""
    return hashlib.sha256(url.encode("utf-8")).hexdigest() + suffix


def _is_timeout(exc: BaseException) -> bool:
    """True when `exc` (or the reason of a URLError) is a socket timeout."""
    reason = getattr(exc, "reason", exc)
    return isinstance(exc, (TimeoutError, socket.timeout)) or isinstance(
        reason, (TimeoutError, socket.timeout)
    )


def fetch(url: str, timeout: float, limit: int | None = None) -> bytes:
    """GET `url` (at most `limit` bytes of it when given); raise ValueError with a short reason on HTTP errors,
    timeouts and network errors."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read(limit)
    except urllib.error.HTTPError as exc:
        raise ValueError(f"HTTP {exc.code}") from exc
    except Exception as exc:
        if _is_timeout(exc):
            raise ValueError(f"timed out after {timeout:g}s") from exc
        reason = getattr(exc, "reason", exc)
        raise ValueError(f"cannot fetch URL: {reason}") from exc


def _uri_key(uri: object) -> str:
    """Dictionary key of a URI: the string itself, or repr() of a non-string value."""
    return uri if isinstance(uri, str) else repr(uri)


def file_url_to_path(url: str) -> str:
    """Local path of a file:// URL."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path
    if parts.netloc and parts.netloc.lower() != "localhost":
        path = f"//{parts.netloc}{path}"
    return urllib.request.url2pathname(path)


def _malloc_trim() -> Callable[[int], int] | None:
    """The C library's malloc_trim (glibc, on Linux), else None."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


_MALLOC_TRIM = _malloc_trim()


def release_freed_memory() -> None:
    """Hand the memory freed by decoding back to the system, where the C library can (glibc's malloc_trim).

    Decoding on several threads allocates and frees buffers of many sizes (the photo, its converted and resized
    copies); glibc keeps what each thread's arena freed, so a stream of images larger than memory grew the process
    by hundreds of megabytes over a few epochs (benchmarks/images_larger_than_memory.py) without this."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


# ---------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------

def _process_context() -> multiprocessing.context.BaseContext:
    """How decoding processes start: forked from multiprocessing's fork server where the platform has one (Linux,
    macOS), which imports this module (and so deepwater) once per Python process, so that no worker imports it
    again (each still imports the main script, as spawned ones do); else spawned. Never forked from this process,
    whose other threads (the framework's among them) may hold locks a fork would copy held."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


class ImageReader:
    """Turns image URIs into uint8 (C, H, W) arrays: fetch, decode, convert channels, resize;
    keeps decoded images in a bounded in-memory cache (`cache_mb`, filled in the order images come, never
    evicted) and, with `cache_dir`, on local disk (at most `cache_dir_mb`; see image_cache.py). Object store URIs
    (s3://, gs://, az://, abfs://, hf://) are read through fsspec with `storage_options` (None: the store's usual
    credentials, from its environment variables and profile files); `http_timeout` bounds each http(s) or store
    request. `decoded` counts the images fetched and decoded from their source.

    `workers` threads fetch and decode (None: up to 8, one per CPU core). With `decode_processes` > 0 the threads
    still fetch, but hand the decoding to that many worker processes (started at the first image, kept until
    close(); see _process_context), for when threads cannot keep the cores busy: Pillow holds Python's interpreter
    lock for part of its work. Each decoded array comes back as the pool's return value (0.4 ms for a 224 x 224 x 3
    array on 2 busy cores, a few percent of its decode: benchmarks/image_pipeline.py). Errors and bad_images behave
    the same either way."""

    def __init__(
        self,
        shape: ImageShape,
        *,
        bad_images: str = "error",
        cache_mb: float = 1024.0,
        http_timeout: float = 10.0,
        download_dir: str | os.PathLike | None = None,
        workers: int | None = None,
        storage_options: Mapping[str, Any] | None = None,
        cache_dir: str | os.PathLike | None = None,
        cache_dir_mb: float = 10240.0,
        decode_processes: int = 0,
    ) -> None:
        if bad_images not in BAD_IMAGES_CHOICES:
            raise ParameterError(
                f"bad_images={bad_images!r} is not allowed; use one of {BAD_IMAGES_CHOICES}."
            )
        if not cache_mb >= 0:
            raise ParameterError(f"cache_mb={cache_mb!r} must be >= 0 (0 turns the cache off).")
        if not http_timeout > 0:
            raise ParameterError(f"http_timeout={http_timeout!r} must be > 0 seconds.")
        if workers is None:
            workers = min(8, os.cpu_count() or 1)
        if not isinstance(workers, int) or workers < 1:
            raise ParameterError(f"workers={workers!r} must be a positive integer or None.")
        if not isinstance(decode_processes, (int, np.integer)) or isinstance(decode_processes, bool) \
                or decode_processes < 0:
            raise ParameterError(f"image_decode_processes={decode_processes!r} must be an integer >= 0 (0: decode "
                                 "on threads in this process).")
        self.shape = shape
        self.bad_images = bad_images
        self.http_timeout = float(http_timeout)
        self.download_dir = Path(download_dir) if download_dir is not None else default_download_dir()
        self.decode_processes = int(decode_processes)
        self.workers = max(workers, self.decode_processes)  # a thread waits on each image a process decodes
        self._stores = ObjectStores(storage_options, self.http_timeout)
        self._disk = None if cache_dir is None else DiskImageCache(cache_dir, cache_dir_mb)
        self._decoded = 0
        self._cache_limit = int(cache_mb * 1024 * 1024)
        self._cache: dict[str, np.ndarray] = {}
        self._cache_bytes = 0
        self._bad: set[str] = set()
        self._loading: dict[str, Future] = {}  # uri -> its array or ImageError, while a read_batch loads it
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._processes: ProcessPoolExecutor | None = None

    # -- properties ---------------------------------------------------------

    @property
    def skipped(self) -> int:
        """Number of distinct URIs that failed in 'skip' mode."""
        with self._lock:
            return len(self._bad)

    @property
    def decoded(self) -> int:
        """Number of images fetched and decoded from their source (not read from a cache)."""
        with self._lock:
            return self._decoded

    @property
    def cache_bytes(self) -> int:
        """Bytes held by the decoded-image cache."""
        with self._lock:
            return self._cache_bytes

    # -- cache --------------------------------------------------------------

    def holds(self, uris: Sequence[str]) -> bool:
        """True when every URI is in the decoded-image cache (reading them touches no file)."""
        with self._lock:
            return all(_uri_key(uri) in self._cache for uri in uris)

    def _cache_get(self, uri: str) -> np.ndarray | None:
        with self._lock:
            return self._cache.get(uri)

    def _cache_put(self, uri: str, array: np.ndarray) -> None:
        """Keep `array` if it fits within the cache budget (no eviction)."""
        with self._lock:
            if uri in self._cache or self._cache_bytes + array.nbytes > self._cache_limit:
                return
            array.setflags(write=False)
            self._cache[uri] = array
            self._cache_bytes += array.nbytes

    # -- fetching and decoding ---------------------------------------------

    def _local_path(self, uri: str) -> str:
        """Local file for `uri`, downloading http(s) URLs into download_dir once."""
        scheme = _url_scheme(uri)
        if scheme == "file":
            return file_url_to_path(uri)
        if scheme in ("http", "https"):
            target = self.download_dir / _download_name(uri)
            if not target.is_file():
                write_atomically(target, fetch(uri, self.http_timeout))
            return str(target)
        return uri

    def _disk_key(self, uri: str) -> str | None:
        """The disk cache's key of `uri`: its URI, or for a local file its absolute path, size and modification
        time (a changed file is decoded again); None without a disk cache or for a local file that cannot be
        looked at (decoding says why)."""
        if self._disk is None:
            return None
        identity = uri
        if not store_scheme(uri) and _url_scheme(uri) in (None, "file"):
            path = file_url_to_path(uri) if _url_scheme(uri) else uri
            try:
                found = os.stat(path)
            except (OSError, ValueError):
                return None
            identity = f"{os.path.abspath(path)}\n{found.st_size}\n{found.st_mtime_ns}"
        return self._disk.key(identity, f"{self.shape.describe()}, {self.shape.resize}, {RESIZE_METHOD}")

    def _from_disk(self, uri: str) -> np.ndarray | None:
        """The decoded array the disk cache holds for `uri`, None when it holds none (or there is no disk cache)."""
        key = self._disk_key(uri)
        return None if key is None else self._disk.get(key, (self.shape.channels, self.shape.height, self.shape.width))

    def _fetch_stored(self, uris: Sequence[str], lookup: Callable = map) -> dict[str, np.ndarray | Future]:
        """For the object store URIs among `uris` (zip members aside), when there are several: the array the disk
        cache holds (looked up through `lookup`, a map), else the object's read, begun now for them all together
        (ObjectStores.start_reads), where each thread would otherwise request its objects one by one."""
        stored = [uri for uri in uris if store_scheme(uri) not in (None, ZIP_SCHEME)]
        if len(stored) < 2:
            return {}
        on_disk = lookup(self._from_disk, stored) if self._disk is not None else ()
        fetched = {uri: array for uri, array in zip(stored, on_disk) if array is not None}
        fetched.update(self._stores.start_reads([uri for uri in stored if uri not in fetched]))
        return fetched

    def _load(self, uri: str, row: int | None, fetched: np.ndarray | Future | None = None) -> np.ndarray:
        """Decode one URI (or read it from the disk cache), caching the result; raise ImageError with a short
        reason on failure. `fetched`: what _fetch_stored found for it (its decoded array, or its read)."""
        if isinstance(fetched, np.ndarray):
            array = fetched
        else:
            array = self._from_disk(uri) if fetched is None else None
        if array is None:
            array = self._decode_uri(uri, row, fetched)
            if (key := self._disk_key(uri)) is not None:
                self._disk.put(key, array)
        self._cache_put(uri, array)
        return array

    def _decode_uri(self, uri: str, row: int | None, read: Future | None = None) -> np.ndarray:
        """Fetch (or take from `read`, its read begun already) and decode one URI; raise ImageError with a short
        reason on failure."""
        try:
            if read is not None:
                source = read.result()
            else:
                source = self._stores.read(uri) if store_scheme(uri) else self._local_path(uri)
            array = self._decode_source(source)
        except FileNotFoundError:
            raise ImageError(uri, row, "file not found") from None
        except ParameterError:  # storage_options the store does not take: no image's fault
            raise
        except (ValueError, OSError) as exc:
            raise ImageError(uri, row, str(exc)) from exc
        except BrokenExecutor as exc:  # a decoding process died (killed for memory, say): the pool starts anew
            raise ImageError(uri, row, f"its decoding process stopped ({exc})") from exc
        with self._lock:
            self._decoded += 1
        return array

    def _decode_source(self, source: str | bytes) -> np.ndarray:
        """decode_source on this thread, or in a decoding process when there are some."""
        if not self.decode_processes:
            return decode_source(source, self.shape)
        pool = self._process_pool()
        try:
            return pool.submit(decode_source, source, self.shape).result()
        except BrokenExecutor:
            with self._lock:
                if self._processes is pool:
                    self._processes = None
            pool.shutdown(wait=False)
            raise

    def _process_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._processes is None:
                self._processes = ProcessPoolExecutor(self.decode_processes, mp_context=_process_context())
            return self._processes

    def _drop_processes(self) -> None:
        """Stop the decoding processes."""
        with self._lock:
            pool, self._processes = self._processes, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _try_load(self, uri: str, row: int | None, fetched: np.ndarray | Future | None = None
                  ) -> np.ndarray | ImageError:
        """_load, returning the ImageError instead of raising it (for the thread pool)."""
        try:
            return self._load(uri, row, fetched)
        except ImageError as exc:
            return exc

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="deepwater-images")
        return self._pool

    def _load_many(self, jobs: dict[str, int | None]) -> dict[str, np.ndarray | ImageError]:
        """Decode distinct URIs (uri -> first row), in parallel when there are several; a URI that another call is
        loading now (a scoring batch's, beside a training batch's) is waited for, not fetched and decoded again."""
        with self._lock:
            others = {uri: self._loading[uri] for uri in jobs if uri in self._loading}
            mine = {uri: Future() for uri in jobs if uri not in others}
            self._loading.update(mine)
        found: dict[str, np.ndarray | ImageError] = {}
        try:
            found = self._load_mine({uri: jobs[uri] for uri in mine})
        finally:
            with self._lock:
                for uri in mine:
                    del self._loading[uri]
            for uri, future in mine.items():
                future.set_result(found.get(uri, ImageError(uri, jobs[uri], "its reading stopped on an error")))
        for uri, future in others.items():
            result = future.result()
            found[uri] = ImageError(uri, jobs[uri], result.reason) if isinstance(result, ImageError) else result
        return found

    def _load_mine(self, jobs: dict[str, int | None]) -> dict[str, np.ndarray | ImageError]:
        """_load_many's work on the URIs no other call is loading: the store objects among them fetched first,
        together."""
        parallel = len(jobs) > 1 and self.workers > 1
        fetched = self._fetch_stored(list(jobs), self._executor().map if parallel else map)
        futures = {uri: self._executor().submit(self._try_load, uri, row, fetched.get(uri)) for uri, row in jobs.items()
                   if parallel and not isinstance(fetched.get(uri), np.ndarray)}  # not read from the disk cache
        return {uri: futures[uri].result() if uri in futures else self._try_load(uri, row, fetched.get(uri))
                for uri, row in jobs.items()}

    def _failed(self, error: ImageError) -> None:
        """An image that could not be read: raised in 'error' mode, recorded (and left out) in 'skip' mode."""
        if self.bad_images == "error":
            raise error
        with self._lock:
            self._bad.add(error.uri)

    def _load_chunk(self, jobs: list[tuple[str, int]]) -> list[np.ndarray | ImageError]:
        """_try_load for each (uri, row) in turn (one thread's share of a preload), its store objects fetched first,
        together."""
        fetched = self._fetch_stored([uri for uri, _ in jobs])
        return [self._try_load(uri, row, fetched.get(uri)) for uri, row in jobs]

    # -- public API ---------------------------------------------------------

    def preload(self, uris: Sequence[str], advance: Callable[[int], object] | None = None) -> bool:
        """Decode every URI of `uris` that is not cached yet, now, if all of them fit in the cache; True when
        every one is cached (or has failed in 'skip' mode) afterwards, False when they do not fit (nothing is
        decoded then: batches decode their images as they come).

        Decoding a frame that fits before training keeps the decoding off the training steps, which threads
        decoding alongside would slow down. The first chunk is decoded on this thread; the rest go to the
        decode threads only when an image took longer than THREADED_DECODE_SECONDS (large images and http
        downloads, whose work runs outside Python's interpreter lock): small images decode mostly in Python,
        where threads only wait for each other. `advance(n)` (a progress bar's update) is told of each chunk
        decoded. In 'error' mode the first unreadable image raises its ImageError.
        """
        with self._lock:
            jobs = {}
            for row, uri in enumerate(uris):
                key = _uri_key(uri)
                if isinstance(uri, str) and uri.strip() and key not in self._cache and key not in self._bad:
                    jobs.setdefault(key, row)
            fits = len(jobs) * self.shape.channels * self.shape.height * self.shape.width \
                <= self._cache_limit - self._cache_bytes
        if not jobs or not fits:
            return fits
        items = list(jobs.items())
        chunks = [items[i:i + PRELOAD_CHUNK] for i in range(0, len(items), PRELOAD_CHUNK)]
        began = time.perf_counter()
        first = self._load_chunk(chunks[0])
        threaded = self.workers > 1 and (time.perf_counter() - began) / len(first) > THREADED_DECODE_SECONDS
        rest = (self._executor().map if threaded else map)(self._load_chunk, chunks[1:])
        for chunk in itertools.chain([first], rest):
            for result in chunk:
                if isinstance(result, ImageError):
                    self._failed(result)
            release_freed_memory()  # the decoding's buffers, freed on each thread
            if advance is not None:
                advance(len(chunk))
        return True

    def read_batch(self, uris: Sequence[str], rows: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Read `uris`; return (uint8 (n_ok, C, H, W) in input order, bool mask of decoded URIs)."""
        if len(uris) != len(rows):
            raise ParameterError(
                f"read_batch got {len(uris)} URIs but {len(rows)} row numbers; pass one row per URI."
            )
        with self._lock:  # the common case after the first epoch: every image is decoded already
            cached = [self._cache.get(uri) if isinstance(uri, str) else None for uri in uris]
        if cached and all(array is not None for array in cached):
            return np.stack(cached), np.ones(len(uris), dtype=bool)
        found: dict[str, np.ndarray | ImageError] = {}
        jobs: dict[str, int | None] = {}
        with self._lock:
            bad = set(self._bad)
        for uri, row in zip(uris, rows):
            key = _uri_key(uri)
            if key in found or key in jobs:
                continue
            if not isinstance(uri, str) or not uri.strip():
                found[key] = ImageError(key, row, f"not an image URI ({type(uri).__name__})")
            elif key in bad:
                found[key] = ImageError(key, row, "already failed")
            elif (cached := self._cache_get(key)) is not None:
                found[key] = cached
            else:
                jobs[key] = row
        found.update(self._load_many(jobs))
        if jobs:
            release_freed_memory()
        return self._assemble(uris, found)

    def _assemble(
        self, uris: Sequence[str], found: dict[str, np.ndarray | ImageError]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stack results in input order; raise the first error ('error') or record it ('skip')."""
        mask = np.zeros(len(uris), dtype=bool)
        arrays: list[np.ndarray] = []
        for i, uri in enumerate(uris):
            result = found[_uri_key(uri)]
            if isinstance(result, ImageError):
                self._failed(result)
                continue
            mask[i] = True
            arrays.append(result)
        c, h, w = self.shape.channels, self.shape.height, self.shape.width
        batch = np.stack(arrays) if arrays else np.empty((0, c, h, w), dtype=np.uint8)
        return batch, mask

    def close(self) -> None:
        """Shut down the decode threads and processes and close the zip files read (the cache is kept)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._drop_processes()
        self._stores.close()

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
