"""One torch net over Ray workers: the DDP replicas of parallel.py, placed and joined by Ray Train.

ray.train.torch.TorchTrainer starts `workers` Ray Train workers (one CPU, or one GPU with gpu=True, each),
anywhere in the cluster deepwater.init() joined, and sets up their torch process group (gloo, or NCCL on
GPUs). Each worker serves parallel.Replica over a pair of Ray queues; the estimator's process drives them as
it drives spawned replicas, so the model trains exactly as with device_id=[0, 1, ...] on one machine.
TorchTrainer.fit() runs on a thread of this process until the replicas are told to stop.
"""
from __future__ import annotations

import queue
import tempfile
import threading
from typing import Any

from deepwater.errors import ReplicaError

from .net import TorchNet
from .parallel import ChannelGroup, ReplicaSetup, serve

POLL_S = 1.0  # how often a wait for a worker's answer checks that Ray Train still runs


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
    import ray.train.torch

    rank = ray.train.get_context().get_world_rank()
    device = str(ray.train.torch.get_device())
    serve(QueueChannel(config["to_workers"][rank], config["from_workers"][rank]), config["setup"],
          "cpu" if device == "cpu" else device)


class RayTrainGroup(ChannelGroup):
    """DDP replicas of a TorchNet in `workers` Ray Train workers, fed through Ray queues."""

    def __init__(self, net: TorchNet, workers: int, gpu: bool) -> None:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
        from ray.util.queue import Queue

        self._storage = tempfile.TemporaryDirectory(prefix="deepwater-ray-train-")
        to_workers = [Queue(actor_options={"num_cpus": 0}) for _ in range(workers)]
        from_workers = [Queue(actor_options={"num_cpus": 0}) for _ in range(workers)]
        self._queues = to_workers + from_workers
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config={"setup": ReplicaSetup.of(net), "to_workers": to_workers, "from_workers": from_workers},
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpu),
            run_config=RunConfig(name="deepwater", storage_path=self._storage.name))
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._fit, args=(trainer,), daemon=True, name="deepwater-ray-train")
        self._thread.start()
        channels = [QueueChannel(from_workers[r], to_workers[r], self._thread.is_alive) for r in range(workers)]
        try:
            super().__init__(net, channels, [f"Ray Train worker {rank}" for rank in range(workers)])
        except ReplicaError as error:
            self.close()
            raise ReplicaError(f"{error}{self._cause()}") from error

    def _fit(self, trainer: Any) -> None:
        try:
            trainer.fit()
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
