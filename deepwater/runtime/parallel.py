"""One model on several devices: the global mini-batch split across replicas, whatever the backend.

`DataParallelNet` stands in for the estimator's net while it trains on several devices: each
train_batch() splits the global batch (mini_batch_size keeps H2O's meaning) into one shard per device
and the backend's ReplicaGroup steps all replicas together; everything else (scoring, best-model
tracking, checkpoints) reads and writes the net itself, which the replicas' weights are pulled into
when it is read after steps. With one device the estimator never makes one, so that path costs nothing.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from deepwater.backends.base import DataParallel, RayDataParallel, ReplicaGroup, split_batch
from deepwater.errors import DeviceError, ParameterError, warn_user
from deepwater.runtime.cluster import connected, current


class DataParallelNet:
    """The estimator's `net` trained by `group` (of `replicas` replicas); reads go to the net, pulled first."""

    def __init__(self, net: Any, group: ReplicaGroup, replicas: int) -> None:
        self.net, self.group, self.replicas = net, group, replicas
        self._stale = False  # True when the replicas stepped since the last pull

    def train_batch(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
        """One step of every replica on its shard of the batch; returns the batch's mean loss."""
        if len(x) == 0:
            return float("nan")
        loss = self.group.step(split_batch(x, self.net.targets(x, y), weights, self.replicas), self.net.samples)
        self.net.samples += len(x)
        self._stale = True
        return loss

    # the trainer's lazy step and copies ahead are the single net's; replicas step through train_batch()
    train_step = train_batch
    prefetch = None

    def _current(self) -> Any:
        if self._stale:
            self.group.pull()
            self._stale = False
        return self.net

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._current().predict(x)

    def features(self, x: np.ndarray, layer: str) -> np.ndarray:
        return self._current().features(x, layer)

    def get_state(self) -> dict[str, np.ndarray]:
        return self._current().get_state()

    def training_state(self) -> dict[str, np.ndarray]:
        return self._current().training_state()

    def set_state(self, state: dict[str, np.ndarray], source: str = "set_state()") -> None:
        self._current().set_state(state, source)
        self.group.push()

    def set_training_state(self, state: dict[str, np.ndarray], source: str = "set_training_state()") -> None:
        self._current().set_training_state(state, source)
        self.group.push()

    def __getattr__(self, name: str) -> Any:  # layers(), parameter_count(), task, device ...: the net's own
        return getattr(self.net, name)


def check_parallel(backend: Any, devices: list[str], workers: int, graph: Any) -> None:
    """Check that `backend` can train a built-in network (`graph` None) on `devices` or over `workers` Ray
    workers, and let it set the devices up before it builds the net; DeviceError or ParameterError naming
    device_id or num_workers when it cannot."""
    if len(devices) == 1 and not workers:
        return
    if graph is not None:
        asked = f"num_workers={workers}" if workers else \
            f"device_id lists {len(devices)} devices ({', '.join(devices)})"
        raise DeviceError(f"{asked}, but a user graph (network='user') trains on one device in this process; pass "
                          "one device_id, e.g. device_id=[0], and num_workers=0.")
    if workers:
        _check_workers(backend, devices, workers)
        return
    if not isinstance(backend, DataParallel):
        raise DeviceError(f"device_id lists {len(devices)} devices, but backend {backend.name!r} cannot train one "
                          "model on several devices; pass one device_id, or use backend='torch', 'tensorflow' or "
                          "'mxnet'.")
    backend.prepare_devices(devices)


def _check_workers(backend: Any, devices: list[str], workers: int) -> None:
    if len(devices) > 1:
        raise ParameterError(f"num_workers={workers} with device_id={devices}: each Ray worker trains on one device; "
                             "pass device_id=[0] (or num_workers=0 to train on the listed devices here).")
    if not connected():
        raise ParameterError(f"num_workers={workers} trains one model over Ray workers, but no Ray runtime is "
                             "joined: call deepwater.init(address=...) first, or pass num_workers=0.")
    if not isinstance(backend, RayDataParallel):
        limit = getattr(backend, "ray_train_limit", "")
        raise ParameterError(f"num_workers={workers}: backend {backend.name!r} cannot train one model over Ray "
                             f"workers{': ' + limit if limit else ''}. Use backend='torch' or 'tensorflow', or "
                             "num_workers=0.")


def _group(backend: Any, net: Any, devices: list[str], workers: int, gpu: bool) -> ReplicaGroup:
    """The replicas: Ray workers (on GPUs when `gpu` and the cluster has some), else the devices here."""
    if not workers:
        return backend.replicate(net, devices)
    cluster_gpus = current().gpus
    if gpu and not cluster_gpus:
        warn_user(f"gpu=True but the Ray cluster has no GPU; num_workers={workers} train on CPUs. Pass gpu=False "
                  "to silence this warning.", RuntimeWarning)
    return backend.replicate_on_ray(net, workers, bool(gpu and cluster_gpus))


@contextmanager
def data_parallel(backend: Any, net: Any, devices: list[str], workers: int = 0, gpu: bool = False) -> Iterator[Any]:
    """`net` itself for one device and no workers (`backend` unused: None will do); else a DataParallelNet over
    `backend`'s replicas of it on `devices`, or on `workers` Ray workers (check_parallel() passed), whose final
    weights are in `net` (and the replicas freed) when the block ends."""
    if len(devices) == 1 and not workers:
        yield net
        return
    group = _group(backend, net, devices, workers, gpu)
    parallel = DataParallelNet(net, group, max(len(devices), workers))
    try:
        yield parallel
        parallel._current()
    finally:
        group.close()
