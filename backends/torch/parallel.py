"""One torch net on several devices: DistributedDataParallel replicas in worker processes.

Each replica is a rank of a torch process group (NCCL between GPUs, gloo between CPU replicas) holding a
TorchNet wrapped in DistributedDataParallel. The estimator's process drives them over a channel (a pipe to
a process spawned by torch.multiprocessing, or Ray queues to a Ray Train worker, ray_train.py): each step
sends every rank its shard of the global batch; DDP all-reduces the gradients in backward through a hook
that weights each rank's gradient by its shard's share of the batch, so every rank applies the full
batch's gradient (then H2O's penalties, clipping and momentum, the same on each rank).
"""
from __future__ import annotations

import socket

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from deepwater.errors import DeviceError, ReplicaError

from ..base import Shard
from ..replicas import Channel, ChannelGroup, ReplicaSetup, serve, writable, writable_state
from .net import TorchNet, to_tensor


def _share_allreduce(replica, bucket):  # no annotations: DDP checks them, and this module's are strings
    """DDP communication hook: sum over ranks of share * gradient (the full batch's gradient)."""
    tensor = bucket.buffer().mul_(replica.share)
    return dist.all_reduce(tensor, async_op=True).get_future().then(lambda done: done.value()[0])


class Replica:
    """One rank's TorchNet under DistributedDataParallel, in a process whose process group is initialised."""

    def __init__(self, setup: ReplicaSetup, device: str) -> None:
        self.net = TorchNet(setup.graph, setup.task, setup.spec, device, seed=0)
        self.net.configure_steps(setup.precision)  # the net's own forward pass is not the one that trains here
        self.load(writable_state(setup.state), writable_state(setup.training))
        self.device = torch.device(device)
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(self.net.module, device_ids=ids)
        self.ddp.register_comm_hook(self, _share_allreduce)
        self.ddp.train()
        self.forward = torch.compile(self.ddp) if setup.compiled else self.ddp
        self.share = 1.0

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return to_tensor(writable(array), self.device)

    def step(self, shard: Shard, samples: int) -> float:
        """One optimiser step on this rank's shard; returns its share of the batch's mean loss."""
        self.share = shard.share
        weights = None if shard.weights is None else self._tensor(shard.weights)
        x, y = self._tensor(shard.x), self._tensor(shard.y)
        return shard.share * float(self.net.optimiser.step(self.forward, x, y, weights, samples))

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return self.net.get_state(), self.net.training_state()

    def load(self, state: dict[str, np.ndarray], training: dict[str, np.ndarray]) -> None:
        self.net.set_state(state)
        self.net.set_training_state(training)


def process_group_backend(device: str) -> str:
    """NCCL between GPUs, gloo between CPU replicas."""
    return "nccl" if device.startswith("cuda") else "gloo"


def _spawned(rank: int, world: int, port: int, channel: Channel, setup: ReplicaSetup, device: str) -> None:
    """A spawned worker: join the process group on 127.0.0.1:`port` as `rank`, then serve. CPU replicas share
    the cores: each takes its part of the threads torch would take alone."""
    if device == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads() // world))
    dist.init_process_group(process_group_backend(device), init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        serve(channel, lambda: Replica(setup, device))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    """A TCP port nothing listens on now, for the process group's rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def worker_device(device: str) -> str:
    """A worker's torch device for one of the devices listed: 'cpu:<i>' replicas all run on 'cpu'."""
    return "cpu" if device.startswith("cpu") else device


class SpawnedGroup(ChannelGroup):
    """Replicas in processes spawned by torch.multiprocessing, one per device, on this machine."""

    def __init__(self, net: TorchNet, devices: list[str]) -> None:
        context = torch.multiprocessing.get_context("spawn")
        setup, port = ReplicaSetup.of(net), free_port()
        channels, self.processes = [], []
        for rank, device in enumerate(devices):
            ours, theirs = context.Pipe()
            process = context.Process(target=_spawned, daemon=True, name=f"deepwater-replica-{rank}",
                                      args=(rank, len(devices), port, theirs, setup, worker_device(device)))
            process.start()
            theirs.close()
            channels.append(ours)
            self.processes.append(process)
        try:
            super().__init__(net, channels, devices)
        except ReplicaError:
            self.close()
            raise

    def close(self) -> None:
        self.stop()
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()



def check_devices(devices: list[str]) -> None:
    """DeviceError naming device_id when this torch build lacks the process-group backend `devices` need."""
    kind = process_group_backend(devices[0])
    if not (dist.is_available() and (dist.is_nccl_available() if kind == "nccl" else dist.is_gloo_available())):
        raise DeviceError(f"device_id lists {len(devices)} devices, but this torch build has no {kind} "
                          "process group to train them together; install a torch build with torch.distributed, "
                          "or pass one device_id.")
