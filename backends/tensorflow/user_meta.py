"""TF1 MetaGraphs (`.meta`) with Deep Water's `meta` collection as user networks (network='user').

Deep Water's contract for a TensorFlow graph: collection `meta` holds one JSON string naming tensors,
    {"inputs": {"batch_image_input": "x:0", "categorical_labels": "labels:0"},
     "outputs": {"categorical_logits": "logits:0", "layers": "..."},
     "metrics": {"total_loss": "loss:0", ...},
     "parameters": {"learning_rate": ..., "momentum": ..., "global_is_training": ..., "batch_size": ...}}
and collections `train_op` (what one training step runs) and `init_op`, with a SaverDef for checkpoints.
Such a graph is a classifier that trains through its OWN train_op: deepwater feeds the batch (images
flattened channels-last, as Deep Water did, or in the placeholder's own shape; labels one-hot),
learning_rate and momentum from H2O's schedule (not with adaptive_rate, where the graph's defaults
stay), global_is_training True and batch_size, and reports the graph's total_loss (or cross-entropy of
the logits). l1, l2, clip_gradient and row weights are the graph's business, so they do not apply.

The graph runs in a tf.compat.v1.Session, imported with clear_devices=True and pinned to the chosen
device. network_parameters_file is a checkpoint written with the graph's Saver: its `.index` file, its
prefix or its directory. A graph split into towers along the batch (tf.split into k parts) gets batches
padded to a multiple of k by repeating rows, and only the rows asked for come back. layers() lists
the ops between the input and the logits that give one row per input row; the state is every global
variable under its own name. Class gradients (model.explain) are tf.gradients ops added to the graph, run in
inference mode (global_is_training False); its convolution ops are Grad-CAM's suggested layers.
"""
from __future__ import annotations

import json
import math
import os
import zlib

import numpy as np
import tensorflow as tf

from deepwater.errors import ModelFileError, ParameterError, first_lines
from deepwater.runtime.user_graphs import UserGraph, check_outputs, no_replacement
from deepwater.specs import OptimizerSpec, TaskSpec

from ..base import BaseNet
from .net import tf_device
from .user import input_layout, variable_names

PROBE_ROWS = 2  # rows per tower of the batch that finds which ops give one row per input row
CONVOLUTION = "Conv"  # in the type of each TensorFlow convolution op (Conv2D, Conv3D, DepthwiseConv2dNative, ...)


def read_meta_graph(path: str, seed: int):
    """import_meta_graph(path, clear_devices=True) into the default graph; its Saver (or None).

    Random ops left unseeded (seed = seed2 = 0, which TensorFlow seeds at random) get `seed` and a
    seed2 from their name, so that the graph's initial weights follow deepwater's seed.
    """
    try:
        with open(path, "rb") as handle:
            meta_graph = tf.compat.v1.MetaGraphDef.FromString(handle.read())
        for node in meta_graph.graph_def.node:
            if "seed" in node.attr and "seed2" in node.attr and node.attr["seed"].i == node.attr["seed2"].i == 0:
                node.attr["seed"].i, node.attr["seed2"].i = seed, zlib.crc32(node.name.encode())
        return tf.compat.v1.train.import_meta_graph(meta_graph, clear_devices=True)
    except Exception as error:  # protobuf and graph-import errors alike mean an unreadable file
        raise ModelFileError(f"network_definition_file={path!r} is not a readable TF1 MetaGraph (truncated, or "
                             f"not written by export_meta_graph?): {first_lines(error)}") from error


def read_contract(graph: tf.Graph, path: str) -> dict:
    """The JSON in the graph's `meta` collection, with a ModelFileError when it is missing or incomplete."""
    entries = graph.get_collection("meta")
    if not entries:
        raise ModelFileError(f"network_definition_file={path!r} has no 'meta' collection. Deep Water's TF1 "
                             "graphs name their tensors in one JSON string there: inputs.batch_image_input, "
                             "inputs.categorical_labels, outputs.categorical_logits (and parameters, metrics).")
    try:
        meta = json.loads(entries[0])
        for section, key in [("inputs", "batch_image_input"), ("inputs", "categorical_labels"),
                             ("outputs", "categorical_logits")]:
            graph.get_tensor_by_name(meta[section][key])
    except (ValueError, KeyError, TypeError) as error:
        raise ModelFileError(f"network_definition_file={path!r}: its 'meta' collection does not name the tensors "
                             f"of Deep Water's contract: {first_lines(error)}") from error
    return meta


def checkpoint_prefix(path: str) -> str:
    """A TF1 checkpoint's prefix from its `.index` file, its prefix or its directory."""
    if os.path.isdir(path):
        found = tf.train.latest_checkpoint(path)
        if found is None:
            raise ModelFileError(f"network_parameters_file={path!r} is a directory without a 'checkpoint' file; "
                                 "pass the checkpoint's .index file or prefix instead.")
        return found
    return path.removesuffix(".index")


def batch_divisor(logits: tf.Tensor) -> int:
    """The multiple of rows a batch needs: the lcm of k over tf.split(x, k, axis=0) on the way to the logits."""
    divisor, seen, todo = 1, set(), [logits.op]
    while todo:
        op = todo.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        todo.extend(t.op for t in op.inputs)
        if op.type == "Split" and op.inputs[0].op.type == "Const" and \
                tf.make_ndarray(op.inputs[0].op.get_attr("value")) == 0:
            divisor = math.lcm(divisor, op.get_attr("num_split"))
    return divisor


def forward_ops(graph: tf.Graph, x: tf.Tensor, logits: tf.Tensor) -> list[tf.Operation]:
    """Ops between the input and the logits (the logits' included), in graph order."""
    ancestors, todo = set(), [logits.op]
    while todo:
        op = todo.pop()
        if op.name not in ancestors:
            ancestors.add(op.name)
            todo.extend(t.op for t in op.inputs)
    descendants, todo = set(), [x.op]
    while todo:
        op = todo.pop()
        if op.name not in descendants:
            descendants.add(op.name)
            todo.extend(c for t in op.outputs for c in t.consumers())
    return [op for op in graph.get_operations()
            if op.name in ancestors and op.name in descendants and op is not x.op and op.outputs
            and op.outputs[0].dtype.is_floating and op.outputs[0].shape.rank not in (None, 0, 1)]


class MetaGraphNet(BaseNet):
    """A TF1 MetaGraph in its own session, trained by its own train_op."""

    def __init__(self, graph: UserGraph, task: TaskSpec, spec: OptimizerSpec, device: str, seed: int) -> None:
        super().__init__(task, device, repr(graph.definition_file))
        path = self.definition_file = graph.definition_file
        if not task.is_classification:
            raise ModelFileError(f"network_definition_file={path!r} is a TF1 MetaGraph, whose Deep Water contract "
                                 "is a classifier (categorical_logits); for regression use a Keras model or "
                                 "SavedModel.")
        if graph.replace_output_layer:
            raise no_replacement(graph, "a TF1 MetaGraph trains through its own train_op, wired to its last layer")
        if spec.optimizer not in ("auto", "sgd") or task.label_smoothing:
            given = f"optimizer={spec.optimizer!r}" if spec.optimizer not in ("auto", "sgd") else \
                f"label_smoothing={task.label_smoothing!r}"
            raise ParameterError(f"{given} cannot change how {path!r} trains: a TF1 MetaGraph trains through its "
                                 "own train_op (its optimiser and its loss); drop it (deepwater feeds the graph "
                                 "learning_rate, lr_schedule's rate, and momentum), or train a Keras model or "
                                 "SavedModel.")
        self.spec = spec
        self._data_shape = graph.input_shape
        self._graph = tf.Graph()
        with self._graph.as_default(), tf.device(tf_device(device)):
            saver = read_meta_graph(path, seed)
            meta = read_contract(self._graph, path)
            tensor = self._graph.get_tensor_by_name
            self._x = tensor(meta["inputs"]["batch_image_input"])
            self._labels = tensor(meta["inputs"]["categorical_labels"])
            self._logits = tensor(meta["outputs"]["categorical_logits"])
            self._parameters = {k: tensor(v) for k, v in meta.get("parameters", {}).items()}
            total_loss = meta.get("metrics", {}).get("total_loss")
            self._loss = tensor(total_loss) if total_loss else self._cross_entropy()
            self._train = self._graph.get_collection("train_op")
            init = self._graph.get_collection("init_op") or [tf.compat.v1.global_variables_initializer()]
            self._variables = self._graph.get_collection(tf.compat.v1.GraphKeys.GLOBAL_VARIABLES)
            if graph.parameters_file is not None and saver is None:
                saver = tf.compat.v1.train.Saver()
        self._session = tf.compat.v1.Session(graph=self._graph,
                                             config=tf.compat.v1.ConfigProto(allow_soft_placement=True))
        self._session.run([self._graph.as_graph_element(op) for op in init])
        if graph.parameters_file is not None:
            self._restore(saver, graph.parameters_file)
        self._layout = input_layout(path, self._x.shape[1:], graph.input_shape)
        check_outputs(graph, int(self._logits.shape[-1]), task, replaceable=False)
        self._divisor = batch_divisor(self._logits)
        self._layer_tensors: dict[str, tf.Tensor] | None = None
        self._target: tf.Tensor | None = None  # each row's output column, fed to the gradient ops
        self._gradient_tensors: dict[str | None, tuple[tf.Tensor, tf.Tensor]] = {}

    def _cross_entropy(self) -> tf.Tensor:
        """Mean cross-entropy of the logits, for graphs whose meta names no total_loss."""
        if self._labels.shape.rank == 2:
            return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=self._labels, logits=self._logits))
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=self._labels, logits=self._logits))

    def _restore(self, saver, parameters_file: str) -> None:
        try:
            with self._graph.as_default():  # Saver.restore works in graph mode only
                saver.restore(self._session, checkpoint_prefix(parameters_file))
        except (ValueError, tf.errors.OpError) as error:
            raise ModelFileError(f"network_parameters_file={parameters_file!r} is not a checkpoint of the graph in "
                                 f"{self.definition_file!r}: {first_lines(error)}") from error

    # --- running the graph ----------------------------------------------------------------
    def _feed(self, x: np.ndarray, training: bool) -> dict:
        """The input batch and the parameters the contract names: the training flag and the batch size."""
        feed = {self._x: self._layout.numpy(x)}
        if "global_is_training" in self._parameters:
            feed[self._parameters["global_is_training"]] = training
        if "batch_size" in self._parameters:
            feed[self._parameters["batch_size"]] = len(x)
        return feed

    def _padded(self, x: np.ndarray) -> np.ndarray:
        """The batch with rows repeated up to a multiple of the graph's tower count."""
        extra = -len(x) % self._divisor
        return np.concatenate([x, x[np.arange(extra) % len(x)]]) if extra else x

    def _run(self, fetches, feed: dict):
        try:
            return self._session.run(fetches, feed)
        except tf.errors.OpError as error:
            raise ModelFileError(f"network_definition_file={self.definition_file!r} failed to run: "
                                 f"{first_lines(error)}") from error

    def _outputs(self, tensor: tf.Tensor, x: np.ndarray) -> np.ndarray:
        """`tensor` for the rows of x (padded for the towers, cut back), as float32."""
        x = np.asarray(x, dtype=np.float32)
        return np.asarray(self._run(tensor, self._feed(self._padded(x), False))[:len(x)], dtype=np.float32)

    # --- BaseNet --------------------------------------------------------------------------
    def _step(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> float:
        """One step of the graph's own train_op; returns the graph's loss on the batch."""
        if weights is not None:
            raise ParameterError(f"weights_column cannot weight rows for {self.definition_file!r}: a TF1 MetaGraph "
                                 "trains through its own train_op, which takes no row weights.")
        if not self._train:
            raise ModelFileError(f"network_definition_file={self.definition_file!r} has no 'train_op' collection, "
                                 "so it cannot train; pass epochs=0 to score with its weights.")
        rows = self._padded(np.arange(len(x)))
        codes = np.asarray(y, dtype=np.int64)[rows]
        feed = self._feed(np.asarray(x, dtype=np.float32)[rows], True)
        labels = self._labels.dtype.as_numpy_dtype
        feed[self._labels] = np.eye(self.task.n_outputs, dtype=labels)[codes] if self._labels.shape.rank == 2 \
            else codes.astype(labels)
        if not self.spec.adaptive_rate:
            for name, value in [("learning_rate", self.spec.rate(self.samples)),
                                ("momentum", self.spec.momentum(self.samples))]:
                if name in self._parameters:
                    feed[self._parameters[name]] = value
        loss = self._run(self._train + [self._loss], feed)[-1]
        return float(loss)

    def _scores(self, x: np.ndarray) -> np.ndarray:
        """The graph's categorical_logits."""
        return self._outputs(self._logits, x)

    def _layers(self) -> dict[str, tf.Tensor]:
        """Op name -> output for the forward ops that give one row per input row (found on a probe batch)."""
        if self._layer_tensors is None:
            candidates = {op.name: op.outputs[0] for op in forward_ops(self._graph, self._x, self._logits)}
            rows = PROBE_ROWS * self._divisor
            probe = np.zeros((rows,) + self._data_shape, dtype=np.float32)
            values = self._run(candidates, self._feed(probe, False))
            self._layer_tensors = {name: t for name, t in candidates.items() if np.shape(values[name])[:1] == (rows,)}
        return self._layer_tensors

    def layers(self) -> list[str]:
        """Names of the ops from the input to the logits that features() takes."""
        return list(self._layers())

    def _activations(self, x: np.ndarray, layer: str) -> np.ndarray:
        """The op's output flattened to (n, k), image maps (n, H, W, C) in channels-first order."""
        out = self._outputs(self._layers()[layer], x)
        if out.ndim == 4:
            out = out.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(out.reshape(len(out), -1))

    def _gradients(self, layer: str | None) -> tuple[tf.Tensor, tf.Tensor]:
        """`layer`'s output (None: the input) and the gradient of the sum of each row's target logit with respect to
        it: tf.gradients ops added to the graph once per layer."""
        if layer not in self._gradient_tensors:
            values = self._x if layer is None else self._layers()[layer]
            classes = self.task.n_outputs
            with self._graph.as_default():
                if self._target is None:
                    self._target = tf.compat.v1.placeholder(tf.int64, (None,), name="deepwater_target")
                mask = tf.one_hot(self._target, classes, dtype=self._logits.dtype)
                picked = tf.reduce_sum(tf.reshape(self._logits, [-1, classes]) * mask)
                (gradients,) = tf.gradients(picked, [values], unconnected_gradients="zero")
            self._gradient_tensors[layer] = values, gradients
        return self._gradient_tensors[layer]

    def _class_gradients(self, x: np.ndarray, layer: str | None, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The graph's own gradients (tf.gradients) in inference mode, the batch padded for the towers; the input's
        back in the canonical layout, image maps (n, H, W, C) channels-first."""
        tensors = self._gradients(layer)
        rows = self._padded(np.arange(len(x)))
        feed = self._feed(np.asarray(x, dtype=np.float32)[rows], False)
        feed[self._target] = np.asarray(target, dtype=np.int64)[rows]
        values, gradients = (np.asarray(out[:len(x)], dtype=np.float32) for out in self._run(list(tensors), feed))
        if layer is None:
            return (self._layout.canonical(values, self._data_shape),
                    self._layout.canonical(gradients, self._data_shape))
        if values.ndim == 4:
            values, gradients = values.transpose(0, 3, 1, 2), gradients.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(values), np.ascontiguousarray(gradients)

    def convolutional_layers(self) -> list[str]:
        """The layers computed by a convolution op (Conv2D, DepthwiseConv2dNative, ...): ConvolutionalLayers."""
        return [name for name, tensor in self._layers().items() if CONVOLUTION in tensor.op.type]

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every global variable of the graph (weights, optimiser slots, global_step) under its own name."""
        return {n: tuple(v.shape.as_list()) for n, v in zip(variable_names(self._variables), self._variables)}

    def _read_state(self) -> dict[str, np.ndarray]:
        return dict(zip(variable_names(self._variables), self._session.run(self._variables)))

    def _write_state(self, state: dict[str, np.ndarray]) -> None:
        names = variable_names(self._variables)
        self._session.run([v.initializer for v in self._variables], {
            v.initializer.inputs[1]: np.asarray(state[n], dtype=v.dtype.base_dtype.as_numpy_dtype)
            for n, v in zip(names, self._variables)})

    def parameter_count(self) -> int:
        """Values in the graph's trainable variables."""
        trainable = self._graph.get_collection(tf.compat.v1.GraphKeys.TRAINABLE_VARIABLES)
        return int(sum(math.prod(v.shape.as_list()) for v in trainable))
