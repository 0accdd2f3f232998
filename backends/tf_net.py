"""A networks.Graph compiled into a Keras 3 model, trained by a tf.function step with H2O's optimiser.

The model takes canonical channels-first batches (N, C, H, W) and turns them channels-last once at the
input, because TensorFlow's CPU kernels want NHWC. Everything the outside sees stays canonical: flatten
emits C, H, W order, features() returns channels-first activations, and get_state()/set_state() speak
PyTorch's weight layouts. The optimisers are written out with tf ops so that they follow
torch.optim.SGD (momentum, nesterov) and torch.optim.Adadelta to the last rounding step.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from deepwater.networks import Graph, Node, check_state
from deepwater.specs import OptimizerSpec, TaskSpec

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

    def build(self, shape) -> None:
        c = (shape[-1],)
        self.gamma = self.add_weight(shape=c, initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=c, initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(shape=c, initializer="zeros", name="moving_mean", trainable=False)
        self.moving_variance = self.add_weight(shape=c, initializer="ones", name="moving_variance", trainable=False)

    def call(self, x, training=False):
        if training:
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


# ----------------------------------------------------------------------------- canonical state

@dataclass(frozen=True)
class StateEntry:
    """One canonical tensor: its Keras variable and the layout conversions both ways."""

    variable: tf.Variable
    to_canonical: Callable[[np.ndarray], np.ndarray]
    to_keras: Callable[[np.ndarray], np.ndarray]


def _same(a: np.ndarray) -> np.ndarray:
    return a


def _conv_to_canonical(a: np.ndarray) -> np.ndarray:
    return a.transpose(3, 2, 0, 1)  # (kh, kw, I, O) -> (O, I, kh, kw)


def _conv_to_keras(a: np.ndarray) -> np.ndarray:
    return a.transpose(2, 3, 1, 0)  # (O, I, kh, kw) -> (kh, kw, I, O)


def _depthwise_swap(a: np.ndarray) -> np.ndarray:
    return a.transpose(2, 3, 0, 1)  # depthwise (kh, kw, C, 1) <-> (C, 1, kh, kw): the same swap both ways


def _transpose(a: np.ndarray) -> np.ndarray:
    return a.T  # dense: (in, out) <-> (out, in)


def state_entries(graph: Graph, layers: dict[str, keras.layers.Layer]) -> dict[str, StateEntry]:
    """'<node>.<param>' -> StateEntry, in the order of graph.state_shapes()."""
    found: dict[str, StateEntry] = {}
    for node in graph.nodes[1:]:
        layer = layers[node.name]
        if node.op == "conv":
            found[f"{node.name}.weight"] = StateEntry(layer.kernel, _depthwise_swap, _depthwise_swap) \
                if is_depthwise(node, graph) else StateEntry(layer.kernel, _conv_to_canonical, _conv_to_keras)
            if node.attrs["bias"]:
                found[f"{node.name}.bias"] = StateEntry(layer.bias, _same, _same)
        elif node.op == "dense":
            found[f"{node.name}.weight"] = StateEntry(layer.kernel, _transpose, _transpose)
            found[f"{node.name}.bias"] = StateEntry(layer.bias, _same, _same)
        elif node.op == "batch_norm":
            for param, variable in [("weight", layer.gamma), ("bias", layer.beta),
                                    ("running_mean", layer.moving_mean), ("running_var", layer.moving_variance)]:
                found[f"{node.name}.{param}"] = StateEntry(variable, _same, _same)
    return {key: found[key] for key in graph.state_shapes()}


# ----------------------------------------------------------------------------- losses

def _rowwise_loss(kind: str, out: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """The loss of each row, as torch's functional losses compute it with reduction='none'."""
    if kind == "cross_entropy":
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=out)
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

class TorchSGD:
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


class TorchAdadelta:
    """torch.optim.Adadelta with lr 1, through TensorFlow's fused ApplyAdadelta kernel (the same update:
    square_avg = rho*square_avg + (1-rho)*g^2; delta = sqrt(acc_delta+eps) / sqrt(square_avg+eps) * g;
    acc_delta = rho*acc_delta + (1-rho)*delta^2; w -= lr * delta)."""

    def __init__(self, variables: list[tf.Variable], spec: OptimizerSpec) -> None:
        self.rho, self.epsilon = spec.rho, spec.epsilon
        self.square_avgs = [tf.Variable(tf.zeros_like(v), trainable=False, name="square_avg") for v in variables]
        self.acc_deltas = [tf.Variable(tf.zeros_like(v), trainable=False, name="acc_delta") for v in variables]

    def apply(self, variables: list[tf.Variable], grads: list[tf.Tensor], lr: tf.Tensor, momentum: tf.Tensor) -> None:
        rho, eps = tf.constant(self.rho, tf.float32), tf.constant(self.epsilon, tf.float32)
        for v, g, square_avg, acc_delta in zip(variables, grads, self.square_avgs, self.acc_deltas):
            tf.raw_ops.ResourceApplyAdadelta(var=v.handle, accum=square_avg.handle, accum_update=acc_delta.handle,
                                             lr=lr, rho=rho, epsilon=eps, grad=g)


class Update:
    """H2O's update of a list of variables inside a compiled step: the rate and momentum schedule
    (OptimizerSpec.rate/momentum of the samples seen before the batch), penalties on weights
    (grad += l1*sign(w) + l2*w), element-wise clipping, then TorchSGD or TorchAdadelta."""

    def __init__(self, variables: list[tf.Variable], penalised: list[bool], spec: OptimizerSpec) -> None:
        self.variables, self.penalised, self.spec = variables, penalised, spec
        self.optimizer = TorchAdadelta(variables, spec) if spec.adaptive_rate else TorchSGD(variables, spec)
        self.lr = tf.Variable(spec.rate(0) if not spec.adaptive_rate else 1.0, dtype=tf.float32, trainable=False,
                              name="learning_rate")
        self.momentum = tf.Variable(spec.momentum(0), dtype=tf.float32, trainable=False, name="momentum")
        self.samples = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="samples")

    def apply(self, grads: list[tf.Tensor], rows: tf.Tensor) -> None:
        """One step with the gradients of self.variables from a batch of `rows` rows."""
        self._update_schedule()
        self.optimizer.apply(self.variables, self._regularise(grads), self.lr, self.momentum)
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


# ----------------------------------------------------------------------------- the Net

def channels_first_rows(out: tf.Tensor) -> tf.Tensor:
    """Activations flattened to (n, k), NHWC maps read in channels-first (C, H, W) order."""
    if len(out.shape) == 4:
        out = tf.transpose(out, [0, 3, 1, 2])
    return tf.reshape(out, [tf.shape(out)[0], -1])


def tf_device(device: str) -> str:
    """'cpu' -> '/CPU:0', 'cuda:i' -> '/GPU:i'."""
    if device == "cpu":
        return "/CPU:0"
    if device.startswith("cuda:"):
        return f"/GPU:{int(device.split(':', 1)[1])}"
    raise ValueError(f"the tensorflow backend cannot run on device {device!r}; use 'cpu' or 'cuda:<i>'")


class TensorflowNet:
    """One network on one device, with its optimiser: the Net protocol for TensorFlow."""

    def __init__(self, graph: Graph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int,
                 jit_compile: bool = False) -> None:
        keras.utils.set_random_seed(seed)
        self.graph, self.task, self.spec, self.device = graph, task, optimizer, device
        self.jit_compile = jit_compile
        self.samples = 0
        self._device = tf_device(device)
        with tf.device(self._device):
            self.model, self._layers = build_model(graph)
            self._state = state_entries(graph, self._layers)
            params = graph.param_shapes()
            self._variables = [self._state[k].variable for k in params]
            penalised = set(graph.penalised_params())
            self._update = Update(self._variables, [k in penalised for k in params], optimizer)
        self._steps: dict[bool, Callable] = {}
        self._predict_fn = self._compile(self._predict_graph)
        self._feature_fns: dict[str, Callable] = {}

    # --- compiled functions ---------------------------------------------------------------
    def _x_spec(self) -> tf.TensorSpec:
        return tf.TensorSpec((None,) + tuple(self.graph.input.shape), tf.float32)

    def _y_spec(self) -> tf.TensorSpec:
        return tf.TensorSpec((None,), tf.int64 if self.task.is_classification else tf.float32)

    def _compile(self, fn: Callable, *extra: tf.TensorSpec) -> Callable:
        return tf.function(fn, input_signature=[self._x_spec(), *extra], jit_compile=self.jit_compile)

    def _step_fn(self, weighted: bool) -> Callable:
        """The compiled training step for batches with (or without) row weights, built on first use."""
        if weighted not in self._steps:
            specs = [self._y_spec()] + ([tf.TensorSpec((None,), tf.float32)] if weighted else [])
            self._steps[weighted] = self._compile(self._train_graph, *specs)
        return self._steps[weighted]

    def _train_graph(self, x: tf.Tensor, y: tf.Tensor, weights: tf.Tensor | None = None) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = batch_loss(self.task.loss, self.model(x, training=True), y, weights)
        self._update.apply(tape.gradient(loss, self._variables), tf.shape(x)[0])
        return loss

    def _predict_graph(self, x: tf.Tensor) -> tf.Tensor:
        out = self.model(x, training=False)
        return tf.nn.softmax(out, axis=1) if self.task.is_classification else out

    def _feature_fn(self, layer: str) -> Callable:
        """A compiled function returning `layer`'s activations, canonical and flat; cached per layer."""
        if layer not in self._feature_fns:
            if layer not in self._layers:
                raise KeyError(f"layer {layer!r} is not in this network; use one of {self.layers()}")
            with tf.device(self._device):
                sub = keras.Model(self.model.inputs, self._layers[layer].output)

            def features(x: tf.Tensor) -> tf.Tensor:
                return channels_first_rows(sub(x, training=False))

            self._feature_fns[layer] = self._compile(features)
        return self._feature_fns[layer]

    # --- the Net protocol -----------------------------------------------------------------
    def _inputs(self, x: np.ndarray) -> tf.Tensor:
        return tf.convert_to_tensor(np.asarray(x, dtype=np.float32))

    def train_batch(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
        """One optimiser step; returns the mean loss of the batch."""
        y_dtype = np.int64 if self.task.is_classification else np.float32
        with tf.device(self._device):
            args = [self._inputs(x), tf.convert_to_tensor(np.asarray(y, dtype=y_dtype))]
            if weights is not None:
                args.append(tf.convert_to_tensor(np.asarray(weights, dtype=np.float32)))
            loss = self._step_fn(weights is not None)(*args)
        self.samples += len(x)
        return float(loss)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes) or values (n, 1)."""
        with tf.device(self._device):
            return self._predict_fn(self._inputs(x)).numpy().astype(np.float32, copy=False)

    def layers(self) -> list[str]:
        return self.graph.layer_names()

    def features(self, x: np.ndarray, layer: str) -> np.ndarray:
        """Activations of `layer` in the canonical (channels-first) order, flattened to (n, k)."""
        fn = self._feature_fn(layer)
        with tf.device(self._device):
            return fn(self._inputs(x)).numpy().astype(np.float32, copy=False)

    def get_state(self) -> dict[str, np.ndarray]:
        """Weights and batch-norm statistics as '<layer>.<name>' -> numpy array (copies), PyTorch layouts."""
        return {key: np.array(entry.to_canonical(entry.variable.numpy()), dtype=np.float32, order="C")
                for key, entry in self._state.items()}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Load weights given in PyTorch layouts; names and shapes must match this network's."""
        check_state(self.graph, state)
        with tf.device(self._device):
            for key, entry in self._state.items():
                entry.variable.assign(entry.to_keras(np.asarray(state[key], dtype=np.float32)))

    def parameter_count(self) -> int:
        """Trainable values in the Keras model (equals Graph.param_count())."""
        return int(sum(math.prod(v.shape) for v in self.model.trainable_weights))
