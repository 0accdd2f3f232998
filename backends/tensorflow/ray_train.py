"""One TensorFlow net over Ray workers: tf.distribute.MultiWorkerMirroredStrategy, placed by Ray Train.

ray.train.tensorflow.TensorflowTrainer starts the Ray Train workers (one CPU, or one GPU with gpu=True, each)
anywhere in the cluster deepwater.init() joined and sets TF_CONFIG for them. Each worker builds the net
under a MultiWorkerMirroredStrategy (made before any other TensorFlow work, as it must be) and serves a
WorkerReplica over Ray queues (backends/replicas.py): every step runs parallel.MirroredStep on its shard,
the gradients summed across the workers by the strategy's collective all-reduce, so the model trains as
with device_id=[0, 1, ...] on one machine.
"""
from __future__ import annotations

import numpy as np

from ..base import Shard
from ..replicas import RayTrainGroup, ReplicaSetup, writable_state


class WorkerReplica:
    """This worker's TensorflowNet, one replica of a MultiWorkerMirroredStrategy."""

    def __init__(self, setup: ReplicaSetup) -> None:
        import tensorflow as tf

        strategy = tf.distribute.MultiWorkerMirroredStrategy()  # first: it fixes the devices of this process
        from .net import TensorflowNet
        from .parallel import MirroredStep

        self.rank, self.world = strategy.cluster_resolver.task_id, strategy.num_replicas_in_sync
        device = "cuda:0" if tf.config.list_physical_devices("GPU") else "cpu"
        self.net = TensorflowNet(setup.graph, setup.task, setup.spec, device, seed=0)
        self.net.configure_steps(setup.precision, setup.compiled)
        self.load(writable_state(setup.state), writable_state(setup.training))
        self.run = MirroredStep(self.net, strategy, local=True)

    def step(self, shard: Shard, samples: int) -> float:
        """One step of every worker; this one's rows are all of its shard (the strategy's replica `rank`)."""
        self.net.optimiser.samples.assign(float(samples))  # the schedule follows the estimator's count
        rows = len(shard.x)
        shares = np.zeros(self.world)
        shares[self.rank] = shard.share
        bounds = [0] * (self.rank + 1) + [rows] * (self.world - self.rank)
        return self.run(shard.x, shard.y, shard.weights, bounds, shares.tolist(), rows)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        return self.net.get_state(), self.net.training_state()

    def load(self, state: dict[str, np.ndarray], training: dict[str, np.ndarray]) -> None:
        self.net.set_state(state)
        self.net.set_training_state(training)


def _trainer(loop, config, scaling, run):
    from ray.train.tensorflow import TensorflowTrainer

    return TensorflowTrainer(loop, train_loop_config=config, scaling_config=scaling, run_config=run)


def ray_group(net, workers: int, gpu: bool) -> RayTrainGroup:
    """MultiWorkerMirroredStrategy replicas of the TensorflowNet `net` in `workers` Ray Train workers."""
    return RayTrainGroup(net, workers, gpu, _trainer, WorkerReplica, ReplicaSetup.of(net))
