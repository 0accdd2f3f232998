"""One TensorFlow net on several devices: tf.distribute.MirroredStrategy over its replicas.

The net's variables stay where the net was built (the first device); each step runs the network on every
replica device through strategy.run, each replica on its shard of the global batch with its loss weighted
by the shard's share, sums the replicas' gradients with strategy.reduce (the full batch's gradient), and
applies the net's own optimiser update (H2O's schedule, penalties, clipping, momentum) once. CPU
replicas are logical CPU devices, which TensorFlow can only make before it starts (prepare_devices).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from deepwater.errors import DeviceError

from ..base import Shard
from .net import TensorflowNet, tf_device


def replica_devices(devices: list[str]) -> list[str]:
    """TensorFlow's names of `devices`: GPUs as '/GPU:<id>', CPU replicas as logical CPUs '/CPU:0', '/CPU:1' ..."""
    return [f"/CPU:{i}" for i in range(len(devices))] if devices[0].startswith("cpu") else \
        [tf_device(device) for device in devices]


def split_cpu(replicas: int) -> None:
    """Make `replicas` logical CPU devices, or DeviceError when TensorFlow has started with fewer."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        if len(tf.config.get_logical_device_configuration(cpu) or [None]) < replicas:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError as error:  # TensorFlow has initialised its devices: their number is fixed
        have = len(tf.config.list_logical_devices("CPU"))
        if have < replicas:
            raise DeviceError(f"device_id asks for {replicas} CPU replicas, but TensorFlow already started in this "
                              f"process with {have} CPU device(s), and it splits the CPU only before it starts. "
                              "Train with CPU replicas first thing in a fresh process (before any other TensorFlow "
                              "work), or pass one device_id.") from error


class MirroredStep:
    """The compiled training step of a TensorflowNet under a tf.distribute `strategy`.

    Given a batch (x, y, w), `bounds` (replica i takes rows bounds[i]:bounds[i + 1]), `shares` (replica i's
    share of the loss) and `rows` (the batch's rows, for the net's schedule), every replica computes its
    share-weighted loss and gradients; the gradients are summed over all replicas (all workers for a
    multi-worker strategy) and the net's own update applies them. It returns the share-weighted losses summed
    over all replicas, or (`local`) those of this process's replicas."""

    def __init__(self, net: TensorflowNet, strategy: tf.distribute.Strategy, local: bool = False) -> None:
        self.net, self.strategy, self.local = net, strategy, local
        self._steps: dict[bool, Callable] = {}

    def _step_fn(self, weighted: bool) -> Callable:
        """The compiled step for batches with (or without) row weights, built on first use."""
        if weighted not in self._steps:
            net, strategy = self.net, self.strategy
            specs = [net._x_spec(), net._y_spec(), tf.TensorSpec((None,), tf.float32), tf.TensorSpec((None,), tf.int32),
                     tf.TensorSpec((None,), tf.float32), tf.TensorSpec((), tf.int32)]

            def step(x, y, w, bounds, shares, rows):
                losses, grads = strategy.run(self._replica, args=(x, y, w if weighted else None, bounds, shares))
                total = [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in grads]
                net.apply_gradients(total, rows)
                if self.local:
                    return tf.add_n(strategy.experimental_local_results(losses))
                return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

            self._steps[weighted] = tf.function(step, input_signature=specs, jit_compile=net.jit_compile)
        return self._steps[weighted]

    def _replica(self, x, y, w, bounds, shares):
        """One replica's share-weighted loss on its rows of the batch, and its gradients."""
        i = tf.distribute.get_replica_context().replica_id_in_sync_group
        rows = slice(bounds[i], bounds[i + 1])
        return self.net.loss_and_gradients(x[rows], y[rows], None if w is None else w[rows], shares[i])

    def __call__(self, x: np.ndarray, y: np.ndarray, w: np.ndarray | None, bounds: list[int], shares: list[float],
                 rows: int) -> float:
        y_dtype = np.int64 if self.net.task.is_classification else np.float32
        args = [np.asarray(x, dtype=np.float32), np.asarray(y, dtype=y_dtype),
                np.asarray(np.zeros(len(x)) if w is None else w, dtype=np.float32), np.asarray(bounds, dtype=np.int32),
                np.asarray(shares, dtype=np.float32), np.int32(rows)]
        with tf.device(self.net._device):
            return float(self._step_fn(w is not None)(*(tf.convert_to_tensor(a) for a in args)))


class MirroredGroup:
    """The ReplicaGroup of a TensorflowNet: its variables, stepped through a MirroredStrategy over `devices`."""

    def __init__(self, net: TensorflowNet, devices: list[str]) -> None:
        self.net = net
        self.run = MirroredStep(net, tf.distribute.MirroredStrategy(replica_devices(devices)))

    def step(self, shards: list[Shard], samples: int) -> float:
        weighted = shards[0].weights is not None
        return self.run(np.concatenate([s.x for s in shards]), np.concatenate([s.y for s in shards]),
                        np.concatenate([s.weights for s in shards]) if weighted else None,
                        np.cumsum([0] + [len(s.x) for s in shards]).tolist(), [s.share for s in shards],
                        sum(len(s.x) for s in shards if s.share > 0))

    def pull(self) -> None:
        """Nothing to do: the replicas train the net's own variables."""

    def push(self) -> None:
        """Nothing to do: the replicas read the net's own variables at every step."""

    def close(self) -> None:
        """Nothing to free: the strategy goes with this group."""
