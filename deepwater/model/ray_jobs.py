"""Jobs (jobs.py) as Ray tasks, imported only once deepwater.init() has run.

The training and validation frames go to Ray's object store once per runner, and every task reads them
from there. A task trains one model and returns it as deepwater's saved-model archive (save_model's file as bytes,
so no network is ever pickled); the driver writes it to a temporary file and loads it with load_model,
checksums checked, into its own model store.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import ray

from deepwater.model.jobs import Failure, Job, Outcome, fit
from deepwater.storage.model_classes import Model
from deepwater.storage.model_store import held, remove
from deepwater.storage.saved_models import load_model, save_model
from deepwater.training.parameters import PARAMETERS


def archived(train: Callable[[], Model], model_id: str) -> bytes:
    """In a Ray worker: the saved-model archive's bytes of the model `train()` trains (named `model_id`). The
    worker's own model store forgets the model (and its fold models) afterwards."""
    before = held()
    try:
        model = train()
        with tempfile.TemporaryDirectory() as folder:
            return Path(save_model(model, folder)).read_bytes()
    finally:
        for held_id in (held() - before) | ({model_id} & held()):
            remove(held_id)


def train_task(job: Job, training: pd.DataFrame, validation: pd.DataFrame | None) -> bytes:
    """In a Ray worker: train `job`'s model and return its saved-model archive's bytes."""
    return archived(lambda: fit(job, training, validation), job.model_id)


def placed(params: dict[str, Any], cluster_gpus: bool) -> tuple[dict[str, Any], int]:
    """`params` as a task runs them, and the GPUs it asks of Ray: one when it trains with gpu=True on a cluster
    that has GPUs (inside the task that GPU is cuda:0, so device_id becomes [0])."""
    if cluster_gpus and params.get("gpu", PARAMETERS["gpu"].default):
        return {**params, "device_id": [0]}, 1
    return params, 0


def load_archive(archive: bytes) -> Model:
    """The model whose saved-model archive a task sent back (load_model checks every member's checksum)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model"
        path.write_bytes(archive)
        return load_model(path)


class RayRunner:
    """Jobs as Ray tasks of one CPU each, and one GPU each when they train with gpu=True on a cluster that
    has GPUs (inside the task that GPU is cuda:0, so such a job's device_id becomes [0])."""

    def __init__(self, training: pd.DataFrame, validation: pd.DataFrame | None, width: int) -> None:
        resources = ray.cluster_resources()
        self.width = width or max(int(resources.get("CPU", 1)), 1)
        self._gpus = resources.get("GPU", 0) > 0
        self._training = ray.put(training)
        self._validation = None if validation is None else \
            self._training if validation is training else ray.put(validation)
        self._task = ray.remote(train_task)
        self._pending: dict[ray.ObjectRef, Job] = {}

    def submit(self, job: Job) -> None:
        params, gpus = placed(job.params, self._gpus)
        job = replace(job, params=params)
        task = self._task.options(num_cpus=1, num_gpus=gpus)
        self._pending[task.remote(job, self._training, self._validation)] = job

    def __len__(self) -> int:
        return len(self._pending)

    def next_done(self) -> tuple[Job, Outcome]:
        ready, _ = ray.wait(list(self._pending), num_returns=1)
        job = self._pending.pop(ready[0])
        try:
            archive = ray.get(ready[0])
        except ray.exceptions.RayError as error:  # the task's own error (RayTaskError, with it as cause), a lost worker
            return job, Failure(job, error, str(error))
        return job, load_archive(archive)
