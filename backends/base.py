"""The one seam between the core and a framework, and the base class every net builds on.

A Backend compiles a networks.Graph into its framework and runs single steps on numpy batches; the core
drives the training loop (epochs, batches, scoring, early stopping). A UserGraphLoader reads user graph
files in the formats it declares. `BaseNet` holds what every net does the same way (layer checks, empty
batches, softmax, the state-fit check, the device), so that each framework's net only says how to run a
step, compute outputs and activations, and read and write its weights.

Backends are found through the `deepwater.backends` entry-point group (deepwater/runtime/registry.py), which checks
that each is a `Backend`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from deepwater.errors import BackendError, ModelFileError, ParameterError
from deepwater.networks import Graph
from deepwater.specs import (
    DistanceEngine,
    GraphFormat,
    LayerPlan,
    OptimizerSpec,
    TaskSpec,
    UserGraph,
    misfit,
    plan_layers,
)


@runtime_checkable
class Net(Protocol):
    """A compiled network with its optimiser state, on one device."""

    device: str

    def train_batch(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
        """One optimiser step on a batch; returns the batch's mean training loss. `y` holds class codes (n,)
        int64 or values (n,) float32; a classifier whose `takes_soft_targets` is True also takes soft targets,
        (n, classes) float32 rows of class probabilities (mixup and cutmix train on them), recognised by their two
        dimensions (soft_targets())."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes) or values (n, 1)."""

    def layers(self) -> list[str]:
        """Layer names that features() accepts."""

    def parameter_count(self) -> int:
        """Trainable parameters, counted by the framework itself."""

    def features(self, x: np.ndarray, layer: str) -> np.ndarray:
        """Activations of `layer`, flattened to (n, k)."""

    def get_state(self) -> dict[str, np.ndarray]:
        """Weights by name: '<layer>.<param>' in the canonical (PyTorch) layout, or a graph file's own names."""

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Load weights named and shaped as get_state() gives them."""


@runtime_checkable
class UserGraphLoader(Protocol):
    """Reads user graph files (network='user') in the formats it declares."""

    name: str
    extra: str  # the pip extra that installs what it needs: pip install 'deepwater[<extra>]'
    graph_formats: tuple[GraphFormat, ...]

    def available(self) -> bool:
        """True when what it needs can be imported."""

    def devices(self) -> list[str]:
        """Devices it can use, e.g. ['cpu', 'cuda:0']."""

    def gpu_hint(self) -> str:
        """One line on why devices() lists no GPU (e.g. a CPU-only build), shown in the CPU fallback warning."""

    def load_user_network(self, graph: UserGraph, task: TaskSpec, optimizer: OptimizerSpec, device: str,
                          seed: int) -> Net:
        """A Net from graph.definition_file (one of graph_formats) with graph.parameters_file's weights.

        It checks that the graph takes graph.input_shape and has task.n_outputs outputs
        (user_graphs.check_outputs), replaces its last layer when graph.replace_output_layer asks, and names
        layers and state by the file's own names.
        """


@runtime_checkable
class Backend(UserGraphLoader, Protocol):
    """A framework adapter: builds the pre-defined networks and reads the framework's own graph files."""

    def build(self, graph: Graph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int) -> Net:
        """Compile `graph` with `task`'s loss and `optimizer` on `device`, initialised from `seed`."""


@runtime_checkable
class MeanImageReader(Protocol):
    """Optional for a backend: reads mean-image files in a framework's own format (e.g. MXNet's .nd)."""

    mean_image_suffixes: tuple[str, ...]

    def read_mean_image(self, path: str) -> np.ndarray:
        """The one array the file holds; ModelFileError naming the file when it cannot be read."""


def soft_targets(task: TaskSpec, y: np.ndarray) -> bool:
    """True when `y` is a classifier's soft targets, (n, classes) rows of probabilities, not class codes (n,)."""
    return task.is_classification and np.ndim(y) == 2


def configure_average(net: Net, decay: float | None, replicated: bool = False) -> None:
    """Give `net` the `ema` parameter: BaseNet.configure_average(); ParameterError for a net without it (a
    plug-in's) or one trained by replicas on several devices or workers (`replicated`), whose steps it does not
    see."""
    if not decay:
        return
    configure = getattr(net, "configure_average", None)
    if configure is None or replicated:
        why = "trains on several devices or workers, whose replicas step apart from the averaged copy" \
            if replicated else f"is a {type(net).__name__}, which has no configure_average()"
        raise ParameterError(f"ema={decay!r} cannot average this network's weights: it {why}. Drop ema (or pass "
                             "None), or train on one device.")
    configure(decay)


ONNX_OPSET = 18  # the opset of graphs deepwater exports: >= 17, read by onnxruntime 1.14 and later
ONNX_INPUT = "input"  # the input's name in graphs deepwater exports


@dataclass(frozen=True)
class OnnxGraph:
    """What an ONNX file written by OnnxExporter.export_onnx() computes, by the names of its values.

    `output` is the network's output: class probabilities when `probabilities`, else logits (classification)
    or the value (regression, on the standardised scale the net trains on); `layers` maps each layer asked
    for to the graph output holding its activations, flattened to (n, k) as features() gives them.
    """

    input: str
    output: str
    probabilities: bool
    layers: dict[str, str]


@runtime_checkable
class OnnxExporter(Protocol):
    """Optional for a Net: writes itself as an ONNX graph (deepwater's model.export(format='onnx')).

    Built-in networks are exported through the torch backend from their canonical weights, whatever
    backend trained them; a net of a user graph that implements this exports its own graph.
    """

    def export_onnx(self, path: str, layers: Sequence[str]) -> OnnxGraph:
        """Write the network, with the activations of `layers` (names from layers()) as extra outputs, as an
        ONNX graph at `path` taking batches of any size; ModelFileError naming what cannot be exported."""


@runtime_checkable
class GradientNet(Protocol):
    """Optional for a Net: what model.explain() needs (Grad-CAM, saliency, integrated gradients).

    BaseNet implements it over _class_gradients(); a net that cannot give gradients says why in its
    `gradient_limit` and raises BackendError from it (see check_gradients() below, also for nets outside BaseNet)."""

    def class_gradients(self, x: np.ndarray, layer: str | None, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values, gradients) for a batch `x` and each row's output column `target` (int64, (n,)): the activations
        of `layer` (a name from layers(); None: the input itself) and the gradient of each row's score in column
        `target` with respect to them, both float32 and shaped alike, image maps channels-first (n, C, H, W).
        The score is the logit where the net has logits, else its output."""


def check_gradients(net: Net) -> None:
    """BackendError saying why and what to do when `net` gives no class gradients: it has no class_gradients()
    (a plug-in's net), or its `gradient_limit` says why not (a runtime that only runs forward, as onnxruntime)."""
    if not isinstance(net, GradientNet):
        raise BackendError(f"{type(net).__name__} cannot explain predictions: it has no class_gradients() "
                           "(deepwater.backends.base.GradientNet). Train the model with backend='torch', "
                           "'tensorflow' or 'mxnet' to explain it.")
    limit = getattr(net, "gradient_limit", None)
    if limit is not None:
        raise BackendError(f"{getattr(net, 'source', 'this network')} cannot explain predictions: {limit}")


def class_gradients(net: Net, x: np.ndarray, layer: str | None, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """net.class_gradients(), after check_gradients()."""
    check_gradients(net)
    return net.class_gradients(x, layer, target)


@runtime_checkable
class ConvolutionalLayers(Protocol):
    """Optional for a Net of a user graph: which layers a convolution computes, as the graph's format tells
    (Grad-CAM suggests them when a user graph's model is explained without a layer named)."""

    def convolutional_layers(self) -> list[str]:
        """The names from layers() whose values a convolution (or transposed convolution) computes, input first."""


def convolutional_layers(net: Net) -> list[str]:
    """net.convolutional_layers(), or [] for a net whose format does not tell."""
    return net.convolutional_layers() if isinstance(net, ConvolutionalLayers) else []


@runtime_checkable
class DistanceEngineProvider(Protocol):
    """Optional for a backend: computes deepwater.distance() blocks on a GPU."""

    def distance_engine(self, device: str) -> DistanceEngine:
        """An engine on `device` ('cuda' or 'cuda:N'); DeviceError when the framework does not see it."""


@dataclass(frozen=True)
class Shard:
    """One device's rows of a global mini-batch, and its `share` of the batch's loss: rows / batch rows, or
    with row weights its weights' sum / the batch's. Summing share * (the shard's mean loss) over the shards
    gives the batch's mean loss, so the share-weighted sum of the shards' gradients is the full batch's."""

    x: np.ndarray
    y: np.ndarray
    weights: np.ndarray | None
    share: float


def split_batch(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None, parts: int) -> list[Shard]:
    """The batch in `parts` contiguous shards as even as can be (sizes differ by at most one row).

    A shard without rows (a batch smaller than `parts`) holds the batch's first row with share 0, so that
    every replica still runs its step (collective frameworks need each replica in every step)."""
    bounds = np.linspace(0, len(x), parts + 1).round().astype(int)
    total = float(len(x)) if weights is None else max(float(np.sum(weights, dtype=np.float64)), 1e-12)
    shards = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        rows = slice(start, stop) if stop > start else slice(0, 1)
        w = None if weights is None else weights[rows]
        if stop == start:
            share = 0.0
        else:
            share = (stop - start) / total if w is None else float(np.sum(w, dtype=np.float64)) / total
        shards.append(Shard(x[rows], y[rows], w, share))
    return shards


@runtime_checkable
class ReplicaGroup(Protocol):
    """Replicas of one net on several devices, stepping together on shards of each global batch.

    The net it was made from (the estimator's) holds the weights the core reads; `pull()` brings the
    replicas' weights and optimiser state into it and `push()` sends its own to the replicas."""

    def step(self, shards: list[Shard], samples: int) -> float:
        """One optimiser step of every replica on its shard (the gradients averaged by share) after
        `samples` training rows; returns the batch's mean loss."""

    def pull(self) -> None:
        """Load the replicas' weights and optimiser state into the net."""

    def push(self) -> None:
        """Load the net's weights and optimiser state into every replica."""

    def close(self) -> None:
        """Free the replicas (worker processes, devices); the net keeps the weights pulled last."""


@runtime_checkable
class DataParallel(Protocol):
    """Optional for a backend: trains one net on several devices (device_id=[0, 1, ...])."""

    def prepare_devices(self, devices: list[str]) -> None:
        """Check (and where the framework needs it before it starts, set up) `devices`, e.g. ['cuda:0',
        'cuda:1'] or CPU replicas ['cpu:0', 'cpu:1']; DeviceError naming device_id when it cannot."""

    def replicate(self, net: Net, devices: list[str]) -> ReplicaGroup:
        """Replicas of `net` (built by this backend on devices[0]) on `devices`, holding its weights."""


@runtime_checkable
class RayDataParallel(Protocol):
    """Optional for a backend: trains one net over Ray workers (num_workers=N after deepwater.init())."""

    def replicate_on_ray(self, net: Net, workers: int, gpu: bool) -> ReplicaGroup:
        """Replicas of `net` in `workers` Ray workers of the joined cluster, on a GPU each when `gpu`."""


class OptimiserState(Protocol):
    """What a net's optimiser gives training_state(): its arrays, and loading them back."""

    def arrays(self) -> dict[str, np.ndarray]:
        """Copies of its own arrays (momentum buffers, ADADELTA accumulators), '<slot>.<parameter index>'."""

    def load_arrays(self, arrays: dict[str, np.ndarray], samples: int) -> None:
        """Load arrays named as arrays() names them; `samples` is the rows the net has seen."""


def slot_arrays(slots: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """Optimiser arrays by name, '<slot>.<parameter index>' (e.g. 'momentum_buffer.3'), from lists per slot."""
    return {f"{slot}.{i}": value for slot, values in slots.items() for i, value in enumerate(values)}


def weight_blocks(graph: Graph) -> list[list[str]]:
    """The graph's layers with weights in order, grouped into blocks: each conv or dense layer with the
    batch-norm layers after it (a batch norm before any of them is a block of its own)."""
    blocks: list[list[str]] = []
    for node in graph.nodes:
        if node.op in ("conv", "dense") or (node.op == "batch_norm" and not blocks):
            blocks.append([node.name])
        elif node.op == "batch_norm":
            blocks[-1].append(node.name)
    return blocks


def layer_plan(graph: Graph, spec: OptimizerSpec) -> LayerPlan:
    """The spec's freeze and layer_lr_decay over a built-in network's blocks (see specs.LayerPlan)."""
    return plan_layers(weight_blocks(graph), graph.layer_names(), spec)


PRECISIONS = ("auto", "float32", "bfloat16", "float16")  # the values of the `precision` parameter
LOSS_SCALE = "loss_scale"  # training_state()'s entry for float16 loss scaling, kept by checkpoints
TRAINING_WEIGHTS = "training_weights."  # training_state()'s prefix for the weights being trained, under ema


def resolve_precision(requested: str, device: str, supported: Sequence[str], gpu_bfloat16: bool) -> str:
    """The concrete precision for `requested` on `device`: itself, or for 'auto' bfloat16 on a GPU that has it,
    else float16 (with loss scaling) on a GPU, and float32 on the CPU or where `supported` (what the net computes
    in) lacks the mixed one."""
    if requested != "auto":
        return requested
    wanted = "float32" if device == "cpu" else "bfloat16" if gpu_bfloat16 else "float16"
    return wanted if wanted in supported else "float32"


def configure_steps(net: Net, precision: str, compile: bool) -> None:
    """Give `net` the `precision` and `compile` parameters: BaseNet.configure_steps(), or for a plug-in net
    without it, float32 steps as they are (ParameterError when anything else is asked)."""
    configure = getattr(net, "configure_steps", None)
    if configure is not None:
        configure(precision, compile)
    elif precision not in ("auto", "float32") or compile:
        raise ParameterError(f"precision={precision!r}, compile={compile!r}: {type(net).__name__} has no "
                             "configure_steps(); use precision='auto' or 'float32' and compile=False.")


class LazyLoss:
    """A step's loss left on the device until float() reads it, so that a step does not wait for the device.

    `read` turns the framework's scalar into a number; the trainer reads losses only when it scores.
    """

    __slots__ = ("_value", "_read")

    def __init__(self, value: object, read: Callable[[object], float] = float) -> None:
        self._value, self._read = value, read

    def __float__(self) -> float:
        return float(self._read(self._value))


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, stable for large scores."""
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32, copy=False)


class BaseNet(ABC):
    """What every net does the same way; a framework's net implements the abstract methods below.

    `source` names what the net was built from in error messages ("the network 'lenet'", or the graph
    file's path). Batches reach the abstract methods with at least one row.
    """

    outputs_probabilities = False  # True when _scores() already gives class probabilities
    # the optimiser whose arrays training_state() holds; None for a net whose optimiser keeps nothing outside
    # get_state() (a TF1 graph's own train_op) or that does not train (ONNX)
    optimiser: OptimiserState | None = None
    precision = "float32"  # what the steps compute in (configure_steps()); weights stay float32
    precision_limit = "it trains in float32 only"  # why precisions() holds no more, for the error
    gradient_limit: str | None = None  # why the net gives no class gradients, and what to do (None: it gives them)
    compiled = False  # whether the steps run through the framework's compiler (configure_steps())
    # copies the next batch to the device while the current one trains (trainer's lookahead); None: no use
    prefetch: Callable[[np.ndarray, np.ndarray | None, np.ndarray | None], None] | None = None
    takes_soft_targets = False  # True when _step() takes soft targets (soft_targets()) as well as class codes
    scoring_rows: int | None = None  # rows per forward pass when scoring (runtime.memory); None: a batch at once
    ema = 0.0  # the decay of the averaged weights (configure_average()); 0: no average
    _average: Any = None  # the averaged weights (_new_average()'s), None without ema
    _parked: dict[str, np.ndarray] | None = None  # the weights being trained, while the average is loaded to score

    def __init__(self, task: TaskSpec, device: str, source: str) -> None:
        self.task = task
        self.device = device
        self.source = source
        self.samples = 0  # training rows seen: H2O's rate annealing and momentum ramp follow it

    # --- what each framework's net implements ----------------------------------------------
    @abstractmethod
    def _step(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> float | LazyLoss:
        """One optimiser step; returns the batch's mean loss, as a number or a LazyLoss left on the device."""

    @abstractmethod
    def _scores(self, x: np.ndarray) -> np.ndarray:
        """The network's output as float32 (n, k): logits for classification, values for regression."""

    @abstractmethod
    def _activations(self, x: np.ndarray, layer: str) -> np.ndarray:
        """Activations of `layer` (one of layers()) as float32 (n, k), image maps in channels-first order."""

    @abstractmethod
    def layers(self) -> list[str]:
        """Layer names that features() accepts, from the input side to the output."""

    @abstractmethod
    def parameter_count(self) -> int:
        """Trainable values, counted by the framework."""

    @abstractmethod
    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every entry of get_state() with its shape."""

    @abstractmethod
    def _read_state(self) -> dict[str, np.ndarray]:
        """Copies of every weight and statistic, named as state_shapes() names them."""

    @abstractmethod
    def _write_state(self, state: dict[str, np.ndarray]) -> None:
        """Load a state already checked to fit state_shapes()."""

    def _class_gradients(self, x: np.ndarray, layer: str | None, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """class_gradients() on a batch with rows and a checked layer; a framework's net overrides it."""
        raise BackendError(f"{self.source} ({type(self).__name__}) cannot explain predictions: its backend gives "
                           "no gradients of a class score. Explain a built-in network trained with backend='torch', "
                           "'tensorflow' or 'mxnet'.")

    # --- precision and compiled steps (a framework's net overrides these) -------------------
    def precisions(self) -> tuple[str, ...]:
        """The precisions this net computes in on its device (float32 unless the framework's net says more)."""
        return ("float32",)

    def gpu_has_bfloat16(self) -> bool:
        """True when the net's GPU computes in bfloat16 natively ('auto' then picks bfloat16 over float16)."""
        return False

    def _apply_steps(self, precision: str, compile: bool) -> None:
        """Make the steps compute in `precision` (one of precisions()) and compile them when asked; a net
        whose steps are already a static graph (MXNet's bound executors) ignores `compile`."""

    def configure_steps(self, precision: str = "auto", compile: bool = False) -> None:
        """Train (and predict) in `precision` ('auto' resolved for this device by resolve_precision()),
        through the framework's compiler when `compile`; weights, optimiser state and outputs stay float32."""
        supported = self.precisions()
        if precision not in ("auto", *supported):
            raise ParameterError(f"precision={precision!r} is not available for {self.source} on {self.device!r}: "
                                 f"{self.precision_limit}. Use precision='auto' or one of {list(supported)}.")
        concrete = resolve_precision(precision, self.device, supported, self.gpu_has_bfloat16())
        self._apply_steps(concrete, compile)
        self.precision, self.compiled = concrete, compile

    # --- the Net protocol ------------------------------------------------------------------
    def train_batch(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
        """One optimiser step on the batch; returns its mean loss (NaN, and no step, for an empty batch).
        An autoencoder's targets are its inputs: `y` is not read."""
        return float(self.train_step(x, y, weights))

    def train_step(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float | LazyLoss:
        """train_batch() without waiting for the device: the loss comes back as something float() reads
        later (the trainer reads it when it scores)."""
        if len(x) == 0:
            return float("nan")
        targets = self.targets(x, y)
        self._use_training_weights()
        loss = self._step(x, targets, weights)
        self.samples += len(x)
        if self._average is not None:
            self._update_average()
        return loss

    def targets(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """What the loss compares the outputs with: `y`, or for an autoencoder the inputs themselves, flattened
        as the output is."""
        if self.task.is_autoencoder:
            return np.ascontiguousarray(np.reshape(x, (len(x), -1)), dtype=np.float32)
        if soft_targets(self.task, y) and not self.takes_soft_targets:
            raise ParameterError(f"{self.source} ({type(self).__name__}) trains on class labels only, not on the soft "
                                 "targets that mixup and cutmix make; drop mixup and cutmix (or pass 0), or train "
                                 "a built-in network.")
        return y

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes) or values (n, 1), float32 (of the averaged weights under ema)."""
        self._use_average()
        scores = self._in_chunks(self._scores, x) if len(x) else self._scores(self._probe(x))[:0]
        if self.task.is_classification and not self.outputs_probabilities:
            return softmax(scores)
        return scores

    def features(self, x: np.ndarray, layer: str) -> np.ndarray:
        """Activations of `layer` flattened to (n, k); ParameterError listing the layers for an unknown name."""
        self.check_layer(layer)
        self._use_average()
        if not len(x):
            return self._activations(self._probe(x), layer)[:0]
        return self._in_chunks(lambda rows: self._activations(rows, layer), x)

    def _in_chunks(self, forward: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
        """forward(x), run on at most scoring_rows rows at a time."""
        step = self.scoring_rows
        if step is None or len(x) <= step:
            return forward(x)
        return np.concatenate([forward(x[first:first + step]) for first in range(0, len(x), step)])

    def class_gradients(self, x: np.ndarray, layer: str | None, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(values, gradients) of `layer` (None: the input) for each row's output column `target`
        (GradientNet); ParameterError for an unknown layer or a target outside the outputs, BackendError when the
        net gives none (gradient_limit)."""
        check_gradients(self)
        if layer is not None:
            self.check_layer(layer)
        target = np.asarray(target, dtype=np.int64).reshape(-1)
        if len(target) != len(x) or ((target < 0) | (target >= self.task.n_outputs)).any():
            raise ParameterError(f"target={target.tolist()[:8]}: class_gradients() takes one output column per row "
                                 f"({len(x)} rows), each in 0..{self.task.n_outputs - 1}.")
        self._use_average()
        if len(x):
            return self._class_gradients(x, layer, target)
        values, gradients = self._class_gradients(self._probe(x), layer, np.zeros(1, np.int64))
        return values[:0], gradients[:0]

    def check_layer(self, layer: str) -> None:
        """ParameterError naming `layer` and listing the valid names unless features() accepts it."""
        names = self.layers()
        if layer not in names:
            raise ParameterError(f"layer={layer!r} is not a layer of {self.source}; use one of layers(): {names}.")

    def get_state(self) -> dict[str, np.ndarray]:
        """Copies of every weight and statistic by name (under ema, of the averaged weights: the model's)."""
        return self._read_state() if self._average is None else self._average_arrays()

    def set_state(self, state: dict[str, np.ndarray], source: str = "set_state()") -> None:
        """Load `state` (under ema as both the weights being trained and their average); ModelFileError naming
        `source` when names or shapes do not fit this net's."""
        self.check_state(state, source)
        self._parked = None
        self._write_state(state)
        if self._average is not None:
            self._average = self._new_average()

    def training_state(self) -> dict[str, np.ndarray]:
        """What a checkpoint restart needs beside the weights: 'samples' (the rows seen) and the optimiser's
        arrays, in the framework's own layout (so it moves between nets of one backend, not across backends);
        under ema also the weights being trained, TRAINING_WEIGHTS + their name (get_state() gives the average)."""
        arrays = {} if self.optimiser is None else self.optimiser.arrays()
        scale = self._loss_scale_state()
        trained = {} if self._average is None else \
            {TRAINING_WEIGHTS + name: value for name, value in self._training_weights().items()}
        return {"samples": np.asarray(self.samples, dtype=np.int64), **arrays,
                **({} if scale is None else {LOSS_SCALE: scale}), **trained}

    def set_training_state(self, state: dict[str, np.ndarray], source: str = "set_training_state()") -> None:
        """Continue from `state` (as training_state() gives it); ModelFileError naming `source` when it does
        not fit this net's optimiser."""
        state = dict(state)
        scale = state.pop(LOSS_SCALE, None)  # a float16 run's; a run in another precision starts without it
        # an ema run's weights being trained; a run without ema continues from the average (get_state())
        trained = {name[len(TRAINING_WEIGHTS):]: state.pop(name) for name in list(state)
                   if name.startswith(TRAINING_WEIGHTS)}
        shapes = {name: np.shape(value) for name, value in self.training_state().items()
                  if name != LOSS_SCALE and not name.startswith(TRAINING_WEIGHTS)}
        problems = misfit(shapes, state, True)
        if problems:
            raise ModelFileError(f"{source}: the optimiser state does not fit {self.source}'s optimiser: {problems}. "
                                 "It was saved by another backend or optimiser (adaptive_rate, momentum); "
                                 "train from the weights alone instead.")
        self.samples = int(state["samples"])
        if self.optimiser is not None:
            self.optimiser.load_arrays({name: value for name, value in state.items() if name != "samples"},
                                       self.samples)
        if scale is not None and self._loss_scale_state() is not None:
            self._load_loss_scale(np.asarray(scale, dtype=np.float32))
        if trained and self._average is not None:
            self.check_state(trained, source)
            self._use_training_weights()
            self._write_state(trained)

    # --- the averaged weights (ema) ----------------------------------------------------------
    def configure_average(self, decay: float | None) -> None:
        """Keep an exponential moving average of the weights with `decay` (None or 0: none), updated after every
        step as timm's ModelEmaV2 does: average = decay * average + (1 - decay) * weights, over every entry of
        get_state() (batch-norm running statistics too). It starts from the weights the net holds; predict(),
        features(), class_gradients() and get_state() then give the average, while the steps go on training the
        weights themselves (kept by training_state() for a restart)."""
        decay = float(decay or 0.0)
        if not decay:
            self._use_training_weights()
            self._average = None
        elif self._average is None:
            self._average = self._new_average()
        self.ema = decay

    # how the average is kept: numpy arrays named as get_state() names them, unless a framework's net keeps it on
    # its device (these four together)
    def _new_average(self) -> Any:
        """A copy of the weights the net holds, to average into."""
        return self._read_state()

    def _update_average(self) -> None:
        """average += (1 - ema) * (weights - average), after a step, in float32."""
        keep = np.float32(1.0 - self.ema)
        for name, value in self._read_state().items():
            average = self._average[name]
            average += keep * (value - average)

    def _average_arrays(self) -> dict[str, np.ndarray]:
        """Copies of the average, named as get_state() names them."""
        return {name: value.copy() for name, value in self._average.items()}

    def _load_average(self) -> None:
        """Load the average into the net's weights."""
        self._write_state(self._average)

    def _training_weights(self) -> dict[str, np.ndarray]:
        """Copies of the weights being trained, wherever they are (loaded, or put aside while the average is)."""
        return {n: v.copy() for n, v in self._parked.items()} if self._parked is not None else self._read_state()

    def _use_average(self) -> None:
        """Load the averaged weights to compute with, the weights being trained put aside (nothing without ema)."""
        if self._average is not None and self._parked is None:
            self._parked = self._read_state()
            self._load_average()

    def _use_training_weights(self) -> None:
        """Load the weights being trained back after _use_average(), for the next step."""
        if self._parked is not None:
            self._write_state(self._parked)
            self._parked = None

    def _loss_scale_state(self) -> np.ndarray | None:
        """float16 steps' loss scaling as [scale, finite steps since it last grew], or None (no loss scaling)."""
        return None

    def _load_loss_scale(self, values: np.ndarray) -> None:
        """Continue float16 loss scaling from _loss_scale_state()'s values."""

    def check_state(self, state: dict[str, np.ndarray], source: str, complete: bool = True) -> None:
        """ModelFileError naming `source` when `state` has unknown names, wrong shapes, or (when `complete`)
        misses names."""
        shapes = self.state_shapes()
        problems = misfit(shapes, state, complete)
        if problems:
            names = sorted(shapes)
            raise ModelFileError(f"{source}: the weights do not fit {self.source}: {problems}. Its names are "
                                 f"{names[:12]}{'...' if len(names) > 12 else ''}.")

    @staticmethod
    def _probe(x: np.ndarray) -> np.ndarray:
        """One row of zeros shaped as a row of `x`, to learn an output's width for an empty batch."""
        return np.zeros((1,) + tuple(np.shape(x)[1:]), dtype=np.float32)
