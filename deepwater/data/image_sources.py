"""dw.import_images: a frame of image URIs ('uri') and their classes ('label') from a folder, an object store's
prefix, a zip file or a CSV manifest."""
from __future__ import annotations

import io
import os
import posixpath
import zipfile
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from deepwater.data.frames import image_folder, import_file
from deepwater.data.images import IMAGE_EXTENSIONS, is_image_uri
from deepwater.data.stores import ObjectStores, store_scheme, zip_member_uri
from deepwater.errors import FrameError, ParameterError, first_lines
from deepwater.files import path_text

LABELS_CHOICES = ("folder", "none")
MANIFEST_SUFFIXES = (".csv", ".csv.gz")
MACOS_METADATA = "__MACOSX/"  # the resource forks a zip made on macOS holds beside each file ('._1.png')
URI_COLUMNS = ("uri", "file_path")  # a manifest's column of images: ours, or Hydrogen Torch's name for it
LAYOUT = (f"lay the images out as class/file.png (one folder per class, images {', '.join(IMAGE_EXTENSIONS)}), "
          "or give a CSV manifest with a 'uri' column (and a 'label' column)")


def import_images(path: str | os.PathLike, labels: str = "folder", storage_options: Mapping[str, Any] | None = None,
                  timeout: float = 10.0) -> pd.DataFrame:
    """A frame of image URIs ('uri') and, with labels='folder', their classes ('label', categorical: the name of
    the folder that holds each image), sorted by class and URI, from:

    - a local folder or an object store prefix (``s3://bucket/train/``, ``gs://``, ``az://``, ``abfs://``,
      ``hf://``), listed through fsspec with `storage_options` (None: the store's usual credentials);
    - a local zip file, its members read in place later (their URIs are ``zip://member::archive.zip``);
    - a CSV manifest (``.csv`` or ``.csv.gz``, local, in a store or in the zip) with a 'uri' column and an
      optional 'label' column (text labels become categorical, numbers stay numbers); relative URIs are
      resolved against the manifest's folder.

    labels='none' lists every image (in any folder) with no 'label' column. `timeout` bounds each request to
    a store, in seconds.
    """
    text = path_text(path, "path")
    if labels not in LABELS_CHOICES:
        raise ParameterError(f"labels={labels!r} is not allowed; use 'folder' (the class is the name of the "
                             "folder that holds each image) or 'none' (images only).")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ParameterError(f"timeout={timeout!r} must be a number of seconds > 0.")
    stores = ObjectStores(storage_options, timeout)
    if text.lower().endswith(MANIFEST_SUFFIXES):
        return _from_manifest(text, stores)
    if store_scheme(text):
        return _from_prefix(text, labels, stores)
    if not os.path.exists(text):
        raise FrameError(f"path={text!r} does not exist; give a folder, a zip file, a CSV manifest or a store "
                         "prefix such as s3://bucket/train/.")
    if os.path.isfile(text) and zipfile.is_zipfile(text):  # a FIFO named .zip is never opened
        return _from_zip(os.path.abspath(text), labels)
    if not os.path.isdir(text):
        raise FrameError(f"path={text!r} is not a folder, a zip file or a CSV manifest; {LAYOUT}.")
    if labels == "folder":
        return image_folder(text)
    found = sorted(str(file) for file in Path(text).rglob("*") if is_image_uri(str(file)) and file.is_file())
    return _frame(text, [(uri, None) for uri in found], labels)


def _frame(source: str, rows: list[tuple[str, str | None]], labels: str) -> pd.DataFrame:
    """The frame of (uri, label) rows sorted by class and URI; a FrameError naming `source` when there are none."""
    if not rows:
        held = "images in class folders" if labels == "folder" else "images"
        raise FrameError(f"path={source!r} holds no {held}; {LAYOUT}.")
    if labels == "none":
        return pd.DataFrame({"uri": [uri for uri, _ in rows]})
    frame = pd.DataFrame(sorted(rows, key=lambda row: (row[1], row[0])), columns=["uri", "label"])
    frame["label"] = frame["label"].astype("category")
    return frame


def _rows(names: list[str], labels: str) -> list[tuple[str, str | None]]:
    """(name, class) of each image among '/'-separated `names`; with labels='folder' only the images in a
    folder, whose name is their class."""
    images = [name for name in names if is_image_uri(name) and not name.endswith("/")]
    if labels == "none":
        return [(name, None) for name in images]
    return [(name, posixpath.basename(posixpath.dirname(name))) for name in images if posixpath.dirname(name)]


def _from_prefix(prefix: str, labels: str, stores: ObjectStores) -> pd.DataFrame:
    """The images under a store prefix, each labelled by the folder that holds it (below the prefix)."""
    root = prefix.rstrip("/") + "/"
    try:
        found = stores.list_files(root)
    except ValueError as error:
        raise FrameError(f"path={prefix!r} cannot be listed: {error}.") from error
    relative = [uri[len(root):] for uri in found if uri.startswith(root)]
    return _frame(prefix, [(root + name, label) for name, label in _rows(relative, labels)], labels)


def _from_zip(archive: str, labels: str) -> pd.DataFrame:
    """The images of a zip file: by the CSV manifest it holds when it holds one, else by their folders."""
    try:
        with zipfile.ZipFile(archive) as opened:
            names = [info.filename for info in opened.infolist()
                     if not info.is_dir() and not info.filename.startswith(MACOS_METADATA)]
            manifests = [name for name in names if name.lower().endswith(MANIFEST_SUFFIXES)]
            if len(manifests) > 1:
                raise FrameError(f"path={archive!r} holds several CSV manifests ({', '.join(manifests[:5])}); "
                                 "keep the one that lists the images.")
            if manifests:
                with opened.open(manifests[0]) as stream:
                    table = _read_manifest_bytes(stream.read(), f"{archive}:{manifests[0]}")
                return _resolved(table, zip_member_uri(archive, manifests[0]), f"{archive}:{manifests[0]}")
    except (OSError, zipfile.BadZipFile) as error:
        raise FrameError(f"path={archive!r} is not a readable zip file ({first_lines(error)}).") from error
    rows = [(zip_member_uri(archive, name), label) for name, label in _rows(names, labels)]
    return _frame(archive, rows, labels)


def _read_manifest_bytes(data: bytes, source: str) -> pd.DataFrame:
    """A manifest's table from its bytes (gzip'd when its name ends .gz)."""
    try:
        compression = "gzip" if source.lower().endswith(".gz") else None
        return pd.read_csv(io.BytesIO(data), index_col=False, compression=compression)
    except (ValueError, OSError, UnicodeDecodeError, EOFError) as error:
        raise FrameError(f"path={source!r} is not a readable CSV manifest ({first_lines(error)}); give a CSV with "
                         "a header line ('uri' and 'label') and a row per image.") from error


def _from_manifest(path: str, stores: ObjectStores) -> pd.DataFrame:
    """The images a CSV manifest (local, in a store or in a zip) lists, relative URIs resolved against it."""
    if not store_scheme(path):
        return _resolved(import_file(path), os.path.abspath(path), path)
    try:
        data = stores.read(path)
    except ValueError as error:
        raise FrameError(f"path={path!r} cannot be read: {error}.") from error
    return _resolved(_read_manifest_bytes(data, path), path, path)


def _resolved(table: pd.DataFrame, manifest: str, source: str) -> pd.DataFrame:
    """The manifest's uri (and label) columns, each relative URI resolved against the `manifest`'s location."""
    column = next((name for name in URI_COLUMNS if name in table.columns), None)
    if column is None:
        raise FrameError(f"path={source!r} has no 'uri' column (its columns: {', '.join(map(str, table.columns))}); "
                         "give the images' paths or URIs in a column named 'uri'.")
    if table[column].isna().any() or len(table) == 0:
        raise FrameError(f"path={source!r} has rows without a uri (or no rows); give every row an image's path "
                         "or URI.")
    frame = pd.DataFrame({"uri": [_resolve(str(value), manifest, source) for value in table[column]]})
    if "label" in table.columns:  # as the CSV has it, text as categorical (classes, as from folders)
        label = table["label"].reset_index(drop=True)
        frame["label"] = label if pd.api.types.is_numeric_dtype(label) else label.astype("category")
    return frame


def _resolve(value: str, manifest: str, source: str) -> str:
    """`value` as a full URI: as it is when it has a scheme or is an absolute path, else next to `manifest`."""
    if "://" in value or os.path.isabs(value):
        return value
    scheme = store_scheme(manifest)
    if scheme is None:
        return os.path.normpath(os.path.join(os.path.dirname(manifest), value))
    head, _, archive = manifest.partition("::")
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(head.split("://", 1)[1]), value))
    if joined.startswith("../") or joined == "..":
        raise FrameError(f"path={source!r} lists {value!r}, which is outside the folder that holds the manifest; "
                         "give it as a full URI.")
    return f"{scheme}://{joined}" + (f"::{archive}" if archive else "")
