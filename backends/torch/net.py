"""A networks.Graph compiled into torch modules, with H2O's optimiser, losses and penalties."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Sequence

import numpy as np
import torch
from torch import nn

from deepwater.backends.torch.to_onnx import write_onnx
from deepwater.networks import Graph, Node
from deepwater.specs import OptimizerSpec, TaskSpec

from ..base import BaseNet, OnnxGraph, layer_plan
from .optimizers import Optimiser
from .precision import TorchPrecision

_ACTIVATIONS = {"relu": nn.ReLU, "relu6": nn.ReLU6, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
_POOLS = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


class Maxout(nn.Module):
    """Maximum over groups of `pieces` consecutive units."""

    def __init__(self, pieces: int) -> None:
        super().__init__()
        self.pieces = pieces

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1, self.pieces).amax(dim=-1)


class GlobalPool(nn.Module):
    """Average or max over all spatial positions: (N, C, H, W) -> (N, C)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) if self.kind == "avg" else x.amax(dim=(2, 3))


class Concat(nn.Module):
    """Join inputs along channels."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)


class Add(nn.Module):
    """Element-wise sum of two inputs."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


def _layer(node: Node, graph: Graph) -> nn.Module:
    a = node.attrs
    in_shape = graph.node(node.inputs[0]).shape if node.inputs else ()
    if node.op == "dense":
        return nn.Linear(in_shape[0], a["units"])
    if node.op == "conv":
        return nn.Conv2d(in_shape[0], a["filters"], a["kernel"], a["stride"], a["pad"], bias=a["bias"],
                         groups=a.get("groups", 1))
    if node.op == "pool":
        return _POOLS[a["kind"]](a["kernel"], a["stride"], a["pad"])
    if node.op == "global_pool":
        return GlobalPool(a["kind"])
    if node.op == "batch_norm":
        norm = nn.BatchNorm2d if len(in_shape) == 3 else nn.BatchNorm1d
        return norm(in_shape[0], eps=a["epsilon"], momentum=1.0 - a["momentum"])
    if node.op == "concat":
        return Concat()
    if node.op == "add":
        return Add()
    if node.op == "act":
        return _ACTIVATIONS[a["kind"]]()
    if node.op == "dropout":
        return nn.Dropout(a["rate"])
    if node.op == "maxout":
        return Maxout(a["pieces"])
    if node.op == "upsample":
        return nn.Upsample(scale_factor=a["scale"], mode="nearest")
    if node.op == "zero_pad":
        return nn.ZeroPad2d((a["left"], a["right"], a["top"], a["bottom"]))
    if node.op == "flatten":
        return nn.Flatten()
    raise ValueError(f"the torch backend has no layer for op {node.op!r}")


class GraphModule(nn.Module):
    """Runs the graph's nodes in order; can stop at any named layer."""

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        self.layers = nn.ModuleDict({node.name: _layer(node, graph) for node in graph.nodes[1:]})
        last_reader = {i: node.name for node in graph.nodes[1:] for i in node.inputs}
        # each layer: its name, its inputs and those of them that no later layer reads
        self._plan = [(node.name, node.inputs, tuple(i for i in dict.fromkeys(node.inputs)
                                                     if last_reader[i] == node.name)) for node in graph.nodes[1:]]

    def values(self, x: torch.Tensor, until: str | None = None,
               keep: Collection[str] | None = None) -> dict[str, torch.Tensor]:
        """The input and every layer's value, in graph order, up to `until` (all layers when None). With `keep`,
        a value that no later layer reads is let go as soon as it is read, unless `keep` names it (the last value
        computed stays): a forward pass then holds only what is still needed, as nn.Sequential does."""
        values = {"input": x}
        for name, inputs, last_read in self._plan:
            values[name] = self.layers[name](*(values[i] for i in inputs))
            if name == until:
                break
            if keep is not None:
                for i in last_read:
                    if i not in keep:
                        del values[i]
        return values

    def forward(self, x: torch.Tensor, until: str | None = None) -> torch.Tensor:
        return next(reversed(self.values(x, until, keep=()).values()))


def to_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A numpy batch as a tensor on `device`: no copy on the CPU when the array is contiguous; to a GPU through
    pinned memory, copied without blocking the host."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor if device.type == "cpu" else tensor.pin_memory().to(device, non_blocking=True)


class DeviceCopies:
    """Batches copied to a GPU ahead of their step, on a side stream: prefetch(x, y, w) starts the copy,
    take(x) gives the copied tensors to the step of the same batch (the compute stream waits for the copy)."""

    KEEP = 2  # batches held ahead at most (the trainer looks one ahead)

    def __init__(self, device: torch.device, copy: Callable[[np.ndarray], torch.Tensor]) -> None:
        self._stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self._copy = copy
        self._ready: list[tuple[np.ndarray, tuple]] = []

    def prefetch(self, x: np.ndarray, y: np.ndarray | None, weights: np.ndarray | None) -> None:
        """Start copying the batch (x, y, weights) to the device."""
        with torch.cuda.stream(self._stream) if self._stream is not None else contextlib.nullcontext():
            tensors = tuple(None if a is None else self._copy(a) for a in (x, y, weights))
        self._ready = [*self._ready[-(self.KEEP - 1):], (x, tensors)]

    def take(self, x: np.ndarray) -> tuple | None:
        """The tensors prefetch() copied for the batch whose inputs are `x` (the same array), or None."""
        for i, (array, tensors) in enumerate(self._ready):
            if array is x:
                del self._ready[i]
                if self._stream is not None:
                    current = torch.cuda.current_stream(self._stream.device)
                    current.wait_stream(self._stream)
                    for tensor in tensors:
                        if tensor is not None:
                            tensor.record_stream(current)
                return tensors
        return None


class TorchNet(TorchPrecision, BaseNet):
    """A built-in network on one device, with its optimiser: the Net for PyTorch.

    On a GPU, convolutional networks run in channels-last memory format with cuDNN autotuning, and the trainer
    hands each next batch to prefetch(), which copies it on a side stream while the current batch trains.
    """

    takes_soft_targets = True  # task_loss() takes them

    def __init__(self, graph: Graph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int) -> None:
        super().__init__(task, device, "this network")
        torch.manual_seed(seed)
        self.graph = graph
        self.spec = optimizer
        self._device = torch.device(device)
        self.module = GraphModule(graph).to(self._device)
        self._forward: nn.Module = self.module  # the training forward pass; torch.compile's when compiled
        self._training: bool | None = None
        self._frozen: frozenset[str] | None = None  # the layers kept fixed now (None: not applied yet)
        self._set_mode(False)
        named = dict(self.module.named_parameters())
        self.plan = layer_plan(graph, optimizer)
        self.optimiser = Optimiser(list(self.module.parameters()),
                                   [named[f"layers.{key}"] for key in graph.penalised_params()], task, optimizer,
                                   [self.plan.scale(key.rsplit(".", 1)[0]) for key in graph.param_shapes()])
        self._memory_format = torch.preserve_format
        self._copies: DeviceCopies | None = None
        if self._device.type == "cuda":
            self._use_gpu_paths()

    def _use_gpu_paths(self) -> None:
        """cuDNN autotuning, channels-last for convolutional networks, batches copied ahead on a side stream."""
        torch.backends.cudnn.benchmark = True
        if any(node.op == "conv" for node in self.graph.nodes):
            self._memory_format = torch.channels_last
            self.module.to(memory_format=torch.channels_last)
        self._copies = DeviceCopies(self._device, self._to_device)
        self.prefetch = self._copies.prefetch

    def _compile(self, compile: bool) -> None:
        self._forward = torch.compile(self.module) if compile else self.module

    def _set_mode(self, training: bool) -> None:
        if self._training != training:
            self.module.train(training)
            for layer in self._frozen or ():  # frozen batch norms keep their running statistics
                self.module.layers[layer].eval()
            self._training = training

    def _follow_freeze(self) -> None:
        """Freeze the plan's layers, or train them again once unfreeze_after_epochs has passed."""
        frozen = self.plan.frozen_at(self.samples)
        if frozen != self._frozen:
            self._frozen = frozen
            self.optimiser.freeze({id(p) for layer in frozen for p in self.module.layers[layer].parameters()})
            self._training = None  # the modes of the batch norms change with it

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        tensor = to_tensor(array, self._device)
        return tensor.contiguous(memory_format=self._memory_format) if tensor.dim() == 4 else tensor

    def _batch(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> tuple:
        """The batch on the device: copied ahead by prefetch() when it was, else now."""
        ready = None if self._copies is None else self._copies.take(x)
        if ready is not None:
            return ready
        return self._to_device(x), self._to_device(y), None if weights is None else self._to_device(weights)

    def _step(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> torch.Tensor:
        self._follow_freeze()
        self._set_mode(True)
        return self.optimiser.step(self._forward, *self._batch(x, y, weights), self.samples)

    @torch.no_grad()
    def _scores(self, x: np.ndarray) -> np.ndarray:
        self._set_mode(False)
        with self._autocast():
            return self.module(self._to_device(x)).float().cpu().numpy()

    @torch.no_grad()
    def _activations(self, x: np.ndarray, layer: str) -> np.ndarray:
        self._set_mode(False)
        with self._autocast():
            out = self.module(self._to_device(x), until=layer)
        return out.reshape(out.shape[0], -1).float().cpu().numpy()

    def _class_gradients(self, x: np.ndarray, layer: str | None, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One forward and one backward pass in float32 through autograd, in inference mode."""
        self._set_mode(False)
        inputs = self._to_device(np.asarray(x, dtype=np.float32)).requires_grad_(layer is None)
        with torch.enable_grad():
            values = self.module.values(inputs)
            chosen = inputs if layer is None else values[layer]
            scores = values[self.graph.output.name].float()
            picked = scores.gather(1, torch.as_tensor(target, device=self._device).view(-1, 1)).sum()
            (gradients,) = torch.autograd.grad(picked, chosen)
        return (np.ascontiguousarray(chosen.detach().float().cpu().numpy()),
                np.ascontiguousarray(gradients.float().cpu().numpy()))

    def layers(self) -> list[str]:
        return self.graph.layer_names()

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.graph.state_shapes()

    def export_onnx(self, path: str, layers: Sequence[str]) -> OnnxGraph:
        """The network's probabilities (or values) and the activations of `layers`, through torch.onnx.export."""
        self._use_average()
        self._set_mode(False)

        def compute(x: torch.Tensor) -> list[torch.Tensor]:
            values = self.module.values(x)
            return [values[self.graph.output.name], *(values[layer] for layer in layers)]

        example = torch.zeros((2,) + self.graph.input.shape, device=self._device)
        return write_onnx(self.module, compute, self.task.is_classification, layers, example, path,
                          self.source)

    def _read_state(self) -> dict[str, np.ndarray]:
        return {key: tensor.cpu().numpy().copy() for key, tensor in self._state_tensors().items()}

    def _state_tensors(self) -> dict[str, torch.Tensor]:
        """The module's weights and statistics as they are on the device (no copies), by canonical name."""
        tensors = self.module.state_dict()
        return {key: tensors[f"layers.{key}"].detach() for key in self.graph.state_shapes()}

    # the ema average on the device: one fused lerp per step, no copy to the host
    def _new_average(self) -> dict[str, torch.Tensor]:
        return {key: tensor.clone() for key, tensor in self._state_tensors().items()}

    @torch.no_grad()
    def _update_average(self) -> None:
        current = self._state_tensors()
        torch._foreach_lerp_(list(self._average.values()), [current[key] for key in self._average], 1.0 - self.ema)

    def _average_arrays(self) -> dict[str, np.ndarray]:
        return {key: tensor.cpu().numpy().copy() for key, tensor in self._average.items()}

    @torch.no_grad()
    def _load_average(self) -> None:
        current = self._state_tensors()
        for key, tensor in self._average.items():
            current[key].copy_(tensor)

    def _write_state(self, state: dict[str, np.ndarray]) -> None:
        tensors = {f"layers.{k}": torch.as_tensor(np.asarray(v)) for k, v in state.items()}
        self.module.load_state_dict(tensors, strict=False)
