"""Files on disk: written so that a crash never leaves a half-written one (a temp file, then a rename),
and private copies of files a model still needs after the user deletes them."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def write_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and os.replace."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target


_PRIVATE_FOLDER: Path | None = None


def private_copy(path: str | os.PathLike) -> Path:
    """A copy of the file or folder at `path` in this process's own temporary folder (removed at exit),
    for files a model keeps using after their original may be deleted (a loaded model's graph file)."""
    global _PRIVATE_FOLDER
    if _PRIVATE_FOLDER is None:
        _PRIVATE_FOLDER = Path(tempfile.mkdtemp(prefix="deepwater-"))
        atexit.register(shutil.rmtree, _PRIVATE_FOLDER, True)
    source = Path(path)
    target = Path(tempfile.mkdtemp(dir=_PRIVATE_FOLDER)) / source.name
    (shutil.copytree if source.is_dir() else shutil.copyfile)(source, target)
    return target
