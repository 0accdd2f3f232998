"""Random changes to training images (the `augment` parameter): horizontal flips and shifts of a few pixels.

Applied to decoded uint8 (N, C, H, W) batches on the thread that prepares training batches (the prefetch
thread), never to the images the decoded-image cache keeps, and never at scoring or predict. The draws come
from a generator seeded from the model's seed and consumed in batch order, so a run repeats exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from deepwater.errors import ParameterError

DEFAULT_SHIFT = 2  # pixels each way for a bare 'shift'
STREAM = 7919  # the augmentation's random stream, apart from the batch shuffler's (seeded by the seed alone)
HELP = ("use None (no augmentation) or a comma-separated list of 'flip' (mirror half the images left-right) and "
        f"'shift' (move each image by up to {DEFAULT_SHIFT} pixels each way, zeros filling in; 'shift:N' for up "
        "to N), e.g. 'flip,shift'")


@dataclass(frozen=True)
class Augmentation:
    """Which changes to draw: a left-right flip for half the images, and shifts of up to `shift` pixels."""

    flip: bool = False
    shift: int = 0

    @classmethod
    def parse(cls, name: str, value: Any) -> Augmentation | None:
        """The augmentation a parameter value names ('flip,shift', 'shift:3', a list of names), or None for
        None, '' and 'none'; ParameterError naming `name`, the value and the choices otherwise."""
        if value is None:
            return None
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
            raise ParameterError(f"{name}={value!r} is not allowed: {HELP}.")
        flip, shift = False, 0
        for item in (item.strip().lower() for item in items):
            kind, _, amount = item.partition(":")
            if kind in ("", "none") and not amount:
                continue
            if kind == "flip" and not amount:
                flip = True
            elif kind == "shift" and (not amount or (amount.isdigit() and int(amount) >= 1)):
                shift = int(amount) if amount else DEFAULT_SHIFT
            else:
                raise ParameterError(f"{name}={value!r} is not allowed: {item!r} is not an augmentation; {HELP}.")
        return cls(flip, shift) if flip or shift else None

    def spec(self) -> str:
        """The canonical text of this augmentation, e.g. 'flip,shift:2'."""
        return ",".join((["flip"] if self.flip else []) + ([f"shift:{self.shift}"] if self.shift else []))

    def apply(self, pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A changed copy of the uint8 (N, C, H, W) batch `pixels`: shifted (zeros filling in), then flipped."""
        n, _, height, width = pixels.shape
        if self.shift:
            s = self.shift
            padded = np.pad(pixels, ((0, 0), (0, 0), (s, s), (s, s)))
            windows = sliding_window_view(padded, (height, width), axis=(2, 3))  # (N, C, 2s+1, 2s+1, H, W)
            out = windows[np.arange(n), :, rng.integers(0, 2 * s + 1, n), rng.integers(0, 2 * s + 1, n)]
        else:
            out = pixels.copy()
        if self.flip:
            mirrored = rng.random(n) < 0.5
            out[mirrored] = out[mirrored, :, :, ::-1]
        return out

    def generator(self, seed: int) -> np.random.Generator:
        """The random generator of a training run with `seed`."""
        return np.random.default_rng([seed, STREAM])


def check(name: str, value: Any) -> str | None:
    """The parameter table's check: the canonical text of the augmentation `value` names, or None."""
    augmentation = Augmentation.parse(name, value)
    return None if augmentation is None else augmentation.spec()
