"""Keras 3 layers for a networks.Graph: the custom layers torch has and Keras lacks, and the model builder.

The model takes canonical channels-first batches (N, C, H, W) and turns them channels-last once at the
input, because TensorFlow's CPU kernels want NHWC; flatten emits C, H, W order so dense layers see
PyTorch's order.
"""
from __future__ import annotations

import math
import re

import keras
import tensorflow as tf

from deepwater.networks import Graph, Node

if keras.backend.backend() != "tensorflow":
    raise ImportError(f"the tensorflow backend needs Keras running on TensorFlow, but KERAS_BACKEND is "
                      f"{keras.backend.backend()!r}; unset it or set KERAS_BACKEND=tensorflow before importing keras.")

_CHANNELS_LAST = "channels_last"


# ----------------------------------------------------------------------------- custom layers

class NegInfPadding2D(keras.layers.Layer):
    """Pad H and W of an NHWC tensor by `pad` on every side with -inf (max pooling's padding)."""

    def __init__(self, pad: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pad = pad

    def call(self, x):
        p = self.pad
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], constant_values=-math.inf)

    def compute_output_shape(self, shape):
        n, h, w, c = shape
        return (n, None if h is None else h + 2 * self.pad, None if w is None else w + 2 * self.pad, c)


class TorchBatchNorm(keras.layers.Layer):
    """Batch normalisation over the last axis with PyTorch's running statistics.

    Training normalises with the biased batch variance but, like torch, feeds the unbiased one
    (n / (n - 1)) into running_var; running = momentum * running + (1 - momentum) * batch.
    """

    def __init__(self, epsilon: float, momentum: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.momentum = momentum
        self.frozen = False  # a frozen layer normalises with its running statistics even in training

    def build(self, shape) -> None:
        c = (shape[-1],)
        self.gamma = self.add_weight(shape=c, initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=c, initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(shape=c, initializer="zeros", name="moving_mean", trainable=False)
        self.moving_variance = self.add_weight(shape=c, initializer="ones", name="moving_variance", trainable=False)

    def call(self, x, training=False):
        if training and not self.frozen:
            mean, variance = self._batch_moments(x)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return tf.nn.batch_normalization(x, mean, variance, self.beta, self.gamma, self.epsilon)

    def _batch_moments(self, x):
        """Batch mean and biased variance; updates the running statistics as torch does."""
        axes = list(range(len(x.shape) - 1))
        mean = tf.reduce_mean(x, axes)
        variance = tf.reduce_mean(tf.math.squared_difference(x, mean), axes)
        count = tf.cast(tf.size(x) // tf.shape(x)[-1], x.dtype)
        unbiased = variance * count / tf.maximum(count - 1.0, 1.0)
        m = self.momentum
        self.moving_mean.assign(m * self.moving_mean + (1.0 - m) * tf.stop_gradient(mean))
        self.moving_variance.assign(m * self.moving_variance + (1.0 - m) * tf.stop_gradient(unbiased))
        return mean, variance

    def compute_output_shape(self, shape):
        return shape


class Maxout(keras.layers.Layer):
    """Maximum over groups of `pieces` consecutive units: (n, units) -> (n, units // pieces)."""

    def __init__(self, pieces: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pieces = pieces

    def call(self, x):
        return tf.reduce_max(tf.reshape(x, [-1, x.shape[-1] // self.pieces, self.pieces]), axis=-1)

    def compute_output_shape(self, shape):
        return (shape[0], shape[-1] // self.pieces)


class ChannelsFirstFlatten(keras.layers.Layer):
    """Flatten NHWC to (n, C*H*W) in channels-first order, so dense weights match PyTorch's."""

    def call(self, x):
        if len(x.shape) == 4:
            x = tf.transpose(x, [0, 3, 1, 2])
        return tf.reshape(x, [-1, math.prod(x.shape[1:])])

    def compute_output_shape(self, shape):
        return (shape[0], math.prod(shape[1:]))


# ----------------------------------------------------------------------------- graph -> keras

def keras_names(graph: Graph) -> dict[str, str]:
    """Node name -> Keras layer name: the node's own name, unless Keras or TF refuse its characters."""
    names: dict[str, str] = {}
    taken: set[str] = set()
    for node in graph.nodes:
        name = re.sub(r"[^A-Za-z0-9_.\-]", "_", node.name)
        if not re.match(r"[A-Za-z0-9.]", name):
            name = "n" + name
        base, i = name, 1
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        names[node.name] = name
        taken.add(name)
    return names


def _torch_uniform(fan_in: int) -> keras.initializers.Initializer:
    """PyTorch's default for conv and dense weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return keras.initializers.RandomUniform(-bound, bound)


def is_depthwise(node: Node, graph: Graph) -> bool:
    """A conv with one group per input channel and one filter per group: Keras' DepthwiseConv2D."""
    groups = node.attrs.get("groups", 1)
    return groups > 1 and groups == graph.node(node.inputs[0]).shape[0] == node.attrs["filters"]


def _conv(node: Node, graph: Graph, name: str, x):
    a = node.attrs
    groups = a.get("groups", 1)
    fan_in = graph.node(node.inputs[0]).shape[0] // groups * a["kernel"] ** 2
    if a["pad"]:
        x = keras.layers.ZeroPadding2D(a["pad"], data_format=_CHANNELS_LAST, name=f"{name}__pad")(x)
    common = {"strides": a["stride"], "padding": "valid", "data_format": _CHANNELS_LAST, "use_bias": a["bias"],
              "name": name, "bias_initializer": _torch_uniform(fan_in)}
    if is_depthwise(node, graph):
        layer = keras.layers.DepthwiseConv2D(a["kernel"], depth_multiplier=1,
                                             depthwise_initializer=_torch_uniform(fan_in), **common)
    else:
        layer = keras.layers.Conv2D(a["filters"], a["kernel"], groups=groups,
                                    kernel_initializer=_torch_uniform(fan_in), **common)
    return layer(x)


def _pool(node: Node, name: str, x):
    a = node.attrs
    if a["kind"] == "avg":
        return keras.layers.AveragePooling2D(a["kernel"], a["stride"], padding="valid",
                                             data_format=_CHANNELS_LAST, name=name)(x)
    if a["pad"]:
        x = NegInfPadding2D(a["pad"], name=f"{name}__pad")(x)
    return keras.layers.MaxPooling2D(a["kernel"], a["stride"], padding="valid", data_format=_CHANNELS_LAST,
                                     name=name)(x)


def _dense(node: Node, graph: Graph, name: str, x):
    fan_in = graph.node(node.inputs[0]).shape[0]
    init = _torch_uniform(fan_in)
    return keras.layers.Dense(node.attrs["units"], name=name, kernel_initializer=init, bias_initializer=init)(x)


def _global_pool(node: Node, name: str, x):
    kind = keras.layers.GlobalAveragePooling2D if node.attrs["kind"] == "avg" else keras.layers.GlobalMaxPooling2D
    return kind(data_format=_CHANNELS_LAST, name=name)(x)


def _node_output(node: Node, graph: Graph, name: str, xs: list):
    """Apply the Keras layer(s) for `node` to its input tensors; the last layer is named `name`."""
    a, x = node.attrs, xs[0]
    if node.op == "conv":
        return _conv(node, graph, name, x)
    if node.op == "pool":
        return _pool(node, name, x)
    if node.op == "dense":
        return _dense(node, graph, name, x)
    if node.op == "global_pool":
        return _global_pool(node, name, x)
    if node.op == "batch_norm":
        return TorchBatchNorm(a["epsilon"], a["momentum"], name=name)(x)
    if node.op == "act":
        if a["kind"] == "relu6":
            return keras.layers.ReLU(max_value=6.0, name=name)(x)
        return keras.layers.Activation(a["kind"], name=name)(x)
    if node.op == "dropout":
        return keras.layers.Dropout(a["rate"], name=name)(x)
    if node.op == "maxout":
        return Maxout(a["pieces"], name=name)(x)
    if node.op == "upsample":
        return keras.layers.UpSampling2D(a["scale"], data_format=_CHANNELS_LAST, interpolation="nearest", name=name)(x)
    if node.op == "zero_pad":
        return keras.layers.ZeroPadding2D(((a["top"], a["bottom"]), (a["left"], a["right"])),
                                          data_format=_CHANNELS_LAST, name=name)(x)
    if node.op == "flatten":
        return ChannelsFirstFlatten(name=name)(x)
    if node.op == "concat":
        return keras.layers.Concatenate(axis=-1, name=name)(xs)
    if node.op == "add":
        return keras.layers.Add(name=name)(xs)
    raise ValueError(f"the tensorflow backend has no layer for op {node.op!r}")


def build_model(graph: Graph) -> tuple[keras.Model, dict[str, keras.layers.Layer]]:
    """The Keras functional model of `graph` (input NCHW or (N, K)) and node name -> its Keras layer."""
    names = keras_names(graph)
    inputs = keras.Input(shape=graph.input.shape, name=names["input"])
    x = inputs
    if len(graph.input.shape) == 3:
        x = keras.layers.Permute((2, 3, 1), name=f"{names['input']}__nhwc")(x)
    values = {"input": x}
    for node in graph.nodes[1:]:
        values[node.name] = _node_output(node, graph, names[node.name], [values[i] for i in node.inputs])
    model = keras.Model(inputs, values[graph.output.name], name="deepwater")
    return model, {node.name: model.get_layer(names[node.name]) for node in graph.nodes[1:]}
