"""Sizes that cannot fit: a built-in network's memory, estimated from its Graph's shapes before any framework
allocates it, against the machine's; refused with a ParameterError naming the parameter to change."""
from __future__ import annotations

from typing import Any

from deepwater import networks
from deepwater.errors import ParameterError
from deepwater.networks import FLOAT32_BYTES, Graph
from deepwater.runtime.devices import memory_bytes
from deepwater.specs import OptimizerSpec

HALF_PRECISIONS = ("bfloat16", "float16")  # activations in 2 bytes; weights and optimiser state stay float32


def optimizer_slots(optimizer: OptimizerSpec) -> int:
    """Arrays the optimiser keeps per parameter: ADADELTA's two accumulators, SGD's momentum buffer or none."""
    if optimizer.adaptive_rate:
        return 2
    return 1 if optimizer.momentum_start or optimizer.momentum_stable else 0


def check_memory(graph: Graph, network: str, input_shape: tuple[int, ...], params: dict[str, Any],
                 optimizer: OptimizerSpec, devices: list[str], rows: int | None = None) -> None:
    """Raise ParameterError when training `graph` on CPU `devices` (one copy of the weights each) needs more than
    the machine's memory, with mini-batches of min(mini_batch_size, `rows`) rows (one row when `rows` is None:
    a frame smaller than mini_batch_size trains in smaller batches); GPUs are not checked."""
    available = memory_bytes(devices)
    if available is None:
        return
    estimate = graph.memory_estimate()
    weights = estimate.weight_bytes(optimizer_slots(optimizer)) * len(devices)
    value_bytes = 2 if params.get("precision") in HALF_PRECISIONS else FLOAT32_BYTES
    one_row = estimate.batch_bytes(1, value_bytes)
    rows = 1 if rows is None else max(1, min(params["mini_batch_size"], rows))
    if weights + rows * one_row <= available:
        return
    spec = networks.get(network)
    if "hidden" in spec.options:
        subject, remedy = f"hidden={list(params['hidden'])}", "smaller hidden layers"
        remedy += " or a smaller image_shape" if len(input_shape) == 3 else f" (for {input_shape[0]} input values)"
    else:
        subject, remedy = f"image_shape={list(input_shape[1:])}", "a smaller image_shape"
    machine = f"this machine has {_gb(available)} of memory"
    unit = "image" if len(input_shape) == 3 else "row"
    name = f"network={spec.name!r}"
    if weights > available:
        raise ParameterError(f"{subject} needs {_gb(weights)} for the weights of {name}, their gradients and "
                             f"optimizer state (float32); {machine}: use {remedy}.")
    if weights + one_row > available:
        raise ParameterError(f"{subject} needs {_gb(weights + one_row)} to train {name} on even one {unit}: "
                             f"{_gb(weights)} for the weights and optimizer state and {_gb(one_row)} for one {unit}'s "
                             f"activations and their gradients; {machine}: use {remedy}.")
    fitting = (available - weights) // one_row
    raise ParameterError(f"mini_batch_size={params['mini_batch_size']} needs {_gb(weights + rows * one_row)} to "
                         f"train {name} with {subject}: {_gb(rows * one_row)} for the activations of {rows} {unit}s "
                         f"and their gradients, {_gb(weights)} for the weights and optimizer state; {machine}: use "
                         f"mini_batch_size={fitting} or less, or {remedy}.")


def _gb(size: int) -> str:
    return f"{size / 1e9:.1f} GB"
