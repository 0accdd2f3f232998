"""Test-time augmentation (the `tta` parameter): a model's outputs for each image averaged over views of it.

The views of an image at image_shape (H, W): the image itself; with 'crops' the 4 corners and the centre, H x W
each, of the image resized CROP_ENLARGEMENT times larger (ImageNet's 256 for 224); with 'flip' the mirror image,
left-right, of each of those. A ViewsSource gives every row as its stack of views (n, V, C, H, W), and an
AveragedNet predicts such a stack as the mean of the net's outputs (class probabilities, or regression values)
over the views, so that scoring and metrics (training/evaluation.py) take the pair as a net and a source.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from deepwater.data.inputs import ImageInputs, image_reader
from deepwater.data.sources import Batch, ImageSource, image_input
from deepwater.errors import ParameterError
from deepwater.specs import AUTOENCODER

CROP_ENLARGEMENT = 8 / 7  # 256 / 224: the crops of an image at 224 are cut from it at 256


class AveragedNet:
    """`net`, predicting a stack of views (n, V, C, H, W) as the mean of its predictions of each view."""

    def __init__(self, net: Any) -> None:
        self.net = net

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The mean over the views (axis 1) of the net's predictions."""
        return np.mean([self.net.predict(np.ascontiguousarray(x[:, v])) for v in range(x.shape[1])], axis=0)


class ViewsSource:
    """The rows of an image source, each as the stack of its views (n, V, C, H, W), normalised as the source's."""

    unit = "images"

    def __init__(self, source: ImageSource, views: list[str], params: dict[str, Any]) -> None:
        self.source, self.flip = source, "flip" in views
        self.n, self.y, self.w = source.n, source.y, source.w
        shape = source.reader.shape
        larger = replace(shape, height=round(shape.height * CROP_ENLARGEMENT),
                         width=round(shape.width * CROP_ENLARGEMENT))
        self.larger = image_reader(larger, params) if "crops" in views else None

    @property
    def prefetch_depth(self) -> int:
        return self.source.prefetch_depth

    def batch(self, rows: np.ndarray) -> Batch:
        s = self.source
        uris = list(s.uris[rows])
        pixels, ok = s.reader.read_batch(uris, rows.tolist())
        views = [pixels]
        if self.larger is not None:  # the same URIs decode (or are skipped) at both sizes
            views += corner_and_centre_crops(self.larger.read_batch(uris, rows.tolist())[0], pixels.shape[2:])
        if self.flip:
            views += [view[..., ::-1] for view in views]
        x = np.stack([image_input(view, s.offset, s.scale) for view in views], axis=1)
        kept = rows[ok]
        return Batch(x, None if s.y is None else s.y[kept], None if s.w is None else s.w[kept], kept)

    def close(self) -> None:
        """Close the reader of the larger images (their decoding threads or processes)."""
        if self.larger is not None:
            self.larger.close()


def corner_and_centre_crops(pixels: np.ndarray, size: tuple[int, int]) -> list[np.ndarray]:
    """The top-left, top-right, bottom-left, bottom-right and centre (height, width) = `size` crops of the
    images (n, C, H', W')."""
    height, width = size
    bottom, right = pixels.shape[2] - height, pixels.shape[3] - width
    corners = [(0, 0), (0, right), (bottom, 0), (bottom, right), (bottom // 2, right // 2)]
    return [pixels[:, :, top:top + height, left:left + width] for top, left in corners]


def view_count(views: list[str]) -> int:
    """How many views of an image `views` score: the image (and 5 crops with 'crops'), twice with 'flip'."""
    return (1 + 5 * ("crops" in views)) * (1 + ("flip" in views))


def views_of(inputs: Any, views: list[str], model_id: str, kind: str) -> list[str]:
    """`views` (a checked tta value: [] or a list) where the model can take them: its inputs a column of image
    URIs and its outputs predictions (not an autoencoder's reconstruction); a ParameterError naming tta
    otherwise."""
    if views and (not isinstance(inputs, ImageInputs) or kind == AUTOENCODER):
        reads = "an autoencoder's reconstruction" if kind == AUTOENCODER else "a dataset (columns)"
        raise ParameterError(f"tta={views!r} averages predictions over views of images, but model {model_id!r} "
                             f"scores {reads}, not a column of image URIs; pass tta=False.")
    return views
