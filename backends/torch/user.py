"""User-defined PyTorch networks (network='user'): a TorchScript archive or a torch.export program as a Net.

Two graph formats are read, each by its own module:

* TorchScript (.pt, .pth, .ts, .jit; torch.jit.save of a scripted or traced module) -- user_script.py.
* torch.export programs (.pt2; torch.export.save of torch.export.export(..., dynamic_shapes=...) with a
  dynamic batch dimension) -- user_export.py.

Either way the graph's output is taken as logits (a final softmax or log-softmax is left out), trained with
deepwater's loss and optimiser (those of net.py: SGD with H2O's annealing and momentum ramp, or ADADELTA;
l1/l2 on weights; clipping), and predict() returns softmax probabilities or (n, 1) values. State keys are
the module's own state_dict names ('conv.weight', 'bn.running_mean', ...), which are also the keys of a
network_parameters_file: a state dict saved with torch.save(module.state_dict(), path). That file is only
ever read with torch.load(..., weights_only=True), which unpickles tensors and plain containers, nothing else.

A graph file is a program: load only graph files you trust. torch.export programs holding pickled objects
are refused (see user_export.check_archive); a TorchScript archive is read by TorchScript's own
loader, which builds TorchScript objects only.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np
import torch
from torch import nn

from deepwater.backends.torch.to_onnx import write_onnx
from deepwater.errors import REASON_LENGTH, ModelFileError, first_lines
from deepwater.runtime.user_graphs import UserGraph, check_outputs, no_replacement
from deepwater.specs import OptimizerSpec, TaskSpec

from ..base import BaseNet, OnnxGraph
from .net import to_tensor
from .optimizers import Optimiser
from .precision import TorchPrecision

PROBE_ROWS = 2  # rows of zeros run through a graph to find its output width


class Program(Protocol):
    """A user's graph file loaded for training: its parameters and how to run (part of) it."""

    module: nn.Module  # holds every parameter and buffer, under the file's own state_dict names

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The graph's output without a final softmax, for a batch in deepwater's layout."""

    def set_training(self, training: bool) -> None:
        """Batch-norm and dropout in training (True) or inference (False) mode."""

    def layers(self) -> list[str]:
        """Names of the values layer_output() returns, from the input side to the output."""

    def layer_output(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """The value of `layer` (one of layers()) for the batch x, in inference mode."""

    def layer_and_logits(self, x: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The value of `layer` and logits() from one run, so that a gradient flows from the logits to the layer."""

    def convolutional_layers(self) -> list[str]:
        """The layers whose values a convolution computes, in layers() order."""

    def output_linear(self) -> tuple[nn.Module, str, str | None]:
        """The module holding the linear layer that computes logits(), with the attribute names of its
        weight and bias (None without one); no_replacement() when logits() is not a linear layer's output."""


def error_reason(error: BaseException) -> str:
    """deepwater.errors.first_lines(error), except for an error of TorchScript's interpreter, which puts its own
    traceback first and the error itself on the last line: that line then."""
    reason = first_lines(error)
    if reason.startswith("The following operation failed"):
        return str(error).strip().splitlines()[-1].strip()[:REASON_LENGTH]
    return reason


def flat(out: torch.Tensor) -> torch.Tensor:
    """Activations as (n, k): (n,) regression outputs become (n, 1), feature maps are flattened."""
    return out.reshape(out.shape[0], math.prod(out.shape[1:]))


def load_state_file(path: str) -> dict[str, torch.Tensor]:
    """A state dict (name -> tensor) from `path`, read with torch.load(weights_only=True) only."""
    source = f"network_parameters_file={path!r}"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises UnpicklingError, RuntimeError, EOFError, ... on bad files
        refused = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\. | Check the documentation|$)",
                            " ".join(str(error).split()))
        reason = refused.group(1) if refused else error_reason(error)
        raise ModelFileError(f"{source} is not a PyTorch state dict that torch.load(weights_only=True) can read "
                             f"(truncated, or holding Python objects other than tensors?): {reason}. Save the "
                             "weights with torch.save(module.state_dict(), path).") from error
    if not isinstance(state, Mapping):
        raise ModelFileError(f"{source} holds a {type(state).__name__}, not a state dict; save the weights with "
                             "torch.save(module.state_dict(), path).")
    odd = sorted(str(k) for k, v in state.items() if not (isinstance(k, str) and isinstance(v, torch.Tensor)))
    if odd:
        raise ModelFileError(f"{source}: entries {odd[:10]} are not name -> tensor pairs; save the weights with "
                             "torch.save(module.state_dict(), path).")
    return dict(state)


def replace_linear(owner: nn.Module, weight: str, bias: str | None, outputs: int) -> None:
    """Give the linear layer whose parameters `owner` holds as `weight` and `bias` a new set of `outputs`
    units, initialised as torch.nn.Linear initialises them (from torch's current seed)."""
    old = getattr(owner, weight)
    fresh = nn.Linear(old.shape[1], outputs, bias=bias is not None)
    setattr(owner, weight, nn.Parameter(fresh.weight.detach().to(old.device, old.dtype)))
    if bias is not None:
        setattr(owner, bias, nn.Parameter(fresh.bias.detach().to(old.device, old.dtype)))


class TorchUserNet(TorchPrecision, BaseNet):
    """A user's TorchScript or torch.export graph on one device, with deepwater's loss and optimiser."""

    takes_soft_targets = True  # task_loss() takes them, as for built-in networks

    def __init__(self, program: Program, graph: UserGraph, task: TaskSpec, optimizer: OptimizerSpec,
                 device: str, seed: int) -> None:
        super().__init__(task, device, repr(graph.definition_file))
        torch.manual_seed(seed)
        self.program, self.graph = program, graph
        self._device = torch.device(device)
        self._training: bool | None = None
        if graph.parameters_file is not None:
            self.set_state(load_state_file(graph.parameters_file), f"network_parameters_file={graph.parameters_file!r}")
        check_outputs(graph, self._outputs(), task)
        if graph.replace_output_layer:
            replace_linear(*program.output_linear(), task.n_outputs)
            if self._outputs() != task.n_outputs:
                raise no_replacement(graph, "the graph reshapes the output of its last linear layer")
        params = [p for p in program.module.parameters() if p.requires_grad]
        self.optimiser = Optimiser(params, [p for p in params if p.dim() > 1], task, optimizer)

    def _outputs(self) -> int:
        """The width of the graph's (flattened) output, from a batch of zeros; a clear error when the graph
        does not take inputs of graph.input_shape."""
        shape = (PROBE_ROWS,) + self.graph.input_shape
        self._set_mode(False)
        try:
            with torch.no_grad():
                out = self.program.logits(torch.zeros(shape, device=self._device))
        except Exception as error:  # whatever the user's graph raises on a shape it was not built for
            reason = error_reason(error)
            raise ModelFileError(f"network_definition_file={self.graph.definition_file!r} does not accept inputs "
                                 f"of shape {self.graph.input_shape} (one row): {reason}. Change image_shape/"
                                 "channels (or the predictors) to those the graph was built for.") from error
        return math.prod(out.shape[1:])

    def _set_mode(self, training: bool) -> None:
        if self._training != training:
            self.program.set_training(training)
            self._training = training

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return flat(self.program.logits(x))

    def _step(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> torch.Tensor:
        self._set_mode(True)
        wb = None if weights is None else to_tensor(weights, self._device)
        return self.optimiser.step(self._logits, to_tensor(x, self._device), to_tensor(y, self._device), wb,
                                   self.samples)

    @torch.no_grad()
    def _scores(self, x: np.ndarray) -> np.ndarray:
        self._set_mode(False)
        with self._autocast():
            return self._logits(to_tensor(x, self._device)).float().cpu().numpy()

    @torch.no_grad()
    def _activations(self, x: np.ndarray, layer: str) -> np.ndarray:
        self._set_mode(False)
        with self._autocast():
            return flat(self.program.layer_output(to_tensor(x, self._device), layer)).float().cpu().numpy()

    def _class_gradients(self, x: np.ndarray, layer: str | None, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One forward and one backward pass in float32 through autograd, in inference mode; a layer's values come
        from the same run as the logits (Program.layer_and_logits)."""
        self._set_mode(False)
        inputs = to_tensor(np.asarray(x, dtype=np.float32), self._device).requires_grad_(True)
        with torch.enable_grad():
            values, logits = (inputs, self.program.logits(inputs)) if layer is None else \
                self.program.layer_and_logits(inputs, layer)
            index = torch.as_tensor(target, device=self._device).view(-1, 1)
            picked = flat(logits).float().gather(1, index).sum()
            (gradients,) = torch.autograd.grad(picked, values, allow_unused=True)
        gradients = torch.zeros_like(values) if gradients is None else gradients  # a layer the logits do not read
        return (np.ascontiguousarray(values.detach().float().cpu().numpy()),
                np.ascontiguousarray(gradients.float().cpu().numpy()))

    def convolutional_layers(self) -> list[str]:
        """The graph's layers that a convolution computes (ConvolutionalLayers), input side first."""
        return self.program.convolutional_layers()

    def export_onnx(self, path: str, layers: Sequence[str]) -> OnnxGraph:
        """The graph's probabilities (or values) and the activations of `layers`, through torch.onnx.export."""
        self._set_mode(False)

        def compute(x: torch.Tensor) -> list[torch.Tensor]:
            return [self._logits(x), *(self.program.layer_output(x, layer) for layer in layers)]

        example = torch.zeros((2,) + self.graph.input_shape, device=self._device)
        with torch.no_grad():  # a program builds its per-layer modules on first use: here, not inside the
            compute(example)   # exporter's trace, where they would keep the trace's stand-ins for the weights
        return write_onnx(self.program.module, compute, self.task.is_classification, layers, example, path,
                          f"network_definition_file={self.graph.definition_file!r}")

    def layers(self) -> list[str]:
        """The graph's layers that features() reads, from the input side to the output."""
        return self.program.layers()

    def parameter_count(self) -> int:
        """Trainable values: every parameter of the module that requires a gradient."""
        return sum(p.numel() for p in self.optimiser.params)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Parameters and buffers under the module's own state_dict names."""
        return {name: tuple(value.shape) for name, value in self.program.module.state_dict().items()}

    def _read_state(self) -> dict[str, np.ndarray]:
        return {name: value.detach().cpu().numpy().copy() for name, value in self.program.module.state_dict().items()}

    def _write_state(self, state: Mapping[str, np.ndarray | torch.Tensor]) -> None:
        own = self.program.module.state_dict()
        with torch.no_grad():
            for name, value in state.items():
                own[name].copy_(torch.as_tensor(np.asarray(value) if isinstance(value, np.ndarray) else value))
