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

from .backends.base import DataParallel, ReplicaGroup, split_batch
from .errors import DeviceError


class DataParallelNet:
    """The estimator's `net` trained by `group` (replicas on `devices`); reads go to the net, pulled first."""

    def __init__(self, net: Any, group: ReplicaGroup, devices: list[str]) -> None:
        self.net, self.group, self.devices = net, group, devices
        self._stale = False  # True when the replicas stepped since the last pull

    def train_batch(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
        """One step of every replica on its shard of the batch; returns the batch's mean loss."""
        if len(x) == 0:
            return float("nan")
        loss = self.group.step(split_batch(x, y, weights, len(self.devices)), self.net.samples)
        self.net.samples += len(x)
        self._stale = True
        return loss

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


def prepare_devices(backend: Any, devices: list[str], graph: Any) -> None:
    """Check that `backend` can train a built-in network (`graph` None) on `devices`, and let it set them up
    before it builds the net; DeviceError naming device_id when it cannot."""
    if graph is not None:
        raise DeviceError(f"device_id lists {len(devices)} devices ({', '.join(devices)}), but a user graph "
                          f"(network='user') trains on one device; pass one device_id, e.g. device_id=[0].")
    if not isinstance(backend, DataParallel):
        raise DeviceError(f"device_id lists {len(devices)} devices, but backend {backend.name!r} cannot train one "
                          "model on several devices; pass one device_id, or use backend='torch', 'tensorflow' or "
                          "'mxnet'.")
    backend.prepare_devices(devices)


@contextmanager
def data_parallel(backend: Any, net: Any, devices: list[str]) -> Iterator[Any]:
    """`net` itself for one device (`backend` unused: None will do); for several, a DataParallelNet over
    `backend`'s replicas of it (prepare_devices() passed), whose final weights are in `net` (and the replicas
    freed) when the block ends."""
    if len(devices) == 1:
        yield net
        return
    group = backend.replicate(net, devices)
    parallel = DataParallelNet(net, group, devices)
    try:
        yield parallel
        parallel._current()
    finally:
        group.close()
