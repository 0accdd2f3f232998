"""The TensorFlow backend. Importing this module does not import tensorflow; building a net does."""
from __future__ import annotations

import importlib.util

from deepwater.networks import Graph
from deepwater.runtime.user_graphs import GraphFormat, UserGraph
from deepwater.specs import OptimizerSpec, TaskSpec

KERAS = GraphFormat("keras", "tensorflow", "Keras model (.keras)", suffixes=(".keras",))
SAVED_MODEL = GraphFormat("saved-model", "tensorflow", "TensorFlow SavedModel directory (saved_model.pb)",
                          directory_marker="saved_model.pb")
TF1_META = GraphFormat("tf1-meta", "tensorflow", "TensorFlow 1 MetaGraph (.meta) with Deep Water's 'meta' collection",
                       suffixes=(".meta",))


class TensorflowBackend:
    """Compiles network graphs into Keras 3 models trained by a tf.function step (see net.py)."""

    name = "tensorflow"
    extra = "tensorflow"
    graph_formats = (KERAS, SAVED_MODEL, TF1_META)

    def available(self) -> bool:
        return importlib.util.find_spec("tensorflow") is not None and importlib.util.find_spec("keras") is not None

    def devices(self) -> list[str]:
        import tensorflow as tf

        return ["cpu"] + [f"cuda:{i}" for i in range(len(tf.config.list_physical_devices("GPU")))]

    def gpu_hint(self) -> str:
        """Why no GPU may be visible: a build without CUDA (tensorflow-cpu), or no CUDA device."""
        import tensorflow as tf

        if not tf.test.is_built_with_cuda():
            return "this TensorFlow build has no CUDA support (tensorflow-cpu); install tensorflow for GPUs"
        return "TensorFlow sees no GPU"

    def build(self, graph: Graph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int):
        from .net import TensorflowNet

        return TensorflowNet(graph, task, optimizer, device, seed)

    def load_user_network(self, graph: UserGraph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int):
        """A Net from a Keras .keras file, a SavedModel directory or a TF1 .meta graph (see user*.py)."""
        if graph.format == KERAS:
            from .user_keras import load_keras

            return load_keras(graph, task, optimizer, device, seed)
        if graph.format == SAVED_MODEL:
            from .user_saved import load_saved_model

            return load_saved_model(graph, task, optimizer, device, seed)
        from .user_meta import MetaGraphNet

        return MetaGraphNet(graph, task, optimizer, device, seed)

    def prepare_devices(self, devices: list[str]) -> None:
        """CPU replicas become logical CPU devices, before TensorFlow starts (see parallel.py)."""
        if devices[0].startswith("cpu"):
            from .parallel import split_cpu

            split_cpu(len(devices))

    def replicate(self, net, devices: list[str]):
        """A MirroredStrategy over `devices` stepping the TensorflowNet `net` (see parallel.py)."""
        from .parallel import MirroredGroup

        return MirroredGroup(net, devices)

    def replicate_on_ray(self, net, workers: int, gpu: bool):
        """MultiWorkerMirroredStrategy replicas of the TensorflowNet `net` in Ray Train workers (ray_train.py)."""
        from .ray_train import ray_group

        return ray_group(net, workers, gpu)
