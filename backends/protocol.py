"""The one seam between the core and a framework: a Backend builds Nets; a Net runs steps.

The core drives the training loop (epochs, batches, scoring, early stopping); a backend only
compiles a networks.Graph into its framework and runs single steps on numpy batches.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from deepwater.networks import Graph
from deepwater.specs import OptimizerSpec, TaskSpec


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
        """Weights as '<layer>.<param>' -> array, in the canonical (PyTorch) layout."""

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Load weights given in the canonical layout."""


@runtime_checkable
class Backend(Protocol):
    """A framework adapter, found through the `deepwater.backends` entry-point group."""

    name: str
    extra: str  # the pip extra that installs the framework: pip install 'deepwater[<extra>]'

    def available(self) -> bool:
        """True when the framework can be imported."""

    def devices(self) -> list[str]:
        """Devices this framework can use, e.g. ['cpu', 'cuda:0']."""

    def gpu_hint(self) -> str:
        """One line on why devices() lists no GPU (e.g. a CPU-only build), shown in the CPU fallback warning."""

    def build(self, graph: Graph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int) -> Net:
        """Compile `graph` with `task`'s loss and `optimizer` on `device`, initialised from `seed`."""

    # Optional (not part of the runtime check): backends that load user-defined graph files define
    #
    #   def load_user_network(self, graph: deepwater.user_graphs.UserGraph, task: TaskSpec,
    #                         optimizer: OptimizerSpec, device: str, seed: int) -> Net
    #
    # which reads graph.definition_file in one of the framework's own formats (graph.format; see
    # deepwater/user_graphs.py) with graph.parameters_file's weights for network="user", checks that it takes
    # graph.input_shape and has task.n_outputs outputs (user_graphs.check_outputs), replaces its last layer
    # when graph.replace_output_layer asks, and returns a Net whose layers(), get_state() and set_state() use
    # the file's own names. deepwater.user_graphs.graph_loader() looks the method up and refuses
    # network="user" on backends without it.
