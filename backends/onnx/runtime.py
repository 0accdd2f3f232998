"""onnxruntime's execution providers for deepwater's device names. Importing this module imports neither onnx
nor onnxruntime; calling its functions does."""
from __future__ import annotations

import importlib.util

from deepwater.errors import DeviceError

CUDA = "CUDAExecutionProvider"


def cuda_device_count() -> int:
    """GPUs for onnxruntime's CUDA provider: onnxruntime's own device list, else torch's count, else 1."""
    import onnxruntime as ort

    listed = getattr(ort, "get_ep_devices", list)()  # onnxruntime >= 1.22
    count = sum(1 for device in listed if device.ep_name == CUDA)
    if not count and importlib.util.find_spec("torch") is not None:
        import torch

        count = torch.cuda.device_count()
    return count or 1


def execution_providers(device: str) -> list:
    """onnxruntime's providers for 'cpu' or 'cuda:<i>'."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    kind, _, index = device.partition(":")
    if kind != "cuda" or not index.isdigit():
        raise DeviceError(f"device {device!r} is neither 'cpu' nor 'cuda:<i>'; onnxruntime cannot run on it.")
    import onnxruntime as ort

    if CUDA not in ort.get_available_providers():
        raise DeviceError(f"device {device!r}: this onnxruntime build has no {CUDA}; install onnxruntime-gpu, "
                          "or pass gpu=False.")
    return [(CUDA, {"device_id": int(index)}), "CPUExecutionProvider"]
