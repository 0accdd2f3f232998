"""User-defined graph files (network='user'): which format a file is, which backend reads it, shared checks.

The formats are the backends' own: each backend (and the ONNX scorer) declares the GraphFormats it reads
in its `graph_formats`, and the registry collects them, so this module lists none itself. A format is
known by the file: its suffix, or the marker file inside a directory (a SavedModel's saved_model.pb).
Backends read their own formats through load_user_network(graph, ...); a format whose backend is
ANY_BACKEND (ONNX) is scored by its loader whichever backend was asked for.
"""
from __future__ import annotations

import os

from deepwater.backends.base import UserGraphLoader
from deepwater.errors import MissingDependencyError, ModelFileError
from deepwater.runtime import registry
from deepwater.specs import GraphFormat, TaskSpec, UserGraph

ANY_BACKEND = "any"  # a format that every backend scores through a common runtime (ONNX)
SYNSET = "synset.txt"


def describe_formats() -> str:
    """One line per format with the backend that reads it, for error messages and docs."""
    return "; ".join(f"{f.description} -> backend {f.backend!r}" for f in registry.graph_formats())


def detect_format(path: str) -> GraphFormat:
    """The format of the graph file (or directory) at `path`; a clear error when it has none."""
    name = "network_definition_file"
    formats = registry.graph_formats()
    if os.path.isdir(path):
        for found in formats:
            if found.directory_marker and os.path.isfile(os.path.join(path, found.directory_marker)):
                return found
        kinds = "; ".join(f"{f.description} (holding {f.directory_marker})" for f in formats if f.directory_marker)
        raise ModelFileError(f"{name}={path!r} is a directory that is no graph format's: pass a graph file, or a "
                             f"directory of one of: {kinds or 'none installed'}.")
    if not os.path.isfile(path):
        raise ModelFileError(f"{name}={path!r}: no such file or directory; pass the path of your graph file.")
    suffix = os.path.splitext(path)[1].lower()
    found = next((f for f in formats if suffix in f.suffixes), None)
    if found is None:
        raise ModelFileError(f"{name}={path!r}: the suffix {suffix or '(none)'!r} is not a known graph format. "
                             f"Known formats: {describe_formats()}.")
    if found.check is not None:
        found.check(path)
    return found


def check_outputs(graph: UserGraph, outputs: int, task: TaskSpec, replaceable: bool = True) -> None:
    """Refuse a graph whose outputs are not the task's (unless its output layer is to be replaced).

    `replaceable`: whether the format can take replace_output_layer=True, so that the advice fits.
    """
    if outputs == task.n_outputs or graph.replace_output_layer or graph.outputs_stand:
        return
    needs = "one per class" if task.is_classification else "one value"
    replace = (f"Pass replace_output_layer=True to replace the graph's last layer with a new one of {task.n_outputs} "
               "outputs (fine-tuning on your classes), or use" if replaceable else "Use")
    raise ModelFileError(f"network_definition_file={graph.definition_file!r} has {outputs} outputs but the response "
                         f"needs {task.n_outputs} ({needs}). {replace} a graph built for them.")


def output_labels(graph: UserGraph, outputs: int) -> list[str | int]:
    """Names of a graph's `outputs` classes: the lines of a `synset.txt` beside the graph file when it has one
    a class (Deep Water's model zoo shipped them, e.g. 'n01440764 tench, Tinca tinca'), else 0 .. outputs-1."""
    synset = os.path.join(os.path.dirname(os.path.abspath(graph.definition_file)), SYNSET)
    if os.path.isfile(synset):
        with open(synset, encoding="utf-8", errors="replace") as stream:
            lines = [line.strip() for line in stream if line.strip()]
        if len(lines) == outputs:
            return lines
    return list(range(outputs))


def no_replacement(graph: UserGraph, why: str) -> ModelFileError:
    """The error for replace_output_layer=True on a graph whose last layer cannot be replaced."""
    return ModelFileError(f"replace_output_layer=True cannot replace the output layer of "
                          f"{graph.definition_file!r}: {why}. Set replace_output_layer=False (the graph's "
                          "outputs must then match the response), or pass the graph in an editable format.")


def training_refused(definition_file: str) -> ModelFileError:
    """The error for training (epochs > 0) a graph that can only be scored (ONNX), naming how to train instead."""
    trainable = "; ".join(f"{f.description} on backend={f.backend!r}" for f in registry.graph_formats()
                          if f.backend != ANY_BACKEND)
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


def graph_loader(graph: UserGraph, backend: str) -> UserGraphLoader:
    """The loader whose load_user_network() reads `graph`: the backend asked for (or the format's own for
    'auto'), or the format's own loader for formats every backend scores (ONNX through onnxruntime)."""
    name = graph_backend(graph, backend)
    if graph.format.backend != ANY_BACKEND:
        return registry.get_backend(name)
    loader = registry.format_loader(graph.format)
    if not loader.available():
        raise MissingDependencyError(f"{loader.name} (to score {graph.definition_file!r})", loader.extra)
    return loader
