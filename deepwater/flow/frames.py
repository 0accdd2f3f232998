"""Frames in Flow: a file or an image folder read only under the allowed folders (their real paths: symbolic links
and '..' resolved before the check), or an uploaded file; the parse setup (column types, a response guess, the image
column) and the summaries a frame page shows."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepwater.data.frames import import_file, is_categorical
from deepwater.data.image_sources import import_images
from deepwater.data.images import looks_like_image_column
from deepwater.data.stores import STORE_SCHEMES, store_scheme
from deepwater.flow.refusals import FieldError

UPLOAD_SUFFIXES = (".csv", ".csv.gz", ".parquet")
ZIP_SUFFIX = ".zip"  # imported by path: its images are read in place, so it is never an upload
RESPONSE_NAMES = ("label", "labels", "y", "target", "class", "response")
SHOWN_ROWS = 10
SHOWN_LEVELS = 5


def allowed_path(path: object, allow_dirs: Sequence[str]) -> str:
    """The real path of `path` when it lies in one of `allow_dirs` (real paths themselves); a FieldError (403)
    otherwise."""
    if not isinstance(path, str) or not path:
        raise FieldError("path", "must be the path of a .csv, .csv.gz or .parquet file or an image folder.")
    if not allow_dirs:
        raise FieldError("path", "Flow reads no file of this machine: start it with --allow-dir DIR to import the "
                                 "files under DIR, or upload the file.", 403)
    real = os.path.realpath(os.path.join(allow_dirs[0], path))
    if not any(os.path.commonpath([root, real]) == root for root in allow_dirs):
        raise FieldError("path", f"{path!r} is outside the folders Flow may read ({', '.join(allow_dirs)}).", 403)
    return real


def is_store_prefix(path: object) -> bool:
    """True for an object store URI (s3://bucket/train/, gs://...)."""
    return store_scheme(path) in STORE_SCHEMES


def allowed_prefix(path: str, allow_stores: Sequence[str]) -> str:
    """`path` when it lies under one of the object store prefixes `allow_stores`; a FieldError (403) otherwise.
    The store's credentials are the server's own (its environment): Flow records none."""
    if ".." in path.split("/"):
        raise FieldError("path", f"{path!r} holds '..'; give the prefix as the store lists it.")
    if not any(path.rstrip("/") + "/" == root or path.startswith(root) for root in allow_stores):
        allowed = ", ".join(allow_stores) or "none: start Flow with FlowConfig(allow_stores=('s3://bucket/',))"
        raise FieldError("path", f"{path!r} is not under the object store prefixes Flow may read ({allowed}).", 403)
    return path


def upload_suffix(filename: str | None) -> str:
    """The suffix of an uploaded file Flow reads, from its name; a FieldError for any other."""
    lower = (filename or "").lower()
    found = next((suffix for suffix in UPLOAD_SUFFIXES if lower.endswith(suffix)), None)
    if found is None:
        raise FieldError("file", f"{filename!r} is not a file Flow reads; upload a {', '.join(UPLOAD_SUFFIXES)} "
                                 "file (an image folder is imported by path, under --allow-dir).")
    return found


def read_frame(path: str | Path) -> pd.DataFrame:
    """The frame of a file or an image folder (deepwater.import_file), or of the images of a zip file or an object
    store prefix (deepwater.import_images: by their folders, or by the CSV manifest a zip holds)."""
    if str(path).lower().endswith(ZIP_SUFFIX) or is_store_prefix(str(path)):
        return import_images(path)
    return import_file(path)


def column_type(series: pd.Series) -> str:
    """'image', 'categorical' or 'numeric' as training reads the column; 'text' for strings it cannot use."""
    if looks_like_image_column(series):
        return "image"
    if is_categorical(series):
        return "categorical"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    return "text"


def parse_setup(frame: pd.DataFrame) -> dict[str, Any]:
    """What Flow makes of a frame: each column's type, the response it guesses and the image column, if any."""
    types = {str(name): column_type(frame[name]) for name in frame.columns}
    named = [name for name in types if name.lower() in RESPONSE_NAMES]
    image = next((name for name, kind in types.items() if kind == "image"), None)
    candidates = [name for name in types if name != image]
    response = named[0] if named else (candidates[-1] if candidates else None)
    return {"column_types": types, "response_guess": response, "image_column": image,
            "problem_type": "image" if image else "dataset"}


def summaries(frame: pd.DataFrame, types: dict[str, str]) -> list[dict[str, Any]]:
    """Per column: its type, missing values and, by type, min / mean / max or the most frequent levels."""
    out = []
    for name in frame.columns:
        series, kind = frame[name], types.get(str(name), "text")
        summary: dict[str, Any] = {"name": str(name), "type": kind, "missing": int(series.isna().sum())}
        if kind == "numeric":
            values = pd.to_numeric(series, errors="coerce")
            summary.update(min=_number(values.min()), mean=_number(values.mean()), max=_number(values.max()))
        else:
            counts = series.astype("string").value_counts()
            summary.update(levels=int(len(counts)),
                           top={str(k): int(v) for k, v in counts.head(SHOWN_LEVELS).items()})
        out.append(summary)
    return out


def first_rows(frame: pd.DataFrame, count: int = SHOWN_ROWS) -> dict[str, Any]:
    """The first `count` rows as {"columns": [...], "rows": [[...], ...]}, missing values None."""
    head = frame.head(count).astype(object).where(frame.head(count).notna(), None)
    return {"columns": [str(c) for c in frame.columns],
            "rows": [[_cell(v) for v in row] for row in head.itertuples(index=False)]}


def _number(value: Any) -> float | None:
    return None if pd.isna(value) else float(value)


def _cell(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value
