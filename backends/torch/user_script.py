"""TorchScript archives (torch.jit.save of a scripted or traced module) as user networks.

The top module's forward graph tells everything deepwater needs. Its returned value is the output; a final
softmax or log-softmax (torch.nn.Softmax, F.softmax, ...) is left out by compiling a copy of the graph that
returns the softmax's input. The layers are the values the forward calls of submodules return, named by their
attribute path ('conv', 'features.0', ...), plus 'output' when the graph's output is not one of them. The
output layer to replace is the torch.nn.Linear whose forward computes the logits (looked for through nested
submodules). TorchScript modules take no forward hooks, so a layer's value comes from a copy of the forward
graph that returns it (for class gradients, together with the logits, as a tuple), compiled with TorchScript's
graph API (torch._C). The convolutional layers (for Grad-CAM's suggestions) are those of torch.nn's Conv modules.
"""
from __future__ import annotations

import torch
from torch import nn

from deepwater.errors import ModelFileError
from deepwater.runtime.user_graphs import UserGraph, no_replacement

from .user import error_reason

SOFTMAX_OPS = ("aten::softmax", "aten::log_softmax")
SOFTMAX_MODULES = ("Softmax", "LogSoftmax")
SOFTMAX_FUNCTIONS = ("__torch__.torch.nn.functional.softmax", "__torch__.torch.nn.functional.log_softmax")
CALL = "prim::CallMethod"
OUTPUT = "output"  # the layer name of the graph's output when no submodule call returns it
CONVOLUTIONS = ("Conv", "LazyConv")  # how the class names of torch.nn's convolution modules begin


def load_script(path: str, device: str) -> torch.jit.ScriptModule:
    """torch.jit.load(path) onto `device`, with a ModelFileError naming the file when it cannot be read."""
    try:
        return torch.jit.load(path, map_location=device)
    except Exception as error:  # TorchScript's loader raises RuntimeError, ValueError, ... on bad archives
        reason = error_reason(error)
        raise ModelFileError(f"network_definition_file={path!r} is not a readable TorchScript archive (truncated, "
                             f"or saved by another PyTorch version?): {reason}") from error


def attribute_path(value: torch._C.Value) -> list[str] | None:
    """The attribute names that lead from the graph's module (its first input) to `value`, or None when
    `value` is not reached by attribute look-ups."""
    names: list[str] = []
    while value.node().kind() == "prim::GetAttr":
        names.append(value.node().s("name"))
        value = value.node().inputsAt(0)
    return names[::-1] if value.node().kind() == "prim::Param" else None


def callee(module: torch.jit.ScriptModule, call: torch._C.Node) -> torch.jit.ScriptModule | None:
    """The submodule of `module` whose method the prim::CallMethod node `call` calls (None if not found)."""
    path = attribute_path(call.inputsAt(0))
    if path is None:
        return None
    for name in path:
        module = getattr(module, name)
    return module


def is_tensor(value: torch._C.Value) -> bool:
    """True for a graph value of tensor type (not a tuple, list, number or module)."""
    return isinstance(value.type(), torch._C.TensorType)


class ScriptProgram:
    """A TorchScript module with its logits, layers and output layer (the Program of user.py)."""

    def __init__(self, graph: UserGraph, device: str) -> None:
        self.graph = graph
        self.module = load_script(graph.definition_file, device)
        if not hasattr(self.module, "forward"):
            raise ModelFileError(f"network_definition_file={graph.definition_file!r} has no forward method; "
                                 "save the module with torch.jit.save(torch.jit.script(module), path).")
        self._forward = self.module.forward.graph
        inputs = len(list(self._forward.inputs())) - 1  # the first is the module itself
        if inputs != 1:
            raise ModelFileError(f"network_definition_file={graph.definition_file!r} takes {inputs} inputs; a user "
                                 "network takes one (a batch of images or rows).")
        self._output = self._forward.return_node().inputsAt(0)
        if not is_tensor(self._output):
            raise ModelFileError(f"network_definition_file={graph.definition_file!r} returns "
                                 f"{self._output.type()}; a user network must return one tensor (logits or "
                                 "probabilities).")
        self._logits = self._softmax_input(self._output) or self._output
        self._layers = self._find_layers()
        self._functions: dict[tuple[int, ...], torch.jit.ScriptFunction] = {}

    def _softmax_input(self, value: torch._C.Value) -> torch._C.Value | None:
        """The input of the softmax that computes `value`, or None when `value` is no softmax."""
        node = value.node()
        if node.kind() in SOFTMAX_OPS:
            return node.inputsAt(0)
        if node.kind() == "prim::CallFunction" and str(node.inputsAt(0).type()) in SOFTMAX_FUNCTIONS:
            return node.inputsAt(1)
        if node.kind() == CALL and node.s("name") == "forward":
            child = callee(self.module, node)
            if child is not None and child.original_name in SOFTMAX_MODULES:
                return node.inputsAt(1)
        return None

    def _find_layers(self) -> dict[str, torch._C.Value]:
        """Layer name -> value: the tensors that the forward graph's submodule calls return, in graph order."""
        layers: dict[str, torch._C.Value] = {}
        for node in self._forward.nodes():
            path = attribute_path(node.inputsAt(0)) if node.kind() == CALL else None
            if not path or node.outputsSize() != 1 or not is_tensor(node.output()):
                continue
            base = ".".join(path) + ("" if node.s("name") == "forward" else f".{node.s('name')}")
            name, repeat = base, 1
            while name in layers:
                repeat += 1
                name = f"{base}_{repeat}"
            layers[name] = node.output()
        if all(v.unique() != self._output.unique() for v in layers.values()):
            layers[OUTPUT] = self._output
        return layers

    def _run(self, values: tuple[torch._C.Value, ...], x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """`values` for the batch x, one tensor or a tuple of them from one run: the module's forward for its output
        alone, else a compiled copy of the forward graph that returns them (and runs nothing they do not need)."""
        key = tuple(value.unique() for value in values)
        if key == (self._output.unique(),):
            return self.module(x)
        if key not in self._functions:
            copy = self._forward.copy()
            position = {v.unique(): (i, v.offset()) for i, n in enumerate(self._forward.nodes()) for v in n.outputs()}
            nodes = list(copy.nodes())
            returned = [nodes[index].outputsAt(offset) for index, offset in (position[k] for k in key)]
            if len(returned) > 1:
                together = copy.create("prim::TupleConstruct", returned)
                together.insertBefore(copy.return_node())
                together.output().setType(torch._C.TupleType([value.type() for value in returned]))
                returned = [together.output()]
            copy.return_node().replaceInput(0, returned[0])
            torch._C._jit_pass_inline(copy)
            torch._C._jit_pass_dce(copy)
            name = "deepwater_values_" + "_".join(map(str, key))
            self._functions[key] = torch._C._create_function_from_graph(name, copy)
        return self._functions[key](self.module, x)

    # --- the Program protocol -----------------------------------------------------------------
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The graph's output, without a final softmax."""
        return self._run((self._logits,), x)

    def set_training(self, training: bool) -> None:
        """TorchScript modules read their `training` flags when they run."""
        self.module.train(training)

    def layers(self) -> list[str]:
        """Submodule outputs of the forward graph in graph order (and 'output' if not among them)."""
        return list(self._layers)

    def layer_output(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """The value of `layer` for the batch x."""
        return self._run((self._layers[layer],), x)

    def layer_and_logits(self, x: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The value of `layer` and the logits, returned together by one compiled copy of the forward graph."""
        return self._run((self._layers[layer], self._logits), x)

    def convolutional_layers(self) -> list[str]:
        """The layers that a convolution submodule (torch.nn.Conv2d, ConvTranspose2d, ...) returns."""
        return [name for name, value in self._layers.items() if value.node().kind() == CALL
                and getattr(callee(self.module, value.node()), "original_name", "").startswith(CONVOLUTIONS)]

    def output_linear(self) -> tuple[nn.Module, str, str | None]:
        """The torch.nn.Linear submodule whose forward returns the logits (through nested submodules)."""
        module, value = self.module, self._logits
        while value.node().kind() == CALL and (child := callee(module, value.node())) is not None:
            if child.original_name == "Linear":
                return child, "weight", None if child.bias is None else "bias"
            module, value = child, getattr(child, value.node().s("name")).graph.return_node().inputsAt(0)
        raise no_replacement(self.graph, f"its logits are computed by {value.node().kind()}, not by a "
                                         "torch.nn.Linear submodule")
