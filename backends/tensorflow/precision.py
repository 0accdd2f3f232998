"""Mixed precision for TensorFlow steps: a Keras mixed-precision policy on every layer, and dynamic loss scaling
for float16 (torch.amp.GradScaler's rule, so that both backends scale alike).

Under a 'mixed_bfloat16' or 'mixed_float16' policy Keras keeps each variable float32 and casts it to the compute
dtype inside the layer's call, so weights, optimiser state and saved models stay float32.
"""
from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

INITIAL_SCALE = 2.0 ** 16  # torch.amp.GradScaler's defaults
GROWTH_INTERVAL = 2000


def policy(precision: str) -> str:
    """The Keras dtype policy of `precision`: 'float32', 'mixed_bfloat16' or 'mixed_float16'."""
    return "float32" if precision == "float32" else f"mixed_{precision}"


def set_policy(model: keras.Model, precision: str) -> None:
    """Give every layer of `model` the policy of `precision` (its variables stay float32)."""
    for layer in model.layers:
        layer.dtype_policy = policy(precision)


def gpu_has_bfloat16(device: str) -> bool:
    """True when `device` ('/GPU:i') is a GPU of compute capability 8.0 or later (native bfloat16)."""
    if not device.startswith("/GPU:"):
        return False
    gpus = tf.config.list_physical_devices("GPU")
    index = int(device.split(":", 1)[1])
    if index >= len(gpus):
        return False
    capability = tf.config.experimental.get_device_details(gpus[index]).get("compute_capability", (0, 0))
    return tuple(capability) >= (8, 0)


class LossScale:
    """Dynamic loss scaling inside a compiled step: the loss is multiplied by `scale` before the gradients, which
    are divided back; a step whose gradients overflow is skipped and halves the scale, and GROWTH_INTERVAL
    finite steps in a row double it."""

    def __init__(self) -> None:
        self.scale = tf.Variable(INITIAL_SCALE, dtype=tf.float32, trainable=False, name="loss_scale")
        self.good_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="good_steps")

    def unscale(self, grads: list[tf.Tensor]) -> list[tf.Tensor]:
        """Gradients of the scaled loss brought back to the loss's own scale."""
        return [g / self.scale for g in grads]

    def apply_if_finite(self, grads: list[tf.Tensor], apply: Callable[[], None], skip: Callable[[], None]) -> None:
        """Run `apply` when every gradient is finite (growing the scale on schedule), else `skip` and halve it."""
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])

        def good() -> tf.Tensor:
            apply()
            grown = self.good_steps + 1 >= GROWTH_INTERVAL
            self.scale.assign(tf.where(grown, self.scale * 2.0, self.scale))
            self.good_steps.assign(tf.where(grown, tf.constant(0, tf.int64), self.good_steps + 1))
            return tf.constant(True)

        def bad() -> tf.Tensor:
            skip()
            self.scale.assign(self.scale * 0.5)
            self.good_steps.assign(0)
            return tf.constant(False)

        tf.cond(finite, good, bad)
