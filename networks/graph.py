"""A network as a list of named nodes with inferred shapes: what every backend compiles.

Architectures call a GraphBuilder (conv, pool, act, dense, ...); the builder checks shapes as it
goes, so an image too small for a network fails here, in plain words, before any framework runs.
Shapes leave out the batch dimension and are channels-first: (C, H, W) for images, (K,) for vectors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from deepwater.errors import ModelFileError, ParameterError
from deepwater.specs import misfit

ACTIVATIONS = ("relu", "relu6", "tanh", "sigmoid")
POOLS = ("max", "avg")
FLOAT32_BYTES = 4


class ShapeError(ParameterError):
    """A layer received an input too small for its kernel."""


@dataclass(frozen=True)
class Node:
    """One layer: its name, operation, input node names, attributes and output shape."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any]
    shape: tuple[int, ...]

    def param_shapes(self, input_shapes: list[tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        """Shapes of this node's trainable parameters, in the canonical (PyTorch) layout."""
        if self.op == "dense":
            return {"weight": (self.attrs["units"], input_shapes[0][0]), "bias": (self.attrs["units"],)}
        if self.op == "conv":
            k, filters, groups = self.attrs["kernel"], self.attrs["filters"], self.attrs.get("groups", 1)
            shapes = {"weight": (filters, input_shapes[0][0] // groups, k, k)}
            return {**shapes, "bias": (filters,)} if self.attrs["bias"] else shapes
        if self.op == "batch_norm":
            return {"weight": (self.shape[0],), "bias": (self.shape[0],)}
        return {}

    def buffer_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of non-trainable state (batch-norm running statistics)."""
        if self.op == "batch_norm":
            return {"running_mean": (self.shape[0],), "running_var": (self.shape[0],)}
        return {}


@dataclass(frozen=True)
class MemoryEstimate:
    """Values a network holds while it trains, from its shapes: its state (weights and buffers), its trainable
    parameters (each also has a gradient and the optimiser's slots) and every node's output for one row."""

    state_values: int
    param_values: int
    activation_values: int  # per row, the input included

    def weight_bytes(self, optimizer_slots: int, value_bytes: int = FLOAT32_BYTES) -> int:
        """Bytes of the weights and buffers, plus a gradient and `optimizer_slots` slots per parameter."""
        return (self.state_values + self.param_values * (1 + optimizer_slots)) * value_bytes

    def batch_bytes(self, rows: int, value_bytes: int = FLOAT32_BYTES) -> int:
        """Bytes of every node's output for `rows` rows, and their gradients."""
        return 2 * rows * self.activation_values * value_bytes


@dataclass
class Graph:
    """A built network: nodes in execution order, the input node and the output node."""

    nodes: list[Node] = field(default_factory=list)

    @property
    def input(self) -> Node:
        return self.nodes[0]

    @property
    def output(self) -> Node:
        return self.nodes[-1]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def check_layer(self, name: str) -> None:
        """Raise ParameterError unless `name` is a layer features() accepts."""
        if name not in self.layer_names():
            raise ParameterError(f"layer={name!r} is not a layer of this network; use one of {self.layer_names()}.")

    def layer_names(self) -> list[str]:
        """Names that features() accepts: every node but the input."""
        return [n.name for n in self.nodes[1:]]

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every trainable parameter as '<node>.<param>' -> shape (canonical layout)."""
        shapes: dict[str, tuple[int, ...]] = {}
        for node in self.nodes:
            inputs = [self.node(i).shape for i in node.inputs]
            for pname, shape in node.param_shapes(inputs).items():
                shapes[f"{node.name}.{pname}"] = shape
        return shapes

    def penalised_params(self) -> list[str]:
        """Parameters that l1 and l2 apply to: conv and dense weights (not biases, not batch-norm scales)."""
        return [f"{n.name}.weight" for n in self.nodes if n.op in ("conv", "dense")]

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Everything get_state() holds: parameters plus buffers such as batch-norm statistics."""
        shapes = self.param_shapes()
        for node in self.nodes:
            shapes.update({f"{node.name}.{b}": s for b, s in node.buffer_shapes().items()})
        return shapes

    def param_count(self) -> int:
        return sum(math.prod(s) for s in self.param_shapes().values())

    def largest_output(self) -> int:
        """Values of the largest layer output (the input included) for one row."""
        return max(math.prod(n.shape) for n in self.nodes)

    def memory_estimate(self) -> MemoryEstimate:
        """What training this network holds, counted from its shapes alone (nothing is allocated)."""
        return MemoryEstimate(sum(math.prod(s) for s in self.state_shapes().values()), self.param_count(),
                              sum(math.prod(n.shape) for n in self.nodes))


class GraphBuilder:
    """Records layers into a Graph; each method returns the new node's name."""

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        self.graph = Graph([Node("input", "input", (), {}, tuple(input_shape))])

    def _add(self, name: str, op: str, inputs: tuple[str, ...], attrs: dict[str, Any], shape: tuple[int, ...]) -> str:
        if any(n.name == name for n in self.graph.nodes):
            raise ValueError(f"layer name {name!r} used twice")
        self.graph.nodes.append(Node(name, op, inputs, attrs, tuple(int(s) for s in shape)))
        return name

    def shape(self, x: str) -> tuple[int, ...]:
        return self.graph.node(x).shape

    def _spatial(self, name: str, x: str, kernel: int, stride: int, pad: int) -> tuple[int, int, int]:
        c, h, w = self._image_shape(name, x)
        if h + 2 * pad < kernel or w + 2 * pad < kernel:
            raise ShapeError(f"layer {name!r} gets a {h}x{w} input, smaller than its {kernel}x{kernel} kernel")
        return c, (h + 2 * pad - kernel) // stride + 1, (w + 2 * pad - kernel) // stride + 1

    def _image_shape(self, name: str, x: str) -> tuple[int, int, int]:
        shape = self.shape(x)
        if len(shape) != 3:
            raise ShapeError(f"layer {name!r} needs an image input (C, H, W), got shape {shape}")
        return shape  # type: ignore[return-value]

    def conv(self, name: str, x: str, filters: int, kernel: int, stride: int = 1, pad: int = 0,
             bias: bool = True, groups: int = 1) -> str:
        """2-D convolution over square kernels, zero padding `pad` on every side.

        `groups` splits input and output channels into that many independent convolutions (weights
        (filters, in_channels / groups, k, k)); groups == in_channels == filters is a depthwise convolution.
        """
        c, h, w = self._spatial(name, x, kernel, stride, pad)
        if groups < 1 or c % groups or filters % groups:
            raise ValueError(f"conv {name!r}: groups={groups} must divide both its {c} input channels "
                             f"and its {filters} filters")
        attrs = {"filters": filters, "kernel": kernel, "stride": stride, "pad": pad, "bias": bias, "groups": groups}
        return self._add(name, "conv", (x,), attrs, (filters, h, w))

    def pool(self, name: str, x: str, kind: str, kernel: int, stride: int, pad: int = 0) -> str:
        """Max or average pooling over kernel x kernel windows (floor division of the output size).

        Padding counts as -inf for max pooling; average pooling is not padded (pad must be 0),
        so every backend averages exactly the same values.
        """
        if kind not in POOLS:
            raise ValueError(f"pool kind {kind!r} not in {POOLS}")
        if kind == "avg" and pad:
            raise ValueError(f"average pool {name!r} cannot be padded; use pad=0")
        c, h, w = self._spatial(name, x, kernel, stride, pad)
        return self._add(name, "pool", (x,), {"kind": kind, "kernel": kernel, "stride": stride, "pad": pad}, (c, h, w))

    def global_pool(self, name: str, x: str, kind: str = "avg") -> str:
        """Average (or max) over all spatial positions: (C, H, W) -> (C,)."""
        if kind not in POOLS:
            raise ValueError(f"pool kind {kind!r} not in {POOLS}")
        c, _, _ = self._image_shape(name, x)
        return self._add(name, "global_pool", (x,), {"kind": kind}, (c,))

    def batch_norm(self, name: str, x: str, epsilon: float = 1e-5, momentum: float = 0.9) -> str:
        """Batch normalisation over channels (or features); running statistics follow
        running = momentum * running + (1 - momentum) * batch."""
        return self._add(name, "batch_norm", (x,), {"epsilon": epsilon, "momentum": momentum}, self.shape(x))

    def concat(self, name: str, xs: list[str]) -> str:
        """Join image inputs along channels; their H and W must agree."""
        shapes = [self._image_shape(name, x) for x in xs]
        if len({s[1:] for s in shapes}) != 1:
            raise ShapeError(f"layer {name!r} joins inputs of different sizes: {shapes}")
        return self._add(name, "concat", tuple(xs), {}, (sum(s[0] for s in shapes),) + shapes[0][1:])

    def add(self, name: str, a: str, b: str) -> str:
        """Element-wise sum of two inputs of the same shape (residual connections)."""
        if self.shape(a) != self.shape(b):
            raise ShapeError(f"layer {name!r} adds shapes {self.shape(a)} and {self.shape(b)}")
        return self._add(name, "add", (a, b), {}, self.shape(a))

    def act(self, name: str, x: str, kind: str) -> str:
        """Element-wise activation: relu, relu6 (min(max(x, 0), 6)), tanh or sigmoid."""
        if kind not in ACTIVATIONS:
            raise ValueError(f"activation {kind!r} not in {ACTIVATIONS}")
        return self._add(name, "act", (x,), {"kind": kind}, self.shape(x))

    def dense(self, name: str, x: str, units: int) -> str:
        """Fully connected layer with bias; needs a flat input."""
        if len(self.shape(x)) != 1:
            raise ShapeError(f"layer {name!r} needs a flat input; add flatten() before it")
        return self._add(name, "dense", (x,), {"units": units}, (units,))

    def dropout(self, name: str, x: str, rate: float) -> str:
        """Drop a fraction `rate` of values while training."""
        return self._add(name, "dropout", (x,), {"rate": rate}, self.shape(x))

    def maxout(self, name: str, x: str, pieces: int) -> str:
        """Maximum over `pieces` consecutive units of a flat input (H2O's Maxout)."""
        (units,) = self.shape(x)
        if units % pieces:
            raise ValueError(f"maxout {name!r}: {units} units do not split into {pieces} pieces")
        return self._add(name, "maxout", (x,), {"pieces": pieces}, (units // pieces,))

    def upsample(self, name: str, x: str, scale: int) -> str:
        """Nearest-neighbour upsampling of an image by an integer `scale`: (C, H, W) -> (C, H*scale, W*scale)."""
        c, h, w = self._image_shape(name, x)
        return self._add(name, "upsample", (x,), {"scale": scale}, (c, h * scale, w * scale))

    def zero_pad(self, name: str, x: str, top: int, bottom: int, left: int, right: int) -> str:
        """Zero padding of an image, each side by its own amount (TensorFlow's "same" padding of a strided
        convolution pads one more row and column after than before)."""
        c, h, w = self._image_shape(name, x)
        if min(top, bottom, left, right) < 0:
            raise ValueError(f"zero_pad {name!r}: amounts must be >= 0, got {(top, bottom, left, right)}")
        attrs = {"top": top, "bottom": bottom, "left": left, "right": right}
        return self._add(name, "zero_pad", (x,), attrs, (c, h + top + bottom, w + left + right))

    def flatten(self, name: str, x: str) -> str:
        """Flatten (C, H, W) to (C*H*W,) in channels-first order."""
        return self._add(name, "flatten", (x,), {}, (math.prod(self.shape(x)),))


def check_state(graph: Graph, state: dict[str, Any]) -> None:
    """Raise ModelFileError unless `state` holds exactly the graph's weights with the right shapes."""
    problems = misfit(graph.state_shapes(), state)
    if problems:
        raise ModelFileError(f"weights do not fit this network: {problems}")
