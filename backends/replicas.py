"""Replicas in other processes, driven over channels: the protocol every backend's process replicas share.

The estimator's process (ChannelGroup) sends each replica commands over its channel (a multiprocessing
pipe to a spawned process, or a pair of Ray queues to a Ray Train worker) and the replica's process
answers them (serve): STEP on its shard of the global batch, PULL its weights and optimiser state, PUSH
new ones, STOP. A framework gives the Replica that runs in there (torch DDP, TensorFlow's
MultiWorkerMirroredStrategy) and, for Ray, the Ray Train trainer that starts its workers (RayTrainGroup).
Nothing here imports a framework; the messages are our own objects, between our own processes.
"""
from __future__ import annotations

import queue
import tempfile
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from deepwater.errors import ReplicaError
from deepwater.networks import Graph
from deepwater.specs import OptimizerSpec, TaskSpec

from .base import Shard

READY, STEP, PULL, PUSH, STOP, FAILED = "ready", "step", "pull", "push", "stop", "failed"
POLL_S = 1.0  # how often a wait for a Ray worker's answer checks that Ray Train still runs


class Channel(Protocol):
    """Two-way messages between the estimator's process and one replica (multiprocessing's Connection)."""

    def send(self, message: Any) -> None: ...

    def recv(self) -> Any: ...


@dataclass(frozen=True)
class ReplicaSetup:
    """What a worker builds its replica from: the net's graph, task and optimiser, its current state, and how
    its steps compute (precision and compile, as configure_steps() gave them)."""

    graph: Graph
    task: TaskSpec
    spec: OptimizerSpec
    state: dict[str, np.ndarray]
    training: dict[str, np.ndarray]
    precision: str = "float32"
    compiled: bool = False

    @classmethod
    def of(cls, net: Any) -> ReplicaSetup:
        """The setup of a built-in network's net (it has .graph and .spec)."""
        return cls(net.graph, net.task, net.spec, net.get_state(), net.training_state(), net.precision, net.compiled)


class Replica(Protocol):
    """One replica in its own process, stepping together with the others."""

    def step(self, shard: Shard, samples: int) -> float:
        """One optimiser step on this replica's shard after `samples` rows; returns the shard's share of the
        batch's mean loss (share * the shard's mean loss), which the group sums."""

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Its weights and its optimiser state (training_state())."""

    def load(self, state: dict[str, np.ndarray], training: dict[str, np.ndarray]) -> None:
        """Take these weights and optimiser state."""


def writable(array: np.ndarray) -> np.ndarray:
    """`array`, copied when it is read-only (as Ray hands numpy arrays over), which frameworks cannot wrap."""
    return np.require(array, requirements="W")


def writable_state(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {key: writable(np.asarray(value)) for key, value in state.items()}


def serve(channel: Channel, make_replica: Callable[[], Replica]) -> None:
    """Build the replica, then answer the estimator's commands on `channel` until STOP."""
    try:
        replica = make_replica()
        channel.send((READY, None))
        while True:
            command, *args = channel.recv()
            if command == STEP:
                channel.send((READY, replica.step(*args)))
            elif command == PULL:
                channel.send((READY, replica.state()))
            elif command == PUSH:
                replica.load(*(writable_state(arg) for arg in args))
                channel.send((READY, None))
            else:
                channel.send((READY, None))
                return
    except Exception:  # the estimator's process raises it as a ReplicaError
        channel.send((FAILED, traceback.format_exc()))


class ChannelGroup:
    """The ReplicaGroup of replicas answering on `channels` (rank 0 first, named `names` in errors); `net` is
    the estimator's net."""

    def __init__(self, net: Any, channels: list[Channel], names: list[str]) -> None:
        self.net, self.channels, self.names = net, channels, names
        for rank in range(len(channels)):
            self._answer(rank)

    def _answer(self, rank: int) -> Any:
        try:
            status, value = self.channels[rank].recv()
        except (EOFError, OSError) as error:
            raise ReplicaError(f"the replica on {self.names[rank]} stopped without answering ({error!r}).") from error
        if status == FAILED:
            raise ReplicaError(f"the replica on {self.names[rank]} failed:\n{value}")
        return value

    def step(self, shards: list[Shard], samples: int) -> float:
        for channel, shard in zip(self.channels, shards):
            channel.send((STEP, shard, samples))
        return float(sum(self._answer(rank) for rank in range(len(self.channels))))

    def pull(self) -> None:
        """The first replica's weights and optimiser state into the net, which keeps its own count of the rows
        trained (the replicas are told it at each step and do not keep it)."""
        self.channels[0].send((PULL,))
        state, training = self._answer(0)
        self.net.set_state(writable_state(state))
        self.net.set_training_state({**writable_state(training), "samples": np.asarray(self.net.samples)})

    def push(self) -> None:
        for channel in self.channels:
            channel.send((PUSH, self.net.get_state(), self.net.training_state()))
        for rank in range(len(self.channels)):
            self._answer(rank)

    def stop(self) -> None:
        """Ask every replica to end (those already gone are left alone)."""
        for rank, channel in enumerate(self.channels):
            try:
                channel.send((STOP,))
                self._answer(rank)
            except (ReplicaError, OSError):
                continue

class QueueChannel:
    """One worker's two Ray queues, seen from one side: send() puts on `outbox`, recv() takes from `inbox`.

    `alive` (the estimator's side) says whether the workers still run, so a wait ends when they are gone."""

    def __init__(self, inbox: Any, outbox: Any, alive: Any = None) -> None:
        self.inbox, self.outbox, self.alive = inbox, outbox, alive

    def send(self, message: Any) -> None:
        self.outbox.put(message)

    def recv(self) -> Any:
        from ray.util.queue import Empty

        while True:
            try:
                return self.inbox.get(timeout=POLL_S)
            except (Empty, queue.Empty):
                if self.alive is not None and not self.alive():
                    raise EOFError("Ray Train's workers ended") from None


def _worker_loop(config: dict) -> None:
    """Ray Train's train_loop_per_worker: serve this rank's replica on its queues."""
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    serve(QueueChannel(config["to_workers"][rank], config["from_workers"][rank]),
          lambda: config["make_replica"](config["setup"]))


class RayTrainGroup(ChannelGroup):
    """Replicas in `workers` Ray Train workers, fed through Ray queues.

    `trainer(loop, config, scaling, run)` makes the framework's Ray Train trainer (TorchTrainer,
    TensorflowTrainer) of train_loop_per_worker `loop`; in each worker `make_replica(setup)` builds the
    replica. The trainer's fit() runs on a thread of this process until the replicas are told to stop.
    """

    def __init__(self, net: Any, workers: int, gpu: bool, trainer: Callable[..., Any],
                 make_replica: Callable[[Any], Replica], setup: Any) -> None:
        from ray.train import RunConfig, ScalingConfig
        from ray.util.queue import Queue

        self._storage = tempfile.TemporaryDirectory(prefix="deepwater-ray-train-")
        to_workers = [Queue(actor_options={"num_cpus": 0}) for _ in range(workers)]
        from_workers = [Queue(actor_options={"num_cpus": 0}) for _ in range(workers)]
        self._queues = to_workers + from_workers
        fit = trainer(_worker_loop, {"setup": setup, "make_replica": make_replica, "to_workers": to_workers,
                                     "from_workers": from_workers},
                      ScalingConfig(num_workers=workers, use_gpu=gpu),
                      RunConfig(name="deepwater", storage_path=self._storage.name)).fit
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._fit, args=(fit,), daemon=True, name="deepwater-ray-train")
        self._thread.start()
        channels = [QueueChannel(from_workers[r], to_workers[r], self._thread.is_alive) for r in range(workers)]
        try:
            super().__init__(net, channels, [f"Ray Train worker {rank}" for rank in range(workers)])
        except ReplicaError as error:
            self.close()
            raise ReplicaError(f"{error}{self._cause()}") from error

    def _fit(self, fit: Callable[[], Any]) -> None:
        try:
            fit()
        except BaseException as error:  # told to the estimator's thread through _cause()
            self._error = error

    def _cause(self) -> str:
        return "" if self._error is None else f"\nRay Train: {type(self._error).__name__}: {self._error}"

    def close(self) -> None:
        if self._thread.is_alive():
            self.stop()
        self._thread.join(timeout=60)
        for channel_queue in self._queues:
            channel_queue.shutdown()
        self._storage.cleanup()
