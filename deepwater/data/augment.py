"""Random changes to training images (the `augment` parameter): flips and shifts of a few pixels, and the photo
policies (random resized crops, RandAugment, TrivialAugment, colour jitter) of augment_policies.

Applied to decoded uint8 (N, C, H, W) batches on the thread that prepares training batches (the prefetch
thread), never to the images the decoded-image cache keeps, and never at scoring or predict; the model's
normalisation (mean image or the zoo's mean and std) comes after, on the changed pixels. The draws come from a
generator seeded from the model's seed and consumed in batch order, so a run repeats exactly, on every backend.

The grammar: a comma-separated list (or a Python list) of items, each a name and its numbers after colons:
'flip', 'shift[:N]', 'crop[:S]' (also 'rrc', 'random_resized_crop'), 'color_jitter[:S[:H]]',
'randaugment[:N[:M]]', 'trivial' (also 'trivialaugment'), and 'none'. Whatever the order written, the changes
run as crop, policy, colour jitter, shift, flip; the canonical text lists them as crop, policy, color_jitter,
flip, shift (flips and shifts as they were written before the photo changes came).
"""
from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from deepwater.data import augment_policies as policies
from deepwater.errors import ParameterError

DEFAULT_SHIFT = 2  # pixels each way for a bare 'shift'
DEFAULT_CROP = 0.08  # torchvision's RandomResizedCrop: crops of 8%..100% of the area
DEFAULT_JITTER = 0.4  # brightness, contrast and saturation factors of 0.6..1.4 (timm's default)
DEFAULT_RANDAUGMENT = (2, 9)  # operations per image and magnitude (torchvision's defaults)
STREAM = 7919  # the augmentation's random stream, apart from the batch shuffler's (seeded by the seed alone)
HELP = ("use None (no augmentation) or a comma-separated list of: 'flip' (mirror half the images left-right), "
        f"'shift[:N]' (move each image by up to N pixels each way, zeros filling in; N={DEFAULT_SHIFT}), "
        f"'crop[:S]' (a random resized crop of S..1 of the area, S={DEFAULT_CROP}; also 'rrc'), "
        f"'color_jitter[:S[:H]]' (brightness, contrast, saturation x 1+-S, S={DEFAULT_JITTER}, hue +-H, H=0), "
        "'randaugment[:N[:M]]' (N operations at magnitude M of 30, 2:9) or 'trivial' (TrivialAugment), "
        "e.g. 'flip,shift' or 'crop,trivial,flip'")
ALIASES = {"rrc": "crop", "random_resized_crop": "crop", "trivialaugment": "trivial"}


class _Refused(ValueError):
    """An item of the augment value that the grammar refuses; the message says why."""


def _number(text: str, what: str, kind: type, low: float, high: float = math.inf) -> Any:
    """`text` read as a `kind` (int or float) in [low, high]; _Refused saying which number is wrong otherwise."""
    try:
        number = kind(text)
    except ValueError:
        number = None
    if number is None or not low <= number <= high:  # NaN fails both comparisons
        bounds = f"from {low:g}" + (f" to {high:g}" if high < math.inf else " up")
        raise _Refused(f"needs its {what} to be a{'n integer' if kind is int else ' number'} {bounds}")
    return number


def _numbers(args: list[str], names: list[tuple], defaults: tuple) -> tuple:
    """The item's numbers after the colons, each checked by _number(text, *name), the defaults where fewer are
    given."""
    if len(args) > len(names):
        raise _Refused(f"takes at most {len(names)} number{'s' if len(names) > 1 else ''}")
    read = tuple(_number(text, *spec) for text, spec in zip(args, names))
    return read + tuple(defaults[len(read):])


def _no_numbers(args: list[str]) -> bool:
    if args:
        raise _Refused("takes no number")
    return True


# each item's reader: its numbers after the colons -> (the Augmentation field it sets, the value)
READERS: dict[str, Callable[[list[str]], tuple[str, Any]]] = {
    "flip": lambda args: ("flip", _no_numbers(args)),
    "shift": lambda args: ("shift", _numbers(args, [("pixels", int, 1)], (DEFAULT_SHIFT,))[0]),
    "crop": lambda args: ("crop", _numbers(args, [("smallest area", float, 1e-3, 1)], (DEFAULT_CROP,))[0]),
    "color_jitter": lambda args: ("color_jitter", _numbers(args, [("strength", float, 0, 1), ("hue", float, 0, 0.5)],
                                                           (DEFAULT_JITTER, 0.0))),
    "randaugment": lambda args: ("randaugment", _numbers(
        args, [("operations", int, 1, len(policies.OPERATIONS)), ("magnitude", int, 0, policies.RANDAUGMENT_LEVELS)],
        DEFAULT_RANDAUGMENT)),
    "trivial": lambda args: ("trivial", _no_numbers(args)),
}


@dataclass(frozen=True)
class Augmentation:
    """Which changes to draw: a random resized crop keeping `crop`..1 of the area, RandAugment (operations,
    magnitude) or TrivialAugment, colour jitter (strength, hue), shifts of up to `shift` pixels and a left-right
    flip for half the images."""

    flip: bool = False
    shift: int = 0
    crop: float | None = None
    randaugment: tuple[int, int] | None = None
    trivial: bool = False
    color_jitter: tuple[float, float] | None = None

    @classmethod
    def parse(cls, name: str, value: Any) -> Augmentation | None:
        """The augmentation a parameter value names ('flip,shift', 'crop:0.25,randaugment:2:9', a list of names),
        or None for None, '' and 'none'; ParameterError naming `name`, the value and the choices otherwise."""
        if value is None:
            return None
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
            raise ParameterError(f"{name}={value!r} is not allowed: {HELP}.")
        chosen: dict[str, Any] = {}
        for item in (item.strip().lower() for item in items):
            kind, *args = item.split(":")
            kind = ALIASES.get(kind, kind)
            if kind in ("", "none") and not args:
                continue
            try:
                if kind not in READERS:
                    raise _Refused("is not an augmentation")
                key, setting = READERS[kind](args)
                if key in chosen:
                    raise _Refused("is given twice")
            except _Refused as refused:
                raise ParameterError(f"{name}={value!r} is not allowed: {item!r} {refused}; {HELP}.") from None
            chosen[key] = setting
        if "randaugment" in chosen and "trivial" in chosen:
            raise ParameterError(f"{name}={value!r} is not allowed: it names two policies, 'randaugment' and "
                                 "'trivial'; keep one of them.")
        return cls(**chosen) if chosen else None

    def spec(self) -> str:
        """The canonical text of this augmentation, e.g. 'crop:0.08,trivial,flip,shift:2'."""
        items = [f"crop:{self.crop:g}"] if self.crop else []
        items += [f"randaugment:{self.randaugment[0]}:{self.randaugment[1]}"] if self.randaugment else []
        items += ["trivial"] if self.trivial else []
        if self.color_jitter:
            strength, hue = self.color_jitter
            items.append(f"color_jitter:{strength:g}" + (f":{hue:g}" if hue else ""))
        return ",".join(items + (["flip"] if self.flip else []) + ([f"shift:{self.shift}"] if self.shift else []))

    @property
    def photo(self) -> bool:
        """Whether a change needs albumentations (crop, a policy, colour jitter) beyond flips and shifts."""
        return bool(self.crop or self.randaugment or self.trivial or self.color_jitter)

    def apply(self, pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A changed copy of the uint8 (N, C, H, W) batch `pixels`: the photo changes of each image, then shifted
        (zeros filling in), then flipped; `pixels` itself is left as it was."""
        out = self._photo_changes(pixels, rng) if self.photo else pixels
        if self.shift:
            out = _shifted(out, self.shift, rng)
        if out is pixels:
            out = pixels.copy()
        if self.flip:
            mirrored = rng.random(len(out)) < 0.5
            out[mirrored] = out[mirrored, :, :, ::-1]
        return out

    def generator(self, seed: int) -> np.random.Generator:
        """The random generator of a training run with `seed`; ParameterError naming the pip extra first, where
        a photo change needs albumentations and it is not installed."""
        if self.photo:
            policies.albumentations("augment", self.spec())
        return np.random.default_rng([seed, STREAM])

    def _photo_changes(self, pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Each image of the batch through the albumentations pipeline, seeded by one draw from `rng`."""
        _, _, height, width = pixels.shape
        seed = int(rng.integers(2 ** 32))
        if not len(pixels):  # every image of the batch left out (bad_images='skip')
            return pixels.copy()
        pipeline = _pipeline(self, height, width, threading.get_ident())
        pipeline.set_random_seed(seed)
        changed = [pipeline(image=np.ascontiguousarray(image))["image"] for image in pixels.transpose(0, 2, 3, 1)]
        return np.ascontiguousarray(np.stack(changed).reshape(pixels.shape[0], height, width, -1).transpose(0, 3, 1, 2))

    def stages(self, A: ModuleType, height: int, width: int) -> list:
        """The photo changes as albumentations transforms, in the order they run."""
        stages = [policies.random_resized_crop(A, height, width, self.crop)] if self.crop else []
        stages += [policies.randaugment(A, *self.randaugment)] if self.randaugment else []
        stages += [policies.trivial_augment(A)] if self.trivial else []
        return stages + ([policies.color_jitter(A, *self.color_jitter)] if self.color_jitter else [])


@functools.lru_cache(maxsize=16)
def _pipeline(augmentation: Augmentation, height: int, width: int, thread: int) -> Any:
    """The albumentations Compose of `augmentation` for height x width images on the thread `thread` (a Compose
    keeps its random state, so two threads never share one; built once, as it takes milliseconds)."""
    A = policies.albumentations("augment", augmentation.spec())
    return A.Compose(augmentation.stages(A, height, width))


def _shifted(pixels: np.ndarray, shift: int, rng: np.random.Generator) -> np.ndarray:
    """A copy of the (N, C, H, W) batch with each image moved by up to `shift` pixels each way, zeros filling in."""
    n, _, height, width = pixels.shape
    padded = np.pad(pixels, ((0, 0), (0, 0), (shift, shift), (shift, shift)))
    windows = sliding_window_view(padded, (height, width), axis=(2, 3))  # (N, C, 2s+1, 2s+1, H, W)
    return windows[np.arange(n), :, rng.integers(0, 2 * shift + 1, n), rng.integers(0, 2 * shift + 1, n)]


def check(name: str, value: Any) -> str | None:
    """The parameter table's check: the canonical text of the augmentation `value` names, or None."""
    augmentation = Augmentation.parse(name, value)
    return None if augmentation is None else augmentation.spec()
