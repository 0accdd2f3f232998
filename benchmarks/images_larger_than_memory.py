"""Training on images whose decoded arrays are many times `image_cache_mb`: peak memory and decodes (issue 25, part 2).

JPEG photos of about ImageNet's size (500 x 375, crops of scikit-image's sample photos) are decoded to 224 x 224 x 3
(147 KiB each) for two epochs of a small MLP (hidden [32]: the data's cost, not a network's, is measured) on torch's
CPU, each run in a fresh process, which reports its peak resident memory (getrusage's ru_maxrss), that peak's
growth over the process with torch loaded and computing (the framework's own memory, which no data setting
changes; the issue's budget "cache + 500 MB" is held against this growth) and how many images its reader
decoded. The runs:
- `small frame`: 300 images (2.7x image_cache_mb=16), streamed as below: the framework's and the network's own
  memory, the cache's and the prefetched batches' (the baseline);
- `in memory`: every decoded image fits in image_cache_mb (the memory grows with the frame);
- `streamed`: image_cache_mb 10x smaller than the decoded frame, no disk cache: batches decoded just ahead of the
  step, every epoch (memory stays at the baseline's: the cache and the prefetched batches, whatever the frame);
- `disk cache, run 1` and `run 2`: the same with image_cache_dir; run 1 decodes each image once (epoch 2 and the
  scoring read the disk), run 2 (another run, or a CV fold) decodes none.
Run: `python benchmarks/images_larger_than_memory.py [--images 1200] [--cache-mb 16]`.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import write_result
from PIL import Image
from skimage import data

import deepwater as dw

PHOTO_SIZE = (500, 375)
SHAPE = (224, 224, 3)


def write_photos(folder: Path, count: int, seed: int = 0) -> None:
    """`count` JPEGs of PHOTO_SIZE in two class folders, random crops of scikit-image's sample photos."""
    photos = [Image.fromarray(getattr(data, name)()).convert("RGB")
              for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")]
    rng = np.random.default_rng(seed)
    for i in range(count):
        photo = photos[i % len(photos)]
        width, height = int(photo.width * rng.uniform(0.5, 1.0)), int(photo.height * rng.uniform(0.5, 1.0))
        left, top = int(rng.integers(0, photo.width - width + 1)), int(rng.integers(0, photo.height - height + 1))
        crop = photo.crop((left, top, left + width, top + height)).resize(PHOTO_SIZE, Image.BILINEAR)
        target = folder / ("even" if i % 2 == 0 else "odd") / f"{i:05d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        crop.save(target, quality=90)


def train_once(folder: str, rows: int, cache_mb: float, cache_dir: str | None) -> dict:
    """Two epochs in this process: seconds, images decoded, resident memory before training and at its peak."""
    frame = dw.import_images(folder)
    frame = frame.sample(n=rows, random_state=0) if rows < len(frame) else frame  # both classes
    model = dw.DeepWaterEstimator(network="mlp", hidden=[32], backend="torch", gpu=False, image_shape=list(SHAPE[:2]),
                                  channels=SHAPE[2], epochs=2, mini_batch_size=32, score_training_samples=200,
                                  stopping_rounds=0, seed=1, quiet_mode=True, image_cache_mb=cache_mb,
                                  image_cache_dir=cache_dir)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    torch.ones(64, 64) @ torch.ones(64, 64)  # the framework loaded and computing: its memory is not the data's
    with_framework = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    model.train(x=["uri"], y="label", training_frame=frame)
    seconds = time.perf_counter() - began
    return {"rows": len(frame), "seconds": seconds, "images_per_second": 2 * len(frame) / seconds,
            "decoded": model._fitted.inputs.reader.decoded, "peak_rss_before_training_mb": before,
            "peak_rss_with_framework_mb": with_framework,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_child(folder: Path, rows: int, cache_mb: float, cache_dir: Path | None) -> dict:
    """train_once in a fresh Python process (its own peak memory)."""
    settings = json.dumps([str(folder), rows, cache_mb, None if cache_dir is None else str(cache_dir)])
    done = subprocess.run([sys.executable, __file__, "--child", settings], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the run {settings} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1200)
    parser.add_argument("--cache-mb", type=float, default=16.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(train_once(*json.loads(args.child))))
        return
    decoded_mb = args.images * int(np.prod(SHAPE)) / 2**20
    with tempfile.TemporaryDirectory(prefix="deepwater-bench-") as work:
        photos, cache = Path(work) / "photos", Path(work) / "decoded"
        write_photos(photos, args.images)
        runs = {
            "small frame": in_child(photos, args.images // 4, args.cache_mb, None),
            "in memory": in_child(photos, args.images, decoded_mb + 64, None),
            "streamed": in_child(photos, args.images, args.cache_mb, None),
            "disk cache, run 1": in_child(photos, args.images, args.cache_mb, cache),
            "disk cache, run 2": in_child(photos, args.images, args.cache_mb, cache),
        }
        cache_files_mb = sum(path.stat().st_size for path in cache.rglob("*.npy")) / 2**20
    print(f"{args.images} JPEGs {PHOTO_SIZE[0]} x {PHOTO_SIZE[1]} decoded to {SHAPE}: {decoded_mb:.0f} MB, "
          f"{decoded_mb / args.cache_mb:.1f}x image_cache_mb={args.cache_mb:g}; disk cache {cache_files_mb:.0f} MB")
    base = runs["small frame"]["peak_rss_mb"]
    for name, run in runs.items():
        print(f"{name:18s} rows {run['rows']:5d}  peak RSS {run['peak_rss_mb']:7.0f} MB "
              f"(+{run['peak_rss_mb'] - base:5.0f} MB over the small frame, "
              f"+{run['peak_rss_mb'] - run['peak_rss_with_framework_mb']:5.0f} MB over torch loaded; budget "
              f"{args.cache_mb + 500:.0f})  decoded {run['decoded']:5d}  "
              f"{run['images_per_second']:6.1f} images/s")
    path = write_result("images_larger_than_memory", {
        "settings": {"images": args.images, "cache_mb": args.cache_mb, "photo_size": PHOTO_SIZE, "shape": SHAPE,
                     "network": "mlp [32]", "backend": "torch", "epochs": 2, "mini_batch_size": 32},
        "decoded_mb": decoded_mb, "disk_cache_mb": cache_files_mb, "runs": runs})
    print("saved", path)


if __name__ == "__main__":
    main()
