"""Reading PyTorch weight files and renaming their tensors onto deepwater's layer names.

deepwater's canonical state is '<layer>.<param>' in PyTorch layouts, so a torchvision state dict
needs only a rename of its module prefixes; the parameter names (weight, bias, running_mean,
running_var) are the same, and torch's num_batches_tracked counters are dropped.

torchvision's MobileNetV2 onto networks/mobilenet_v2.py (i = 2..17 for the expanding blocks):

    features.0.0 / features.0.1             -> conv1 / conv1_bn
    features.1.conv.0.0 / .conv.0.1         -> block1_dw / block1_dw_bn
    features.1.conv.1 / .conv.2             -> block1_project / block1_project_bn
    features.{i}.conv.0.0 / .conv.0.1       -> block{i}_expand / block{i}_expand_bn
    features.{i}.conv.1.0 / .conv.1.1       -> block{i}_dw / block{i}_dw_bn
    features.{i}.conv.2 / .conv.3           -> block{i}_project / block{i}_project_bn
    features.18.0 / features.18.1           -> conv_last / conv_last_bn
    classifier.1                            -> output
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping

import numpy as np

from deepwater.errors import ModelFileError
from deepwater.runtime.weight_files import read_torch_state


def torchvision_mobilenet_v2_names() -> dict[str, str]:
    """torchvision module prefix -> deepwater layer name for MobileNetV2 (the table in the module docstring)."""
    names = {"features.0.0": "conv1", "features.0.1": "conv1_bn",
             "features.1.conv.0.0": "block1_dw", "features.1.conv.0.1": "block1_dw_bn",
             "features.1.conv.1": "block1_project", "features.1.conv.2": "block1_project_bn"}
    for i in range(2, 18):
        names.update({f"features.{i}.conv.0.0": f"block{i}_expand", f"features.{i}.conv.0.1": f"block{i}_expand_bn",
                      f"features.{i}.conv.1.0": f"block{i}_dw", f"features.{i}.conv.1.1": f"block{i}_dw_bn",
                      f"features.{i}.conv.2": f"block{i}_project", f"features.{i}.conv.3": f"block{i}_project_bn"})
    names.update({"features.18.0": "conv_last", "features.18.1": "conv_last_bn", "classifier.1": "output"})
    return names


def rename(state: Mapping[str, np.ndarray], prefixes: Mapping[str, str], source: str) -> dict[str, np.ndarray]:
    """'<prefix>.<param>' -> '<layer>.<param>' through `prefixes`; a key with no prefix is a ModelFileError."""
    renamed: dict[str, np.ndarray] = {}
    unknown = []
    for key, value in state.items():
        prefix, _, param = key.rpartition(".")
        if prefix not in prefixes:
            unknown.append(key)
            continue
        renamed[f"{prefixes[prefix]}.{param}"] = value
    if unknown:
        raise ModelFileError(f"weights file {source!r} holds tensors this network has no place for: {unknown[:5]}"
                             f"{' ...' if len(unknown) > 5 else ''}; it is not the file the zoo expects.")
    return renamed


# manifest `convert` key -> the prefix table for that file format
CONVERTERS: dict[str, Callable[[], dict[str, str]]] = {
    "torchvision_mobilenet_v2": torchvision_mobilenet_v2_names,
}


def canonical_state(convert: str, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the weights file at `path` and rename it with converter `convert` onto deepwater's names."""
    return rename(read_torch_state(path, "delete it and load the model again"), CONVERTERS[convert](), os.fspath(path))
