"""Mixup and CutMix (the `mixup` and `cutmix` parameters): training batches blended in pairs, trained against the
blend of their classes as soft targets, the same way on every backend.

A batch's rows are paired with a random permutation of themselves; a weight lam is drawn from Beta(alpha, alpha),
once per batch. Mixup blends the pairs' inputs, lam * x_a + (1 - lam) * x_b (images, or a dataset's encoded numeric
vectors); CutMix pastes a box of image b into image a, its area 1 - lam of the image, lam then set to the area
left (timm's correction for a box cut by the border). The targets are lam * onehot(y_a) + (1 - lam) * onehot(y_b);
label smoothing applies on top in the backend's loss, as timm does. With both alphas, each batch picks one of the
two with probability 0.5 (timm's switch). Row weights blend as the targets do.

The mixing happens on the numpy batch after augmentation, before the backend (on the thread that prepares batches
when the source has one), drawn from a generator seeded by the model's seed and the rows served before the batch,
so a run repeats exactly and a checkpoint restart (which serves the rows a run that never stopped would) goes on
with the draws that run would have made. Scoring reads the clean source.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from deepwater.data.sources import Batch, Source
from deepwater.errors import ParameterError
from deepwater.specs import TaskSpec

STREAM = 104729  # the mixing's random stream, apart from the shuffler's and augmentation's


@dataclass(frozen=True)
class Box:
    """Rows top:bottom and columns left:right of an image."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def area(self) -> int:
        return (self.bottom - self.top) * (self.right - self.left)


def cutmix_box(height: int, width: int, lam: float, rng: np.random.Generator) -> Box:
    """A box of about 1 - lam of a height x width image, its centre drawn uniformly, cut by the border."""
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    return Box(max(cy - cut_h // 2, 0), min(cy + cut_h // 2 + cut_h % 2, height),
               max(cx - cut_w // 2, 0), min(cx + cut_w // 2 + cut_w % 2, width))


def paste_box(x: np.ndarray, donors: np.ndarray, lam: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Images (n, C, H, W) `x` with a box of `donors` (the same shape) pasted in, and the share of each image
    left as it was (1 - the box's area fraction), which replaces lam."""
    height, width = x.shape[-2:]
    box = cutmix_box(height, width, lam, rng)
    out = x.copy()
    out[..., box.top:box.bottom, box.left:box.right] = donors[..., box.top:box.bottom, box.left:box.right]
    return out, 1.0 - box.area / (height * width)


@dataclass(frozen=True)
class Mixing:
    """Mixup and CutMix alphas (0: off) for `classes` classes."""

    mixup: float
    cutmix: float
    classes: int

    def mix(self, x: np.ndarray, y: np.ndarray, w: np.ndarray | None,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The batch (x, class codes y, row weights w) blended in pairs: inputs, soft targets (n, classes) float32
        and weights."""
        cut = self.cutmix > 0 and (self.mixup <= 0 or rng.random() < 0.5)
        alpha = self.cutmix if cut else self.mixup
        lam = float(rng.beta(alpha, alpha))
        pairs = rng.permutation(len(x))
        if cut:
            mixed, lam = paste_box(x, x[pairs], lam, rng)
        else:
            mixed = (lam * x + (1.0 - lam) * x[pairs]).astype(np.float32, copy=False)
        onehot = np.eye(self.classes, dtype=np.float32)[np.asarray(y, dtype=np.int64)]
        targets = (lam * onehot + (1.0 - lam) * onehot[pairs]).astype(np.float32)
        weights = None if w is None else (lam * w + (1.0 - lam) * w[pairs]).astype(np.float32)
        return mixed, targets, weights


class MixedSource:
    """A training source whose batches `mixing` blends, each drawn from a generator of (seed, the rows served
    before it: `served` at first, a restart's samples); everything else is `source`'s."""

    def __init__(self, source: Source, mixing: Mixing, seed: int, served: int = 0) -> None:
        self.source, self.mixing, self.seed, self.served = source, mixing, seed, served
        self.n, self.unit = source.n, source.unit

    @property
    def prefetch_depth(self) -> int:
        return self.source.prefetch_depth

    def batch(self, rows: np.ndarray) -> Batch:
        batch = self.source.batch(rows)
        rng = np.random.default_rng([self.seed, STREAM, self.served])
        self.served += len(rows)
        if len(batch.rows) == 0:
            return batch
        x, y, w = self.mixing.mix(batch.x, batch.y, batch.w, rng)
        return Batch(x, y, w, batch.rows)


def mixed(source: Source, mixup: float, cutmix: float, task: TaskSpec, input_shape: tuple[int, ...], net: object,
          replicated: bool, seed: int, served: int = 0) -> Source:
    """The training `source` with its batches mixed as the `mixup` and `cutmix` alphas say (0 or None: off), or
    as it is; ParameterError naming the parameter and its value when they cannot apply: a task without classes,
    cutmix on rows that are not images (`input_shape`, one row's, is not (C, H, W)), a net without soft targets
    (Net.takes_soft_targets), replicas on several devices or workers (`replicated`). `served` is the rows a
    restarted run has trained on already."""
    given = {name: value for name, value in (("mixup", mixup), ("cutmix", cutmix)) if value}
    if not given:
        return source
    named = ", ".join(f"{name}={value!r}" for name, value in given.items())
    if not task.is_classification:
        raise ParameterError(f"{named}: mixing blends class targets, but this model's task is {task.kind}; drop "
                             f"{' and '.join(given)} (or pass 0), or train on a categorical response.")
    if cutmix and len(input_shape) != 3:
        raise ParameterError(f"cutmix={cutmix!r} pastes a box of one image into another, but this model's inputs are "
                             "columns of a dataset, not images; drop cutmix (or pass 0), or use mixup, which blends "
                             "a dataset's encoded rows.")
    if not getattr(net, "takes_soft_targets", False):
        raise ParameterError(f"{named}: this network ({type(net).__name__}) trains on class labels only, not on the "
                             f"soft targets mixing makes; drop {' and '.join(given)} (or pass 0), or train a "
                             "built-in network.")
    if replicated:
        raise ParameterError(f"{named}: mixing is not available when training on several devices or workers; drop "
                             f"{' and '.join(given)} (or pass 0), or train on one device.")
    mixing = Mixing(float(mixup or 0.0), float(cutmix or 0.0), task.n_outputs)
    return MixedSource(source, mixing, seed, served)
