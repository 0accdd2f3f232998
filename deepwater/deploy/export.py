"""model.export(path, format="onnx"): a deployment bundle that deepwater.inference scores with onnxruntime alone.

A bundle is the folder `path` holding

* `model.onnx`     the network: input 'input' (encoded rows (n, features) or images (n, channels, height,
                   width), float32), a symbolic batch axis, opset 18; its output is class probabilities (or the
                   standardised value of a regression), plus one output per layer given in `layers`, flattened
                   to (n, k) as deepfeatures() gives them. A user's ONNX graph is kept as it is, with its own
                   names and opset (and the layers asked for declared as extra outputs);
* `bundle.json`    everything scoring needs around the network: the predictor columns and the fitted encoders
                   (numeric columns' means and scales for standardisation and imputation, categorical levels,
                   dropped constant columns), or the image column, shape, channels and scale; the response
                   (class labels, or the mean and scale of a regression); the graph's input, output and layer
                   output names; deepwater's and the frameworks' versions;
* `arrays/*.npy`   the mean image and a per-channel scale of image models (numpy's format, no pickle);
* `checksums.json` the BLAKE3 digest of every file, as save_model writes it.

It is written under a temporary name and renamed (storage/saved_files.py write_folder), so it is complete or absent.

How the network gets into ONNX: a built-in network, whichever backend trained it, is rebuilt in torch from
its canonical weights and written by torch.onnx.export (so exporting a built-in network needs torch). A user
graph is exported by its own framework: a torch.export program by torch.onnx.export, a Keras file or
SavedModel by tf2onnx, an ONNX graph as it is; other formats (TorchScript, TF1 MetaGraphs, MXNet symbols)
are refused with an error that says how to convert them.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from deepwater.analysis.deep_features import resolve_layer
from deepwater.backends.base import OnnxExporter
from deepwater.deploy.inference import ARRAYS_DIR, BUNDLE_FORMAT, BUNDLE_VERSION, MODEL_ONNX
from deepwater.errors import ModelFileError, ParameterError
from deepwater.files import path_text
from deepwater.runtime.build import build_net
from deepwater.storage.saved_files import write_folder
from deepwater.storage.saved_models import BUNDLE_JSON, framework_versions, json_values
from deepwater.training.fitted import FittedModel

FORMATS = ("onnx",)
CANONICAL_BACKEND = "torch"  # the backend that rebuilds and exports built-in networks


def export_bundle(model_id: str, params: dict[str, Any], fitted: FittedModel, path: str | os.PathLike,
                  format: str = "onnx", layers: Sequence[str | int] | None = None, force: bool = False) -> str:
    """Write the bundle folder `path` of the trained model `model_id` (its parameters and fitted parts; see the
    module docstring); returns its path.

    `layers` (names or positions from model.layers()) become extra graph outputs, so that the bundle's
    Scorer.deepfeatures() gives them. An existing `path` is replaced only with `force=True`.
    """
    if format not in FORMATS:
        raise ParameterError(f"format={format!r} is not an export format; use format='onnx' (a folder with the "
                             "network as model.onnx, scored by deepwater.inference with onnxruntime).")
    if isinstance(layers, (str, int)):
        raise ParameterError(f"layers={layers!r} must be a list of layer names (or positions), e.g. "
                             f"layers=[{layers!r}].")
    if fitted.task.is_autoencoder:
        raise ParameterError(f"model {model_id!r} is an autoencoder, which deepwater.inference cannot score yet "
                             "(its bundles hold classifiers and regressions); score it with the model's anomaly() "
                             "and predict(), or save it with deepwater.save_model().")
    names = list(dict.fromkeys(resolve_layer(fitted.net, layer) for layer in layers or ()))
    target = Path(path_text(path, "path"))  # write_folder refuses an existing target before the network is rebuilt
    exporter = _exporter(model_id, params, fitted)
    write_folder(target, lambda folder: _write_bundle(model_id, params, fitted, exporter, names, folder), force)
    return str(target)


def _exporter(model_id: str, params: dict[str, Any], fitted: FittedModel) -> OnnxExporter:
    """The net that writes the ONNX graph: a built-in network rebuilt in torch on the CPU from its canonical
    weights, or the user graph's own net when its format can be exported."""
    if fitted.graph is None:
        _, _, net = build_net(fitted.network, None, CANONICAL_BACKEND, fitted.inputs.input_shape, fitted.task,
                              {**params, "gpu": False, "precision": "float32", "compile": False}, fitted.seed)
        net.set_state(fitted.net.get_state(), f"model {model_id!r}")
        return net
    if not isinstance(fitted.net, OnnxExporter):
        raise ModelFileError(
            f"network_definition_file={fitted.graph.definition_file!r} ({fitted.graph.format.description}) cannot be "
            "exported to ONNX by deepwater. Convert the graph with its framework's ONNX exporter (tf2onnx for "
            "TensorFlow graphs, mx.onnx.export_model for MXNet symbols, torch.onnx.export for torch modules), "
            "then load the .onnx file as network='user' with epochs=0 and export that model.")
    return fitted.net


def _write_bundle(model_id: str, p: dict[str, Any], fitted: FittedModel, exporter: OnnxExporter,
                  layers: list[str], folder: Path) -> None:
    """Write model.onnx, the inputs' arrays and bundle.json into `folder`."""
    graph = exporter.export_onnx(str(folder / MODEL_ONNX), layers)
    inputs, arrays = fitted.inputs.to_record()
    files = {name: f"{ARRAYS_DIR}/{name.replace('/', '.')}.npy" for name in arrays}
    for name, file in files.items():
        (folder / ARRAYS_DIR).mkdir(exist_ok=True)
        np.save(folder / file, arrays[name], allow_pickle=False)
    bundle = {
        "format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION, "versions": framework_versions(),
        "model_id": model_id, "backend": fitted.backend, "network": fitted.network,
        "graph_format": None if fitted.graph is None else fitted.graph.format.name,
        "problem_type": fitted.problem_type, "predictors": fitted.predictors, "inputs": inputs, "arrays": files,
        "reader": {"bad_images": p["bad_images"], "image_cache_mb": p["image_cache_mb"]},
        "response": asdict(fitted.response), "task": asdict(fitted.task), "threshold": fitted.threshold(),
        "graph": {"file": MODEL_ONNX, **asdict(graph)},
    }
    (folder / BUNDLE_JSON).write_text(json.dumps(json_values(bundle), indent=1))
