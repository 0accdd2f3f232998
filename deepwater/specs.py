"""The contract between the core and the backends, in plain data (no framework): the task and the optimiser a
backend builds a net for, the user graph files it reads, the distance engine it may offer, and the check that a
state of named arrays fits a net's weights."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from deepwater.errors import ParameterError

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


def task_from_params(kind: str, n_classes: int, distribution: str, loss: str) -> TaskSpec:
    """Resolve AUTO distribution and Automatic loss; refuse combinations that do not fit the response."""
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
    return TaskSpec(kind, n_classes if kind == CLASSIFICATION else 1, resolved_loss, distribution)


@dataclass(frozen=True)
class OptimizerSpec:
    """H2O's optimiser: ADADELTA, or SGD whose rate anneals and whose momentum ramps with samples seen.

    Backends add l1 * sign(w) + l2 * w to the gradient of every weight (not biases) and clip each
    gradient element to [-clip_gradient, clip_gradient] before the update.
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

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "OptimizerSpec":
        names = [f for f in cls.__dataclass_fields__ if f != "nesterov"]
        return cls(nesterov=params["nesterov_accelerated_gradient"], **{n: params[n] for n in names})

    def rate(self, samples):
        """Learning rate after `samples` training rows (a number, or a framework tensor in a compiled step)."""
        return self.learning_rate / (1.0 + self.learning_rate_annealing * samples)

    def momentum(self, samples, minimum: Callable = min):
        """Momentum after `samples` training rows: a linear ramp from start to stable.

        `minimum` lets a compiled step pass its framework's element-wise minimum (e.g. tf.minimum).
        """
        if self.momentum_ramp <= 0:
            return self.momentum_stable
        progress = minimum(samples / self.momentum_ramp, 1.0)
        return self.momentum_start + (self.momentum_stable - self.momentum_start) * progress


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
