"""The PyTorch backend. Importing this module does not import torch; building a net does."""
from __future__ import annotations

import importlib.util
import zipfile

from deepwater.errors import ModelFileError
from deepwater.networks import Graph
from deepwater.runtime.user_graphs import GraphFormat, UserGraph
from deepwater.specs import OptimizerSpec, TaskSpec


def check_torchscript(path: str) -> None:
    """Refuse a file that is not a zip archive with TorchScript code in it (a torch.save state dict has none)."""
    name = "network_definition_file"
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.namelist()
    except (zipfile.BadZipFile, OSError) as error:
        raise ModelFileError(f"{name}={path!r} is not a readable TorchScript archive (truncated, or not a zip "
                             f"file: {error}). Save the graph again with torch.jit.save.") from error
    if not any("/code/" in f"/{entry}" for entry in entries):
        raise ModelFileError(f"{name}={path!r} is not a TorchScript archive (no compiled code inside; a state "
                             "dict from torch.save?). Pass the graph saved by torch.jit.save as "
                             "network_definition_file; a state dict goes in network_parameters_file.")


TORCHSCRIPT = GraphFormat("torchscript", "torch", "TorchScript archive (.pt, .pth, .ts, .jit from torch.jit.save)",
                          suffixes=(".pt", ".pth", ".ts", ".jit"), check=check_torchscript)
TORCH_EXPORT = GraphFormat("torch-export", "torch", "torch.export program (.pt2 from torch.export.save)",
                           suffixes=(".pt2",))


class TorchBackend:
    """Compiles network graphs into torch modules (see net.py) and loads user graph files (user.py)."""

    name = "torch"
    extra = "torch"
    graph_formats = (TORCHSCRIPT, TORCH_EXPORT)

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
        from .net import TorchNet

        return TorchNet(graph, task, optimizer, device, seed)

    def load_user_network(self, graph: UserGraph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int):
        """A Net from a TorchScript archive or a torch.export program (see user.py)."""
        from .user import TorchUserNet

        if graph.format == TORCHSCRIPT:
            from .user_script import ScriptProgram as Program
        else:
            from .user_export import ExportProgram as Program
        return TorchUserNet(Program(graph, device), graph, task, optimizer, device, seed)

    def prepare_devices(self, devices: list[str]) -> None:
        """DeviceError when torch.distributed cannot join `devices` (see parallel.py)."""
        from .parallel import check_devices

        check_devices(devices)

    def replicate(self, net, devices: list[str]):
        """DistributedDataParallel replicas of the TorchNet `net` in one spawned process per device."""
        from .parallel import SpawnedGroup

        return SpawnedGroup(net, devices)

    def replicate_on_ray(self, net, workers: int, gpu: bool):
        """DistributedDataParallel replicas of the TorchNet `net` in Ray Train workers (see ray_train.py)."""
        from .ray_train import ray_group

        return ray_group(net, workers, gpu)

    def distance_engine(self, device: str):
        """deepwater.distance()'s engine on the GPU `device` (see distances.py); DeviceError when torch lacks it."""
        from .distances import TorchDistanceEngine, check_gpu

        return TorchDistanceEngine(check_gpu(device))
