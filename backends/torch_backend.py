"""The PyTorch backend. Importing this module does not import torch; building a net does."""
from __future__ import annotations

import importlib.util

from deepwater.errors import ModelFileError
from deepwater.networks import Graph
from deepwater.specs import OptimizerSpec, TaskSpec
from deepwater.user_graphs import TORCH_EXPORT, TORCHSCRIPT, UserGraph, describe_formats


class TorchBackend:
    """Compiles network graphs into torch modules (see torch_net.py) and loads user graph files (torch_user.py)."""

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

    def load_user_network(self, graph: UserGraph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int):
        """A Net from a TorchScript archive or a torch.export program (see torch_user.py)."""
        from .torch_user import TorchUserNet

        if graph.format == TORCHSCRIPT:
            from .torch_user_script import ScriptProgram as Program
        elif graph.format == TORCH_EXPORT:
            from .torch_user_export import ExportProgram as Program
        else:
            raise ModelFileError(f"backend='torch' cannot load network_definition_file={graph.definition_file!r} "
                                 f"({graph.format.description}). Formats and their backends: {describe_formats()}.")
        return TorchUserNet(Program(graph, device), graph, task, optimizer, device, seed)
