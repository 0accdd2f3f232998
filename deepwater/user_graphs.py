"""User-defined graph files (network='user'): which format a file is, which backend reads it, shared checks.

A format is known by the file itself: an MXNet symbol is a .json file, a Keras model a .keras file, a
TensorFlow SavedModel a directory holding saved_model.pb, a TF1 MetaGraph a .meta file, TorchScript a
.pt/.pth/.ts/.jit zip archive with compiled code inside, a torch.export program a .pt2 file and ONNX a
.onnx file. Backends read their own formats through Backend.load_user_network(graph, ...); ONNX graphs
are scored by onnxruntime whichever backend was asked for.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

from .errors import MissingDependencyError, ModelFileError, ParameterError
from .specs import TaskSpec

ANY_BACKEND = "any"  # a format that every backend scores through a common runtime (ONNX)


@dataclass(frozen=True)
class GraphFormat:
    """One kind of graph file: its name, the backend that reads it and how users recognise it."""

    name: str
    backend: str
    description: str


MXNET_SYMBOL = GraphFormat("mxnet-symbol", "mxnet", "MXNet symbol JSON (.json), weights in a .params file")
KERAS = GraphFormat("keras", "tensorflow", "Keras model (.keras)")
SAVED_MODEL = GraphFormat("saved-model", "tensorflow", "TensorFlow SavedModel directory (saved_model.pb)")
TF1_META = GraphFormat("tf1-meta", "tensorflow", "TensorFlow 1 MetaGraph (.meta) with Deep Water's 'meta' collection")
TORCHSCRIPT = GraphFormat("torchscript", "torch", "TorchScript archive (.pt, .pth, .ts, .jit from torch.jit.save)")
TORCH_EXPORT = GraphFormat("torch-export", "torch", "torch.export program (.pt2 from torch.export.save)")
ONNX = GraphFormat("onnx", ANY_BACKEND, "ONNX graph (.onnx), scored through onnxruntime (epochs=0)")
FORMATS = (MXNET_SYMBOL, KERAS, SAVED_MODEL, TF1_META, TORCHSCRIPT, TORCH_EXPORT, ONNX)

_BY_SUFFIX = {".json": MXNET_SYMBOL, ".keras": KERAS, ".meta": TF1_META, ".pt2": TORCH_EXPORT, ".onnx": ONNX,
              ".pt": TORCHSCRIPT, ".pth": TORCHSCRIPT, ".ts": TORCHSCRIPT, ".jit": TORCHSCRIPT}


@dataclass(frozen=True)
class UserGraph:
    """What network='user' asks a backend to load."""

    definition_file: str
    parameters_file: str | None
    input_shape: tuple[int, ...]  # one row without the batch axis: (channels, height, width) or (features,)
    replace_output_layer: bool
    format: GraphFormat


def formats_for(backend: str) -> list[GraphFormat]:
    """The graph formats `backend` loads (ONNX, scored on every backend, included)."""
    return [f for f in FORMATS if f.backend in (backend, ANY_BACKEND)]


def describe_formats() -> str:
    """One line per format with the backend that reads it, for error messages and docs."""
    return "; ".join(f"{f.description} -> backend {f.backend!r}" for f in FORMATS)


def detect_format(path: str) -> GraphFormat:
    """The format of the graph file (or SavedModel directory) at `path`; a clear error when it has none."""
    name = "network_definition_file"
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return SAVED_MODEL
        raise ModelFileError(f"{name}={path!r} is a directory without saved_model.pb; pass a SavedModel "
                             "directory (tf.saved_model.save) or a graph file.")
    if not os.path.isfile(path):
        raise ModelFileError(f"{name}={path!r}: no such file or directory; pass the path of your graph file.")
    suffix = os.path.splitext(path)[1].lower()
    found = _BY_SUFFIX.get(suffix)
    if found is None:
        raise ModelFileError(f"{name}={path!r}: the suffix {suffix or '(none)'!r} is not a known graph format. "
                             f"Known formats: {describe_formats()}.")
    if found is TORCHSCRIPT:
        _check_torchscript(path)
    return found


def _check_torchscript(path: str) -> None:
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


def check_outputs(graph: UserGraph, outputs: int, task: TaskSpec, replaceable: bool = True) -> None:
    """Refuse a graph whose outputs are not the task's (unless its output layer is to be replaced).

    `replaceable`: whether the format can take replace_output_layer=True, so that the advice fits.
    """
    if outputs == task.n_outputs or graph.replace_output_layer:
        return
    needs = "one per class" if task.is_classification else "one value"
    replace = (f"Pass replace_output_layer=True to replace the graph's last layer with a new one of {task.n_outputs} "
               "outputs (fine-tuning on your classes), or use" if replaceable else "Use")
    raise ModelFileError(f"network_definition_file={graph.definition_file!r} has {outputs} outputs but the response "
                         f"needs {task.n_outputs} ({needs}). {replace} a graph built for them.")


def no_replacement(graph: UserGraph, why: str) -> ModelFileError:
    """The error for replace_output_layer=True on a graph whose last layer cannot be replaced."""
    return ModelFileError(f"replace_output_layer=True cannot replace the output layer of "
                          f"{graph.definition_file!r}: {why}. Set replace_output_layer=False (the graph's "
                          "outputs must then match the response), or pass the graph in an editable format.")


def training_refused(definition_file: str) -> ModelFileError:
    """The error for training (epochs > 0) a graph that can only be scored (ONNX), naming how to train instead."""
    trainable = "; ".join(f"{f.description} on backend={f.backend!r}" for f in FORMATS if f.backend != ANY_BACKEND)
    return ModelFileError(
        f"network_definition_file={definition_file!r} is an ONNX graph: deepwater scores it with onnxruntime but "
        "cannot train it. Pass epochs=0 to score it and take its deep features. To train or fine-tune the network, "
        f"load it in its framework's own format instead: {trainable}.")


def user_graph(definition_file: str, parameters_file: str | None, input_shape: tuple[int, ...],
               replace_output_layer: bool = False) -> UserGraph:
    """A UserGraph for the file at `definition_file`, its format detected (clear errors for bad paths)."""
    definition_file, parameters_file = os.fspath(definition_file), parameters_file and os.fspath(parameters_file)
    checkpoint_prefix = parameters_file is not None and os.path.exists(parameters_file + ".index")  # TF1 Saver
    if parameters_file is not None and not os.path.exists(parameters_file) and not checkpoint_prefix:
        raise ModelFileError(f"network_parameters_file={parameters_file!r}: no such file; pass the weights saved "
                             "with the graph, or leave it None to start from the graph's own weights.")
    return UserGraph(definition_file, parameters_file, tuple(int(d) for d in input_shape), bool(replace_output_layer),
                     detect_format(definition_file))


def graph_backend(graph: UserGraph, backend: str) -> str:
    """The backend that loads `graph`: the format's own for backend='auto'; a clear error on a mismatch."""
    own = graph.format.backend
    if own == ANY_BACKEND or backend == own:
        return backend
    if backend == "auto":
        return own
    raise ModelFileError(f"backend={backend!r} cannot load network_definition_file={graph.definition_file!r} "
                         f"({graph.format.description}); use backend={own!r} or backend='auto'.")


def graph_loader(graph: UserGraph, backend: str):
    """The backend object whose load_user_network() reads `graph` (onnxruntime for ONNX graphs)."""
    from .registry import get_backend

    name = graph_backend(graph, backend)
    if graph.format.backend == ANY_BACKEND:
        from .backends.onnx_runtime import OnnxRuntime

        loader = OnnxRuntime()
        if not loader.available():
            raise MissingDependencyError(f"onnxruntime (to score {graph.definition_file!r})", loader.extra)
        return loader
    chosen = get_backend(name)
    if not hasattr(chosen, "load_user_network"):
        raise ParameterError(f"backend={chosen.name!r} cannot load network_definition_file (network='user'). "
                             f"Formats and their backends: {describe_formats()}.")
    return chosen
