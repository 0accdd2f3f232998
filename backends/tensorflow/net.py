"""A networks.Graph compiled into a Keras 3 model (layers.py), trained by a tf.function step with H2O's
optimiser (optimizers.py).

Everything the outside sees stays canonical: features() returns channels-first activations, and
get_state()/set_state() speak PyTorch's weight layouts.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from deepwater.networks import Graph
from deepwater.specs import OptimizerSpec, TaskSpec

from ..base import BaseNet, layer_plan, soft_targets
from .layers import build_model, is_depthwise
from .optimizers import Update, batch_loss
from .precision import LossScale, gpu_has_bfloat16, set_policy

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


class TensorflowNet(BaseNet):
    """A built-in network on one device, with its optimiser: the Net for TensorFlow."""

    takes_soft_targets = True  # batch_loss() takes them
    _average_step: Callable | None = None  # the compiled ema update (_new_average())

    def __init__(self, graph: Graph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int,
                 jit_compile: bool = False) -> None:
        super().__init__(task, device, "this network")
        keras.utils.set_random_seed(seed)
        self.graph, self.spec = graph, optimizer
        self.jit_compile = jit_compile
        self._device = tf_device(device)
        with tf.device(self._device):
            self.model, self._layers = build_model(graph)
            self._state = state_entries(graph, self._layers)
            params = graph.param_shapes()
            self._variables = [self._state[k].variable for k in params]
            penalised = set(graph.penalised_params())
            self.plan = layer_plan(graph, optimizer)
            self.optimiser = Update(self._variables, [k in penalised for k in params], optimizer,
                                    [self.plan.scale(k.rsplit(".", 1)[0]) for k in params])
        self._frozen: frozenset[str] = frozenset()  # the layers kept fixed now
        self._loss_scale: LossScale | None = None
        self._compile_all()

    def _compile_all(self) -> None:
        """(Re)make the compiled functions, after a change of precision or of jit_compile."""
        self._steps: dict[tuple[bool, bool], Callable] = {}
        self._scores_fn = self._compile(lambda x: tf.cast(self.model(x, training=False), tf.float32))
        self._feature_fns: dict[str, Callable] = {}
        self._gradient_fns: dict[str | None, Callable] = {}

    # --- precision and XLA ----------------------------------------------------------------
    def precisions(self) -> tuple[str, ...]:
        return ("float32", "bfloat16", "float16")

    def gpu_has_bfloat16(self) -> bool:
        return gpu_has_bfloat16(self._device)

    def _apply_steps(self, precision: str, compile: bool) -> None:
        """A Keras mixed-precision policy on every layer (loss scaling for float16); XLA (jit_compile) when
        `compile`."""
        set_policy(self.model, precision)
        with tf.device(self._device):
            self._loss_scale = LossScale() if precision == "float16" else None
        self.jit_compile = compile
        self._compile_all()

    def _loss_scale_state(self) -> np.ndarray | None:
        scale = self._loss_scale
        return None if scale is None else np.asarray([scale.scale.numpy(), scale.good_steps.numpy()], np.float32)

    def _load_loss_scale(self, values: np.ndarray) -> None:
        self._loss_scale.scale.assign(float(values[0]))
        self._loss_scale.good_steps.assign(int(values[1]))

    # --- compiled functions ---------------------------------------------------------------
    def _x_spec(self) -> tf.TensorSpec:
        return tf.TensorSpec((None,) + tuple(self.graph.input.shape), tf.float32)

    def _y_spec(self, soft: bool = False) -> tf.TensorSpec:
        if self.task.is_autoencoder or soft:  # the flattened inputs, or soft targets (class probabilities)
            return tf.TensorSpec((None, self.task.n_outputs), tf.float32)
        return tf.TensorSpec((None,), tf.int64 if self.task.is_classification else tf.float32)

    def _compile(self, fn: Callable, *extra: tf.TensorSpec) -> Callable:
        return tf.function(fn, input_signature=[self._x_spec(), *extra], jit_compile=self.jit_compile)

    def _step_fn(self, weighted: bool, soft: bool) -> Callable:
        """The compiled training step for batches with (or without) row weights and soft targets, built on first
        use."""
        if (weighted, soft) not in self._steps:
            specs = [self._y_spec(soft)] + ([tf.TensorSpec((None,), tf.float32)] if weighted else [])
            self._steps[weighted, soft] = self._compile(self._train_graph, *specs)
        return self._steps[weighted, soft]

    def _train_graph(self, x: tf.Tensor, y: tf.Tensor, weights: tf.Tensor | None = None) -> tf.Tensor:
        loss, grads = self.loss_and_gradients(x, y, weights)
        self.apply_gradients(grads, tf.shape(x)[0])
        return loss

    def loss_and_gradients(self, x: tf.Tensor, y: tf.Tensor, weights: tf.Tensor | None,
                           share: tf.Tensor | float = 1.0) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """share * the batch's mean loss (float32, whatever the precision), and the gradients of that loss
        times the float16 loss scale (apply_gradients() takes them)."""
        with tf.GradientTape() as tape:
            loss = share * batch_loss(self.task, tf.cast(self.model(x, training=True), tf.float32), y, weights)
            scaled = loss if self._loss_scale is None else loss * self._loss_scale.scale
        return loss, tape.gradient(scaled, self._variables)

    def apply_gradients(self, grads: list[tf.Tensor], rows: tf.Tensor) -> None:
        """The optimiser's update of `rows` rows from loss_and_gradients()' gradients: unscaled first under
        float16, and skipped (the loss scale halved) when they overflowed."""
        scale = self._loss_scale
        if scale is None:
            self.optimiser.apply(grads, rows)
            return
        grads = scale.unscale(grads)
        scale.apply_if_finite(grads, lambda: self.optimiser.apply(grads, rows), lambda: self.optimiser.skip(rows))

    def _feature_fn(self, layer: str) -> Callable:
        """A compiled function returning `layer`'s activations, canonical and flat; cached per layer."""
        if layer not in self._feature_fns:
            with tf.device(self._device):
                sub = keras.Model(self.model.inputs, self._layers[layer].output)
            self._feature_fns[layer] = self._compile(
                lambda x: tf.cast(channels_first_rows(sub(x, training=False)), tf.float32))
        return self._feature_fns[layer]

    def _gradient_fn(self, layer: str | None) -> Callable:
        """A compiled function (x, target) -> (values, gradients) of `layer` (None: the input), values
        channels-first; cached per layer."""
        if layer not in self._gradient_fns:
            with tf.device(self._device):
                outputs = self.model.outputs if layer is None else [self._layers[layer].output, *self.model.outputs]
                sub = keras.Model(self.model.inputs, outputs)

            def gradients(x: tf.Tensor, target: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    values = tf.nest.flatten(sub(x, training=False))
                    chosen = x if layer is None else values[0]
                    scores = tf.cast(values[-1], tf.float32)
                    picked = tf.reduce_sum(tf.gather(scores, target, axis=1, batch_dims=1))
                grads = tape.gradient(picked, chosen)
                if layer is not None and len(chosen.shape) == 4:  # NHWC maps -> channels-first
                    chosen, grads = tf.transpose(chosen, [0, 3, 1, 2]), tf.transpose(grads, [0, 3, 1, 2])
                return tf.cast(chosen, tf.float32), tf.cast(grads, tf.float32)

            self._gradient_fns[layer] = self._compile(gradients, tf.TensorSpec((None,), tf.int64))
        return self._gradient_fns[layer]

    def _class_gradients(self, x: np.ndarray, layer: str | None, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with tf.device(self._device):
            values, grads = self._gradient_fn(layer)(tf.convert_to_tensor(np.asarray(x, dtype=np.float32)),
                                                     tf.convert_to_tensor(target, dtype=tf.int64))
        return values.numpy(), grads.numpy()

    def _run(self, fn: Callable, x: np.ndarray) -> np.ndarray:
        with tf.device(self._device):
            return fn(tf.convert_to_tensor(np.asarray(x, dtype=np.float32))).numpy().astype(np.float32, copy=False)

    # --- BaseNet --------------------------------------------------------------------------
    def _follow_freeze(self) -> None:
        """Freeze the plan's layers, or train them again once unfreeze_after_epochs has passed (the steps are
        traced again: which variables step, and how frozen batch norms normalise, is part of the trace)."""
        frozen = self.plan.frozen_at(self.samples)
        if frozen != self._frozen:
            self._frozen = frozen
            self.optimiser.frozen = [k.rsplit(".", 1)[0] in frozen for k in self.graph.param_shapes()]
            for node in self.graph.nodes:
                if node.op == "batch_norm":
                    self._layers[node.name].frozen = node.name in frozen
            self._compile_all()

    def _step(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> tf.Tensor:
        self._follow_freeze()
        soft = soft_targets(self.task, y)
        y_dtype = np.int64 if self.task.is_classification and not soft else np.float32
        with tf.device(self._device):
            args = [tf.convert_to_tensor(np.asarray(x, dtype=np.float32)),
                    tf.convert_to_tensor(np.asarray(y, dtype=y_dtype))]
            if weights is not None:
                args.append(tf.convert_to_tensor(np.asarray(weights, dtype=np.float32)))
            return self._step_fn(weights is not None, soft)(*args)  # float() reads it when the trainer scores

    def _scores(self, x: np.ndarray) -> np.ndarray:
        return self._run(self._scores_fn, x)

    def _activations(self, x: np.ndarray, layer: str) -> np.ndarray:
        return self._run(self._feature_fn(layer), x)

    def layers(self) -> list[str]:
        return self.graph.layer_names()

    def parameter_count(self) -> int:
        """Trainable values in the Keras model (equals Graph.param_count())."""
        return int(sum(math.prod(v.shape) for v in self.model.trainable_weights))

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.graph.state_shapes()

    def _read_state(self) -> dict[str, np.ndarray]:
        return {key: np.array(entry.to_canonical(entry.variable.numpy()), dtype=np.float32, order="C")
                for key, entry in self._state.items()}

    def _write_state(self, state: dict[str, np.ndarray]) -> None:
        with tf.device(self._device):
            for key, entry in self._state.items():
                entry.variable.assign(entry.to_keras(np.asarray(state[key], dtype=np.float32)))

    # the ema average on the device, in Keras layouts: one compiled update per step, no copy to the host
    def _new_average(self) -> dict[str, tf.Variable]:
        with tf.device(self._device):
            average = {key: tf.Variable(entry.variable, trainable=False) for key, entry in self._state.items()}
        pairs = [(average[key], entry.variable) for key, entry in self._state.items()]

        def update(keep: tf.Tensor) -> None:
            for mean, variable in pairs:
                mean.assign_add(keep * (variable - mean))

        self._average_step = tf.function(update, input_signature=[tf.TensorSpec((), tf.float32)])
        return average

    def _update_average(self) -> None:
        with tf.device(self._device):
            self._average_step(tf.constant(1.0 - self.ema, tf.float32))

    def _average_arrays(self) -> dict[str, np.ndarray]:
        return {key: np.array(self._state[key].to_canonical(mean.numpy()), dtype=np.float32, order="C")
                for key, mean in self._average.items()}

    def _load_average(self) -> None:
        with tf.device(self._device):
            for key, mean in self._average.items():
                self._state[key].variable.assign(mean)
