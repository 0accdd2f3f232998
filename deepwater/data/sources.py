"""Mini-batches for the trainer and for scoring: from a design matrix or from image URIs.

A source hands out Batch objects for given row numbers; `batches` walks rows in order or shuffled;
`prefetch` prepares the next batches on a background thread while the network computes.
"""
from __future__ import annotations

import copy
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

from deepwater.data.augment import Augmentation
from deepwater.data.images import ImageReader
from deepwater.errors import FrameError
from deepwater.progress import progress

IMAGE_PREFETCH = 3  # batches of images decoded ahead of the step: with the cache, what bounds a stream's memory


@dataclass
class Batch:
    """Inputs, targets, row weights and the frame rows they came from."""

    x: np.ndarray
    y: np.ndarray | None
    w: np.ndarray | None
    rows: np.ndarray


class Source(Protocol):
    n: int
    prefetch_depth: int
    unit: str  # what a row is, for the progress line's rate: 'rows' or 'images'

    def batch(self, rows: np.ndarray) -> Batch: ...


class ArraySource:
    """Rows of a float32 design matrix."""

    prefetch_depth = 0  # slicing a matrix is cheaper than handing work to a thread
    unit = "rows"

    def __init__(self, x: np.ndarray, y: np.ndarray | None = None, w: np.ndarray | None = None) -> None:
        self.x, self.y, self.w = x, y, w
        self.n = len(x)

    def batch(self, rows: np.ndarray) -> Batch:
        taken: np.ndarray | slice = rows
        if len(rows) > 1 and rows[-1] - rows[0] == len(rows) - 1 and (np.diff(rows) == 1).all():
            taken = slice(int(rows[0]), int(rows[-1]) + 1)  # rows in order (scoring): views, not copies
        return Batch(self.x[taken], None if self.y is None else self.y[taken],
                     None if self.w is None else self.w[taken], rows)


class ImageSource:
    """Images decoded from URIs by an ImageReader, as float32 (pixels - offset) * scale.

    `offset` is a mean image (C, H, W), a per-channel (C, 1, 1) array or None (0); `scale` is a number
    or a per-channel (C, 1, 1) array. The defaults give Deep Water's (pixels - mean_image) / 255.
    A training source may change its images by an Augmentation (see augmented()).
    """

    augmentation: Augmentation | None = None
    rng: np.random.Generator | None = None
    unit = "images"

    @property
    def prefetch_depth(self) -> int:
        """Decode (and augment) ahead on a thread while there is such work; once all images are cached and
        none is changed, a thread would only compete with the framework for the interpreter."""
        return 0 if self.augmentation is None and self.reader.holds(self.uris) else IMAGE_PREFETCH

    def augmented(self, augmentation: Augmentation, seed: int) -> ImageSource:
        """This source with its batches changed by `augmentation`, drawn from a generator seeded by `seed`
        (for training; the source itself stays as it was, for scoring)."""
        source = copy.copy(self)
        source.augmentation, source.rng = augmentation, augmentation.generator(seed)
        return source

    def __init__(self, uris: Sequence[str], reader: ImageReader, offset: np.ndarray | None,
                 y: np.ndarray | None = None, w: np.ndarray | None = None,
                 scale: float | np.ndarray = 1.0 / 255.0) -> None:
        self.uris = np.asarray(uris, dtype=object)
        self.reader = reader
        self.offset = None if offset is None else np.asarray(offset, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)
        self.y, self.w = y, w
        self.n = len(self.uris)

    def batch(self, rows: np.ndarray) -> Batch:
        pixels, ok = self.reader.read_batch(list(self.uris[rows]), rows.tolist())
        if self.augmentation is not None:
            pixels = self.augmentation.apply(pixels, self.rng)
        x = image_input(pixels, self.offset, self.scale)
        kept = rows[ok]
        return Batch(x, None if self.y is None else self.y[kept], None if self.w is None else self.w[kept], kept)


def preload_images(sources: Iterable[Source | None], quiet: bool = False) -> None:
    """Decode now the images of each image source among `sources` whose images fit in its reader's cache
    (ImageReader.preload), with a progress bar unless `quiet`; other sources are left as they are."""
    images = [source for source in sources if isinstance(source, ImageSource)]
    if not images:
        return
    with progress(desc="decoding images", unit="images", disable=quiet) as bar:
        for source in images:
            source.reader.preload(source.uris, bar.update)


def image_input(pixels: np.ndarray, offset: np.ndarray | None, scale: float | np.ndarray) -> np.ndarray:
    """The network's float32 input for uint8 images (n, C, H, W): (pixels - offset) * scale."""
    x = pixels.astype(np.float32)
    if offset is not None:
        x -= offset
    x *= np.asarray(scale, dtype=np.float32)
    return x


def epochs(n: int, batch_size: int, total: float | None = None,
           rng: np.random.Generator | None = None) -> Iterator[list[np.ndarray]]:
    """Row numbers in batches, one list per pass over the rows: `total` rows in all (default n; math.inf:
    without end), reshuffled each pass when `rng` is given."""
    total = n if total is None else total
    served = 0
    while served < total:
        order = rng.permutation(n) if rng is not None else np.arange(n)
        epoch = []
        for start in range(0, n, batch_size):
            take = min(batch_size, n - start, total - served)
            if take <= 0:
                break
            epoch.append(order[start:start + take])
            served += take
        yield epoch


def batches(n: int, batch_size: int, total: int | None = None,
            rng: np.random.Generator | None = None) -> Iterator[np.ndarray]:
    """Row numbers in batches: `total` rows in all (default n), reshuffled each pass when `rng` is given."""
    for epoch in epochs(n, batch_size, total, rng):
        yield from epoch


def prefetch(items: Iterable, depth: int) -> Iterator:
    """Iterate `items` on a background thread, `depth` ahead; errors surface in the caller."""
    if depth <= 0:
        yield from items
        return
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((done, None))
        except BaseException as error:  # handed to the consumer, re-raised there
            put((done, error))

    thread = threading.Thread(target=work, name="deepwater-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def iterate(source: Source, rows: Iterable[np.ndarray]) -> Iterator[Batch]:
    """Batches of `source` for each group of rows, prefetched as deep as the source asks."""
    return prefetch((source.batch(r) for r in rows), source.prefetch_depth)


def iterate_epochs(source: Source, epoch_rows: Iterable[list[np.ndarray]],
                   on_next: Callable[[Batch], None] | None = None) -> Iterator[Batch]:
    """Batches of `source` epoch after epoch; the prefetch depth is asked again at each epoch. With `on_next`,
    each batch is handed to it before the one before it is yielded (one batch ahead, within an epoch, so that
    the shuffler draws no later than without it)."""
    for rows in epoch_rows:
        batches = iterate(source, rows)
        yield from batches if on_next is None else ahead(batches, on_next)


def ahead(items: Iterable[Batch], on_next: Callable[[Batch], None]) -> Iterator[Batch]:
    """Yield `items`, telling `on_next` about each one item before it is yielded (the first at once)."""
    iterator = iter(items)
    current = next(iterator, None)
    if current is None:
        return
    on_next(current)
    for following in iterator:
        on_next(following)
        yield current
        current = following
    yield current


SCORING_BYTES = 4 << 20  # the float32 input of a scoring batch sized for throughput (4 MiB)


def throughput_batch(least: int, row_values: int) -> int:
    """Rows per scoring call chosen for throughput: enough rows for SCORING_BYTES of float32 input (1,462 MNIST
    rows of 717 values), so that per-call costs vanish, and at least `least` (an image network's large rows)."""
    return max(least, SCORING_BYTES // (4 * max(row_values, 1)))


def map_batches(source: Source, fn: Callable[[np.ndarray], np.ndarray], batch_size: int,
                advance: Callable[[int], object] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """fn(x) on every batch of `source` in order; the outputs of the rows that decoded, and those rows.

    `advance(n)` (a progress bar's update) is told how many rows each batch covered. A source whose every
    row was skipped (bad_images='skip') is a FrameError.
    """
    if isinstance(source, ArraySource) and 0 < source.n <= batch_size:  # one batch: called at once
        if advance is not None:
            advance(source.n)
        return _scored(fn, source.x), np.arange(source.n)
    outputs, rows = [], []
    groups = list(batches(source.n, batch_size))
    for group, batch in zip(groups, iterate(source, groups)):
        if len(batch.rows):
            outputs.append(_scored(fn, batch.x))
            rows.append(batch.rows)
        if advance is not None:
            advance(len(group))
    if not outputs:
        raise FrameError("no row of the frame could be scored (every image was skipped).")
    return np.concatenate(outputs), np.concatenate(rows)


def _scored(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """fn(x), with NaN outputs for the rows whose input holds inf (a value beyond float32 in the frame): such
    rows have no prediction. The network sees zeros in their place, never inf."""
    if not np.isinf(x).any():  # the usual case, in one pass; rows are looked at only when some value is inf
        return fn(x)
    bad = np.isinf(x.reshape(len(x), -1)).any(axis=1)
    x = x.copy()
    x[bad] = 0.0
    out = fn(x)
    out = np.array(out, dtype=np.result_type(out.dtype, np.float32))
    out[bad] = np.nan
    return out
