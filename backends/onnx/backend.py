"""ONNX graphs for network='user', scored by onnxruntime on every backend (epochs=0).

An .onnx file holds a whole network: its operators and its weights (initializers). deepwater does not
translate it into torch, TensorFlow or MXNet: whichever backend was asked for, onnxruntime scores it and
computes its deep features (see net.py for what such a graph must look like). ONNX graphs are not
trained here; to train a network, load it in its framework's own format.

Importing this module imports neither onnx nor onnxruntime; loading a graph does.
"""
from __future__ import annotations

import importlib.util

from deepwater.errors import ModelFileError
from deepwater.runtime.onnx_sessions import has_cuda
from deepwater.runtime.user_graphs import ANY_BACKEND, GraphFormat, UserGraph, no_replacement
from deepwater.specs import OptimizerSpec, TaskSpec

from .runtime import cuda_device_count

ONNX = GraphFormat("onnx", ANY_BACKEND, "ONNX graph (.onnx), scored through onnxruntime (epochs=0)", suffixes=(".onnx",))


class OnnxRuntime:
    """Loads ONNX graph files (network='user') as Nets that onnxruntime scores; not a backend for built-in networks."""

    name = "onnxruntime"
    extra = "onnx"  # pip install 'deepwater[onnx]'
    graph_formats = (ONNX,)

    def available(self) -> bool:
        """True when both onnx (to read and check graphs) and onnxruntime (to run them) can be imported."""
        return all(importlib.util.find_spec(module) is not None for module in ("onnx", "onnxruntime"))

    def devices(self) -> list[str]:
        """'cpu', plus 'cuda:<i>' per GPU when this onnxruntime build has the CUDA execution provider."""
        if not has_cuda():
            return ["cpu"]
        return ["cpu"] + [f"cuda:{i}" for i in range(cuda_device_count())]

    def gpu_hint(self) -> str:
        """Why no GPU may be visible: an onnxruntime build without the CUDA execution provider."""
        if not has_cuda():
            return "this onnxruntime build has no CUDAExecutionProvider; install onnxruntime-gpu for GPUs"
        return "onnxruntime's CUDAExecutionProvider sees no CUDA device"

    def load_user_network(self, graph: UserGraph, task: TaskSpec, optimizer: OptimizerSpec, device: str,
                          seed: int):
        """The ONNX graph in `graph` as a Net on `device`, checked against graph.input_shape and the task.

        `optimizer` and `seed` are not used: ONNX graphs are scored, never trained (train_batch() refuses).
        """
        if graph.parameters_file is not None:
            raise ModelFileError(f"network_parameters_file={graph.parameters_file!r} cannot be used with the ONNX "
                                 f"graph {graph.definition_file!r}: ONNX graphs hold their weights inside the .onnx "
                                 "file (or in external data files beside it). Leave network_parameters_file None.")
        if graph.replace_output_layer:
            raise no_replacement(graph, "ONNX graphs are only scored here, and fine-tuning a new output layer needs "
                                        "training; load the network in its framework's own format to fine-tune it")
        from .net import OnnxNet

        return OnnxNet(graph, task, device)
