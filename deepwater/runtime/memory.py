"""Memory: what this machine has (its container's limit, when lower) and has free now, and sizes that cannot fit:
a built-in network's memory, estimated from its Graph's shapes before any framework allocates it, is refused with
a ParameterError naming the parameter to change."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepwater import networks
from deepwater.errors import ParameterError
from deepwater.networks import FLOAT32_BYTES, Graph
from deepwater.specs import OptimizerSpec

# scoring on the CPU: the largest layer output of one forward pass is kept within this many bytes, so that a
# convolutional network's feature maps stay in the caches (MobileNetV2, 2 cores: on 64 x 64 images 2.3 ms a row
# in batches of 256, 1.0-1.4 in 42; on 224 x 224 images 25-27 ms in batches of 16, 12.5-14 in 3)
CPU_SCORING_BYTES = 16 * 2**20
_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def memory_bytes(devices: Sequence[str]) -> int | None:
    """The memory a net on `devices` can use: this machine's physical memory (or its container's limit, when
    lower) for CPU devices; None for GPUs (only their framework knows) or where it cannot be read."""
    if any(not d.startswith("cpu") for d in devices):
        return None
    try:
        physical = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not a POSIX system that reports it
        return None
    return min([physical, *_cgroup_limits()]) if physical > 0 else None


def _cgroup_limits() -> list[int]:
    """The memory limits of the container this process runs in, in bytes (none when unlimited)."""
    limits = []
    for path in _CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) > 0:
            limits.append(int(text))
    return limits


def available_memory() -> int | None:
    """Bytes of memory free now (MemAvailable in /proc/meminfo, within the container's limit), else the machine's
    memory; None where neither can be read."""
    machine = memory_bytes(["cpu"])
    try:
        with open("/proc/meminfo") as meminfo:
            free = next((int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:")), None)
    except (OSError, ValueError, IndexError):
        free = None
    if free is None or machine is None:
        return free if machine is None else machine
    return min(free, machine)



HALF_PRECISIONS = ("bfloat16", "float16")  # activations in 2 bytes; weights and optimiser state stay float32


def optimizer_slots(optimizer: OptimizerSpec) -> int:
    """Arrays the optimiser keeps per parameter: ADADELTA's or Adam's two, SGD's momentum buffer or none."""
    if optimizer.method != "sgd":
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


def cpu_scoring_rows(graph: Graph) -> int:
    """Rows per forward pass when `graph` scores on the CPU: as many as keep its largest layer output within
    CPU_SCORING_BYTES, at least one (an MLP's batches stay whole; a convolutional network's are cut)."""
    return max(1, CPU_SCORING_BYTES // (FLOAT32_BYTES * graph.largest_output()))
