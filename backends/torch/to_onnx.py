"""Torch networks written as ONNX graphs for model.export(format='onnx').

torch.onnx.export with the torch.export-based exporter (torch's default; it needs onnxscript) traces a
wrapper module whose outputs are the network's output (softmax probabilities for classification) and the
flattened activations of the layers asked for, with a symbolic batch axis. TorchScript modules cannot be
traced by torch.export, so they are refused with an error that says what to do instead.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn

from deepwater.errors import ModelFileError, first_lines

from ..base import ONNX_INPUT, ONNX_OPSET, OnnxGraph

OUTPUT = "predictions"
# The exporter logs a warning per torchvision operator it cannot register when torchvision is absent
_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"

# x -> [the network's output (logits or values), then the activations of each layer asked for]
Compute = Callable[[torch.Tensor], list[torch.Tensor]]


def layer_output_name(layer: str) -> str:
    """The graph output holding a layer's activations: DF.<layer>, as deepfeatures() names its columns."""
    return f"DF.{layer}"


class _Outputs(nn.Module):
    """What the exported graph computes: `compute`'s output (softmax-ed when `softmax`) and its layers, flat."""

    def __init__(self, owner: nn.Module, compute: Compute, softmax: bool) -> None:
        super().__init__()
        self.owner = owner  # registered, so that its parameters become the graph's weights
        self._compute = compute
        self._softmax = softmax

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        output, *layers = self._compute(x)
        output = torch.softmax(output.flatten(1), dim=1) if self._softmax else output.flatten(1)
        return (output, *(value.flatten(1) for value in layers))


def write_onnx(owner: nn.Module, compute: Compute, softmax: bool, layers: Sequence[str], example: torch.Tensor,
               path: str, source: str) -> OnnxGraph:
    """Export `compute` (over the parameters of `owner`, already in inference mode) for batches shaped like
    `example` to the ONNX file `path`; ModelFileError naming `source` when torch cannot export it."""
    if isinstance(owner, torch.jit.ScriptModule):
        raise ModelFileError(f"{source} is a TorchScript graph, which torch.onnx.export (torch.export-based) cannot "
                             "trace. Save the network as a torch.export program (.pt2, torch.export.save with a "
                             "dynamic batch axis) and train that as network='user', or export it with torch's "
                             "TorchScript-based exporter (torch.onnx.export(..., dynamo=False)) yourself.")
    names = [OUTPUT, *(layer_output_name(layer) for layer in layers)]
    logger = logging.getLogger(_REGISTRATION_LOGGER)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracing notices
            torch.onnx.export(_Outputs(owner, compute, softmax), (example,), path, dynamo=True,
                              opset_version=ONNX_OPSET, input_names=[ONNX_INPUT], output_names=names,
                              dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False, verbose=False)
    except Exception as error:  # the exporter raises many kinds of errors on what it cannot trace
        # (never TorchScript's interpreter traceback: ScriptModules are refused above)
        raise ModelFileError(f"torch.onnx.export cannot export {source}: {first_lines(error)}. Export the network "
                             "yourself with torch.onnx.export and load the .onnx file as network='user', or export "
                             "without layers=.") from error
    finally:
        logger.setLevel(level)
    return OnnxGraph(ONNX_INPUT, OUTPUT, softmax, dict(zip(layers, names[1:])))
