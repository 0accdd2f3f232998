"""The PyTorch backend. Importing this module does not import torch; building a net does."""
from __future__ import annotations

import importlib.util

from deepwater.networks import Graph
from deepwater.specs import OptimizerSpec, TaskSpec


class TorchBackend:
    """Compiles network graphs into torch modules (see torch_net.py)."""

    name = "torch"
    extra = "torch"

    def available(self) -> bool:
        return importlib.util.find_spec("torch") is not None

    def devices(self) -> list[str]:
        import torch

        return ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]

    def gpu_hint(self) -> str:
        """Why no GPU may be visible: a CPU-only torch build, or no CUDA device."""
        import torch

        if torch.version.cuda is None:
            return "this torch build is CPU-only; install a CUDA build of torch for GPUs"
        return "torch sees no CUDA device"

    def build(self, graph: Graph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int):
        from .torch_net import TorchNet

        return TorchNet(graph, task, optimizer, device, seed)
