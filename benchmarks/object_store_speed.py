"""Training from an S3 prefix against training from the same photos in a local folder (issue 25, object stores).

A moto S3 server (its server mode, a separate process on 127.0.0.1, started and stopped here) holds JPEG photos of
about ImageNet's size (500 x 375, crops of scikit-image's sample photos, as images_larger_than_memory.py makes
them) under s3://photos/train/<class>/; the same files lie in a local folder. The same model (an MLP [32] on
224 x 224 x 3, torch on the CPU, 2 epochs, a fixed seed: the data's cost is measured, not a network's) trains from
`dw.import_images(folder)` and from `dw.import_images("s3://photos/train/", storage_options=...)`, taking turns
(local, s3, local, s3) after a warm-up run on 64 other local photos, so that neither pays for torch's first model.
Each contender has its own disk cache (`image_cache_dir`), empty before its first run, and an in-memory cache
(`image_cache_mb`) far smaller than the decoded frame, so that the disk cache is what later epochs read: run 1
reads each image from its source once (epoch 1), run 2 reads only the disk cache. The clock runs over `train`
(listing the source is not in it). Printed: images/s of each run, the ratio s3 / local (issue 25's target:
>= 0.8x), the images each run decoded, and the largest difference between the trained weights (the same seed and
the same images: 0).
Run: `python benchmarks/object_store_speed.py [--quick] [--images 600] [--cache-mb 16]`.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import fsspec
import numpy as np
from common import ServerProcess, alternate, write_result
from images_larger_than_memory import PHOTO_SIZE, SHAPE, write_photos

import deepwater as dw

BUCKET = "photos"


class MotoServer(ServerProcess):
    """moto's S3 server on a free loopback port, its request log read away so that the pipe never fills."""

    def __init__(self) -> None:
        super().__init__(lambda port: [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                         health="/moto-api/")
        self.options = {"endpoint_url": f"http://127.0.0.1:{self.port}", "key": "benchmark",
                        "secret": "benchmark"}

    def __enter__(self) -> MotoServer:
        super().__enter__()
        threading.Thread(target=self.process.stderr.read, daemon=True).start()
        return self

    def cpu_seconds(self) -> float:
        """The processor time the server has used so far (Linux's /proc/PID/stat: user + system)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def upload(folder: Path, options: dict[str, str]) -> float:
    """Put every file under `folder` to s3://BUCKET/train/ (a new bucket); return the seconds it took."""
    began = time.perf_counter()
    store = fsspec.filesystem("s3", **options)
    store.mkdir(BUCKET)
    for file in sorted(folder.rglob("*.jpg")):
        store.put_file(str(file), f"{BUCKET}/train/{file.relative_to(folder).as_posix()}")
    return time.perf_counter() - began


def trainer(source: str, cache_dir: Path, cache_mb: float,
            options: dict[str, str] | None) -> Callable[[], dict[str, Any]]:
    """One run's training from `source` (listed anew each run), reading through the disk cache `cache_dir`."""
    def run() -> dict[str, Any]:
        frame = dw.import_images(source, storage_options=options)
        model = dw.DeepWaterEstimator(network="mlp", hidden=[32], backend="torch", gpu=False,
                                      image_shape=list(SHAPE[:2]), channels=SHAPE[2], epochs=2, mini_batch_size=32,
                                      score_training_samples=200, stopping_rounds=0, seed=1, quiet_mode=True,
                                      image_cache_mb=cache_mb, image_cache_dir=str(cache_dir),
                                      storage_options=options)
        began = time.perf_counter()
        model.train(x=["uri"], y="label", training_frame=frame)
        seconds = time.perf_counter() - began
        return {"rows": len(frame), "first_uri": frame["uri"].iloc[0], "train_seconds": seconds,
                "images_per_second": 2 * len(frame) / seconds, "decoded": model._fitted.inputs.reader.decoded,
                "state": model._fitted.net.get_state()}
    return run


def largest_difference(states: list[dict[str, np.ndarray]]) -> float:
    """The largest absolute difference between the first state's arrays and each other's."""
    first = states[0]
    return max(float(np.max(np.abs(state[name] - first[name]))) for state in states[1:] for name in first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 photos (about half a minute on 2 cores)")
    parser.add_argument("--images", type=int, default=600, help="photos in the store (default 600)")
    parser.add_argument("--cache-mb", type=float, default=16.0, help="image_cache_mb (default 16)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each source, in turns (default 2)")
    args = parser.parse_args()
    images = 200 if args.quick else args.images
    with tempfile.TemporaryDirectory(prefix="deepwater-bench-") as work, MotoServer() as server:
        folder, warm_up = Path(work) / "train", Path(work) / "warm-up"
        write_photos(folder, images)
        write_photos(warm_up, 64, seed=1)
        trainer(str(warm_up), Path(work) / "cache-warm-up", args.cache_mb, None)()
        upload_seconds = upload(folder, server.options)
        store_cpu = server.cpu_seconds()
        runs = alternate({
            "local": trainer(str(folder), Path(work) / "cache-local", args.cache_mb, None),
            "s3": trainer(f"s3://{BUCKET}/train/", Path(work) / "cache-s3", args.cache_mb, server.options),
        }, args.repeats)
        store_cpu = server.cpu_seconds() - store_cpu
    results = {name: [result for _, result in timings] for name, timings in runs.items()}
    difference = largest_difference([result.pop("state") for timings in results.values() for result in timings])
    ratios = [s3["images_per_second"] / local["images_per_second"]
              for local, s3 in zip(results["local"], results["s3"])]
    print(f"{images} JPEGs {PHOTO_SIZE[0]} x {PHOTO_SIZE[1]} to {SHAPE}, uploaded to moto in {upload_seconds:.1f} s; "
          f"MLP [32], torch CPU, 2 epochs, image_cache_mb={args.cache_mb:g}, a disk cache each")
    for k, ratio in enumerate(ratios):
        local, s3 = results["local"][k], results["s3"][k]
        print(f"run {k + 1}: local {local['images_per_second']:6.1f} images/s (decoded {local['decoded']:4d})  "
              f"s3 {s3['images_per_second']:6.1f} images/s (decoded {s3['decoded']:4d})  s3 / local {ratio:.2f}x")
    s3_seconds = sum(s3["train_seconds"] for s3 in results["s3"])
    print(f"moto's server used {store_cpu:.1f} CPU s during the s3 runs ({s3_seconds:.1f} s of training), "
          f"on the same {os.cpu_count()} cores")
    print(f"largest weight difference between the {2 * args.repeats} models: {difference:.3g}")
    path = write_result("object_store_speed", {
        "settings": {"images": images, "photo_size": PHOTO_SIZE, "shape": SHAPE, "network": "mlp [32]",
                     "backend": "torch", "epochs": 2, "mini_batch_size": 32, "cache_mb": args.cache_mb,
                     "repeats": args.repeats},
        "upload_seconds": upload_seconds, "store_cpu_seconds": store_cpu, "runs": results, "s3_over_local": ratios,
        "largest_weight_difference": difference})
    print("saved", path)


if __name__ == "__main__":
    main()
