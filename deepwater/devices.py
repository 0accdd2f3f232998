"""GPU or CPU per run: Deep Water's gpu and device_id parameters."""
from __future__ import annotations

import warnings
from typing import Sequence

from .errors import DeviceError


def resolve_device(backend, gpu: bool, device_id: Sequence[int]) -> str:
    """'cuda:<device_id[0]>' when gpu=True and that GPU exists; the CPU (with a warning) when there is no GPU."""
    if not gpu:
        return "cpu"
    gpus = [d for d in backend.devices() if d != "cpu"]
    if not gpus:
        warnings.warn(f"gpu=True but backend {backend.name!r} sees no GPU ({backend.gpu_hint()}); training on the "
                      "CPU. Pass gpu=False to silence this warning.", RuntimeWarning, stacklevel=3)
        return "cpu"
    wanted = f"cuda:{device_id[0]}"
    if wanted not in gpus:
        raise DeviceError(f"device_id={list(device_id)} asks for GPU {device_id[0]}, but backend {backend.name!r} "
                          f"sees {len(gpus)} GPU(s): {gpus}. Use a device_id from 0 to {len(gpus) - 1}, or gpu=False.")
    return wanted
