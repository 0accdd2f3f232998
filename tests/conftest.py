"""Shared fixtures: a small learnable dataset, a regression set and a tiny frame of PNG images."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

# The tests train many tiny networks. With several intra-op threads on a small, busy machine each step of
# such a network waits on thread hand-offs (measured: 30 steps of a 16-unit MLP took 2 s with 2 threads under
# load, 0.03 s with 1), so run the framework single-threaded unless the caller chose otherwise. Set before
# torch is first imported (the library imports it lazily, when a model is built).
os.environ.setdefault("OMP_NUM_THREADS", "1")


def installed_backends() -> list[str]:
    """The shipped backends whose framework imports here, in backend='auto' order."""
    from deepwater.runtime.registry import installed_backends as installed  # after OMP_NUM_THREADS is set

    return installed()


def reproducible_mlp(backend: str, rows: int) -> dict[str, object]:
    """Parameters of a small MLP that scores once per epoch of `rows` rows (a reproducible history) and keeps its
    last weights: the base of the checkpoint and ema tests."""
    return {"hidden": [8], "epochs": 2, "gpu": False, "quiet_mode": True, "seed": 7, "backend": backend,
            "mini_batch_size": 20, "train_samples_per_iteration": rows, "stopping_rounds": 0,
            "overwrite_with_best_model": False, "learning_rate": 0.02, "momentum_start": 0.5, "momentum_ramp": 150,
            "learning_rate_annealing": 1e-3}


def make_blobs(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Three well separated gaussian blobs in (x1, x2), a categorical column that agrees with the
    class most of the time, and a string label column 'label' with classes a, b, c."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    codes = np.arange(n) % 3
    rng.shuffle(codes)
    xy = centres[codes] + rng.normal(scale=0.7, size=(n, 2))
    colours = np.array(["red", "green", "blue"])
    noisy = np.where(rng.random(n) < 0.8, codes, rng.integers(0, 3, size=n))
    return pd.DataFrame({
        "x1": xy[:, 0],
        "x2": xy[:, 1] * 10.0 + 50.0,  # a different scale, so standardisation matters
        "colour": pd.Categorical(colours[noisy]),
        "label": pd.Categorical(np.array(["a", "b", "c"])[codes]),
    })


@pytest.fixture
def blobs() -> pd.DataFrame:
    return make_blobs(300, seed=0)


@pytest.fixture
def blobs_valid() -> pd.DataFrame:
    return make_blobs(150, seed=1)


@pytest.fixture
def binary_blobs() -> pd.DataFrame:
    frame = make_blobs(300, seed=2)
    frame = frame[frame["label"] != "c"].copy()
    frame["label"] = frame["label"].cat.remove_unused_categories()
    return frame.reset_index(drop=True)


def make_linear(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """y = 3*a - 2*b + 5 + offset(group) + small noise, on a scale far from 0 (mean about 105)."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.normal(size=n)
    group = rng.choice(["u", "v"], size=n)
    y = 100.0 + 3.0 * a - 2.0 * b + np.where(group == "u", 2.0, -2.0) + rng.normal(scale=0.3, size=n)
    return pd.DataFrame({"a": a, "b": b, "group": pd.Categorical(group), "y": y})


@pytest.fixture
def linear() -> pd.DataFrame:
    return make_linear(300, seed=0)


@pytest.fixture
def linear_valid() -> pd.DataFrame:
    return make_linear(200, seed=1)


def write_png(path: Path, value: int, size: int = 12, seed: int = 0) -> Path:
    """A grey PNG of about brightness `value`, with a little noise."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(value + rng.integers(-20, 21, size=(size, size)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels, mode="L").save(path)
    return path


@pytest.fixture
def image_frame(tmp_path: Path) -> pd.DataFrame:
    """24 tiny 12x12 PNGs: 'dark' images (brightness ~40) and 'light' ones (~215)."""
    folder = tmp_path / "images"
    folder.mkdir()
    uris, labels = [], []
    for i in range(24):
        label = "dark" if i % 2 == 0 else "light"
        path = write_png(folder / f"img{i:02d}.png", 40 if label == "dark" else 215, seed=i)
        uris.append(str(path))
        labels.append(label)
    return pd.DataFrame({"uri": uris, "label": pd.Categorical(labels)})


GUARD_SECONDS = 60  # a hang guard, far above the milliseconds a refusal takes: no timing is asserted


def release(fifo: Path) -> None:
    """Give a FIFO's blocked readers a writer that closes at once (they read an empty file and go on)."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # no reader waiting
        pass


def outcome(call: Callable[[], object], fifo: Path) -> object:
    """What call() returns or raises, run on a thread; the test fails, instead of hanging, while the call is still
    blocked (on `fifo`) after GUARD_SECONDS, and the FIFO is then released so that the thread ends."""
    result: list[object] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as error:  # noqa: BLE001 (handed to the test)
            result.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(GUARD_SECONDS)
    if thread.is_alive():
        for _ in range(100):
            release(fifo)
            thread.join(0.1)
        pytest.fail(f"the call was still blocked on the FIFO {fifo} after {GUARD_SECONDS}s")
    return result[0]


def job_ended(job: dict) -> bool:
    """A Flow job (its GET /api/jobs/{id} answer) that is neither queued nor running."""
    return job["status"] not in ("queued", "running")


def wait_for_job(client, key: str, until: Callable[[dict], bool] = job_ended, guard: float = 120.0) -> dict:
    """Flow job `key` polled through `client` until `until(job)`; `guard` seconds is a hang guard, no timing."""
    deadline = time.monotonic() + guard
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{key}").json()
        if until(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {key} did not get there: {job}")
