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

EfficientNet-Lite0 in the layout of lukemelas' EfficientNet-PyTorch (efficientnet_lite_pytorch) onto
networks/efficientnet_lite.py (i = 1..15; _blocks.0 has no expansion):

    _conv_stem / _bn0                       -> conv1 / conv1_bn
    _blocks.{i}._expand_conv / ._bn0        -> block{i+1}_expand / block{i+1}_expand_bn
    _blocks.{i}._depthwise_conv / ._bn1     -> block{i+1}_dw / block{i+1}_dw_bn
    _blocks.{i}._project_conv / ._bn2       -> block{i+1}_project / block{i+1}_project_bn
    _conv_head / _bn1                       -> conv_last / conv_last_bn
    _fc                                     -> output

torchvision's ResNet-18 and -50 onto networks/resnet.py (L = 1..4 is stage L + 1, k from 0 is block k + 1;
c = 1, 2 and, in ResNet-50's bottlenecks, 3):

    conv1 / bn1                             -> conv1 / conv1_bn
    layer{L}.{k}.conv{c} / .bn{c}           -> stage{L+1}_block{k+1}_conv{c} / stage{L+1}_block{k+1}_conv{c}_bn
    layer{L}.{k}.downsample.0 / .1          -> stage{L+1}_block{k+1}_shortcut / stage{L+1}_block{k+1}_shortcut_bn
    fc                                      -> output
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import partial

import numpy as np

from deepwater.errors import ModelFileError
from deepwater.networks.resnet import DEPTHS
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


def efficientnet_lite0_names() -> dict[str, str]:
    """EfficientNet-PyTorch module prefix -> deepwater layer name for EfficientNet-Lite0 (the module docstring)."""
    names = {"_conv_stem": "conv1", "_bn0": "conv1_bn"}
    for i in range(16):
        block = f"block{i + 1}"
        if i:
            names.update({f"_blocks.{i}._expand_conv": f"{block}_expand", f"_blocks.{i}._bn0": f"{block}_expand_bn"})
        names.update({f"_blocks.{i}._depthwise_conv": f"{block}_dw", f"_blocks.{i}._bn1": f"{block}_dw_bn",
                      f"_blocks.{i}._project_conv": f"{block}_project", f"_blocks.{i}._bn2": f"{block}_project_bn"})
    names.update({"_conv_head": "conv_last", "_bn1": "conv_last_bn", "_fc": "output"})
    return names


def torchvision_resnet_names(depth: int) -> dict[str, str]:
    """torchvision module prefix -> deepwater layer name for ResNet-`depth` (the table in the module docstring)."""
    use_bottleneck, blocks = DEPTHS[depth]
    convs = (1, 2, 3) if use_bottleneck else (1, 2)
    names = {"conv1": "conv1", "bn1": "conv1_bn", "fc": "output"}
    for stage, count in enumerate(blocks, start=2):
        for k in range(count):
            ours, theirs = f"stage{stage}_block{k + 1}", f"layer{stage - 1}.{k}"
            for c in convs:
                names.update({f"{theirs}.conv{c}": f"{ours}_conv{c}", f"{theirs}.bn{c}": f"{ours}_conv{c}_bn"})
            if k == 0 and (stage > 2 or use_bottleneck):  # where the block's shape changes
                names.update({f"{theirs}.downsample.0": f"{ours}_shortcut",
                              f"{theirs}.downsample.1": f"{ours}_shortcut_bn"})
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
    "efficientnet_pytorch_lite0": efficientnet_lite0_names,
    "torchvision_resnet18": partial(torchvision_resnet_names, 18),
    "torchvision_resnet50": partial(torchvision_resnet_names, 50),
}


def canonical_state(convert: str, path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the weights file at `path` and rename it with converter `convert` onto deepwater's names."""
    return rename(read_torch_state(path, "delete it and load the model again"), CONVERTERS[convert](), os.fspath(path))
