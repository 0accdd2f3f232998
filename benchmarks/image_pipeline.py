"""Decoding photos at the machine's speed (issue 25, items 3 and 4): deepwater's image pipeline against a
hand-written torch DataLoader, and JPEG reduced-size decoding against a full decode.

1. `photos`: JPEGs of ImageNet's size (500 x 375, random crops of scikit-image's sample photos) decoded, resized
   to 224 x 224 x 3 and flipped at random for training, one pass per run, batches of 32, the decoded-image cache
   off (every image decoded, as in a stream larger than memory), with the same number of workers:
   - `deepwater, threads`: ImageSource over an ImageReader with `workers` threads (the default), augment='flip',
     batches prefetched as training takes them;
   - `deepwater, processes`: the same with image_decode_processes=`workers`, their start (spawning them, each
     importing deepwater) included, and `once started`: without it (a training run starts them once);
   - `torch DataLoader`: a Dataset whose __getitem__ does with PIL what torchvision's ImageFolder, Resize((224,
     224)), RandomHorizontalFlip and ToTensor do (torchvision itself is not a dependency of deepwater), in
     `workers` worker processes (their start included, as each epoch of a DataLoader without persistent workers).
   The contenders take turns, `repeats` times; the best pass of each is compared.
2. `12 MP`: 4000 x 3000 JPEGs (scikit-image's photos enlarged) to 224 x 224 on one thread: decode_image (JPEG
   draft mode, then the exact resize) against Pillow's full decode then the same resize; and their mean
   difference in grey levels.
3. `process transfer`: what returning a decoded 224 x 224 x 3 array from a worker process costs, per image,
   against returning nothing (why image_decode_processes returns arrays plainly rather than through shared memory).
Run: `python benchmarks/image_pipeline.py [--quick] [--images 2000] [--workers 2] [--repeats 2]`.
"""
from __future__ import annotations

import argparse
import io
import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from common import alternate, timed, write_result
from images_larger_than_memory import write_photos
from PIL import Image
from skimage import data

from deepwater.data.augment import Augmentation
from deepwater.data.images import ImageReader, ImageShape, decode_image
from deepwater.data.sources import ImageSource, iterate

SHAPE = ImageShape(224, 224, 3)
BATCH = 32
BIG = (4000, 3000)  # 12 megapixels


class PhotoDataset(torch.utils.data.Dataset):
    """What a torchvision user writes: open with PIL, convert, resize, flip half, to a float tensor in [0, 1]."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as image:
            picture = image.convert("RGB").resize((SHAPE.width, SHAPE.height), Image.BILINEAR)
        if torch.rand(1).item() < 0.5:
            picture = picture.transpose(Image.FLIP_LEFT_RIGHT)
        return torch.from_numpy(np.array(picture)).permute(2, 0, 1).float().div(255)


def dataloader_pass(paths: list[str], workers: int) -> int:
    """One pass of a torch DataLoader over `paths`, shuffled: the images it handed out."""
    loader = torch.utils.data.DataLoader(PhotoDataset(paths), batch_size=BATCH, shuffle=True, num_workers=workers)
    return sum(len(batch) for batch in loader)


def deepwater_pass(paths: list[str], workers: int, processes: int) -> tuple[int, float]:
    """One pass of deepwater's training batches over `paths`, shuffled and flipped: the images it handed out, and
    the seconds its first image took (the decoding processes' start, with them)."""
    with ImageReader(SHAPE, cache_mb=0, workers=workers, decode_processes=processes) as reader:
        start, _ = timed(lambda: reader.read_batch(paths[:1], [0]))
        source = ImageSource(paths[1:], reader, None).augmented(Augmentation.parse("augment", "flip"), seed=0)
        order = np.random.default_rng(0).permutation(len(paths) - 1)
        rows = [order[first:first + BATCH] for first in range(0, len(order), BATCH)]
        return 1 + sum(len(batch.rows) for batch in iterate(source, rows)), start


def photos(count: int, workers: int, repeats: int) -> dict:
    """Images per second of each pipeline (its best pass) and deepwater's against the DataLoader's."""
    with tempfile.TemporaryDirectory(prefix="deepwater-bench-") as work:
        write_photos(Path(work), count)
        paths = sorted(str(path) for path in Path(work).rglob("*.jpg"))
        runs: dict[str, Callable[[], tuple[int, float]]] = {
            "deepwater, threads": lambda: deepwater_pass(paths, workers, 0),
            "deepwater, processes": lambda: deepwater_pass(paths, workers, workers),
            "torch DataLoader": lambda: (dataloader_pass(paths, workers), 0.0),
        }
        timings = alternate(runs, repeats)
    rates, starts = {}, {}
    for name, passes in timings.items():
        assert all(images == count for _, (images, _) in passes), f"{name} handed out a wrong number of images"
        rates[name] = count / min(seconds for seconds, _ in passes)
        starts[name] = min(start for _, (_, start) in passes)
    rates["deepwater, processes once started"] = count / min(
        seconds - start for seconds, (_, start) in timings["deepwater, processes"])
    baseline = rates["torch DataLoader"]
    return {"images": count, "workers": workers, "repeats": repeats, "images_per_second": rates,
            "first_image_seconds": starts, "vs_dataloader": {name: rate / baseline for name, rate in rates.items()}}


def big_jpegs(count: int) -> list[bytes]:
    """`count` 12-megapixel JPEGs: scikit-image's photos enlarged to BIG."""
    names = ("astronaut", "coffee", "chelsea", "rocket")
    encoded = []
    for i in range(count):
        buffer = io.BytesIO()
        photo = Image.fromarray(getattr(data, names[i % len(names)])()).convert("RGB")
        photo.resize(BIG, Image.BICUBIC).save(buffer, "JPEG", quality=90)
        encoded.append(buffer.getvalue())
    return encoded


def full_decode(encoded: bytes) -> np.ndarray:
    """The photo decoded whole by Pillow, then resized as deepwater resizes (bilinear), as (C, H, W)."""
    with Image.open(io.BytesIO(encoded)) as image:
        image.load()
        resized = image.convert("RGB").resize((SHAPE.width, SHAPE.height), Image.BILINEAR)
    return np.asarray(resized).transpose(2, 0, 1)


def twelve_megapixels(count: int, repeats: int) -> dict:
    """Seconds per 12-megapixel JPEG, reduced (draft) against full decoding, and how far apart they come out."""
    encoded = big_jpegs(count)
    runs = {"draft decode": lambda: [decode_image(one, SHAPE) for one in encoded],
            "full decode": lambda: [full_decode(one) for one in encoded]}
    timings = alternate(runs, repeats)
    seconds = {name: min(t for t, _ in passes) / count for name, passes in timings.items()}
    drafted, full = timings["draft decode"][0][1], timings["full decode"][0][1]
    difference = float(np.mean([np.abs(a.astype(float) - b).mean() for a, b in zip(drafted, full)]))
    return {"images": count, "size": BIG, "seconds_per_image": seconds,
            "speedup": seconds["full decode"] / seconds["draft decode"], "mean_abs_difference": difference}


def decoded_array(shape: tuple[int, ...]) -> np.ndarray:
    return np.zeros(shape, dtype=np.uint8)


def nothing(shape: tuple[int, ...]) -> None:
    return None


def process_transfer(jobs: int, repeats: int) -> dict:
    """Microseconds per job (the best of `repeats` rounds of `jobs`) of a worker process returning a decoded array,
    and returning nothing."""
    shape = (SHAPE.channels, SHAPE.height, SHAPE.width)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(nothing, shape).result()  # started

        def rounds(job: Callable[[tuple[int, ...]], object]) -> Callable[[], None]:
            return lambda: [future.result() for future in [pool.submit(job, shape) for _ in range(jobs)]]

        timings = alternate({"array": rounds(decoded_array), "nothing": rounds(nothing)}, repeats)
    micros = {name: min(seconds for seconds, _ in passes) / jobs * 1e6 for name, passes in timings.items()}
    return {"jobs": jobs, "microseconds_per_job": micros, "array_cost_us": micros["array"] - micros["nothing"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="400 photos, 6 large JPEGs: a minute on 2 cores")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--big", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    count, big = (400, 6) if args.quick else (args.images, args.big)
    torch.set_num_threads(1)
    result = {"photos": photos(count, args.workers, args.repeats),
              "12 MP": twelve_megapixels(big, args.repeats),
              "process transfer": process_transfer(300, 3)}
    p = result["photos"]
    print(f"{count} JPEGs 500 x 375 -> 224 x 224 x 3 with flips, {args.workers} workers:")
    for name, rate in p["images_per_second"].items():
        print(f"  {name:34s} {rate:7.1f} images/s  {p['vs_dataloader'][name]:5.2f}x the DataLoader")
    print(f"  the processes' start (their first image): {p['first_image_seconds']['deepwater, processes']:.1f} s")
    b = result["12 MP"]
    print(f"{big} JPEGs {BIG[0]} x {BIG[1]} -> 224 x 224: draft {b['seconds_per_image']['draft decode'] * 1e3:.1f} ms, "
          f"full {b['seconds_per_image']['full decode'] * 1e3:.1f} ms per image: {b['speedup']:.1f}x; "
          f"mean difference {b['mean_abs_difference']:.2f} grey levels")
    t = result["process transfer"]
    print(f"a 224 x 224 x 3 array back from a worker process: {t['array_cost_us']:.0f} us per image more than nothing "
          f"({t['microseconds_per_job']['nothing']:.0f} us a job)")
    print("saved", write_result("image_pipeline", {"settings": vars(args), **result}))


if __name__ == "__main__":
    main()
