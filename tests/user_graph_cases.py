"""The contract between tests/test_user_graph_conformance.py and the per-format graph file makers.

Each graph_files_<framework>.py module defines CASES: GraphCase rows that write a small graph file with the
framework's own save functions. The conformance suite runs every case through the same checks.
"""
from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# make(folder, n_outputs) -> (network_definition_file, network_parameters_file or None)
Maker = Callable[[Path, int], tuple[str, "str | None"]]
# reference(definition_file, parameters_file, x) -> class probabilities computed by the framework itself,
# x in deepwater's layout: (n, channels, height, width) for images, (n, features) for rows
Reference = Callable[[str, "str | None", np.ndarray], np.ndarray]


@dataclass(frozen=True)
class GraphCase:
    """One graph format, made small: how to write it, what the framework says it computes, what it supports."""

    id: str
    backend: str            # the backend that loads it ("auto" picks the same from the file)
    requires: str | tuple[str, ...]  # the module(s) that must import for the case to run
    input_shape: tuple[int, ...]
    make: Maker
    reference: Reference
    trainable: bool         # train_batch() works (otherwise it raises a clear error)
    replaceable: bool       # replace_output_layer=True gives a new output layer

    def missing(self) -> list[str]:
        """The required modules that are not installed."""
        names = (self.requires,) if isinstance(self.requires, str) else self.requires
        return [name for name in names if importlib.util.find_spec(name) is None]

    def installed(self) -> GraphCase:
        """This case, or the test skipped when a module it needs is not installed."""
        if self.missing():
            pytest.skip(f"{', '.join(self.missing())} not installed")
        return self


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def all_cases() -> list[GraphCase]:
    """Every maker module's CASES (a module whose framework is missing still lists its cases)."""
    cases: list[GraphCase] = []
    for name in ("graph_files_mxnet", "graph_files_tensorflow", "graph_files_torch", "graph_files_onnx"):
        if importlib.util.find_spec(name) is not None:
            cases.extend(importlib.import_module(name).CASES)
    return cases


def fit_case(case: GraphCase, folder: Path, image_frame: pd.DataFrame):
    """A model of the case's graph with two outputs, written into `folder`, trained for one epoch (only scored,
    epochs=0, when the format does not train), and the frame it was fitted on: `image_frame` (images of two
    classes) for image graphs, 60 random rows of two classes for graphs on rows."""
    import deepwater as dw

    folder.mkdir(parents=True, exist_ok=True)
    definition, parameters = case.make(folder, 2)
    params = {"network": "user", "network_definition_file": definition, "network_parameters_file": parameters,
              "epochs": 1 if case.trainable else 0, "mini_batch_size": 8, "gpu": False, "quiet_mode": True, "seed": 2}
    if len(case.input_shape) == 1:
        values = np.random.default_rng(1).normal(size=(60, case.input_shape[0]))
        frame = pd.DataFrame(values, columns=[f"x{i}" for i in range(values.shape[1])])
        frame["label"] = pd.Categorical(np.where(values[:, 0] > 0, "a", "b"))
        return dw.DeepWaterEstimator(**params).train(y="label", training_frame=frame), frame
    model = dw.DeepWaterEstimator(image_shape=list(case.input_shape[1:]), channels=case.input_shape[0], **params)
    return model.train(x=["uri"], y="label", training_frame=image_frame), image_frame
