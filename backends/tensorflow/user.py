"""What the TensorFlow readers of user graph files (network='user') share.

Three formats reach the TensorFlow backend (deepwater.runtime.user_graphs): Keras `.keras` files
(user_keras.py), SavedModel directories (user_saved.py) and TF1 `.meta` MetaGraphs with Deep
Water's `meta` collection (user_meta.py). Whatever the format, rows arrive in deepwater's canonical
layout, images (n, C, H, W) and numeric rows (n, F); input_layout() finds how the graph wants them:
channels-last (n, H, W, C), the TensorFlow habit, channels-first, or flattened channels-last rows
(n, H*W*C), as Deep Water's TF1 graphs read images.

EagerUserNet is the Net for graphs that run eagerly (Keras models and SavedModel functions): one
compiled tf.function step trains the graph's logits with deepwater's loss (optimizers.batch_loss) and
update (optimizers.Update: H2O's rate and momentum schedule, l1/l2 on weights, clipping, SGD or ADADELTA).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from deepwater.backends.tensorflow.to_onnx import write_onnx
from deepwater.errors import ModelFileError
from deepwater.specs import OptimizerSpec, TaskSpec

from ..base import BaseNet, OnnxGraph
from .net import channels_first_rows, tf_device
from .optimizers import Update, batch_loss

# A graph's forward pass: input in the graph's own layout, training flag -> (n, k) logits or values
Forward = Callable[[tf.Tensor, bool], tf.Tensor]
# a layer's name -> a function of the input (in the graph's layout) giving the layer's values and the logits, from one
# run (in inference mode), so that a GradientTape sees the logits computed from those values
LayerAndLogits = Callable[[str], Callable[[tf.Tensor], tuple[tf.Tensor, tf.Tensor]]]


# ----------------------------------------------------------------------------- input layouts

@dataclass(frozen=True)
class InputLayout:
    """How canonical batches become the graph's input: an axis order, then (maybe) one axis per row."""

    perm: tuple[int, ...] | None  # the canonical batch's axes in the graph's order; None keeps them
    flat: bool                    # the graph takes each row as one flat axis
    channels_last: bool           # the graph's image activations are (n, H, W, C)

    def numpy(self, x: np.ndarray) -> np.ndarray:
        """A canonical numpy batch in the graph's layout."""
        x = np.asarray(x, dtype=np.float32)
        if self.perm is not None:
            x = x.transpose(self.perm)
        return np.ascontiguousarray(x.reshape(len(x), -1) if self.flat else x)

    def tensor(self, x: tf.Tensor) -> tf.Tensor:
        """A canonical batch tensor in the graph's layout (inside a compiled function)."""
        if self.perm is not None:
            x = tf.transpose(x, self.perm)
        return tf.reshape(x, [tf.shape(x)[0], -1]) if self.flat else x

    def rows(self, activations: tf.Tensor) -> tf.Tensor:
        """Activations flattened to (n, k), image maps in channels-first order as the built-in nets give them."""
        if self.channels_last:
            return channels_first_rows(activations)
        return tf.reshape(activations, [tf.shape(activations)[0], -1])

    def maps(self, activations: tf.Tensor) -> tf.Tensor:
        """A layer's values in their own shape, image maps (n, H, W, C) of a channels-last graph made (n, C, H, W)."""
        return tf.transpose(activations, [0, 3, 1, 2]) if self.channels_last and activations.shape.rank == 4 \
            else activations

    def canonical(self, x: np.ndarray, data_shape: tuple[int, ...]) -> np.ndarray:
        """A numpy batch in the graph's layout back in the canonical one of rows shaped `data_shape`: numpy()'s
        inverse (for gradients with respect to a graph's own input)."""
        if self.perm is None:
            return x.reshape((len(x),) + tuple(data_shape))
        graph_shape = tuple(data_shape[axis - 1] for axis in self.perm[1:])
        return np.ascontiguousarray(x.reshape((len(x),) + graph_shape).transpose(np.argsort(self.perm)))


_CHANNELS_LAST = InputLayout((0, 2, 3, 1), False, True)
_CHANNELS_FIRST = InputLayout(None, False, False)
_FLAT_CHANNELS_LAST = InputLayout((0, 2, 3, 1), True, True)
_ROWS = InputLayout(None, False, True)


def input_layout(path: str, graph_shape: Sequence[int | None], data_shape: tuple[int, ...],
                 channels_first: bool = False) -> InputLayout:
    """How rows of `data_shape` (C, H, W) or (F,) feed a graph whose input row has `graph_shape`.

    Images go channels-last (H, W, C) unless `channels_first` (a channels-first model) says to try
    (C, H, W) first; a graph taking flat rows gets them flattened in channels-last order. A mismatch is
    a ModelFileError naming the file.
    """
    graph_shape = tuple(None if d is None else int(d) for d in graph_shape)
    if len(data_shape) == 3:
        c, h, w = data_shape
        images = [((h, w, c), _CHANNELS_LAST), ((c, h, w), _CHANNELS_FIRST)]
        candidates = (images[::-1] if channels_first else images) + [((c * h * w,), _FLAT_CHANNELS_LAST)]
        what = "(channels, height, width)"
    else:
        candidates, what = [(data_shape, _ROWS)], "(features,)"
    for shape, layout in candidates:
        if len(shape) == len(graph_shape) and all(g is None or g == d for g, d in zip(graph_shape, shape)):
            return layout
    wanted = tuple("?" if d is None else d for d in graph_shape)
    raise ModelFileError(
        f"network_definition_file={path!r} takes input rows of shape {wanted}, which the data's rows "
        f"{data_shape} {what} do not fit (as channels-last, channels-first or flat images). Set image_shape "
        "and channels (or the predictor columns) to what the graph was built for.")


# ----------------------------------------------------------------------------- state

def variable_names(variables: Sequence[tf.Variable]) -> list[str]:
    """The variables' own names without ':0'; a repeated name gets _1, _2, ... in order."""
    names: list[str] = []
    for variable in variables:
        base = variable.name.removesuffix(":0")
        name, i = base, 1
        while name in names:
            name, i = f"{base}_{i}", i + 1
        names.append(name)
    return names


# ----------------------------------------------------------------------------- the eager Net

class EagerUserNet(BaseNet):
    """A user graph that runs eagerly (a Keras model, a SavedModel function) as a Net, on one device."""

    def __init__(self, path: str, forward: Forward, layout: InputLayout, data_shape: tuple[int, ...],
                 variables: Sequence[tf.Variable], trainable: Sequence[tf.Variable], layers: Sequence[str],
                 activations: Callable[[str], Callable[[tf.Tensor], tf.Tensor]], task: TaskSpec,
                 spec: OptimizerSpec, device: str, layer_and_logits: LayerAndLogits,
                 convolutional: Sequence[str] = ()) -> None:
        """`forward` gives logits (classification) or values; `activations(layer)` a function giving the
        activations of one of `layers`, `layer_and_logits(layer)` one giving them with the logits (for class
        gradients); `convolutional` names the layers a convolution computes.

        The functions take the graph's own input layout; `variables` (all, by their own names) make the
        state, `trainable` the ones that train (weights, those of rank 2 and up, take l1/l2).
        """
        super().__init__(task, device, repr(path))
        self.definition_file, self.spec = path, spec
        self._forward, self._layout, self._layers = forward, layout, list(layers)
        self._activations_of, self._layer_and_logits = activations, layer_and_logits
        self._convolutional = [name for name in layers if name in set(convolutional)]
        self._device = tf_device(device)
        self._state = dict(zip(variable_names(variables), variables))
        self._trainable = list(trainable)
        with tf.device(self._device):
            self.optimiser = Update(self._trainable, [len(v.shape) > 1 for v in self._trainable], spec)
        self._x_spec = x_spec = tf.TensorSpec((None,) + tuple(data_shape), tf.float32)
        y_spec = tf.TensorSpec((None,), tf.int64 if task.is_classification else tf.float32)
        w_spec = tf.TensorSpec((None,), tf.float32)
        self._steps = {False: tf.function(self._train_graph, input_signature=[x_spec, y_spec]),
                       True: tf.function(self._train_graph, input_signature=[x_spec, y_spec, w_spec])}
        self._scores_fn = tf.function(lambda x: self._forward(self._layout.tensor(x), False), input_signature=[x_spec])
        self._feature_fns: dict[str, Callable] = {}
        self._gradient_fns: dict[str | None, Callable] = {}

    def _train_graph(self, x: tf.Tensor, y: tf.Tensor, weights: tf.Tensor | None = None) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = batch_loss(self.task, self._forward(self._layout.tensor(x), True), y, weights)
        grads = tape.gradient(loss, self._trainable)
        grads = [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g) for v, g in zip(self._trainable, grads)]
        self.optimiser.apply(grads, tf.shape(x)[0])
        return loss

    def _run(self, fn: Callable, *arrays: np.ndarray | None) -> tf.Tensor:
        with tf.device(self._device):
            return fn(*[tf.convert_to_tensor(a) for a in arrays if a is not None])

    # --- BaseNet --------------------------------------------------------------------------
    def _step(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> tf.Tensor:
        y = np.asarray(y, dtype=np.int64 if self.task.is_classification else np.float32)
        w = None if weights is None else np.asarray(weights, dtype=np.float32)
        return self._run(self._steps[weights is not None], np.asarray(x, dtype=np.float32), y, w)  # read lazily

    def _scores(self, x: np.ndarray) -> np.ndarray:
        return self._run(self._scores_fn, np.asarray(x, dtype=np.float32)).numpy().astype(np.float32, copy=False)

    def _activations(self, x: np.ndarray, layer: str) -> np.ndarray:
        if layer not in self._feature_fns:
            activations = self._activations_of(layer)
            self._feature_fns[layer] = tf.function(
                lambda batch: self._layout.rows(activations(self._layout.tensor(batch))),
                input_signature=[self._x_spec])
        return self._run(self._feature_fns[layer], np.asarray(x, dtype=np.float32)).numpy().astype(np.float32)

    def _class_gradients(self, x: np.ndarray, layer: str | None, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One forward and one backward pass under a GradientTape, compiled once per layer."""
        if layer not in self._gradient_fns:
            self._gradient_fns[layer] = tf.function(
                lambda batch, columns: self._gradient_graph(layer, batch, columns),
                input_signature=[self._x_spec, tf.TensorSpec((None,), tf.int64)])
        values, gradients = self._run(self._gradient_fns[layer], np.asarray(x, dtype=np.float32),
                                      np.asarray(target, dtype=np.int64))
        return values.numpy().astype(np.float32, copy=False), gradients.numpy().astype(np.float32, copy=False)

    def _gradient_graph(self, layer: str | None, x: tf.Tensor, target: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(values, gradients) of `layer` (None: the canonical input x) for each row's `target` score."""
        with tf.GradientTape() as tape:
            tape.watch(x)
            graph_x = self._layout.tensor(x)
            if layer is None:
                values, scores = x, self._forward(graph_x, False)
            else:
                values, scores = self._layer_and_logits(layer)(graph_x)
            scores = tf.reshape(tf.cast(scores, tf.float32), [tf.shape(x)[0], -1])
            picked = tf.reduce_sum(tf.gather(scores, target, axis=1, batch_dims=1))
        gradients = tape.gradient(picked, values, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        if layer is None:
            return values, gradients
        return tf.cast(self._layout.maps(values), tf.float32), tf.cast(self._layout.maps(gradients), tf.float32)

    def convolutional_layers(self) -> list[str]:
        """The layers a convolution computes (ConvolutionalLayers), as the graph's reader found them."""
        return list(self._convolutional)

    def export_onnx(self, path: str, layers: Sequence[str]) -> OnnxGraph:
        """The graph's probabilities (or values) and the activations of `layers`, through tf2onnx."""
        def compute(x: tf.Tensor) -> list[tf.Tensor]:
            graph_x = self._layout.tensor(x)
            return [self._forward(graph_x, False),
                    *(self._layout.rows(self._activations_of(layer)(graph_x)) for layer in layers)]

        return write_onnx(compute, self.task.is_classification, layers, tuple(self._x_spec.shape[1:]), path,
                          f"network_definition_file={self.definition_file!r}")

    def layers(self) -> list[str]:
        """Names that features() takes, from the input side to the output."""
        return list(self._layers)

    def parameter_count(self) -> int:
        """Trainable values."""
        return int(sum(math.prod(v.shape) for v in self._trainable))

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every variable of the graph (weights, batch-norm statistics) under its own name."""
        return {name: tuple(v.shape) for name, v in self._state.items()}

    def _read_state(self) -> dict[str, np.ndarray]:
        return {name: np.array(v.numpy(), copy=True) for name, v in self._state.items()}

    def _write_state(self, state: dict[str, np.ndarray]) -> None:
        with tf.device(self._device):
            for name, variable in self._state.items():
                variable.assign(np.asarray(state[name], dtype=variable.dtype.as_numpy_dtype))
