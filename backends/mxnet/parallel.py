"""One MXNet net on several contexts: a replica per context, gradients summed through a kvstore.

The estimator's net is the first replica; the others are nets of the same graph on the other contexts
(mx.gpu(i), or mx.cpu(i) for CPU replicas), loaded with its weights and optimiser state. Each step runs
forward and backward on every replica's shard, scales each replica's gradients by its shard's share,
pushes them to the kvstore (which sums them) and pulls the sum, the full batch's gradient, back into
every replica, which then applies H2O's update itself: the replicas stay equal. Batch-norm running
statistics are each replica's own; the first replica's are the model's.
"""
from __future__ import annotations

from ..base import Shard
from .net import MXNetNet
from .optimizers import schedule
from .runtime import load_mxnet

mx = load_mxnet()


class KVStoreGroup:
    """The ReplicaGroup of an MXNetNet: replicas on `devices` (the net on the first), a kvstore between them."""

    def __init__(self, net: MXNetNet, devices: list[str]) -> None:
        self.net = net
        self.replicas = [net] + [MXNetNet(net.graph, net.task, net.spec, device, seed=0) for device in devices[1:]]
        self.push()
        self.kvstore = mx.kv.create("device" if devices[0].startswith("cuda") else "local")
        for key, grad in enumerate(net.gradient_arrays()):
            self.kvstore.init(key, mx.nd.zeros(grad.shape))

    def step(self, shards: list[Shard], samples: int) -> float:
        losses = [replica.gradients(s.x, s.y, s.weights) for replica, s in zip(self.replicas, shards)]
        grads = [replica.gradient_arrays() for replica in self.replicas]
        for replica_grads, shard in zip(grads, shards):
            for grad in replica_grads:
                grad *= shard.share
        for key, per_replica in enumerate(zip(*grads)):
            self.kvstore.push(key, list(per_replica))
            self.kvstore.pull(key, out=list(per_replica))
        lr, momentum = schedule(self.net.spec, samples)
        for replica in self.replicas:
            replica.optimiser.step(lr, momentum)
        return float(sum(s.share * loss.asscalar() for s, loss in zip(shards, losses)))

    def pull(self) -> None:
        """Nothing to do: the net is the first replica."""

    def push(self) -> None:
        state, training = self.net.get_state(), self.net.training_state()
        for replica in self.replicas[1:]:
            replica.set_state(state)
            replica.set_training_state(training)

    def close(self) -> None:
        del self.replicas[1:]
