"""TensorFlow SavedModel directories as user networks (network='user', backend 'tensorflow').

The directory is what `model.export(path)` (Keras 3) or `tf.saved_model.save(module, path, signatures=...)`
writes: saved_model.pb and the weights under variables/. The network is its serving signature
('serving_default', or its only one) with one input and one output. The weights live in the directory,
so network_parameters_file is refused, and a SavedModel holds traced functions, not layers, so
replace_output_layer=True is refused too and layers() is the signature's output name alone: such a model explains
by saliency and integrated gradients (input gradients), not by Grad-CAM, which needs a layer of feature maps.

A classifier whose output comes from a Softmax op gives probabilities p; it trains on log(p) as its
logits (softmax(log p) = p, so deepwater's cross-entropy sees the same loss). Training runs the
serving function as it was traced: dropout stays off and batch norm keeps its running statistics.
The state is every variable the function reads, under its own name.
"""
from __future__ import annotations

import math
import os

import tensorflow as tf

from deepwater.errors import ModelFileError, first_lines
from deepwater.runtime.user_graphs import UserGraph, check_outputs, no_replacement
from deepwater.specs import OptimizerSpec, TaskSpec

from .net import tf_device
from .user import EagerUserNet, input_layout

SERVING = "serving_default"
_PASS_THROUGH = {"Identity", "IdentityN"}
_CALLS = {"PartitionedCall", "StatefulPartitionedCall"}
_TINY = 1e-30  # log(p) floor for probabilities that underflowed to zero


def read_saved_model(path: str):
    """tf.saved_model.load(path), or a ModelFileError naming saved_model.pb and saying why not."""
    try:
        return tf.saved_model.load(path)
    except Exception as error:  # protobuf, checkpoint and IO errors alike mean an unreadable directory
        pb = os.path.join(path, "saved_model.pb")
        raise ModelFileError(f"network_definition_file={path!r} is not a loadable SavedModel ({pb} truncated, "
                             f"or variables/ missing?): {first_lines(error)}") from error


def serving_function(loaded, path: str):
    """The serving signature's concrete function, its one input name and its one output name."""
    signatures = dict(loaded.signatures)
    if SERVING not in signatures and len(signatures) != 1:
        raise ModelFileError(f"network_definition_file={path!r} has signatures {sorted(signatures)} but none is "
                             f"{SERVING!r}; export one with model.export(path) or tf.saved_model.save(module, path, "
                             "signatures=...).")
    function = signatures.get(SERVING) or next(iter(signatures.values()))
    inputs, outputs = function.structured_input_signature[1], function.structured_outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelFileError(f"network_definition_file={path!r}: its serving signature takes {sorted(inputs)} and "
                             f"gives {sorted(outputs)}; a user network takes one input and gives one output.")
    return function, next(iter(inputs)), next(iter(outputs))


def ends_in_softmax(function) -> bool:
    """True when the function's (only) output comes from a Softmax op, through identities and nested calls."""
    graph_def = function.graph.as_graph_def()
    library = {f.signature.name: f for f in graph_def.library.function}
    nodes = {node.name: node for node in graph_def.node}
    name, port = _split(function.outputs[0].name)
    while name in nodes:
        node = nodes[name]
        if node.op == "Softmax":
            return True
        if node.op == "Identity":
            name, port = _split(node.input[0])
        elif node.op in _CALLS and node.attr["f"].func.name in library:
            inner = library[node.attr["f"].func.name]
            nodes = {n.name: n for n in inner.node_def}
            name, port = _split(inner.ret[inner.signature.output_arg[port].name])
        else:
            return False
    return False


def _split(reference: str) -> tuple[str, int]:
    """'node:2' (in a graph) or 'node:output:2' (in a function) -> ('node', 2); a bare 'node' is port 0."""
    parts = reference.split(":")
    return parts[0], int(parts[-1]) if len(parts) > 1 else 0


def load_saved_model(graph: UserGraph, task: TaskSpec, optimizer: OptimizerSpec, device: str,
                     seed: int) -> EagerUserNet:
    """A Net from a SavedModel directory's serving signature, see the module docstring."""
    path = graph.definition_file
    if graph.parameters_file is not None:
        raise ModelFileError(f"network_parameters_file={graph.parameters_file!r}: the SavedModel {path!r} holds "
                             "its weights (variables/); leave network_parameters_file None.")
    if graph.replace_output_layer:
        raise no_replacement(graph, "a SavedModel holds traced functions, not layers that can be swapped")
    tf.random.set_seed(seed)
    with tf.device(tf_device(device)):
        loaded = read_saved_model(path)
    function, input_name, output_name = serving_function(loaded, path)
    input_spec = function.structured_input_signature[1][input_name]
    output_spec = function.structured_outputs[output_name]
    layout = input_layout(path, input_spec.shape[1:], graph.input_shape)
    check_outputs(graph, math.prod(output_spec.shape[1:]), task, replaceable=False)
    probabilities = task.is_classification and ends_in_softmax(function)

    def output(x: tf.Tensor) -> tf.Tensor:
        return function(**{input_name: x})[output_name]

    def scores(out: tf.Tensor) -> tf.Tensor:
        """The logits the net trains on: the output, or log(p) of an output of probabilities."""
        out = tf.reshape(out, [tf.shape(out)[0], -1])
        return tf.math.log(tf.maximum(out, _TINY)) if probabilities else out

    def output_and_scores(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        out = output(x)
        return out, scores(out)

    return EagerUserNet(path, lambda x, training: scores(output(x)), layout, graph.input_shape, function.variables,
                        function.trainable_variables, [output_name], lambda layer: output, task, optimizer, device,
                        lambda layer: output_and_scores)
