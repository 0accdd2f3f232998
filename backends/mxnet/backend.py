"""The MXNet backend. Importing this module does not import mxnet; building a net does (runtime.py)."""
from __future__ import annotations

import importlib.util

import numpy as np

from deepwater.errors import ModelFileError
from deepwater.networks import Graph
from deepwater.runtime.user_graphs import GraphFormat, UserGraph
from deepwater.specs import OptimizerSpec, TaskSpec

from .runtime import EXTRA, load_mxnet, torch_threads_kept

MXNET_SYMBOL = GraphFormat("mxnet-symbol", "mxnet", "MXNet symbol JSON (.json), weights in a .params file",
                           suffixes=(".json",))


class MXNetBackend:
    """Compiles network graphs into MXNet symbols run by bound executors (see net.py)."""

    name = "mxnet"
    extra = EXTRA
    graph_formats = (MXNET_SYMBOL,)
    mean_image_suffixes = (".nd",)
    # num_workers: why this backend cannot train over Ray workers (deepwater/runtime/parallel.py names it)
    ray_train_limit = ("MXNet 1.9 trains across machines only through its own distributed kvstore ('dist_sync'), "
                       "which needs ps-lite scheduler and server processes that Ray does not start, and Ray Train "
                       "has no MXNet trainer; on one machine use device_id=[0, 1, ...]")

    def available(self) -> bool:
        return importlib.util.find_spec("mxnet") is not None

    def devices(self) -> list[str]:
        mx = load_mxnet()
        try:
            gpus = mx.context.num_gpus()
        except mx.base.MXNetError:  # a CUDA build without a usable driver
            gpus = 0
        return ["cpu"] + [f"cuda:{i}" for i in range(gpus)]

    def gpu_hint(self) -> str:
        """Why no GPU may be visible: the installed MXNet has no CUDA (PyPI's mxnet wheel), or no device."""
        mx = load_mxnet()
        if not mx.runtime.Features().is_enabled("CUDA"):
            return ("this MXNet build has no CUDA support (PyPI's mxnet wheel is CPU-only); "
                    "a CUDA build such as mxnet-cu112 is needed for GPUs")
        return "MXNet sees no GPU"

    def build(self, graph: Graph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int):
        load_mxnet()
        with torch_threads_kept():
            from .net import MXNetNet

            return MXNetNet(graph, task, optimizer, device, seed)

    def load_user_network(self, graph: UserGraph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int):
        """A Net from an MXNet symbol JSON file and optional .params weights (see user.py)."""
        load_mxnet()
        with torch_threads_kept():
            from .user import MXNetUserNet

            return MXNetUserNet(graph, task, optimizer, device, seed)

    def prepare_devices(self, devices: list[str]) -> None:
        """Nothing to set up: MXNet makes a context per device as it is asked (see parallel.py)."""

    def replicate(self, net, devices: list[str]):
        """Replicas of the MXNetNet `net` on the contexts of `devices`, summing gradients in a kvstore."""
        with torch_threads_kept():
            from .parallel import KVStoreGroup

            return KVStoreGroup(net, devices)

    def read_mean_image(self, path: str) -> np.ndarray:
        """The one array of an MXNet NDArray file (mx.nd.save), e.g. {'mean_img': (3, 224, 224)}."""
        mx = load_mxnet()
        try:
            loaded = mx.nd.load(path)
        except mx.base.MXNetError as error:
            raise ModelFileError(f"not a readable MXNet .nd file ({str(error).strip()[:160]}); save it with "
                                 "mx.nd.save(path, {'mean_img': array})") from error
        arrays = list(loaded.values()) if isinstance(loaded, dict) else list(loaded)
        if len(arrays) != 1:
            raise ModelFileError(f"the .nd file holds {len(arrays)} arrays; save exactly one "
                                 "(e.g. {'mean_img': array})")
        return arrays[0].asnumpy()
