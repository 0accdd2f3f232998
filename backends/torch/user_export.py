"""torch.export programs (.pt2 from torch.export.save) as user networks.

ExportedProgram.module() gives an fx GraphModule of ATen operators holding the program's parameters and
buffers under their original names. deepwater edits that graph: a final softmax or log-softmax is removed
(the graph returns logits), and the `training` arguments of batch-norm and dropout operators are switched
between training and inference (the GraphModule's own train()/eval() are not supported by torch.export).
The layers are the fx nodes that compute a value per row, named as in the graph ('conv2d', 'relu',
'linear', ...); a layer's value comes from a copy of the graph that returns that node. The output layer to
replace is the aten.linear that computes the logits: its weight and bias are swapped for new ones. Class
gradients run a copy of the graph that returns a layer's node and the logits together; the convolutional layers
(Grad-CAM's suggestions) are the nodes of ATen's convolution operators.

The program must be exported with a dynamic batch dimension,
torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},)), so that it takes
batches of any size. torch.export.load unpickles some parts of an archive without weights_only=True (pickled
weights or constants, custom objects, example inputs that weights_only cannot read) and loads
AOTInductor-compiled code; check_archive() refuses such archives before torch.export.load opens them.
"""
from __future__ import annotations

import io
import json
import pickle
import zipfile

import torch
from torch import fx, nn

from deepwater.errors import ModelFileError
from deepwater.runtime.user_graphs import UserGraph, no_replacement

from .user import error_reason

aten = torch.ops.aten
SOFTMAX_OPS = (aten.softmax.int, aten._softmax.default, aten.log_softmax.int, aten._log_softmax.default)
# operator -> position of its `training` argument
MODE_ARGUMENT = {aten.batch_norm.default: 5, aten.native_batch_norm.default: 5, aten.dropout.default: 2,
                 aten.native_dropout.default: 2, aten.feature_dropout.default: 2, aten.alpha_dropout.default: 2,
                 aten.feature_alpha_dropout.default: 2}
CONVOLUTIONS = ("aten.conv", "aten._conv")  # how ATen's convolution operators print (conv2d, convolution, ...)
PICKLED_OBJECT_PREFIXES = ("custom_obj_", "opaque_obj_")  # constants stored as pickled Python objects
DYNAMIC_BATCH_HINT = ("export with a dynamic batch dimension: torch.export.export(model, (x,), "
                      "dynamic_shapes=({0: torch.export.Dim('batch')},))")


def _pickled_entries(archive: zipfile.ZipFile) -> list[str]:
    """Entries of a .pt2 archive that torch.export.load would unpickle without weights_only=True, or that
    hold compiled code."""
    refused = []
    for entry in archive.namelist():
        inner = entry.split("/", 1)[-1]  # entries sit under the archive's root folder
        if inner.startswith("data/aotinductor/"):
            refused.append(entry)
        elif inner.startswith(("data/weights/", "data/constants/")) and inner.endswith("_config.json"):
            config = json.loads(archive.read(entry))["config"]
            refused += [f"{entry}:{name}" for name, meta in config.items()
                        if meta.get("use_pickle") or str(meta.get("path_name", "")).startswith(PICKLED_OBJECT_PREFIXES)]
        elif inner.endswith(".pt"):
            try:
                torch.load(io.BytesIO(archive.read(entry)), map_location="cpu", weights_only=True)
            except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError):  # refused or unreadable
                refused.append(entry)
    return refused


def check_archive(path: str) -> None:
    """Refuse a .pt2 file that is not a readable zip archive, or that holds pickled objects or compiled code."""
    name = f"network_definition_file={path!r}"
    try:
        with zipfile.ZipFile(path) as archive:
            refused = _pickled_entries(archive)
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ModelFileError(f"{name} is not a readable torch.export archive (truncated, or not saved by "
                             f"torch.export.save?): {error}") from error
    if refused:
        raise ModelFileError(f"{name} holds pickled Python objects or compiled code that deepwater does not load "
                             f"({refused[:5]}). Export a program whose weights and constants are plain tensors and "
                             "save it with torch.export.save.")


def load_program(path: str) -> torch.export.ExportedProgram:
    """torch.export.load(path) after check_archive(), with a ModelFileError naming the file on failure."""
    check_archive(path)
    try:
        return torch.export.load(path)
    except Exception as error:  # the deserialiser raises RuntimeError, AssertionError, KeyError, ...
        reason = error_reason(error)
        raise ModelFileError(f"network_definition_file={path!r} is not a readable torch.export program (saved by "
                             f"another PyTorch version?): {reason}") from error


def set_mode_arguments(graph: fx.Graph, training: bool) -> None:
    """Point every batch-norm and dropout operator of `graph` at training or inference."""
    for node in graph.nodes:
        position = MODE_ARGUMENT.get(node.target) if node.op == "call_function" else None
        if position is not None and len(node.args) > position:
            node.args = node.args[:position] + (training,) + node.args[position + 1:]


class ExportProgram:
    """A torch.export program's GraphModule with its logits, layers and output layer (a user.Program)."""

    def __init__(self, graph: UserGraph, device: str) -> None:
        self.graph = graph
        self.module = load_program(graph.definition_file).module().to(device)
        inputs = [n for n in self.module.graph.nodes if n.op == "placeholder"]
        if len(inputs) != 1:
            raise ModelFileError(f"network_definition_file={graph.definition_file!r} takes {len(inputs)} inputs; a "
                                 "user network takes one (a batch of images or rows).")
        example = inputs[0].meta.get("val")
        if not isinstance(example, torch.Tensor) or example.dim() == 0:
            raise ModelFileError(f"network_definition_file={graph.definition_file!r} takes a {type(example).__name__}"
                                 "; a user network takes a tensor (a batch of images or rows).")
        batch = example.shape[0]
        if not isinstance(batch, torch.SymInt):
            raise ModelFileError(f"network_definition_file={graph.definition_file!r} was exported for batches of "
                                 f"exactly {batch} rows; {DYNAMIC_BATCH_HINT}.")
        self._output_node = next(n for n in self.module.graph.nodes if n.op == "output")
        outputs = self._output_node.args[0]
        if not (isinstance(outputs, (tuple, list)) and len(outputs) == 1 and isinstance(outputs[0], fx.Node)):
            raise ModelFileError(f"network_definition_file={graph.definition_file!r} returns {len(outputs)} values; a "
                                 "user network returns one tensor (logits or probabilities).")
        self._strip_softmax(outputs[0])
        self._layers = [n.name for n in self.module.graph.nodes if n.op == "call_function" and self._per_row(n, batch)]
        self._layer_modules: dict[tuple[str, ...], fx.GraphModule] = {}

    def _strip_softmax(self, output: fx.Node) -> None:
        """Return the input of a final softmax (or log-softmax) instead of its probabilities."""
        if output.op == "call_function" and output.target in SOFTMAX_OPS:
            self._output_node.args = ((output.args[0],),)
            self.module.graph.erase_node(output)
            self.module.recompile()

    @staticmethod
    def _per_row(node: fx.Node, batch: torch.SymInt) -> bool:
        """True for a node whose value is a tensor with one entry per row of the input batch."""
        value = node.meta.get("val")
        return isinstance(value, torch.Tensor) and value.dim() > 0 and str(value.shape[0]) == str(batch)

    def _logits_node(self) -> fx.Node:
        return self._output_node.args[0][0]

    # --- the Program protocol -----------------------------------------------------------------
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The program's output, without a final softmax."""
        return self.module(x)

    def set_training(self, training: bool) -> None:
        """Switch the `training` arguments of batch-norm and dropout operators."""
        set_mode_arguments(self.module.graph, training)
        self.module.recompile()

    def layers(self) -> list[str]:
        """The fx nodes with one value per row, in graph order."""
        return list(self._layers)

    def layer_output(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """The value of node `layer` for the batch x, from a GraphModule (sharing the parameters) that returns it."""
        return self._returning((layer,))(x)

    def layer_and_logits(self, x: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The value of node `layer` and the logits, from one GraphModule that returns both."""
        return self._returning((layer, self._logits_node().name))(x)

    def convolutional_layers(self) -> list[str]:
        """The layers that an ATen convolution operator (aten.conv2d, aten.convolution, ...) computes."""
        targets = {n.name: str(n.target) for n in self.module.graph.nodes}
        return [name for name in self._layers if targets[name].startswith(CONVOLUTIONS)]

    def _returning(self, names: tuple[str, ...]) -> fx.GraphModule:
        """A GraphModule, sharing the parameters, that returns the nodes `names` (one, or a tuple) in inference
        mode; built on first use and kept."""
        if names not in self._layer_modules:
            copy = fx.Graph()
            values: dict[fx.Node, fx.Node] = {}
            copy.graph_copy(self.module.graph, values)
            nodes = {n.name: values[n] for n in self.module.graph.nodes if n in values}
            copy.output(nodes[names[0]] if len(names) == 1 else tuple(nodes[name] for name in names))
            set_mode_arguments(copy, False)
            module = fx.GraphModule(self.module, copy)
            module.graph.eliminate_dead_code()
            module.recompile()
            self._layer_modules[names] = module
        return self._layer_modules[names]

    def output_linear(self) -> tuple[nn.Module, str, str | None]:
        """The module holding the weight (and bias) of the aten.linear that computes the logits."""
        node = self._logits_node()
        if node.op != "call_function" or node.target != aten.linear.default:
            raise no_replacement(self.graph, f"its logits are computed by {node.target}, not by a linear layer "
                                             "(torch.nn.Linear)")
        weight, bias = (list(node.args) + [None])[1:3]
        held = [p for p in (weight, bias) if p is not None]
        if any(p.op != "get_attr" or len(p.users) != 1 for p in held):
            raise no_replacement(self.graph, "the weights of its last linear layer are computed or shared")
        owner_name = weight.target.rpartition(".")[0]
        if bias is not None and bias.target.rpartition(".")[0] != owner_name:
            raise no_replacement(self.graph, "the weight and bias of its last linear layer belong to different modules")
        names = [p.target.rpartition(".")[2] for p in held]
        return self.module.get_submodule(owner_name), names[0], names[1] if len(names) > 1 else None
