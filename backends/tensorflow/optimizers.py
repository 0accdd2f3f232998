"""H2O's optimiser as TensorFlow ops: the losses, SGD with momentum and ADADELTA written to follow
torch.optim.SGD (momentum, nesterov) and torch.optim.Adadelta to the last rounding step, and the update that
applies H2O's rate and momentum schedule, l1/l2 penalties and clipping inside a compiled step."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from deepwater.backends.base import slot_arrays
from deepwater.specs import OptimizerSpec

# ----------------------------------------------------------------------------- losses

def _rowwise_loss(kind: str, out: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """The loss of each row, as torch's functional losses compute it with reduction='none'."""
    if kind == "cross_entropy":
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=out)
    if kind == "reconstruction":  # an autoencoder: y holds the inputs, flattened as the output is
        return tf.reduce_mean(tf.square(out - y), axis=1)
    diff = out[:, 0] - y
    if kind == "quadratic":
        return tf.square(diff)
    if kind == "absolute":
        return tf.abs(diff)
    if kind == "huber":
        size = tf.abs(diff)
        return tf.where(size < 1.0, 0.5 * tf.square(diff), size - 0.5)
    raise ValueError(f"the tensorflow backend has no loss {kind!r}")


def batch_loss(kind: str, out: tf.Tensor, y: tf.Tensor, weights: tf.Tensor | None) -> tf.Tensor:
    """Mean loss, or the weighted mean sum(l * w) / sum(w) when row weights are given."""
    losses = _rowwise_loss(kind, out, y)
    if weights is None:
        return tf.reduce_mean(losses)
    return tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1e-12)


# ----------------------------------------------------------------------------- optimisers

class MomentumSGD:
    """torch.optim.SGD (dampening 0): buf = m*buf + g; w -= lr * (g + m*buf) with nesterov, else lr * buf.

    TensorFlow's fused ApplyMomentum kernel computes exactly that. Like torch, a step with momentum 0
    leaves the buffers alone and steps by the gradient itself; schedules that can reach momentum 0 take
    a slower path written out in tf ops.
    """

    def __init__(self, variables: list[tf.Variable], spec: OptimizerSpec) -> None:
        self.nesterov = bool(spec.nesterov and spec.momentum(0) > 0)
        self.uses_momentum = spec.momentum_start != 0 or spec.momentum_stable != 0
        self.may_skip_momentum = spec.momentum_start == 0 or spec.momentum_stable == 0
        self.buffers = [tf.Variable(tf.zeros_like(v), trainable=False, name="momentum_buffer") for v in variables] \
            if self.uses_momentum else []
        self.slots = {"momentum_buffer": self.buffers} if self.uses_momentum else {}

    def apply(self, variables: list[tf.Variable], grads: list[tf.Tensor], lr: tf.Tensor, momentum: tf.Tensor) -> None:
        if not self.uses_momentum:
            for v, g in zip(variables, grads):
                v.assign_sub(lr * g)
        elif self.may_skip_momentum:
            self._apply_unfused(variables, grads, lr, momentum)
        else:
            for v, g, buf in zip(variables, grads, self.buffers):
                tf.raw_ops.ResourceApplyMomentum(var=v.handle, accum=buf.handle, lr=lr, grad=g, momentum=momentum,
                                                 use_nesterov=self.nesterov)

    def _apply_unfused(self, variables: list[tf.Variable], grads: list[tf.Tensor], lr: tf.Tensor,
                       momentum: tf.Tensor) -> None:
        active = tf.not_equal(momentum, 0.0)
        for v, g, buf in zip(variables, grads, self.buffers):
            new_buf = tf.where(active, momentum * buf + g, buf)
            buf.assign(new_buf)
            step = g + momentum * new_buf if self.nesterov else new_buf
            v.assign_sub(lr * tf.where(active, step, g))


class Adadelta:
    """torch.optim.Adadelta with lr 1, through TensorFlow's fused ApplyAdadelta kernel (the same update:
    square_avg = rho*square_avg + (1-rho)*g^2; delta = sqrt(acc_delta+eps) / sqrt(square_avg+eps) * g;
    acc_delta = rho*acc_delta + (1-rho)*delta^2; w -= lr * delta)."""

    def __init__(self, variables: list[tf.Variable], spec: OptimizerSpec) -> None:
        self.rho, self.epsilon = spec.rho, spec.epsilon
        self.square_avgs = [tf.Variable(tf.zeros_like(v), trainable=False, name="square_avg") for v in variables]
        self.acc_deltas = [tf.Variable(tf.zeros_like(v), trainable=False, name="acc_delta") for v in variables]
        self.slots = {"square_avg": self.square_avgs, "acc_delta": self.acc_deltas}

    def apply(self, variables: list[tf.Variable], grads: list[tf.Tensor], lr: tf.Tensor, momentum: tf.Tensor) -> None:
        rho, eps = tf.constant(self.rho, tf.float32), tf.constant(self.epsilon, tf.float32)
        for v, g, square_avg, acc_delta in zip(variables, grads, self.square_avgs, self.acc_deltas):
            tf.raw_ops.ResourceApplyAdadelta(var=v.handle, accum=square_avg.handle, accum_update=acc_delta.handle,
                                             lr=lr, rho=rho, epsilon=eps, grad=g)


class Update:
    """H2O's update of a list of variables inside a compiled step: the rate and momentum schedule
    (OptimizerSpec.rate/momentum of the samples seen before the batch), penalties on weights
    (grad += l1*sign(w) + l2*w), element-wise clipping, then MomentumSGD or Adadelta."""

    def __init__(self, variables: list[tf.Variable], penalised: list[bool], spec: OptimizerSpec) -> None:
        self.variables, self.penalised, self.spec = variables, penalised, spec
        self.optimizer = Adadelta(variables, spec) if spec.adaptive_rate else MomentumSGD(variables, spec)
        self.lr = tf.Variable(spec.rate(0) if not spec.adaptive_rate else 1.0, dtype=tf.float32, trainable=False,
                              name="learning_rate")
        self.momentum = tf.Variable(spec.momentum(0), dtype=tf.float32, trainable=False, name="momentum")
        self.samples = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="samples")

    def arrays(self) -> dict[str, np.ndarray]:
        """Copies of the optimiser's buffers, '<slot>.<variable index>' (torch's slot names)."""
        return slot_arrays({slot: [v.numpy().copy() for v in variables]
                            for slot, variables in self.optimizer.slots.items()})

    def load_arrays(self, arrays: dict[str, np.ndarray], samples: int) -> None:
        """Load arrays named as arrays() names them, and continue the schedule after `samples` rows."""
        with tf.device(self.samples.device):  # the device the net made its optimiser on
            for slot, variables in self.optimizer.slots.items():
                for i, variable in enumerate(variables):
                    variable.assign(np.asarray(arrays[f"{slot}.{i}"], dtype=variable.dtype.as_numpy_dtype))
            self.samples.assign(float(samples))

    def apply(self, grads: list[tf.Tensor], rows: tf.Tensor) -> None:
        """One step with the gradients of self.variables from a batch of `rows` rows."""
        self._update_schedule()
        self.optimizer.apply(self.variables, self._regularise(grads), self.lr, self.momentum)
        self.samples.assign_add(tf.cast(rows, tf.float64))

    def skip(self, rows: tf.Tensor) -> None:
        """A step that leaves the weights alone (its float16 gradients overflowed) but counts its rows."""
        self.samples.assign_add(tf.cast(rows, tf.float64))

    def _update_schedule(self) -> None:
        """Set lr and momentum from the samples seen before this batch (OptimizerSpec.rate/momentum)."""
        if self.spec.adaptive_rate:
            return
        self.lr.assign(tf.cast(self.spec.rate(self.samples), tf.float32))
        self.momentum.assign(tf.cast(self.spec.momentum(self.samples, minimum=tf.minimum), tf.float32))

    def _regularise(self, grads: list[tf.Tensor]) -> list[tf.Tensor]:
        """H2O's penalties on weights (grad += l1*sign(w) + l2*w), then element-wise clipping."""
        l1, l2, clip = self.spec.l1, self.spec.l2, self.spec.clip_gradient
        out = []
        for v, g, penalised in zip(self.variables, grads, self.penalised):
            if penalised and l1:
                g = g + l1 * tf.sign(v)
            if penalised and l2:
                g = g + l2 * v
            if clip:
                g = tf.clip_by_value(g, -clip, clip)
            out.append(g)
        return out
