"""The files of a saved model or bundle, wherever they lie: one archive file, or a folder.

save_model writes one zip archive (as H2O's save_model writes one file, and Keras a `.keras` file): its members
are JSON, safetensors and the other files of the model, nothing pickled, and they are read in place without
extracting the archive; only a file a framework must open from disk (a user's graph file) is copied out, into
this process's private folder. Folders (saved models of earlier versions, export bundles) are read the same way.
Either way `checksums.json` lists every other file with its BLAKE3 digest, checked before anything is read.
Both are written under a temporary name beside the target and renamed, so a crash never leaves half of one.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import uuid
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable

import blake3

from deepwater.errors import ModelFileError, ParameterError
from deepwater.files import give_default_mode, private_copy, private_folder

CHECKSUMS = "checksums.json"
DIGEST = "blake3"  # cryptographic and about 8 GB/s on one core: SHA-256 took 5x longer on ResNet-50's 200 MB
COMPRESSED_SUFFIXES = (".json",)  # text compresses; weights and graph files gain little and are stored as they are
CHUNK = 1 << 20


# --------------------------------------------------------------------------- reading

class SavedFiles:
    """The files of one saved model (or bundle): their names relative to its root ('graph/net.pb'), their
    bytes and digests, and private copies of those a framework must open from disk. Use it in a `with`
    block: an archive is closed at its end."""

    location: str  # the archive's or folder's path, for messages

    def names(self) -> set[str]:
        """Every file's name, relative to the root, in POSIX form."""
        raise NotImplementedError

    def read_bytes(self, name: str) -> bytes:
        """The contents of the file `name`."""
        raise NotImplementedError

    def private_copy(self, name: str) -> Path:
        """A copy of the file or folder `name` in this process's private folder (it outlives the saved model)."""
        raise NotImplementedError

    def under(self, prefix: str) -> SavedFiles:
        """The files below the folder `prefix` (an ensemble's member), as a SavedFiles of their own."""
        raise NotImplementedError

    def digest(self, name: str, algorithm: str = DIGEST) -> str:
        """The hex digest of the file `name` ('blake3', or 'sha256' for format 1's checksums)."""
        raise NotImplementedError

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def close(self) -> None:
        """Release the archive (a folder holds nothing open)."""

    def __enter__(self) -> SavedFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FolderFiles(SavedFiles):
    """The files of a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.location = folder, str(folder)

    def names(self) -> set[str]:
        return {p.relative_to(self.folder).as_posix() for p in self.folder.rglob("*") if p.is_file()}

    def read_bytes(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def digest(self, name: str, algorithm: str = DIGEST) -> str:
        if algorithm == DIGEST:  # memory-mapped: the fastest way through a large weights file
            return blake3.blake3().update_mmap(self.folder / name).hexdigest()
        hashed = hashlib.new(algorithm)
        with open(self.folder / name, "rb") as stream:
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                hashed.update(chunk)
        return hashed.hexdigest()

    def private_copy(self, name: str) -> Path:
        return private_copy(self.folder / name)

    def under(self, prefix: str) -> SavedFiles:
        return FolderFiles(self.folder / prefix)


class ArchiveFiles(SavedFiles):
    """The members of a zip archive (below `prefix`, for a member model of an ensemble)."""

    def __init__(self, archive: zipfile.ZipFile, location: str, prefix: str = "",
                 checked: dict[str, bytes] | None = None) -> None:
        self.archive, self.location, self.prefix = archive, location, prefix
        self._names = {n[len(prefix):] for n in archive.namelist() if n.startswith(prefix) and not n.endswith("/")}
        # members whose digest was checked, kept until read once more, so that loading does not read them again
        # (shared with the under() views, by full member name)
        self._checked = {} if checked is None else checked

    def names(self) -> set[str]:
        return set(self._names)

    def read_bytes(self, name: str) -> bytes:
        member = self._member(name)
        checked = self._checked.pop(member, None)
        return self.archive.read(member) if checked is None else checked

    def digest(self, name: str, algorithm: str = DIGEST) -> str:
        data = self.read_bytes(name)
        self._checked[self._member(name)] = data
        hashed = blake3.blake3() if algorithm == DIGEST else hashlib.new(algorithm)
        hashed.update(data)
        return hashed.hexdigest()

    def private_copy(self, name: str) -> Path:
        inside = sorted(n for n in self._names if n == name or n.startswith(name + "/"))
        if not inside:
            raise ModelFileError(f"{self.location!r} has no member {name!r}; save the model again.")
        root = private_folder()
        for member in inside:
            target = root.joinpath(*PurePosixPath(member).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.read_bytes(member))
        return root.joinpath(*PurePosixPath(name).parts)

    def under(self, prefix: str) -> SavedFiles:
        return ArchiveFiles(self.archive, f"{self.location}/{prefix}", f"{self.prefix}{prefix.rstrip('/')}/",
                            self._checked)

    def close(self) -> None:
        if not self.prefix:
            self._checked.clear()
            self.archive.close()

    def _member(self, name: str) -> str:
        if name not in self._names:
            raise ModelFileError(f"{self.location!r} has no member {name!r}; save the model again.")
        return self.prefix + name


def open_files(path: Path) -> SavedFiles:
    """The files of the archive or folder at `path`; a ModelFileError for anything else, or for an archive
    whose member names reach outside it."""
    if path.is_dir():
        return FolderFiles(path)
    if not path.is_file() or not zipfile.is_zipfile(path):
        raise ModelFileError(f"path={str(path)!r} is not a deepwater saved model: neither an archive nor a folder that "
                             "deepwater.save_model() or model.export() wrote (deepwater never unpickles files).")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelFileError(f"path={str(path)!r} is a damaged archive ({error}); save the model again.") from error
    names = archive.namelist()
    unsafe = [n for n in names if PurePosixPath(n).is_absolute() or ".." in PurePosixPath(n).parts or "\\" in n]
    if unsafe or len(set(names)) != len(names):
        archive.close()
        problem = f"member names outside it ({unsafe[:3]})" if unsafe else "a member twice"
        raise ModelFileError(f"path={str(path)!r} has {problem}, which deepwater never writes; it was not written "
                             "by deepwater.save_model(): save the model again.")
    return ArchiveFiles(archive, str(path))


def check_files(files: SavedFiles, required: str, what: str, fix: str) -> None:
    """ModelFileError unless `files` are exactly those its checksums.json lists, `required` among them, each
    matching its digest. `what` names the kind in messages ("saved model"), `fix` says what to do ("save the
    model again")."""
    if CHECKSUMS not in files:
        raise ModelFileError(f"{files.location!r} is not a deepwater {what}: it has no {CHECKSUMS} (deepwater never "
                             f"unpickles files); {fix}.")
    algorithm, sums = _read_checksums(files, what, fix)
    present = files.names() - {CHECKSUMS}
    if set(sums) != present or required not in sums:
        raise ModelFileError(f"{files.location!r}: the files {sorted(present)} are not those its {CHECKSUMS} lists; "
                             f"the {what} was changed or is incomplete: {fix}.")
    for name, expected in sums.items():
        if files.digest(name, algorithm) != expected:
            raise ModelFileError(f"{files.location}/{name!s} does not match its checksum: the file was changed or "
                                 f"damaged after it was written; {fix}.")


def _read_checksums(files: SavedFiles, what: str, fix: str) -> tuple[str, dict[str, str]]:
    """The digest algorithm and the digest of each file, from checksums.json (format 1: SHA-256 by file)."""
    try:
        sums = json.loads(files.read_bytes(CHECKSUMS))
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{files.location}/{CHECKSUMS} is not readable JSON ({error}); the {what} is damaged: "
                             f"{fix}.") from error
    if isinstance(sums, dict) and sums.get("algorithm") == DIGEST and isinstance(sums.get("files"), dict):
        return DIGEST, sums["files"]
    if isinstance(sums, dict) and all(isinstance(v, str) for v in sums.values()) and "algorithm" not in sums:
        return "sha256", sums
    raise ModelFileError(f"{files.location}/{CHECKSUMS} does not list the files' digests as deepwater writes them; "
                         f"the {what} is damaged or was not written by deepwater: {fix}.")


# --------------------------------------------------------------------------- writing

def write_archive(target: Path, fill: Callable[[Path], None], force: bool) -> None:
    """Have `fill` write files into a temporary folder beside `target`, add their checksums.json, and pack
    them as the zip archive `target` (under a temporary name, then renamed): complete or absent. An existing
    `target` (an archive, or a folder an earlier version saved) is replaced when `force`, else a ParameterError."""
    def pack(staging: Path) -> None:
        fill(staging)
        write_checksums(staging)
        packed = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with zipfile.ZipFile(packed, "w") as archive:
                for path in sorted(p for p in staging.rglob("*") if p.is_file()):
                    compression = zipfile.ZIP_DEFLATED if path.suffix in COMPRESSED_SUFFIXES else zipfile.ZIP_STORED
                    archive.write(path, path.relative_to(staging).as_posix(), compress_type=compression)
            give_default_mode(packed)
            replace(packed, target)
        except BaseException:
            packed.unlink(missing_ok=True)
            raise

    _staged(target, pack, force, keep=False)


def write_folder(target: Path, fill: Callable[[Path], None], force: bool) -> None:
    """Have `fill` write files into a new temporary folder beside `target`, add their checksums.json, and
    rename that folder to `target`, so that `target` is complete or absent. An existing `target` is replaced
    when `force`, else a ParameterError."""
    def settle(staging: Path) -> None:
        fill(staging)
        write_checksums(staging)
        replace(staging, target)

    _staged(target, settle, force, keep=True)


def _staged(target: Path, finish: Callable[[Path], None], force: bool, keep: bool) -> None:
    """Run `finish` on a new hidden folder beside `target`; remove that folder afterwards (always when it
    failed, and when not `keep`)."""
    if target.exists() and not force:
        raise ParameterError(f"{str(target)!r} already exists; pass force=True to replace it, or another path.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        staging.mkdir()
        finish(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if not keep:
        shutil.rmtree(staging, ignore_errors=True)


def write_checksums(folder: Path) -> None:
    """checksums.json: the digest of every file in `folder`, by its path relative to `folder`."""
    files = FolderFiles(folder)
    sums = {name: files.digest(name) for name in sorted(files.names())}
    (folder / CHECKSUMS).write_text(json.dumps({"algorithm": DIGEST, "files": sums}, indent=1))


def replace(staged: Path, target: Path) -> None:
    """Rename `staged` (a file or folder) to `target`, moving an existing `target` aside first and removing it
    after."""
    aside = None
    if target.exists():
        aside = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
        target.rename(aside)
    staged.rename(target)
    remove_saved(aside)


def remove_saved(path: Path | None) -> None:
    """Remove the archive or folder at `path` (nothing when it is None or gone)."""
    if path is not None and path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path is not None:
        path.unlink(missing_ok=True)
