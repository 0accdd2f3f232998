"""User-defined MXNet networks: a symbol JSON file (and optional .params weights) as a Net.

Deep Water users hand over the symbol their MXNet scripts saved (`sym.save(...)`), usually ending in a
SoftmaxOutput head named 'softmax' with the label 'softmax_label'. The head is dropped: its input (the
logits) is the network's output, trained with deepwater's own loss and optimiser (those of net.py:
SGD with momentum or ADADELTA, l1/l2, clipping), and predict() returns softmax probabilities.

Parameters keep the symbol's own names ('convolution0_weight', 'bn_data_moving_mean', ...): those are
the keys of get_state()/set_state() and of a .params file, saved by MXNet's save_params /
save_checkpoint ('arg:<name>' and 'aux:<name>') or as plain names. Batch-norm running statistics are
updated by MXNet's own BatchNorm operator while training.

replace_output_layer=True swaps the graph's last FullyConnected layer for a new one named 'new_output' with
an output per class (its weights in a .params file are left out), for fine-tuning on new classes.

Class gradients (model.explain) run a copy of the symbol with a zero variable added to the layer asked for, whose
gradient is the layer's, as net.py does for built-in networks; its Convolution layers are Grad-CAM's suggestions.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from deepwater.errors import ModelFileError, first_lines
from deepwater.runtime.user_graphs import UserGraph, check_outputs, no_replacement
from deepwater.specs import OptimizerSpec, TaskSpec

from .net import (
    CLASS_MASK,
    GRADIENT_PROBE,
    LABEL,
    ROW_WEIGHT,
    ExecutorCache,
    SymbolNet,
    bind_arrays,
    loss_symbol,
    mx_context,
)
from .optimizers import Slot, make_optimizer
from .runtime import load_mxnet

mx = load_mxnet()

DATA = "data"  # the input variable Deep Water's MXNet graphs read images or rows from
HEAD_OPS = {"SoftmaxOutput", "Softmax", "SoftmaxActivation", "softmax", "LinearRegressionOutput",
            "LogisticRegressionOutput", "MAERegressionOutput", "MakeLoss"}
LAYER_SUFFIX = "_output"
NEW_OUTPUT = "new_output"  # the FullyConnected layer that replace_output_layer=True puts in
CONVOLUTIONS = {"Convolution", "Deconvolution"}  # the operators of the layers Grad-CAM suggests
BATCH_NORMS = {"BatchNorm", "BatchNorm_v1", "_contrib_SyncBatchNorm"}
PROBED = "deepwater_probed"  # gradient_symbol(): the node adding GRADIENT_PROBE to the probed layer


# ----------------------------------------------------------------------------- files

def load_symbol(path: str):
    """mx.sym.load(path), with a ModelFileError naming the file when it is missing or not a symbol."""
    if not os.path.isfile(path):
        raise ModelFileError(f"network_definition_file={path!r}: no such file; pass the path of an MXNet "
                             "symbol JSON file (as saved by symbol.save()).")
    try:
        with open(path, encoding="utf-8") as handle:
            json.load(handle)
        return mx.sym.load(path)
    except (ValueError, UnicodeDecodeError, mx.base.MXNetError) as error:
        raise ModelFileError(f"network_definition_file={path!r} is not a readable MXNet symbol JSON file "
                             f"(truncated or not JSON?): {first_lines(error)}") from error


def head_op(symbol) -> str:
    """The operator of the symbol's (single) output node, 'null' for a bare variable."""
    graph = json.loads(symbol.tojson())
    return graph["nodes"][graph["heads"][0][0]]["op"]


def logits_of(symbol, path: str):
    """The network's output without its loss head: the first input of a SoftmaxOutput-like head."""
    outputs = symbol.list_outputs()
    if len(outputs) != 1:
        raise ModelFileError(f"network_definition_file={path!r} has {len(outputs)} outputs {outputs}; "
                             "a user network needs exactly one (its SoftmaxOutput or its logits).")
    if head_op(symbol) in HEAD_OPS:
        return symbol.get_children()[0]
    return symbol


def replace_head(logits, graph: UserGraph, outputs: int):
    """`logits` with its last FullyConnected layer replaced by a new one of `outputs` units; and the old name."""
    node = json.loads(logits.tojson())
    head = node["nodes"][node["heads"][0][0]]
    if head["op"] != "FullyConnected":
        raise no_replacement(graph, f"its last layer is a {head['op']} ({head['name']!r}), not a FullyConnected layer")
    features = logits.get_children()[0]
    return mx.sym.FullyConnected(data=features, num_hidden=outputs, name=NEW_OUTPUT), head["name"]


def load_parameters(path: str) -> dict[str, np.ndarray]:
    """Weights from an MXNet .params file as name -> array ('arg:'/'aux:' prefixes removed)."""
    if not os.path.isfile(path):
        raise ModelFileError(f"network_parameters_file={path!r}: no such file; pass the .params file saved "
                             "with the network (save_params / save_checkpoint), or leave it None.")
    try:
        loaded = mx.nd.load(path)
    except mx.base.MXNetError as error:
        raise ModelFileError(f"network_parameters_file={path!r} is not an MXNet .params file "
                             f"(truncated or another format?): {str(error).strip()[:200]}") from error
    if not isinstance(loaded, dict):
        raise ModelFileError(f"network_parameters_file={path!r} holds {len(loaded)} unnamed arrays; "
                             "save the weights as a dict of names (mx.nd.save(path, {'arg:<name>': ...})).")
    return {name.split(":", 1)[1] if name.startswith(("arg:", "aux:")) else name: value.asnumpy()
            for name, value in loaded.items()}


def gradient_symbol(logits, layer: str | None):
    """The symbol class_gradients() runs on a user graph, as net.gradient_symbol() builds it for a built-in one:
    sum(logits * CLASS_MASK) as a MakeLoss head, then the values of `layer` (None: the input) with a zero variable
    GRADIENT_PROBE added to them, whose gradient is theirs. It is the symbol's JSON with the probe's nodes added and
    the layer's readers pointed at their sum; batch norm uses its running statistics and dropout drops nothing, so
    that the forward pass in training mode (which a backward pass needs) computes what inference does."""
    graph = json.loads(logits.tojson())
    nodes = graph["nodes"]
    name = DATA if layer is None else layer.removesuffix(LAYER_SUFFIX)
    probed = next(i for i, node in enumerate(nodes) if node["name"] == name)
    for node in nodes:
        if node["op"] in BATCH_NORMS:
            node.setdefault("attrs", {})["use_global_stats"] = "True"
        elif node["op"] == "Dropout":
            node.setdefault("attrs", {})["p"] = "0"
    summed = len(nodes) + 1
    for entry in [*graph["heads"], *(e for node in nodes for e in node["inputs"])]:
        if entry[0] == probed and entry[1] == 0:
            entry[0] = summed
    nodes += [{"op": "null", "name": GRADIENT_PROBE, "inputs": []},
              {"op": "elemwise_add", "name": PROBED, "inputs": [[probed, 0, 0], [summed - 1, 0, 0]]}]
    graph["arg_nodes"].append(summed - 1)
    graph.pop("node_row_ptr", None)  # MXNet's loader works it out again
    rewired = mx.sym.load_json(json.dumps(graph))  # its output is the probe's sum when the logits are probed
    score = mx.sym.sum(mx.sym.flatten(rewired) * mx.sym.var(CLASS_MASK))
    return mx.sym.Group([mx.sym.MakeLoss(score), mx.sym.BlockGrad(rewired.get_internals()[PROBED + LAYER_SUFFIX])])


# ----------------------------------------------------------------------------- the Net

class MXNetUserNet(SymbolNet):
    """A user's MXNet symbol on one device, with deepwater's loss and optimiser."""

    def __init__(self, graph: UserGraph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int) -> None:
        super().__init__(task, device, repr(graph.definition_file))
        mx.random.seed(seed)
        self.definition_file, self.spec = graph.definition_file, optimizer
        self.graph, self.input_shape = graph, graph.input_shape
        self._ctx = mx_context(device)
        self._input = DATA
        self._logits = logits_of(load_symbol(self.definition_file), self.definition_file)
        replaced = None
        if graph.replace_output_layer:
            self._logits, replaced = replace_head(self._logits, graph, task.n_outputs)
        shapes = self._infer_shapes()
        self._arrays = {name: mx.nd.zeros(shape, ctx=self._ctx) for name, shape in shapes.items()}
        self._initialise(seed)
        if graph.parameters_file is not None:
            weights = load_parameters(graph.parameters_file)
            if replaced is not None:
                weights = {n: v for n, v in weights.items() if not n.startswith(f"{replaced}_")}
            self.check_state(weights, f"network_parameters_file={graph.parameters_file!r}", complete=False)
            self._write_state(weights)
        self._param_names = [n for n in self._logits.list_arguments() if n != DATA]
        self._grads = {n: mx.nd.zeros(self._arrays[n].shape, ctx=self._ctx) for n in self._param_names}
        slots = [Slot(self._arrays[n], self._grads[n], n.endswith("_weight")) for n in self._param_names]
        self.optimiser = make_optimizer(slots, optimizer)
        self._train_symbols = {w: loss_symbol(task, self._logits, w) for w in (False, True)}
        self._inference_symbols: dict = {}
        self._layers = [n for n in self._logits.get_internals().list_outputs() if n.endswith(LAYER_SUFFIX)]
        self._executors = ExecutorCache(self._bind)
        self._gradient_symbols: dict = {}
        self._gradient_executors = ExecutorCache(self._bind_gradients)

    # --- construction ---------------------------------------------------------------------
    def _infer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of every parameter and auxiliary state for this input shape; checks data and outputs."""
        path, logits = self.definition_file, self._logits
        if DATA not in logits.list_arguments():
            raise ModelFileError(f"network_definition_file={path!r} has no input variable named {DATA!r} "
                                 f"(its variables: {logits.list_arguments()[:8]}...); name the input 'data'.")
        try:
            arg_shapes, out_shapes, aux_shapes = logits.infer_shape(**{DATA: (1,) + self.input_shape})
        except mx.base.MXNetError as error:
            first = next((line for line in str(error).splitlines() if "Error in operator" in line), str(error)[:200])
            raise ModelFileError(f"network_definition_file={path!r} does not accept inputs of shape "
                                 f"{self.input_shape}: {first.strip()}. Change image_shape/channels to the "
                                 "size the network was built for.") from error
        check_outputs(self.graph, math.prod(out_shapes[0][1:]), self.task)
        names = logits.list_arguments() + logits.list_auxiliary_states()
        shapes = dict(zip(names, arg_shapes + aux_shapes))
        shapes.pop(DATA)
        return shapes

    def _initialise(self, seed: int) -> None:
        """Xavier weights, zero biases and betas, unit gammas (MXNet's naming rules); batch-norm running
        variances 1 and every other array (running means, ...) 0."""
        mx.random.seed(seed)
        init = mx.init.Xavier(rnd_type="uniform", factor_type="avg", magnitude=3)
        for name, array in self._arrays.items():
            if name.endswith(("weight", "bias", "gamma", "beta")):
                init(mx.init.InitDesc(name), array)
            else:
                array[:] = 1.0 if name.endswith("var") else 0.0

    def _bind(self, symbol, n: int, training: bool, shared):
        inputs = {DATA: mx.nd.zeros((n,) + self.input_shape, ctx=self._ctx),
                  LABEL: mx.nd.zeros((n,), ctx=self._ctx), ROW_WEIGHT: mx.nd.zeros((n,), ctx=self._ctx)}
        return bind_arrays(symbol, self._ctx, {**self._arrays, **inputs}, self._grads if training else None, shared)

    def _gradient_symbol(self, layer: str | None):
        return gradient_symbol(self._logits, layer)

    def _input_shape(self) -> tuple[int, ...]:
        return self.input_shape

    def _inference_symbol(self, layer: str | None):
        """The flattened output (logits or values) or one layer's flattened activations."""
        if layer not in self._inference_symbols:
            if layer is None:
                symbol = mx.sym.flatten(self._logits)
            else:
                symbol = mx.sym.flatten(self._logits.get_internals()[layer])
            self._inference_symbols[layer] = symbol
        return self._inference_symbols[layer]

    # --- BaseNet --------------------------------------------------------------------------
    def layers(self) -> list[str]:
        """The symbol's internal outputs ('<name>_output'), from the input side to the logits."""
        return list(self._layers)

    def convolutional_layers(self) -> list[str]:
        """The layers of Convolution and Deconvolution operators (ConvolutionalLayers)."""
        graph = json.loads(self._logits.tojson())
        names = {node["name"] + LAYER_SUFFIX for node in graph["nodes"] if node["op"] in CONVOLUTIONS}
        return [layer for layer in self._layers if layer in names]

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameters and auxiliary states under the symbol's own names."""
        return {name: tuple(array.shape) for name, array in self._arrays.items()}

    def _read_state(self) -> dict[str, np.ndarray]:
        return {name: array.asnumpy().astype(np.float32, copy=True) for name, array in self._arrays.items()}

    def _write_state(self, state: dict[str, np.ndarray]) -> None:
        for name, value in state.items():
            mx.nd.array(np.asarray(value, dtype=np.float32), ctx=self._ctx).copyto(self._arrays[name])
