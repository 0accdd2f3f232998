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
from typing import Protocol, runtime_checkable

import numpy as np

from deepwater.errors import BackendError, ModelFileError, ParameterError
from deepwater.networks import Graph
from deepwater.specs import DistanceEngine, GraphFormat, OptimizerSpec, TaskSpec, UserGraph, misfit


@runtime_checkable
class Net(Protocol):
    """A compiled network with its optimiser state, on one device."""

    device: str

    def train_batch(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
        """One optimiser step on a batch; returns the batch's mean training loss."""

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


PRECISIONS = ("auto", "float32", "bfloat16", "float16")  # the values of the `precision` parameter
LOSS_SCALE = "loss_scale"  # training_state()'s entry for float16 loss scaling, kept by checkpoints


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
        loss = self._step(x, self.targets(x, y), weights)
        self.samples += len(x)
        return loss

    def targets(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """What the loss compares the outputs with: `y`, or for an autoencoder the inputs themselves, flattened
        as the output is."""
        if self.task.is_autoencoder:
            return np.ascontiguousarray(np.reshape(x, (len(x), -1)), dtype=np.float32)
        return y

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities (n, classes) or values (n, 1), float32."""
        scores = self._scores(x) if len(x) else self._scores(self._probe(x))[:0]
        if self.task.is_classification and not self.outputs_probabilities:
            return softmax(scores)
        return scores

    def features(self, x: np.ndarray, layer: str) -> np.ndarray:
        """Activations of `layer` flattened to (n, k); ParameterError listing the layers for an unknown name."""
        self.check_layer(layer)
        return self._activations(x, layer) if len(x) else self._activations(self._probe(x), layer)[:0]

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
        """Copies of every weight and statistic by name."""
        return self._read_state()

    def set_state(self, state: dict[str, np.ndarray], source: str = "set_state()") -> None:
        """Load `state`; ModelFileError naming `source` when names or shapes do not fit this net's."""
        self.check_state(state, source)
        self._write_state(state)

    def training_state(self) -> dict[str, np.ndarray]:
        """What a checkpoint restart needs beside the weights: 'samples' (the rows seen) and the optimiser's
        arrays, in the framework's own layout (so it moves between nets of one backend, not across backends)."""
        arrays = {} if self.optimiser is None else self.optimiser.arrays()
        scale = self._loss_scale_state()
        return {"samples": np.asarray(self.samples, dtype=np.int64), **arrays,
                **({} if scale is None else {LOSS_SCALE: scale})}

    def set_training_state(self, state: dict[str, np.ndarray], source: str = "set_training_state()") -> None:
        """Continue from `state` (as training_state() gives it); ModelFileError naming `source` when it does
        not fit this net's optimiser."""
        state = dict(state)
        scale = state.pop(LOSS_SCALE, None)  # a float16 run's; a run in another precision starts without it
        shapes = {name: np.shape(value) for name, value in self.training_state().items() if name != LOSS_SCALE}
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
