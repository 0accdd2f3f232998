"""GoogLeNet, Inception v1 (Szegedy et al. 2014), without the auxiliary heads and without LRN.

Layer names (every conv is followed by "<conv>_relu"):

    stem: conv1 (64, 7x7/2, pad 3), pool1 (max 3x3/2, pad 1), conv2_reduce (64, 1x1), conv2 (192, 3x3),
          pool2 (max 3x3/2, pad 1)
    inception3a, inception3b, pool3, inception4a..inception4e, pool4, inception5a, inception5b
    head: global_pool, dropout (0.4), output

An inception module "inception{m}" has the branches {m}_1x1; {m}_3x3_reduce -> {m}_3x3;
{m}_5x5_reduce -> {m}_5x5; {m}_pool (max 3x3/1, pad 1) -> {m}_pool_proj, joined by "{m}_concat".
Images under 64 pixels a side get a small stem: conv1 is 3x3 with stride 1 and pool1 is
left out. The padded pools let any image size from 1x1 through.
"""
from __future__ import annotations

from .blocks import conv_relu, inception_stem
from .graph import GraphBuilder

# module -> (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool projection), Table 1 of the paper
MODULES: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
POOL_AFTER = {"3b": "pool3", "4e": "pool4"}


def inception(b: GraphBuilder, name: str, x: str, filters: tuple[int, int, int, int, int, int]) -> str:
    """One Inception v1 module: four branches joined along channels."""
    n1, n3r, n3, n5r, n5, proj = filters
    branch1 = conv_relu(b, f"{name}_1x1", x, n1, kernel=1)
    branch3 = conv_relu(b, f"{name}_3x3", conv_relu(b, f"{name}_3x3_reduce", x, n3r, kernel=1), n3, kernel=3, pad=1)
    branch5 = conv_relu(b, f"{name}_5x5", conv_relu(b, f"{name}_5x5_reduce", x, n5r, kernel=1), n5, kernel=5, pad=2)
    branch_pool = conv_relu(b, f"{name}_pool_proj", b.pool(f"{name}_pool", x, "max", 3, 1, 1), proj, kernel=1)
    return b.concat(f"{name}_concat", [branch1, branch3, branch5, branch_pool])


def googlenet(b: GraphBuilder, x: str, n_outputs: int) -> str:
    """GoogLeNet; see the module docstring for layer names."""
    x = inception_stem(b, x, conv_relu)
    for module, filters in MODULES.items():
        x = inception(b, f"inception{module}", x, filters)
        if module in POOL_AFTER:
            x = b.pool(POOL_AFTER[module], x, "max", 3, 2, 1)
    x = b.dropout("dropout", b.global_pool("global_pool", x, "avg"), 0.4)
    return b.dense("output", x, n_outputs)
