"""A networks.Graph compiled into torch modules, with H2O's optimiser, losses and penalties."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepwater.networks import Graph, Node, check_state
from deepwater.specs import OptimizerSpec, TaskSpec

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
    if node.op == "flatten":
        return nn.Flatten()
    raise ValueError(f"the torch backend has no layer for op {node.op!r}")


class GraphModule(nn.Module):
    """Runs the graph's nodes in order; can stop at any named layer."""

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        self.layers = nn.ModuleDict({node.name: _layer(node, graph) for node in graph.nodes[1:]})
        self._plan = [(node.name, node.inputs) for node in graph.nodes[1:]]

    def forward(self, x: torch.Tensor, until: str | None = None) -> torch.Tensor:
        values = {"input": x}
        out = x
        for name, inputs in self._plan:
            out = self.layers[name](*(values[i] for i in inputs))
            values[name] = out
            if name == until:
                break
        return out


def to_tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A numpy batch as a tensor on `device` (no copy on the CPU when the array is contiguous)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor if device.type == "cpu" else tensor.to(device, non_blocking=True)


def task_loss(task: TaskSpec, out: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The task's mean loss of the batch: cross entropy on logits, or a regression loss on (n, 1) values;
    with row weights, the weighted mean."""
    reduction = "none" if weights is not None else "mean"
    if task.loss == "cross_entropy":
        loss = F.cross_entropy(out, y, reduction=reduction)
    else:
        out = out.squeeze(1)
        if task.loss == "quadratic":
            loss = F.mse_loss(out, y, reduction=reduction)
        elif task.loss == "absolute":
            loss = F.l1_loss(out, y, reduction=reduction)
        else:
            loss = F.huber_loss(out, y, reduction=reduction, delta=1.0)
    if weights is not None:
        loss = (loss * weights).sum() / weights.sum().clamp_min(1e-12)
    return loss


class Optimiser:
    """Deepwater's training step over torch parameters: the task's loss, ADADELTA or SGD with H2O's annealed
    rate and ramped momentum, l1/l2 on the `penalised` weights and gradient clipping."""

    def __init__(self, params: list[nn.Parameter], penalised: list[nn.Parameter], task: TaskSpec,
                 spec: OptimizerSpec) -> None:
        self.params, self.penalised, self.task, self.spec = params, penalised, task, spec
        self.optimizer = self._make_optimizer()
        self.samples = 0

    def _make_optimizer(self) -> torch.optim.Optimizer:
        s = self.spec
        if s.adaptive_rate:
            return torch.optim.Adadelta(self.params, lr=1.0, rho=s.rho, eps=s.epsilon)
        return torch.optim.SGD(self.params, lr=s.rate(0), momentum=s.momentum(0),
                               nesterov=s.nesterov and s.momentum(0) > 0)

    def _update_schedule(self) -> None:
        if self.spec.adaptive_rate:
            return
        group = self.optimizer.param_groups[0]
        group["lr"] = self.spec.rate(self.samples)
        group["momentum"] = self.spec.momentum(self.samples)

    def step(self, forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
             weights: torch.Tensor | None) -> float:
        """One update from the batch (x, y, weights) through `forward`; returns the batch's mean loss."""
        self._update_schedule()
        self.optimizer.zero_grad(set_to_none=True)
        loss = task_loss(self.task, forward(x), y, weights)
        loss.backward()
        self._apply_penalties()
        if self.spec.clip_gradient:
            torch.nn.utils.clip_grad_value_(self.params, self.spec.clip_gradient)
        self.optimizer.step()
        self.samples += len(x)
        return loss.item()

    def _apply_penalties(self) -> None:
        l1, l2 = self.spec.l1, self.spec.l2
        if not (l1 or l2):
            return
        with torch.no_grad():
            for w in self.penalised:
                if l1:
                    w.grad.add_(torch.sign(w), alpha=l1)
                if l2:
                    w.grad.add_(w, alpha=l2)


class TorchNet:
    """One network on one device, with its optimiser: the Net protocol for PyTorch."""

    def __init__(self, graph: Graph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int) -> None:
        torch.manual_seed(seed)
        self.graph = graph
        self.task = task
        self.spec = optimizer
        self.device = device
        self._device = torch.device(device)
        self.module = GraphModule(graph).to(self._device)
        self._training = None
        self._set_mode(False)
        named = dict(self.module.named_parameters())
        self.optimiser = Optimiser(list(self.module.parameters()),
                                   [named[f"layers.{key}"] for key in graph.penalised_params()], task, optimizer)

    # --- training -------------------------------------------------------------------------
    def _set_mode(self, training: bool) -> None:
        if self._training != training:
            self.module.train(training)
            self._training = training

    def _to_device(self, array: np.ndarray) -> torch.Tensor:
        return to_tensor(array, self._device)

    def train_batch(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
        """One optimiser step; returns the mean loss of the batch."""
        self._set_mode(True)
        wb = None if weights is None else self._to_device(weights)
        return self.optimiser.step(self.module, self._to_device(x), self._to_device(y), wb)

    # --- inference ------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes) or values (n, 1)."""
        self._set_mode(False)
        out = self.module(self._to_device(x))
        if self.task.is_classification:
            out = torch.softmax(out, dim=1)
        return out.float().cpu().numpy()

    def layers(self) -> list[str]:
        return self.graph.layer_names()

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)

    @torch.no_grad()
    def features(self, x: np.ndarray, layer: str) -> np.ndarray:
        """Activations of `layer`, flattened to (n, k)."""
        self.graph.check_layer(layer)
        self._set_mode(False)
        out = self.module(self._to_device(x), until=layer)
        return out.reshape(out.shape[0], -1).float().cpu().numpy()

    # --- state ----------------------------------------------------------------------------
    def get_state(self) -> dict[str, np.ndarray]:
        """Weights and buffers as '<layer>.<name>' -> numpy array (copies), canonical names only."""
        tensors = self.module.state_dict()
        return {key: tensors[f"layers.{key}"].detach().cpu().numpy().copy() for key in self.graph.state_shapes()}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Load weights; names and shapes must match this network's."""
        check_state(self.graph, state)
        tensors = {f"layers.{k}": torch.as_tensor(np.asarray(v)) for k, v in state.items()}
        self.module.load_state_dict(tensors, strict=False)
