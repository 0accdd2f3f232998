"""What the core tells a backend about the task and the optimiser (plain data, no framework)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

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
    from deepwater.errors import ParameterError

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
