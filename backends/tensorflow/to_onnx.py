"""TensorFlow graphs written as ONNX graphs for model.export(format='onnx'), through tf2onnx.

A tf.function over canonical batches (images (n, C, H, W), rows (n, F)) returns the network's output
(softmax probabilities for classification) and the flattened activations of the layers asked for;
tf2onnx.convert.from_function writes it with a symbolic batch axis and the variables as weights.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import tensorflow as tf

from deepwater.errors import MissingDependencyError, ModelFileError, first_lines

from ..base import ONNX_INPUT, ONNX_OPSET, OnnxGraph

# canonical batch -> [the network's output (logits or values), then the activations of each layer asked for]
Compute = Callable[[tf.Tensor], list[tf.Tensor]]


def write_onnx(compute: Compute, softmax: bool, layers: Sequence[str], input_shape: tuple[int, ...], path: str,
               source: str) -> OnnxGraph:
    """Convert `compute` for batches of rows shaped `input_shape` to the ONNX file `path`; ModelFileError
    naming `source` when tf2onnx cannot convert it, MissingDependencyError when tf2onnx is not installed."""
    try:
        import tf2onnx
    except ImportError as error:
        raise MissingDependencyError("tf2onnx (to export TensorFlow graphs to ONNX)", "export") from error
    spec = tf.TensorSpec((None,) + tuple(input_shape), tf.float32, name=ONNX_INPUT)

    def graph(x: tf.Tensor) -> list[tf.Tensor]:
        output, *values = compute(x)
        return [tf.nn.softmax(output) if softmax else output, *values]

    tf2onnx.logging.set_level(logging.ERROR)
    try:
        model, _ = tf2onnx.convert.from_function(tf.function(graph, input_signature=[spec]), input_signature=[spec],
                                                 opset=ONNX_OPSET, output_path=path)
    except Exception as error:  # tf2onnx raises many kinds of errors on operators it cannot convert
        raise ModelFileError(f"tf2onnx cannot export {source}: {first_lines(error)}. Convert the network yourself "
                             "(python -m tf2onnx.convert) and load the .onnx file as network='user', or export "
                             "without layers=.") from error
    names = [value.name for value in model.graph.output]
    return OnnxGraph(ONNX_INPUT, names[0], softmax, dict(zip(layers, names[1:])))
