"""Pictures Flow serves: thumbnails of a frame's images and Grad-CAM overlays of an image model, as small PNGs.
An image is read only when it is a file (or a zip file's member) under the allowed folders or Flow's data folder:
a frame's URIs are text anyone may have written, so no other path, URL or store is ever opened for a picture."""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from deepwater.analysis.plots import overlays
from deepwater.data.images import ImageReader, ImageShape, file_url_to_path, is_image_uri
from deepwater.data.stores import ZIP_SCHEME, store_scheme
from deepwater.files import write_atomically
from deepwater.flow.refusals import FieldError

THUMBNAIL = 64  # pixels a side
THUMBNAIL_ROWS = 8  # the frame page shows this many rows' images
EXPLAINED_ROWS = 4  # the model page shows Grad-CAM of this many rows
GRADCAM = "gradcam"  # the data folder's subfolder of overlays, one folder per model


def local_file(uri: object) -> str | None:
    """The real path of the file a URI reads (a zip member's archive), or None for a URL or a store's object."""
    if not is_image_uri(uri):
        return None
    text = str(uri).strip()
    scheme = store_scheme(text)
    if scheme == ZIP_SCHEME:
        return os.path.realpath(text.partition("::")[2])
    if scheme is not None:
        return None
    if text.lower().startswith("file://"):
        return os.path.realpath(file_url_to_path(text))
    return None if "://" in text else os.path.realpath(text)


def readable(uri: object, roots: Sequence[str]) -> bool:
    """True when `uri` is a local image (or zip member) under one of `roots` (real paths)."""
    path = local_file(uri)
    return path is not None and any(os.path.commonpath([root, path]) == root for root in roots)


def png(pixels: np.ndarray) -> bytes:
    """uint8 (height, width, 3) pixels as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def thumbnail(frame: pd.DataFrame, column: str | None, row: int, roots: Sequence[str]) -> bytes:
    """The PNG thumbnail of row `row`'s image in `column`; a FieldError when there is none to show."""
    if column is None:
        raise FieldError("column", "this frame has no image column, so it has no thumbnails.", 404)
    if not 0 <= row < len(frame):
        raise FieldError("row", f"{row} is no row of this frame (0 to {len(frame) - 1}).", 404)
    uri = frame[column].iloc[row]
    if not readable(uri, roots):
        raise FieldError("row", f"row {row}'s image {uri!r} is not a file under the folders Flow may read, so Flow "
                                "shows no thumbnail of it.", 403)
    reader = ImageReader(ImageShape(THUMBNAIL, THUMBNAIL, 3), bad_images="skip", cache_mb=0)
    pixels, read = reader.read_batch([uri], [row])
    if not read[0]:
        raise FieldError("row", f"row {row}'s image {uri!r} cannot be read as an image.", 404)
    return png(pixels[0].transpose(1, 2, 0))


def shown_rows(frame: pd.DataFrame, column: str, roots: Sequence[str], count: int) -> list[int]:
    """Up to `count` rows spread evenly over the frame (an image folder's frame is sorted by class, so they show
    several classes), those whose images Flow may read."""
    spread = sorted({int(i) for i in np.linspace(0, len(frame) - 1, min(count, len(frame))).round()})
    return [row for row in spread if readable(frame[column].iloc[row], roots)]


def write_gradcam(model: Any, frame: pd.DataFrame, column: str, roots: Sequence[str],
                  folder: Path) -> list[dict[str, Any]]:
    """Grad-CAM overlays (model.explain, plots.overlays) of a few readable rows of `frame`, written as
    `folder`/<i>.png; returns per picture its row, predicted label and file name."""
    rows = shown_rows(frame, column, roots, EXPLAINED_ROWS)
    if not rows:
        return []
    chosen = frame.iloc[rows].reset_index(drop=True)
    pictures = overlays(chosen, model.explain(chosen, method="gradcam"), column, resize=model.image_resize)
    predicted = model.predict(chosen)["predict"].astype(str).tolist()
    folder.mkdir(parents=True, exist_ok=True)
    shown = []
    for i, (row, label) in enumerate(zip(rows, predicted)):
        write_atomically(folder / f"{i}.png", png(pictures[i]))
        shown.append({"row": row, "predict": label, "file": f"{i}.png"})
    return shown
