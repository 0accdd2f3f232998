"""Inception with batch normalisation (Ioffe & Szegedy 2015, MXNet's Inception-BN): Deep Water's default.

Layer names. Every conv has no bias and is followed by "<conv>_bn" and "<conv>_relu":

    stem: conv1 (64, 7x7/2, pad 3), pool1 (max 3x3/2, pad 1), conv2_reduce (64, 1x1), conv2 (192, 3x3),
          pool2 (max 3x3/2, pad 1)
    inception3a, inception3b, inception3c (stride 2), inception4a..inception4d, inception4e (stride 2),
    inception5a, inception5b
    head: global_pool, output

A module "inception{m}" has the branches {m}_1x1; {m}_3x3_reduce -> {m}_3x3;
{m}_double_3x3_reduce -> {m}_double_3x3_1 -> {m}_double_3x3_2; {m}_pool (3x3/1, pad 1) -> {m}_pool_proj;
joined by "{m}_concat". The reducing modules 3c and 4e have no 1x1 branch, stride 2 on {m}_3x3 and
{m}_double_3x3_2, and pass {m}_pool (max 3x3/2, pad 1) through unprojected.

Differences from the paper: the pool branches use max pooling everywhere (the paper averages in most
modules, but the graph builder only pads max pools; parameters are the same), and there is no LRN.
Images under 64 pixels a side get a small stem: conv1 is 3x3 with stride 1 and pool1 is left
out. The padding everywhere lets any image size from 1x1 through.
"""
from __future__ import annotations

from .blocks import conv_bn_relu, inception_stem
from .graph import GraphBuilder

# module -> (1x1, 3x3 reduce, 3x3, double 3x3 reduce, double 3x3, pool projection); 1x1 = 0 marks a
# reducing (stride 2) module, which has no 1x1 branch and no pool projection (Figure 5 of the paper)
MODULES: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 64, 64, 64, 96, 32),
    "3b": (64, 64, 96, 64, 96, 64),
    "3c": (0, 128, 160, 64, 96, 0),
    "4a": (224, 64, 96, 96, 128, 128),
    "4b": (192, 96, 128, 96, 128, 128),
    "4c": (160, 128, 160, 128, 160, 128),
    "4d": (96, 128, 192, 160, 192, 128),
    "4e": (0, 128, 192, 192, 256, 0),
    "5a": (352, 192, 320, 160, 224, 128),
    "5b": (352, 192, 320, 192, 224, 128),
}


def inception(b: GraphBuilder, name: str, x: str, filters: tuple[int, int, int, int, int, int]) -> str:
    """One module; a zero 1x1 width makes it a stride-2 reducing module."""
    n1, n3r, n3, nd3r, nd3, proj = filters
    stride = 1 if n1 else 2
    branches = [conv_bn_relu(b, f"{name}_1x1", x, n1, kernel=1)] if n1 else []
    x3 = conv_bn_relu(b, f"{name}_3x3_reduce", x, n3r, kernel=1)
    branches.append(conv_bn_relu(b, f"{name}_3x3", x3, n3, kernel=3, stride=stride, pad=1))
    xd = conv_bn_relu(b, f"{name}_double_3x3_reduce", x, nd3r, kernel=1)
    xd = conv_bn_relu(b, f"{name}_double_3x3_1", xd, nd3, kernel=3, pad=1)
    branches.append(conv_bn_relu(b, f"{name}_double_3x3_2", xd, nd3, kernel=3, stride=stride, pad=1))
    pooled = b.pool(f"{name}_pool", x, "max", 3, stride, 1)
    branches.append(conv_bn_relu(b, f"{name}_pool_proj", pooled, proj, kernel=1) if proj else pooled)
    return b.concat(f"{name}_concat", branches)


def inception_bn(b: GraphBuilder, x: str, n_outputs: int) -> str:
    """Inception-BN; see the module docstring for layer names."""
    x = inception_stem(b, x, conv_bn_relu)
    for module, filters in MODULES.items():
        x = inception(b, f"inception{module}", x, filters)
    x = b.global_pool("global_pool", x, "avg")
    return b.dense("output", x, n_outputs)
