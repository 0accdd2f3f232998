"""Deepwater's optimisers as TensorFlow ops: the losses (label smoothing included), SGD with momentum, ADADELTA,
Adam and AdamW written to follow torch.optim.SGD (momentum, nesterov), torch.optim.Adadelta and torch.optim.Adam(W)
to the last rounding step, and the update that applies the spec's rate and momentum schedule, l1/l2 penalties and
clipping inside a compiled step."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from deepwater.backends.base import slot_arrays
from deepwater.specs import OptimizerSpec, TaskSpec

# ----------------------------------------------------------------------------- losses

def _rowwise_loss(task: TaskSpec, out: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """The loss of each row, as torch's functional losses compute it with reduction='none' (cross entropy with
    label smoothing s: (1 - s) * the class's -log p + s * the mean over classes of -log p; against soft targets
    q, (n, classes) probabilities: -sum(((1 - s) * q + s / classes) * log p))."""
    kind, smoothing = task.loss, task.label_smoothing
    if kind == "cross_entropy" and len(y.shape) == 2:  # soft targets
        target = y * (1.0 - smoothing) + smoothing / task.n_outputs if smoothing else y
        return -tf.reduce_sum(target * tf.nn.log_softmax(out, axis=1), axis=1)
    if kind == "cross_entropy" and smoothing:
        log_p = tf.nn.log_softmax(out, axis=1)
        picked = -tf.gather(log_p, tf.cast(y, tf.int32), axis=1, batch_dims=1)
        return (1.0 - smoothing) * picked - smoothing * tf.reduce_mean(log_p, axis=1)
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


def batch_loss(task: TaskSpec, out: tf.Tensor, y: tf.Tensor, weights: tf.Tensor | None) -> tf.Tensor:
    """The task's mean loss, or the weighted mean sum(l * w) / sum(w) when row weights are given."""
    losses = _rowwise_loss(task, out, y)
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
        self.counters: dict[str, tf.Variable] = {}

    def apply(self, variables: list[tf.Variable], grads: list[tf.Tensor], lrs: list[tf.Tensor | None],
              momentum: tf.Tensor) -> None:
        """One step of each variable at its rate in `lrs` (None: a frozen variable, left alone)."""
        if not self.uses_momentum:
            for v, g, lr in zip(variables, grads, lrs):
                if lr is not None:
                    v.assign_sub(lr * g)
        elif self.may_skip_momentum:
            self._apply_unfused(variables, grads, lrs, momentum)
        else:
            for v, g, buf, lr in zip(variables, grads, self.buffers, lrs):
                if lr is not None:
                    tf.raw_ops.ResourceApplyMomentum(var=v.handle, accum=buf.handle, lr=lr, grad=g,
                                                     momentum=momentum, use_nesterov=self.nesterov)

    def _apply_unfused(self, variables: list[tf.Variable], grads: list[tf.Tensor], lrs: list[tf.Tensor | None],
                       momentum: tf.Tensor) -> None:
        active = tf.not_equal(momentum, 0.0)
        for v, g, buf, lr in zip(variables, grads, self.buffers, lrs):
            if lr is None:
                continue
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
        self.counters: dict[str, tf.Variable] = {}

    def apply(self, variables: list[tf.Variable], grads: list[tf.Tensor], lrs: list[tf.Tensor | None],
              momentum: tf.Tensor) -> None:
        rho, eps = tf.constant(self.rho, tf.float32), tf.constant(self.epsilon, tf.float32)
        for v, g, square_avg, acc_delta, lr in zip(variables, grads, self.square_avgs, self.acc_deltas, lrs):
            if lr is None:
                continue
            tf.raw_ops.ResourceApplyAdadelta(var=v.handle, accum=square_avg.handle, accum_update=acc_delta.handle,
                                             lr=lr, rho=rho, epsilon=eps, grad=g)


class Adam:
    """torch.optim.Adam, or AdamW whose decoupled decay shrinks the penalised weights first (w *= 1 - lr*decay):
    exp_avg += (g - exp_avg) * (1-beta1); exp_avg_sq = beta2*exp_avg_sq + (1-beta2)*g^2;
    w -= lr / (1 - beta1^step) * exp_avg / (sqrt(exp_avg_sq) / sqrt(1 - beta2^step) + eps)."""

    def __init__(self, variables: list[tf.Variable], penalised: list[bool], spec: OptimizerSpec) -> None:
        self.beta1, self.beta2, self.epsilon = spec.beta1, spec.beta2, spec.epsilon
        decay = spec.weight_decay if spec.method == "adamw" else 0.0
        self.decays = [decay if p else 0.0 for p in penalised]
        self.exp_avgs = [tf.Variable(tf.zeros_like(v), trainable=False, name="exp_avg") for v in variables]
        self.exp_avg_sqs = [tf.Variable(tf.zeros_like(v), trainable=False, name="exp_avg_sq") for v in variables]
        self.step = tf.Variable(0.0, dtype=tf.float32, trainable=False, name="adam_step")
        self.slots = {"exp_avg": self.exp_avgs, "exp_avg_sq": self.exp_avg_sqs}
        self.counters = {"step": self.step}

    def apply(self, variables: list[tf.Variable], grads: list[tf.Tensor], lrs: list[tf.Tensor | None],
              momentum: tf.Tensor) -> None:
        """One step of each variable at its rate in `lrs` (None: frozen, left alone); the step count is the
        optimiser's, one for every variable."""
        self.step.assign_add(1.0)
        step = tf.cast(self.step, tf.float64)  # the bias corrections in float64, as torch computes them
        bias_correction = 1.0 - self.beta1 ** step
        correction = tf.cast(tf.sqrt(1.0 - self.beta2 ** step), tf.float32)
        for v, g, exp_avg, exp_avg_sq, decay, lr in zip(variables, grads, self.exp_avgs, self.exp_avg_sqs,
                                                        self.decays, lrs):
            if lr is None:
                continue
            step_size = tf.cast(tf.cast(lr, tf.float64) / bias_correction, tf.float32)
            if decay:
                v.assign(v * (1.0 - lr * decay))
            exp_avg.assign(exp_avg + (g - exp_avg) * (1.0 - self.beta1))
            exp_avg_sq.assign(exp_avg_sq * self.beta2 + g * g * (1.0 - self.beta2))
            v.assign_sub(step_size * (exp_avg / (tf.sqrt(exp_avg_sq) / correction + self.epsilon)))


def make_rule(variables: list[tf.Variable], penalised: list[bool],
              spec: OptimizerSpec) -> MomentumSGD | Adadelta | Adam:
    """The spec's update rule over `variables`."""
    if spec.method == "adadelta":
        return Adadelta(variables, spec)
    if spec.method in ("adam", "adamw"):
        return Adam(variables, penalised, spec)
    return MomentumSGD(variables, spec)


class Update:
    """Deepwater's update of a list of variables inside a compiled step: the rate and momentum schedule
    (OptimizerSpec.rate/momentum of the samples seen before the batch), penalties on weights
    (grad += l1*sign(w) + l2*w), element-wise clipping, then MomentumSGD, Adadelta or Adam."""

    def __init__(self, variables: list[tf.Variable], penalised: list[bool], spec: OptimizerSpec,
                 scales: Sequence[float] | None = None) -> None:
        self.variables, self.penalised, self.spec = variables, penalised, spec
        self.scales = list(scales) if scales is not None else [1.0] * len(variables)  # each one's rate multiplier
        self.frozen = [False] * len(variables)  # read when a step is traced: retrace after a change
        self.scheduled = spec.method != "adadelta"  # ADADELTA steps at rate 1
        self.optimizer = make_rule(variables, penalised, spec)
        self.lr = tf.Variable(spec.rate(0) if self.scheduled else 1.0, dtype=tf.float32, trainable=False,
                              name="learning_rate")
        self.momentum = tf.Variable(spec.momentum(0), dtype=tf.float32, trainable=False, name="momentum")
        self.samples = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="samples")

    def arrays(self) -> dict[str, np.ndarray]:
        """Copies of the optimiser's buffers, '<slot>.<variable index>' (torch's slot names), and its counters
        (Adam's 'step')."""
        return {**slot_arrays({slot: [v.numpy().copy() for v in variables]
                               for slot, variables in self.optimizer.slots.items()}),
                **{name: counter.numpy().copy() for name, counter in self.optimizer.counters.items()}}

    def load_arrays(self, arrays: dict[str, np.ndarray], samples: int) -> None:
        """Load arrays named as arrays() names them, and continue the schedule after `samples` rows."""
        with tf.device(self.samples.device):  # the device the net made its optimiser on
            for slot, variables in self.optimizer.slots.items():
                for i, variable in enumerate(variables):
                    variable.assign(np.asarray(arrays[f"{slot}.{i}"], dtype=variable.dtype.as_numpy_dtype))
            for name, counter in self.optimizer.counters.items():
                counter.assign(float(arrays[name]))
            self.samples.assign(float(samples))

    def apply(self, grads: list[tf.Tensor], rows: tf.Tensor) -> None:
        """One step with the gradients of self.variables from a batch of `rows` rows."""
        self._update_schedule()
        lrs = [None if frozen else self.lr if scale == 1 else self.lr * scale
               for frozen, scale in zip(self.frozen, self.scales)]
        self.optimizer.apply(self.variables, self._regularise(grads), lrs, self.momentum)
        self.samples.assign_add(tf.cast(rows, tf.float64))

    def skip(self, rows: tf.Tensor) -> None:
        """A step that leaves the weights alone (its float16 gradients overflowed) but counts its rows."""
        self.samples.assign_add(tf.cast(rows, tf.float64))

    def _update_schedule(self) -> None:
        """Set lr and momentum from the samples seen before this batch (OptimizerSpec.rate/momentum)."""
        if not self.scheduled:
            return
        self.lr.assign(tf.cast(self.spec.rate(self.samples, ops=tf), tf.float32))
        self.momentum.assign(tf.cast(self.spec.momentum(self.samples, minimum=tf.minimum), tf.float32))

    def _regularise(self, grads: list[tf.Tensor]) -> list[tf.Tensor]:
        """H2O's penalties on weights (grad += l1*sign(w) + l2*w), then element-wise clipping."""
        l1, l2, clip = self.spec.l1, self.spec.l2, self.spec.clip_gradient
        out = []
        for v, g, penalised, frozen in zip(self.variables, grads, self.penalised, self.frozen):
            if frozen:  # no step: its gradient is not used
                out.append(g)
                continue
            if penalised and l1:
                g = g + l1 * tf.sign(v)
            if penalised and l2:
                g = g + l2 * v
            if clip:
                g = tf.clip_by_value(g, -clip, clip)
            out.append(g)
        return out
