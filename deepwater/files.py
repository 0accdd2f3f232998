"""Files on disk: written so that a crash never leaves a half-written one (a temp file, then a rename),
and private copies of files a model still needs after the user deletes them."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from deepwater.errors import ParameterError


def path_text(path: object, parameter: str) -> str:
    """`path` (a str or os.PathLike) as text; a ParameterError naming `parameter` for anything else."""
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterError(f"{parameter}={path!r} is not a path; give a file or folder path as a str or "
                             "pathlib.Path.")
    return os.fspath(path)


def default_file_mode() -> int:
    """The mode open() gives a new file under this process's umask (0o644 under the usual 022)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def give_default_mode(path: str | os.PathLike) -> None:
    """Give the file at `path` the mode open() would have (a temporary file starts private, 0o600)."""
    os.chmod(path, default_file_mode())


def write_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and os.replace; the file gets the
    mode open() would give it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        give_default_mode(temp_name)
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return target


_PRIVATE_FOLDER: Path | None = None


def private_folder() -> Path:
    """A new, empty folder inside this process's own temporary folder (removed at exit), for files a model
    keeps using after their original may be deleted (a loaded model's graph file)."""
    global _PRIVATE_FOLDER
    if _PRIVATE_FOLDER is None:
        _PRIVATE_FOLDER = Path(tempfile.mkdtemp(prefix="deepwater-"))
        atexit.register(shutil.rmtree, _PRIVATE_FOLDER, True)
    return Path(tempfile.mkdtemp(dir=_PRIVATE_FOLDER))


def private_copy(path: str | os.PathLike) -> Path:
    """A copy of the file or folder at `path` in a private_folder()."""
    source = Path(path)
    target = private_folder() / source.name
    (shutil.copytree if source.is_dir() else shutil.copyfile)(source, target)
    return target
