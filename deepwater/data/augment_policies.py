"""The augment parameter's photo policies, built from albumentations: random resized crops, RandAugment,
TrivialAugment (wide) and colour jitter, on uint8 (H, W, C) images.

Why albumentations (2.0.8, the last MIT release; the releases after it are AlbumentationsX, under the AGPL):
it works on uint8 numpy arrays with no deep learning framework, so every backend trains on the same images; its
operations run in OpenCV's C++, 2-5x PIL's speed on the same work (a crop resized back, colour jitter, a
rotation of 224 x 224 photos, side by side on one thread: docs/guide/images.md); it was actively maintained up to
that release (2.0.0 to 2.0.8 from January to May 2025), and its random draws follow a seed we give it, so a run
repeats. It has no RandAugment or TrivialAugment of its own: both are written here, as their papers and
torchvision define them (the same 14 operations and magnitudes), each operation one of albumentations'.
"""
from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from deepwater.errors import ParameterError

EXTRA = "augment"  # pip install 'deepwater[augment]'
RANDAUGMENT_LEVELS = 30  # RandAugment's magnitudes run 0..30 (torchvision's 31 bins)


def albumentations(name: str, value: Any) -> ModuleType:
    """The albumentations module, imported on first use (it takes about a second); ParameterError naming the
    parameter `name`, its `value` and the pip extra where it is not installed."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no question to PyPI at import
    try:
        return importlib.import_module("albumentations")
    except ImportError as error:
        raise ParameterError(f"{name}={value!r} needs albumentations, which is not installed: pip install "
                             f"'deepwater[{EXTRA}]', or keep to 'flip' and 'shift', which need nothing more."
                             ) from error


def _tan_degrees(tangent: float) -> float:
    """A shear given as its tangent (torchvision's magnitudes), in degrees (albumentations')."""
    return math.degrees(math.atan(tangent))


def _shear(axis: str) -> Callable[[ModuleType, float, float], Any]:
    other = "y" if axis == "x" else "x"
    return lambda A, low, high: A.Affine(shear={axis: (_tan_degrees(low), _tan_degrees(high)), other: (0, 0)}, p=1)


def _translate(axis: str) -> Callable[[ModuleType, float, float], Any]:
    other = "y" if axis == "x" else "x"
    return lambda A, low, high: A.Affine(translate_percent={axis: (low, high), other: (0, 0)}, p=1)


def _enhance(channel: str) -> Callable[[ModuleType, float, float], Any]:
    """A brightness, contrast or saturation factor of 1 + low .. 1 + high, the other factors left at 1."""
    factors = {"brightness": (1, 1), "contrast": (1, 1), "saturation": (1, 1)}
    return lambda A, low, high: A.ColorJitter(**{**factors, channel: (1 + low, 1 + high)}, hue=(0, 0), p=1)


@dataclass(frozen=True)
class Operation:
    """One of the policies' operations: `build(A, low, high)` makes it with its magnitude drawn in [low, high];
    `randaugment` is its magnitude at RandAugment's top level, `trivial` TrivialAugment's largest; a `signed`
    magnitude is as likely negated (a shear left or right)."""

    build: Callable[[ModuleType, float, float], Any]
    randaugment: float = 0.0
    trivial: float = 0.0
    signed: bool = False


# torchvision's RandAugment and TrivialAugmentWide operations and their largest magnitudes, with two changes:
# translations are fractions of the image's side (TrivialAugment's 32 pixels as 32 of 224), so that small images
# keep their content, and sharpness only sharpens (albumentations' Sharpen), never blurs.
OPERATIONS = {
    "identity": Operation(lambda A, low, high: A.NoOp(p=1)),
    "shear_x": Operation(_shear("x"), 0.3, 0.99, True),
    "shear_y": Operation(_shear("y"), 0.3, 0.99, True),
    "translate_x": Operation(_translate("x"), 150 / 331, 32 / 224, True),
    "translate_y": Operation(_translate("y"), 150 / 331, 32 / 224, True),
    "rotate": Operation(lambda A, low, high: A.Affine(rotate=(low, high), p=1), 30.0, 135.0, True),
    "brightness": Operation(_enhance("brightness"), 0.9, 0.99, True),
    "color": Operation(_enhance("saturation"), 0.9, 0.99, True),
    "contrast": Operation(_enhance("contrast"), 0.9, 0.99, True),
    "sharpness": Operation(lambda A, low, high: A.Sharpen(alpha=(low, high), lightness=(1, 1), p=1), 0.9, 0.99),
    # magnitudes below: bits taken away (of 8), and the share of the top of the range inverted
    "posterize": Operation(lambda A, low, high: A.Posterize(num_bits=(8 - round(high), 8 - round(low)), p=1), 4, 6),
    "solarize": Operation(lambda A, low, high: A.Solarize(threshold_range=(1 - high, 1 - low), p=1), 1.0, 1.0),
    "autocontrast": Operation(lambda A, low, high: A.AutoContrast(p=1)),
    "equalize": Operation(lambda A, low, high: A.Equalize(p=1)),
}


def randaugment(A: ModuleType, ops: int, magnitude: int) -> Any:
    """RandAugment (Cubuk et al. 2020): `ops` operations drawn with replacement for each image, each at
    `magnitude` (0..30) of its range, its sign drawn where it has one."""
    def at_level(operation: Operation) -> Any:
        amount = operation.randaugment * magnitude / RANDAUGMENT_LEVELS
        if not operation.signed:
            return operation.build(A, amount, amount)
        return A.OneOf([operation.build(A, amount, amount), operation.build(A, -amount, -amount)], p=1)

    return A.SomeOf([at_level(operation) for operation in OPERATIONS.values()], n=ops, replace=True, p=1)


def trivial_augment(A: ModuleType) -> Any:
    """TrivialAugment wide (Müller and Hutter 2021): one operation for each image, at a magnitude drawn
    uniformly over its whole range (and its sign drawn where it has one)."""
    def anywhere(operation: Operation) -> Any:
        return operation.build(A, -operation.trivial if operation.signed else 0.0, operation.trivial)

    return A.OneOf([anywhere(operation) for operation in OPERATIONS.values()], p=1)


def random_resized_crop(A: ModuleType, height: int, width: int, smallest: float) -> Any:
    """A crop of `smallest`..all of the image's area, aspect ratio 3/4..4/3, resized back to height x width
    (torchvision's RandomResizedCrop)."""
    return A.RandomResizedCrop(size=(height, width), scale=(smallest, 1.0), ratio=(3 / 4, 4 / 3), p=1)


def color_jitter(A: ModuleType, strength: float, hue: float) -> Any:
    """Brightness, contrast and saturation each scaled by 1 +- `strength`, the hue turned by up to +- `hue`."""
    return A.ColorJitter(brightness=strength, contrast=strength, saturation=strength, hue=(-hue, hue), p=1)
