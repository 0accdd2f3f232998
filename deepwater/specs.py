"""The contract between the core and the backends, in plain data (no framework): the task and the optimiser a
backend builds a net for, the user graph files it reads, the distance engine it may offer, and the check that a
state of named arrays fits a net's weights."""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any, Protocol

import numpy as np

from deepwater.errors import ParameterError, close_matches

CLASSIFICATION = "classification"
REGRESSION = "regression"
AUTOENCODER = "autoencoder"  # unsupervised: the network reconstructs its own (flattened) input
RECONSTRUCTION = "reconstruction"  # the autoencoder's loss: each row's mean squared error over its input values

# loss name -> (distribution it belongs to)
_LOSS_OF_DISTRIBUTION = {
    "multinomial": "cross_entropy",
    "bernoulli": "cross_entropy",
    "gaussian": "quadratic",
    "laplace": "absolute",
    "huber": "huber",
}
_LOSS_OF_PARAMETER = {"CrossEntropy": "cross_entropy", "Quadratic": "quadratic", "Absolute": "absolute", "Huber": "huber"}


@dataclass(frozen=True)
class TaskSpec:
    """Classification into n_outputs classes, or regression onto one value, and the loss to train."""

    kind: str
    n_outputs: int
    loss: str  # cross_entropy | quadratic | absolute | huber
    distribution: str
    label_smoothing: float = 0.0  # cross entropy against (1 - s) * one-hot + s / n_outputs (torch's rule)

    @property
    def is_classification(self) -> bool:
        return self.kind == CLASSIFICATION

    @property
    def is_autoencoder(self) -> bool:
        """True when the net learns to reconstruct its input (its targets are its inputs, flattened)."""
        return self.kind == AUTOENCODER


def autoencoder_task(width: int) -> TaskSpec:
    """An autoencoder's task: `width` outputs (the input's values, flattened), trained on the reconstruction MSE."""
    return TaskSpec(AUTOENCODER, width, RECONSTRUCTION, "gaussian")


def task_from_params(kind: str, n_classes: int, distribution: str, loss: str,
                     label_smoothing: float = 0.0) -> TaskSpec:
    """Resolve AUTO distribution and Automatic loss; refuse combinations that do not fit the response (label
    smoothing included: it is for classification only)."""
    if distribution == "AUTO":
        if kind == CLASSIFICATION:
            distribution = "bernoulli" if n_classes == 2 else "multinomial"
        else:
            distribution = "gaussian"
    classification_distributions = ("multinomial", "bernoulli")
    if (kind == CLASSIFICATION) != (distribution in classification_distributions):
        fix = "use a categorical response or distribution='gaussian'/'laplace'/'huber'" if kind == REGRESSION else \
            "use distribution='multinomial' or 'bernoulli', or a numeric response for regression"
        raise ParameterError(f"distribution={distribution!r} does not fit a {kind} response; {fix}.")
    if distribution == "bernoulli" and n_classes != 2:
        raise ParameterError(f"distribution='bernoulli' needs 2 classes, the response has {n_classes}; "
                             "use distribution='multinomial'.")
    resolved_loss = _LOSS_OF_DISTRIBUTION[distribution] if loss == "Automatic" else _LOSS_OF_PARAMETER[loss]
    if (resolved_loss == "cross_entropy") != (kind == CLASSIFICATION):
        raise ParameterError(f"loss={loss!r} does not fit a {kind} response; use loss='Automatic'.")
    task = TaskSpec(kind, n_classes if kind == CLASSIFICATION else 1, resolved_loss, distribution)
    return smoothed(task, label_smoothing)


def smoothed(task: TaskSpec, label_smoothing: float) -> TaskSpec:
    """`task` trained with `label_smoothing`; a ParameterError when it has no classes to smooth."""
    if label_smoothing and not task.is_classification:
        raise ParameterError(f"label_smoothing={label_smoothing!r} smooths class labels, but this model is a "
                             f"{task.kind} one; drop label_smoothing (or pass 0), or train on a categorical "
                             "response.")
    return replace(task, label_smoothing=label_smoothing)


OPTIMIZERS = ("auto", "sgd", "adadelta", "adam", "adamw")
LR_SCHEDULES = ("h2o", "constant", "cosine", "one_cycle", "step")
RUN_LONG_SCHEDULES = ("cosine", "one_cycle")  # they need the run's total samples (finite epochs)
ONE_CYCLE_RISE = 0.25  # fastai's fit_one_cycle: the first quarter rises, from learning_rate / 25 ...
ONE_CYCLE_START_DIV = 25.0
ONE_CYCLE_END_DIV = 1e5  # ... and the rest falls to learning_rate / 1e5, both halves of a cosine


@dataclass(frozen=True)
class OptimizerSpec:
    """The optimiser and its rate schedule: H2O's rules (ADADELTA, or SGD whose rate anneals and whose momentum
    ramps with samples seen) or Adam / AdamW, at the rate rate(samples) gives.

    Backends add l1 * sign(w) + l2 * w to the gradient of every weight (not biases) and clip each
    gradient element to [-clip_gradient, clip_gradient] before the update; AdamW's decoupled weight_decay
    shrinks the same weights (not biases), w *= 1 - rate * weight_decay, as torch.optim.AdamW does.
    """

    adaptive_rate: bool = False
    rho: float = 0.99
    epsilon: float = 1e-8
    learning_rate: float = 5e-3
    learning_rate_annealing: float = 1e-6
    momentum_start: float = 0.9
    momentum_ramp: float = 1e4
    momentum_stable: float = 0.9
    nesterov: bool = True
    l1: float = 0.0
    l2: float = 0.0
    clip_gradient: float | None = 10.0
    optimizer: str = "auto"  # one of OPTIMIZERS; 'auto' is H2O's rule: adaptive_rate picks adadelta or sgd
    beta1: float = 0.9  # Adam's decay of the gradients' mean (torch's default betas)
    beta2: float = 0.999  # and of their squares
    weight_decay: float = 0.0  # AdamW's decoupled decay
    lr_schedule: str = "h2o"  # one of LR_SCHEDULES
    total_samples: float = math.inf  # the run's rows: epochs * training rows (inf: not known, or epochs=inf)
    warmup_samples: float = 0.0  # rows over which the rate rises linearly from 0
    step_samples: float = math.inf  # lr_schedule='step': rows between two steps down
    step_gamma: float = 0.1  # and the factor of each
    freeze: tuple[str, ...] | int = ()  # layer names or '*' patterns, or a count of leading blocks, kept fixed
    unfreeze_samples: float = math.inf  # rows after which the frozen layers train too (inf: never)
    layer_lr_decay: float = 1.0  # each block below the head learns at rate * layer_lr_decay ** depth

    def __post_init__(self) -> None:
        if self.optimizer not in ("auto", "adadelta") and self.adaptive_rate:
            raise ParameterError(f"optimizer={self.optimizer!r} and adaptive_rate=True contradict each other: "
                                 "adaptive_rate=True asks for ADADELTA. Pass optimizer='adadelta' (or 'auto'), or "
                                 "drop adaptive_rate.")
        if self.weight_decay and self.method != "adamw":
            raise ParameterError(f"weight_decay={self.weight_decay!r} is AdamW's decoupled decay, but the optimizer "
                                 f"is {self.method!r}; pass optimizer='adamw', or use l2 (a penalty every "
                                 "optimizer adds to the gradients).")

    @property
    def method(self) -> str:
        """The update rule: 'sgd', 'adadelta', 'adam' or 'adamw' ('auto' follows adaptive_rate, H2O's switch)."""
        if self.optimizer == "auto":
            return "adadelta" if self.adaptive_rate else "sgd"
        return self.optimizer

    @classmethod
    def from_params(cls, params: Mapping[str, Any], rows: int | None = None) -> "OptimizerSpec":
        """The optimiser of the estimator parameters `params`, for a run over `rows` training rows an epoch (None:
        not known, for a net that only scores: the schedules then see no end)."""
        names = [f for f in cls.__dataclass_fields__ if f != "nesterov" and f in params]

        def samples(epochs_name: str, unknown: float) -> float:
            return params[epochs_name] * rows if rows and epochs_name in params else unknown

        frozen = params.get("freeze")
        unfreeze = params.get("unfreeze_after_epochs")
        names = [n for n in names if n != "freeze"]
        return cls(nesterov=params["nesterov_accelerated_gradient"], **{n: params[n] for n in names},
                   freeze=() if frozen is None else frozen if isinstance(frozen, int) else tuple(frozen),
                   unfreeze_samples=math.inf if unfreeze is None else unfreeze * rows if rows else math.inf,
                   total_samples=samples("epochs", math.inf) or math.inf,  # epochs=0 trains nothing: no end
                   warmup_samples=samples("warmup_epochs", 0.0), step_samples=samples("lr_step_epochs", math.inf),
                   step_gamma=params.get("lr_step_gamma", cls.step_gamma))

    def rate(self, samples, ops: Any = np):
        """Learning rate after `samples` training rows: the schedule's (H2O's annealing by default), times the
        warm-up's linear rise min(1, (samples + 1) / (warmup_samples + 1)), never exactly 0 (MXNet keeps SGD's
        momentum buffers scaled by the rate). `samples` is a number, or a framework tensor in a compiled step,
        whose math module `ops` (e.g. tf) gives cos, floor, minimum and maximum."""
        rate = self._scheduled(samples, ops)
        if self.warmup_samples > 0:
            rate = rate * ops.minimum((samples + 1.0) / (self.warmup_samples + 1.0), 1.0)
        return rate

    def _scheduled(self, samples, ops: Any):
        lr, schedule = self.learning_rate, self.lr_schedule
        if schedule == "h2o":
            return lr / (1.0 + self.learning_rate_annealing * samples)
        if schedule == "constant":
            return lr
        if schedule == "step":
            return lr * self.step_gamma ** ops.floor(samples / self.step_samples)
        if schedule == "cosine":
            return _cosine(lr, 0.0, ops.minimum(samples / self.total_samples, 1.0), ops)
        if schedule == "one_cycle":
            rise = ONE_CYCLE_RISE * self.total_samples
            up = _cosine(lr / ONE_CYCLE_START_DIV, lr, ops.minimum(samples / rise, 1.0), ops)
            if math.isinf(self.total_samples):
                return up
            down = ops.minimum(ops.maximum(samples - rise, 0.0) / (self.total_samples - rise), 1.0)
            return _cosine(up, lr / ONE_CYCLE_END_DIV, down, ops)
        raise ParameterError(f"lr_schedule={schedule!r} is not a schedule; use one of {LR_SCHEDULES}.")

    def momentum(self, samples, minimum: Callable = min):
        """Momentum after `samples` training rows: a linear ramp from start to stable.

        `minimum` lets a compiled step pass its framework's element-wise minimum (e.g. tf.minimum).
        """
        if self.momentum_ramp <= 0:
            return self.momentum_stable
        progress = minimum(samples / self.momentum_ramp, 1.0)
        return self.momentum_start + (self.momentum_stable - self.momentum_start) * progress


def _cosine(start, end, progress, ops: Any):
    """Half a cosine from `start` (progress 0) to `end` (progress 1)."""
    return end + (start - end) * 0.5 * (1.0 + ops.cos(math.pi * progress))


# --------------------------------------------------------------------------- freezing and layer-wise rates

@dataclass(frozen=True)
class LayerPlan:
    """Which layers a run keeps fixed, and the rate multiplier of each layer with weights.

    `blocks` are the network's layers with weights in graph order, grouped: a block is a conv or dense layer
    with the batch-norm layers that follow it (freeze=n keeps the first n blocks fixed). A frozen layer's
    weights get no update at all (no penalty, decay or momentum step) and a frozen batch-norm layer normalises
    with its running statistics and leaves them as they are (eval mode) until `unfreeze_samples` rows.
    """

    frozen: frozenset[str] = frozenset()
    scales: Mapping[str, float] = field(default_factory=dict)  # layer -> layer_lr_decay ** depth (head: 1)
    unfreeze_samples: float = math.inf

    def frozen_at(self, samples: float) -> frozenset[str]:
        """The layers kept fixed in a step after `samples` training rows."""
        return self.frozen if samples < self.unfreeze_samples else frozenset()

    def scale(self, layer: str) -> float:
        """The multiplier of the rate of `layer`'s weights (1 for a layer outside the blocks)."""
        return self.scales.get(layer, 1.0)


def plan_layers(blocks: Sequence[Sequence[str]], layers: Sequence[str], spec: OptimizerSpec) -> LayerPlan:
    """`spec`'s freeze and layer_lr_decay over a network whose layers with weights form `blocks` (in graph
    order; `layers` names every layer); a ParameterError names an unknown layer (with close matches), a count
    beyond the blocks, or a freeze that leaves nothing to train."""
    depth = {layer: len(blocks) - 1 - i for i, block in enumerate(blocks) for layer in block}
    scales = {layer: spec.layer_lr_decay ** d for layer, d in depth.items()} if spec.layer_lr_decay != 1 else {}
    frozen = _frozen_layers(spec.freeze, blocks, layers, depth)
    if frozen and frozen >= set(depth):
        raise ParameterError(f"freeze={_shown(spec.freeze)} keeps every layer with weights fixed, so nothing would "
                             f"train; leave at least the output block out (freeze={max(len(blocks) - 1, 0)} keeps "
                             "all the blocks below it).")
    return LayerPlan(frozenset(frozen), scales, spec.unfreeze_samples)


def _frozen_layers(freeze: tuple[str, ...] | int, blocks: Sequence[Sequence[str]], layers: Sequence[str],
                   weighted: Mapping[str, int]) -> set[str]:
    if isinstance(freeze, int):
        if abs(freeze) > len(blocks) or freeze == -len(blocks) != 0:
            raise ParameterError(f"freeze={freeze} counts more blocks than the network's {len(blocks)} (a conv or "
                                 f"dense layer with its batch norms); pass at most {max(len(blocks) - 1, 0)}, or a "
                                 f"negative count of blocks left to train (-1: all but the output block).")
        return {layer for block in blocks[:freeze] for layer in block}
    frozen: set[str] = set()
    for pattern in freeze:
        matched = _matching(pattern, layers)
        if not matched:
            close = close_matches(pattern, layers)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ParameterError(f"freeze={_shown(freeze)}: {pattern!r} is not a layer of this network.{hint} "
                                 f"Name layers from model.layers() (its layers with weights: {_listed(weighted)}), "
                                 "a name prefix such as 'stage2' or a pattern such as 'conv*', or a count of "
                                 "leading blocks.")
        if not any(layer in weighted for layer in matched):
            raise ParameterError(f"freeze={_shown(freeze)}: {pattern!r} names {matched[:4]}, layers without weights, "
                                 f"so nothing would be frozen; name layers with weights ({_listed(weighted)}).")
        frozen.update(layer for layer in matched if layer in weighted)
    return frozen


def _matching(pattern: str, layers: Sequence[str]) -> list[str]:
    """The layers `pattern` names: with a '*', those it matches (fnmatch); else the layer of that name, or the
    layers it is a prefix of up to a '.' or '_' ('stage2' names 'stage2_block1_conv1', not 'stage20')."""
    if "*" in pattern:
        return [layer for layer in layers if fnmatchcase(layer, pattern)]
    if pattern in layers:
        return [pattern]
    return [layer for layer in layers if layer.startswith((f"{pattern}.", f"{pattern}_"))]


def _listed(names: Sequence[str] | Mapping[str, Any]) -> str:
    names = list(names)
    return f"{names[:8]}{'...' if len(names) > 8 else ''}"


def _shown(freeze: tuple[str, ...] | int) -> str:
    return repr(freeze if isinstance(freeze, int) else list(freeze))


# --------------------------------------------------------------------------- user graph files

@dataclass(frozen=True)
class GraphFormat:
    """One kind of graph file, declared by the backend that reads it (its `graph_formats`).

    A file is of this format when its suffix is one of `suffixes`, or, for a directory, when it holds
    `directory_marker`; `check(path)`, when given, then refuses a file of that suffix that is not of the
    format after all (with a ModelFileError that says what it is instead).
    """

    name: str
    backend: str  # the backend that loads it, or ANY_BACKEND for a format every backend scores
    description: str
    suffixes: tuple[str, ...] = ()
    directory_marker: str | None = None
    check: Callable[[str], None] | None = None


@dataclass(frozen=True)
class UserGraph:
    """What network='user' asks a backend to load."""

    definition_file: str
    parameters_file: str | None
    input_shape: tuple[int, ...]  # one row without the batch axis: (channels, height, width) or (features,)
    replace_output_layer: bool
    format: GraphFormat
    outputs_stand: bool = False  # epochs=0 scoring: the graph keeps its outputs whatever the response's classes


# --------------------------------------------------------------------------- distances

SIMILARITIES = ("cosine", "cosine_sq")  # the measures where larger is closer


@dataclass
class Prepared:
    """Rows ready for one measure's products: shifted (l2) or unit (cosine) rows, and per-row numbers."""

    rows: Any  # numpy array or torch tensor
    norms: Any = None  # l2: squared norms (float64); cosine: True where the row is all zeros
    values: np.ndarray | None = None  # l2: the rows as given, for re-computing near-duplicate pairs


class DistanceEngine(Protocol):
    """Computes blocks of a measure: the numpy engine here, or a backend's on a GPU (registry.distance_engine)."""

    name: str

    def prepare(self, values: np.ndarray, measure: str, dtype: type, shift: np.ndarray | None) -> Prepared:
        """Rows of one operand made ready for `measure`'s products, in `dtype`."""

    def block(self, x: Prepared, y: Prepared, measure: str, out: np.ndarray) -> None:
        """Write the measure between every row of x and every row of y into `out` (of the prepared dtype)."""


# --------------------------------------------------------------------------- weights

SHOWN = 10  # names listed per kind of problem


def misfit(shapes: Mapping[str, Sequence[int]], state: Mapping[str, Any], complete: bool = True) -> str:
    """What keeps `state` from fitting weights of `shapes`, '' when it fits: unknown names, missing names
    (when `complete`) and wrong shapes, at most SHOWN of each."""
    expected = {name: tuple(int(d) for d in shape) for name, shape in shapes.items()}
    unknown = sorted(set(state) - set(expected))
    missing = sorted(set(expected) - set(state)) if complete else []
    wrong = [f"{name}: {tuple(np.shape(value))} but the graph has {expected[name]}" for name, value in state.items()
             if name in expected and tuple(np.shape(value)) != expected[name]]
    problems = ([f"unknown names {unknown[:SHOWN]}"] if unknown else []) + \
               ([f"missing names {missing[:SHOWN]}"] if missing else []) + \
               ([f"wrong shapes ({', '.join(wrong[:SHOWN])})"] if wrong else [])
    return "; ".join(problems)
