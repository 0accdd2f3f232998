"""The GPU benchmarks in one run (benchmarks/gpu_suite.sh): ResNet-50 at 224x224, deepwater vs hand-written loops.

Parts, each written to benchmarks/results/gpu/<part>.json (a part that cannot run records its error and the
suite goes on):
* torch_synthetic: random float32 images; deepwater's training loop (Trainer over an in-memory source, the
  torch net with precision='auto', channels-last, cuDNN autotuning, copies ahead) vs a hand-written torch loop
  with autocast (bfloat16, or float16 with a GradScaler), channels-last, pinned non-blocking copies and no loss
  read per step, training the very module deepwater built. images/s of the epochs after the first, and the GPU
  utilisation nvidia-smi reports while each runs.
* tensorflow_synthetic: the same for the TensorFlow backend vs a hand-written Keras loop on the same Keras model.
* torch_images: real decoded images (photos from scikit-image/scikit-learn, cropped and flipped into `rows`
  JPEG files): deepwater reading the files through its image pipeline vs the hand loop on the same images decoded
  in memory; and the pipeline's stall: the time the loop waits for its next batch, as a fraction of the time of
  the epochs from the second on (the decoded images then come from deepwater's cache).
* scaling: with two GPUs, the same images on device_id=[0, 1] against device_id=[0].

Runs alternate (hand, deepwater, hand, ...); each deepwater run is compared with the mean of the hand runs just
before and after it and the median ratio reported. `--smoke` runs every part on the CPU with tiny sizes, to
prove the suite works where no GPU is.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import threading
import time
import traceback
from collections.abc import Callable

import handwritten
import numpy as np
import pandas as pd
from common import RESULTS_DIR, write_result
from lenet_images import epoch_speeds
from PIL import Image

import deepwater as dw
import deepwater.training.trainer as trainer_module
from deepwater.analysis.metrics import ModelMetrics
from deepwater.data.sources import ArraySource
from deepwater.networks import build_graph
from deepwater.runtime.registry import get_backend
from deepwater.specs import OptimizerSpec, TaskSpec
from deepwater.training.trainer import LoopSettings, StoppingRule, Trainer

CLASSES, LEARNING_RATE, MOMENTUM = 10, 0.01, 0.9
TASK = TaskSpec("classification", CLASSES, "cross_entropy", "multinomial")
SGD = OptimizerSpec(learning_rate=LEARNING_RATE, learning_rate_annealing=0.0, momentum_start=MOMENTUM,
                    momentum_stable=MOMENTUM, clip_gradient=None)
OUT = os.path.join(RESULTS_DIR, "gpu")


# --------------------------------------------------------------------------- measuring

class Utilisation:
    """The mean GPU utilisation (%) nvidia-smi reports every 200 ms while the `with` block runs; None without it."""

    def __init__(self) -> None:
        self.samples: list[float] = []

    def __enter__(self) -> Utilisation:
        try:
            self._process = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "200"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self._process = None
            return self
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        for line in self._process.stdout:
            if line.strip().isdigit():
                self.samples.append(float(line))

    def __exit__(self, *exc) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait()

    @property
    def mean(self) -> float | None:
        return statistics.mean(self.samples) if self.samples else None


def alternated(hand: Callable[[], float], ours: Callable[[], float], repeats: int) -> dict:
    """hand, ours, hand, ... (`repeats` of ours); images/s, GPU utilisation and the median ratio."""
    speeds: dict[str, list] = {"handwritten": [], "deepwater": []}
    busy: dict[str, list] = {"handwritten": [], "deepwater": []}

    def measure(name: str, run: Callable[[], float]) -> None:
        with Utilisation() as gpu:
            speeds[name].append(run())
        busy[name].append(gpu.mean)

    measure("handwritten", hand)
    for _ in range(repeats):
        measure("deepwater", ours)
        measure("handwritten", hand)
    hands = speeds["handwritten"]
    ratios = [o / ((a + b) / 2) for o, a, b in zip(speeds["deepwater"], hands, hands[1:])]
    return {"images_per_s": speeds, "gpu_utilisation_percent": busy, "ratios": ratios,
            "ratio": statistics.median(ratios)}


# --------------------------------------------------------------------------- data

def synthetic(rows: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Random float32 images (rows, 3, size, size) in [0, 1) and labels."""
    rng = np.random.default_rng(0)
    return rng.random((rows, 3, size, size), dtype=np.float32), rng.integers(0, CLASSES, rows).astype(np.int64)


def photos() -> list[np.ndarray]:
    """The RGB photos that scikit-image and scikit-learn ship (whichever are installed), as uint8 arrays."""
    found = []
    try:
        from skimage import data

        found += [getattr(data, name)() for name in ("chelsea", "coffee", "astronaut", "rocket")]
    except ImportError:
        pass
    try:
        from sklearn.datasets import load_sample_images

        found += list(load_sample_images().images)
    except ImportError:
        pass
    return [p for p in found if p.ndim == 3] or [np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)]


def image_files(rows: int, size: int, folder: str) -> pd.DataFrame:
    """`rows` JPEG files of random crops (flipped at random) of the photos, and random labels."""
    os.makedirs(folder, exist_ok=True)
    rng, sources = np.random.default_rng(1), photos()
    uris = []
    for i in range(rows):
        path = os.path.join(folder, f"{size}_{i}.jpg")
        if not os.path.exists(path):
            photo = sources[i % len(sources)]
            side = min(photo.shape[:2]) // 2
            top, left = rng.integers(0, photo.shape[0] - side + 1), rng.integers(0, photo.shape[1] - side + 1)
            crop = Image.fromarray(photo[top:top + side, left:left + side]).resize((size, size))
            (crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop).save(path, quality=90)
        uris.append(path)
    return pd.DataFrame({"uri": uris, "label": pd.Categorical(rng.integers(0, CLASSES, rows), categories=range(CLASSES))})


def decoded(frame: pd.DataFrame) -> np.ndarray:
    """The frame's images decoded in memory the plain way, float32 (N, 3, H, W) in [0, 1]."""
    images = np.stack([np.asarray(Image.open(u).convert("RGB")) for u in frame["uri"]])
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


# --------------------------------------------------------------------------- the loops

def deepwater_loop(backend: str, network: str, images: np.ndarray, labels: np.ndarray, batch: int, epochs: int,
                   device: str, compile: bool) -> float:
    """deepwater's Trainer and net over an in-memory source; images/s of the epochs after the first."""
    net = get_backend(backend).build(build_graph(network, images.shape[1:], CLASSES), TASK, SGD, device, 1)
    net.configure_steps("auto", compile)
    settings = LoopSettings(epochs, batch, 1e9, 1.0, len(images), 0.0, False, True, "bench")
    rule = StoppingRule("logloss", False, 0, 0.0, "training")
    metrics = {"training": ModelMetrics("classification", {"logloss": 0.0}, len(images))}
    outcome = Trainer(net, ArraySource(images, labels), lambda: metrics, rule, settings,
                      np.random.default_rng(0)).run()
    return float(np.mean(epoch_speeds(pd.DataFrame(outcome.history))[1:]))


def hand_torch(backend_net, images: np.ndarray, labels: np.ndarray, batch: int, epochs: int) -> float:
    """A hand-written torch loop on the module deepwater built: autocast, channels-last, pinned non-blocking
    copies, no loss read per step (float16: a GradScaler)."""
    import torch
    from torch.nn import functional as F

    device = backend_net._device
    gpu = device.type == "cuda"
    model = backend_net.module.to(memory_format=torch.channels_last) if gpu else backend_net.module
    dtype = None if not gpu else torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, nesterov=True)
    model.train()

    def step(rows: np.ndarray) -> None:
        x, y = torch.from_numpy(images[rows]), torch.from_numpy(labels[rows])
        if gpu:
            x = x.pin_memory().to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            y = y.pin_memory().to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(model(x).float(), y)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    finish = torch.cuda.synchronize if gpu else (lambda: None)
    return handwritten._timed_epochs(step, len(images), batch, epochs - 1, finish)


def hand_keras(backend_net, images: np.ndarray, labels: np.ndarray, batch: int, epochs: int, compile: bool) -> float:
    """A hand-written Keras loop (tf.function step, Keras SGD) on the Keras model deepwater built (with its
    mixed-precision policy), reading the loss once at the end."""
    import keras
    import tensorflow as tf

    model, losses = backend_net.model, []
    optimizer = keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM, nesterov=True)
    if backend_net.precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=compile)
    def train(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, tf.cast(model(x, training=True), tf.float32))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    def step(rows: np.ndarray) -> None:
        losses.append(train(tf.convert_to_tensor(images[rows]), tf.convert_to_tensor(labels[rows])))

    with tf.device(backend_net._device):
        return handwritten._timed_epochs(step, len(images), batch, epochs - 1, lambda: losses and float(losses[-1]))


def built(backend: str, network: str, shape: tuple, device: str):
    net = get_backend(backend).build(build_graph(network, shape, CLASSES), TASK, SGD, device, 1)
    net.configure_steps("auto", False)
    return net


# --------------------------------------------------------------------------- the image pipeline

class StallClock:
    """Wraps the trainer's batch iterator: the time the loop waits for each batch, and when it asks."""

    def __init__(self) -> None:
        self.waits: list[tuple[float, float]] = []  # (asked at, waited)
        self.end = 0.0
        self._original = trainer_module.iterate_epochs

    def __enter__(self) -> StallClock:
        def timed(*args, **kwargs):
            batches = iter(self._original(*args, **kwargs))
            while True:
                asked = time.perf_counter()
                try:
                    batch = next(batches)
                except StopIteration:
                    self.end = time.perf_counter()
                    return
                self.waits.append((asked, time.perf_counter() - asked))
                yield batch

        trainer_module.iterate_epochs = timed
        return self

    def __exit__(self, *exc) -> None:
        trainer_module.iterate_epochs = self._original

    def fraction_after(self, first_batches: int) -> float:
        """Waiting time over wall time, from batch `first_batches` on."""
        later = self.waits[first_batches:]
        return sum(w for _, w in later) / max(self.end - later[0][0], 1e-9)


def estimator(backend: str, frame: pd.DataFrame, size: int, batch: int, epochs: int, gpu: bool,
              device_id: list[int]) -> dw.DeepWaterEstimator:
    model = dw.DeepWaterEstimator(
        backend=backend, network="resnet50", problem_type="image", image_shape=[size, size], channels=3,
        epochs=epochs, mini_batch_size=batch, learning_rate=LEARNING_RATE, learning_rate_annealing=0.0,
        clip_gradient=None, train_samples_per_iteration=len(frame), score_training_samples=batch, stopping_rounds=0,
        overwrite_with_best_model=False, gpu=gpu, device_id=device_id, seed=1, quiet_mode=True)
    return model.train(x=["uri"], y="label", training_frame=frame)


def images_part(args, device: str, gpu: bool) -> dict:
    frame = image_files(args.image_rows, args.size, os.path.join(args.data_dir, "photos"))
    images, labels = decoded(frame), frame["label"].cat.codes.to_numpy().astype(np.int64)
    clocks: list[StallClock] = []

    def ours() -> float:
        with StallClock() as clock:
            model = estimator("torch", frame, args.size, args.batch, args.epochs, gpu, [0])
        clocks.append(clock)
        return float(np.mean(epoch_speeds(model.scoring_history())[1:]))

    result = alternated(lambda: hand_torch(built("torch", "resnet50", images.shape[1:], device), images, labels,
                                           args.batch, args.epochs), ours, args.repeats)
    per_epoch = -(-len(frame) // args.batch)
    result["stall_fraction_from_epoch_2"] = [c.fraction_after(per_epoch) for c in clocks]
    return {"rows": len(frame), **result}


def scaling_part(args, gpu: bool) -> dict:
    import torch

    if not gpu or torch.cuda.device_count() < 2:
        return {"skipped": f"{torch.cuda.device_count()} GPU(s): scaling needs two"}
    frame = image_files(args.image_rows, args.size, os.path.join(args.data_dir, "photos"))
    speed = {}
    for ids in ([0], [0, 1]):
        model = estimator("torch", frame, args.size, args.batch * len(ids), args.epochs, True, ids)
        speed[str(ids)] = float(np.mean(epoch_speeds(model.scoring_history())[1:]))
    return {"images_per_s": speed, "scaling": speed["[0, 1]"] / speed["[0]"]}


# --------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: proves the suite runs")
    parser.add_argument("--parts", nargs="+", default=["torch_synthetic", "tensorflow_synthetic", "torch_images",
                                                       "scaling"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rows", type=int, default=3072, help="synthetic images")
    parser.add_argument("--image-rows", type=int, default=2048, help="JPEG files")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="the first is warm-up")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="compile=True on both sides")
    parser.add_argument("--data-dir", default=os.path.expanduser("~/.cache/deepwater/benchmarks"))
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    if args.smoke:
        args.size, args.rows, args.image_rows, args.batch, args.epochs, args.repeats = 32, 48, 48, 16, 2, 1
    import torch

    gpu = torch.cuda.is_available() and not args.smoke
    device = "cuda:0" if gpu else "cpu"
    x, y = synthetic(args.rows, args.size)
    parts = {
        "torch_synthetic": lambda: alternated(
            lambda: hand_torch(built("torch", "resnet50", x.shape[1:], device), x, y, args.batch, args.epochs),
            lambda: deepwater_loop("torch", "resnet50", x, y, args.batch, args.epochs, device, args.compile),
            args.repeats),
        "tensorflow_synthetic": lambda: alternated(
            lambda: hand_keras(built("tensorflow", "resnet50", x.shape[1:], device), x, y, args.batch, args.epochs,
                               args.compile),
            lambda: deepwater_loop("tensorflow", "resnet50", x, y, args.batch, args.epochs, device, args.compile),
            args.repeats),
        "torch_images": lambda: images_part(args, device, gpu),
        "scaling": lambda: scaling_part(args, gpu),
    }
    settings = {**vars(args), "device": device,
                "gpu_name": torch.cuda.get_device_name(0) if gpu else None}
    for name in args.parts:
        began = time.perf_counter()
        try:
            result = parts[name]()
        except Exception as error:  # one part's failure (a framework missing on the machine) must not stop the rest
            result = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        result["seconds"] = time.perf_counter() - began
        path = write_result(f"{name}{'_smoke' if args.smoke else ''}", {"settings": settings, **result}, args.out)
        print(f"{name}: {result.get('ratio', result.get('error', result.get('skipped', '')))}  "
              f"({result['seconds']:.0f} s) -> {path}", flush=True)


if __name__ == "__main__":
    main()
