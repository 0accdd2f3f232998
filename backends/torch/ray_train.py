"""One torch net over Ray workers: the DDP replicas of parallel.py, placed and joined by Ray Train.

ray.train.torch.TorchTrainer starts the Ray Train workers (one CPU, or one GPU with gpu=True, each) anywhere
in the cluster deepwater.init() joined and sets up their torch process group (gloo, or NCCL on GPUs); each
serves a parallel.Replica over Ray queues (backends/replicas.py), so the model trains exactly as with
device_id=[0, 1, ...] on one machine.
"""
from __future__ import annotations

from ..replicas import RayTrainGroup, ReplicaSetup
from .net import TorchNet
from .parallel import Replica


def _replica(setup: ReplicaSetup) -> Replica:
    """This Ray Train worker's replica, on the device Ray Train gave it."""
    import ray.train.torch

    device = ray.train.torch.get_device()
    return Replica(setup, "cpu" if device.type == "cpu" else str(device))


def _trainer(loop, config, scaling, run):
    from ray.train.torch import TorchTrainer

    return TorchTrainer(loop, train_loop_config=config, scaling_config=scaling, run_config=run)


def ray_group(net: TorchNet, workers: int, gpu: bool) -> RayTrainGroup:
    """DDP replicas of the TorchNet `net` in `workers` Ray Train workers (on a GPU each when `gpu`)."""
    return RayTrainGroup(net, workers, gpu, _trainer, _replica, ReplicaSetup.of(net))
