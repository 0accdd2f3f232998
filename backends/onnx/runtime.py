"""onnxruntime's GPUs for the ONNX graph loader. Importing this module imports neither onnx nor onnxruntime; calling
its function does. Sessions and providers are deepwater.runtime.onnx_sessions's, which deepwater.inference shares."""
from __future__ import annotations

import importlib.util

from deepwater.runtime.onnx_sessions import CUDA


def cuda_device_count() -> int:
    """GPUs for onnxruntime's CUDA provider: onnxruntime's own device list, else torch's count, else 1."""
    import onnxruntime as ort

    listed = getattr(ort, "get_ep_devices", list)()  # onnxruntime >= 1.22
    count = sum(1 for device in listed if device.ep_name == CUDA)
    if not count and importlib.util.find_spec("torch") is not None:
        import torch

        count = torch.cuda.device_count()
    return count or 1
