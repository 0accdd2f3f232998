"""A networks.Graph compiled into torch modules, with H2O's optimiser, losses and penalties."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from deepwater.networks import Graph, Node
from deepwater.specs import OptimizerSpec, TaskSpec

from ..base import BaseNet, OnnxGraph
from .optimizers import Optimiser

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
    if node.op == "flatten":
        return nn.Flatten()
    raise ValueError(f"the torch backend has no layer for op {node.op!r}")


class GraphModule(nn.Module):
    """Runs the graph's nodes in order; can stop at any named layer."""

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        self.layers = nn.ModuleDict({node.name: _layer(node, graph) for node in graph.nodes[1:]})
        self._plan = [(node.name, node.inputs) for node in graph.nodes[1:]]

    def values(self, x: torch.Tensor, until: str | None = None) -> dict[str, torch.Tensor]:
        """The input and every layer's value, in graph order, up to `until` (all layers when None)."""
        values = {"input": x}
        for name, inputs in self._plan:
            values[name] = self.layers[name](*(values[i] for i in inputs))
            if name == until:
                break
        return values

    def forward(self, x: torch.Tensor, until: str | None = None) -> torch.Tensor:
        return next(reversed(self.values(x, until).values()))


def to_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A numpy batch as a tensor on `device` (no copy on the CPU when the array is contiguous)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor if device.type == "cpu" else tensor.to(device, non_blocking=True)


class TorchNet(BaseNet):
    """A built-in network on one device, with its optimiser: the Net for PyTorch."""

    def __init__(self, graph: Graph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int) -> None:
        super().__init__(task, device, "this network")
        torch.manual_seed(seed)
        self.graph = graph
        self.spec = optimizer
        self._device = torch.device(device)
        self.module = GraphModule(graph).to(self._device)
        self._training: bool | None = None
        self._set_mode(False)
        named = dict(self.module.named_parameters())
        self.optimiser = Optimiser(list(self.module.parameters()),
                                   [named[f"layers.{key}"] for key in graph.penalised_params()], task, optimizer)

    def _set_mode(self, training: bool) -> None:
        if self._training != training:
            self.module.train(training)
            self._training = training

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        return to_tensor(array, self._device)

    def _step(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> float:
        self._set_mode(True)
        wb = None if weights is None else self._to_device(weights)
        return self.optimiser.step(self.module, self._to_device(x), self._to_device(y), wb, self.samples)

    @torch.no_grad()
    def _scores(self, x: np.ndarray) -> np.ndarray:
        self._set_mode(False)
        return self.module(self._to_device(x)).float().cpu().numpy()

    @torch.no_grad()
    def _activations(self, x: np.ndarray, layer: str) -> np.ndarray:
        self._set_mode(False)
        out = self.module(self._to_device(x), until=layer)
        return out.reshape(out.shape[0], -1).float().cpu().numpy()

    def layers(self) -> list[str]:
        return self.graph.layer_names()

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.graph.state_shapes()

    def export_onnx(self, path: str, layers: Sequence[str]) -> OnnxGraph:
        """The network's probabilities (or values) and the activations of `layers`, through torch.onnx.export."""
        from .to_onnx import write_onnx  # here: to_onnx imports user.py, which imports this module

        self._set_mode(False)

        def compute(x: torch.Tensor) -> list[torch.Tensor]:
            values = self.module.values(x)
            return [values[self.graph.output.name], *(values[layer] for layer in layers)]

        example = torch.zeros((2,) + self.graph.input.shape, device=self._device)
        return write_onnx(self.module, compute, self.task.is_classification, layers, example, path,
                          self.source)

    def _read_state(self) -> dict[str, np.ndarray]:
        tensors = self.module.state_dict()
        return {key: tensors[f"layers.{key}"].detach().cpu().numpy().copy() for key in self.graph.state_shapes()}

    def _write_state(self, state: dict[str, np.ndarray]) -> None:
        tensors = {f"layers.{k}": torch.as_tensor(np.asarray(v)) for k, v in state.items()}
        self.module.load_state_dict(tensors, strict=False)
