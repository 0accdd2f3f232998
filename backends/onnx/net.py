"""An ONNX graph (network='user', a .onnx file) as a Net that onnxruntime scores.

The file is a protobuf ModelProto, read with onnx.load (no pickle; external weight files beside it are
read too) and checked with onnx.checker. What deepwater needs of the graph:

- exactly one input (initializers that old exporters also list as inputs do not count), floating point,
  in deepwater's layout: images (n, channels, height, width), rows (n, features). Its batch axis may be
  symbolic (all rows run at once) or fixed (rows run in chunks of that size, the last one padded);
- a first output with one score per class (softmax is applied unless a Softmax node computes it) or one
  value for regression.

layers() are the floating-point node outputs computed from the input, in the graph's (topological) order;
features() declares the one asked for as an extra graph output of a copy of the model. get_state() and
set_state() hold the floating-point initializers under their own names. Training is refused (epochs=0), and so
is explaining (class gradients: onnxruntime gives none), with a BackendError saying what to do.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
from google.protobuf.message import DecodeError
from onnx import helper, numpy_helper

from deepwater.errors import ModelFileError, first_lines
from deepwater.runtime.onnx_sessions import run_rows, start_session
from deepwater.runtime.user_graphs import UserGraph, check_outputs, training_refused
from deepwater.specs import TaskSpec

from ..base import BaseNet, OnnxGraph


def _is_float(elem_type: int) -> bool:
    """True for ONNX's floating-point tensor types (float, double, float16, bfloat16, ...)."""
    try:
        return np.issubdtype(helper.tensor_dtype_to_np_dtype(elem_type), np.floating)
    except (KeyError, TypeError, ValueError):  # UNDEFINED, or a type numpy does not have
        return False


def read_model(path: str) -> onnx.ModelProto:
    """The model in the .onnx file at `path`, its weights loaded and checked; ModelFileError naming the file."""
    try:
        model = onnx.load(path)
    except (DecodeError, OSError, ValueError, onnx.checker.ValidationError) as error:  # the last: external data
        raise ModelFileError(f"network_definition_file={path!r} is not a readable ONNX model (truncated, another "
                             f"format, or external weight files missing?): {first_lines(error)}") from error
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise ModelFileError(f"network_definition_file={path!r} is not a valid ONNX model (onnx.checker: "
                             f"{first_lines(error)}); export it again with your framework's ONNX exporter.") from error
    if not model.graph.output:
        raise ModelFileError(f"network_definition_file={path!r} has no graph output; export it with its output.")
    return model


def graph_input(model: onnx.ModelProto, path: str) -> onnx.ValueInfoProto:
    """The graph's one data input (initializers listed as inputs by old opsets are weights, not inputs)."""
    weights = {tensor.name for tensor in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in weights]
    if len(inputs) != 1:
        raise ModelFileError(f"network_definition_file={path!r} has {len(inputs)} inputs "
                             f"{[value.name for value in inputs]}; deepwater feeds one: images (n, channels, height, "
                             "width) or rows (n, features). Export the network with a single input.")
    return inputs[0]


def input_spec(value: onnx.ValueInfoProto, input_shape: tuple[int, ...], path: str) -> tuple[np.dtype, int | None]:
    """The input's dtype and fixed batch size (None when symbolic), its other axes checked against input_shape."""
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not _is_float(tensor.elem_type):
        raise ModelFileError(f"network_definition_file={path!r}: input {value.name!r} is not a floating-point "
                             "tensor; deepwater feeds float images or rows. Export the network with a float input.")
    if not tensor.HasField("shape"):  # rank unknown: anything goes, onnxruntime checks when it runs
        return helper.tensor_dtype_to_np_dtype(tensor.elem_type), None
    dims = [dim.dim_value or None for dim in tensor.shape.dim]  # None: a symbolic (or unset) axis
    if len(dims) != len(input_shape) + 1 or any(d is not None and d != want for d, want in zip(dims[1:], input_shape)):
        shown = tuple(dim.dim_value or dim.dim_param or "?" for dim in tensor.shape.dim)
        raise ModelFileError(
            f"network_definition_file={path!r} takes inputs of shape {shown} (batch first) but the data gives rows "
            f"of shape {input_shape} (images: (channels, height, width); rows: (features,)). Set image_shape and "
            "channels (or the predictors) to what the network was built for.")
    return helper.tensor_dtype_to_np_dtype(tensor.elem_type), dims[0]


def value_infos(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Types and shapes of the graph's values, as far as onnx.shape_inference knows them."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph
    except onnx.shape_inference.InferenceError:
        inferred = model.graph
    return {value.name: value for value in [*inferred.value_info, *inferred.output]}


def layer_outputs(model: onnx.ModelProto, input_name: str, infos: dict[str, onnx.ValueInfoProto]) -> list[str]:
    """Node outputs computed from the input (not from weights alone), floating point or of unknown type."""
    reached, names = {input_name}, []
    for node in model.graph.node:  # onnx.checker made sure the nodes are in topological order
        if not reached.intersection(node.input):
            continue
        for name in node.output:
            if name and name not in reached:
                reached.add(name)
                if name not in infos or _is_float(infos[name].type.tensor_type.elem_type):
                    names.append(name)
    return names


def ends_in_softmax(model: onnx.ModelProto) -> bool:
    """True when the first graph output is computed by a Softmax node (through Identity nodes)."""
    producers = {name: node for node in model.graph.node for name in node.output}
    node = producers.get(model.graph.output[0].name)
    while node is not None and node.op_type == "Identity":
        node = producers.get(node.input[0])
    return node is not None and node.op_type == "Softmax" and node.domain in ("", "ai.onnx")


class OnnxNet(BaseNet):
    """An ONNX graph run by onnxruntime on one device: a Net that scores but neither trains nor explains."""

    gradient_limit = ("onnxruntime runs an ONNX graph forward only and gives no gradients, which Grad-CAM, saliency "
                      "and integrated gradients need. Save the network in a format its framework differentiates "
                      "(TorchScript or torch.export for backend='torch', a .keras file or SavedModel for 'tensorflow', "
                      "an MXNet symbol for 'mxnet'; usually from the code that exported the ONNX file), or train a "
                      "built-in network, and explain that model.")

    def __init__(self, graph: UserGraph, task: TaskSpec, device: str) -> None:
        super().__init__(task, device, repr(graph.definition_file))
        self.definition_file = graph.definition_file
        self.input_shape = graph.input_shape
        self._model = read_model(self.definition_file)
        value = graph_input(self._model, self.definition_file)
        self._input = value.name
        self._dtype, self._batch = input_spec(value, self.input_shape, self.definition_file)
        self._output = self._model.graph.output[0].name
        self.outputs_probabilities = ends_in_softmax(self._model)
        self._infos = value_infos(self._model)
        self._layers = layer_outputs(self._model, self._input, self._infos)
        self._session = self._start(self._model)
        self._layer_sessions: dict[str, ort.InferenceSession] = {}
        check_outputs(graph, self._run(self._session, self._output, np.zeros((1,) + self.input_shape)).shape[1], task,
                      replaceable=False)

    # --- sessions ---------------------------------------------------------------------------
    def _start(self, model: onnx.ModelProto) -> ort.InferenceSession:
        """An onnxruntime session for `model` on this Net's device."""
        return start_session(model.SerializeToString(), self.device,
                             f"network_definition_file={self.definition_file!r}", "pass gpu=False to score on the CPU")

    def _with_outputs(self, layers: Sequence[str]) -> onnx.ModelProto:
        """A copy of the model with `layers` (node outputs) declared as extra graph outputs where they are not."""
        extended = onnx.ModelProto()
        extended.CopyFrom(self._model)
        declared = {value.name for value in extended.graph.output}
        for layer in layers:
            if layer not in declared:
                extended.graph.output.append(self._infos.get(layer, onnx.ValueInfoProto(name=layer)))
                declared.add(layer)
        return extended

    def _layer_session(self, layer: str) -> ort.InferenceSession:
        """A session that also outputs `layer`: the model with it declared as an extra graph output."""
        if layer in {value.name for value in self._model.graph.output}:
            return self._session
        if layer not in self._layer_sessions:
            self._layer_sessions[layer] = self._start(self._with_outputs([layer]))
        return self._layer_sessions[layer]

    def _run(self, session: ort.InferenceSession, output: str, x: np.ndarray) -> np.ndarray:
        """`output` for every row of x, flattened to (n, k): all at once, or in chunks of a fixed batch size."""
        return run_rows(session, self._input, output, x, self._dtype, self._batch,
                        f"network_definition_file={self.definition_file!r}")

    def export_onnx(self, path: str, layers: Sequence[str]) -> OnnxGraph:
        """The graph as it is (its weights inside the file), with `layers` as extra outputs when asked for."""
        onnx.save_model(self._with_outputs(layers), path)
        return OnnxGraph(self._input, self._output, self.outputs_probabilities, {layer: layer for layer in layers})

    def _weights(self) -> dict[str, onnx.TensorProto]:
        """The floating-point initializers by name (integer ones are shapes and indices, not weights)."""
        return {tensor.name: tensor for tensor in self._model.graph.initializer if _is_float(tensor.data_type)}

    # --- BaseNet ----------------------------------------------------------------------------
    def _step(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> float:
        """Refused: ONNX graphs are scored with epochs=0 (the error says how to train instead)."""
        raise training_refused(self.definition_file)

    def _scores(self, x: np.ndarray) -> np.ndarray:
        return self._run(self._session, self._output, x)

    def _activations(self, x: np.ndarray, layer: str) -> np.ndarray:
        return self._run(self._layer_session(layer), layer, x)

    def layers(self) -> list[str]:
        """Names of the node outputs computed from the input, from the input side to the output."""
        return list(self._layers)

    def parameter_count(self) -> int:
        """Values in the graph's floating-point initializers."""
        return int(sum(math.prod(tensor.dims) for tensor in self._weights().values()))

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """The graph's floating-point initializers under their own names."""
        return {name: tuple(tensor.dims) for name, tensor in self._weights().items()}

    def _read_state(self) -> dict[str, np.ndarray]:
        return {name: numpy_helper.to_array(tensor).copy() for name, tensor in self._weights().items()}

    def _write_state(self, state: dict[str, np.ndarray]) -> None:
        """Replace every floating-point initializer and restart onnxruntime."""
        weights = self._weights()
        for name, value in state.items():
            tensor = weights[name]
            dtype = helper.tensor_dtype_to_np_dtype(tensor.data_type)
            tensor.CopyFrom(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        self._session = self._start(self._model)
        self._layer_sessions.clear()
