"""ResNet (He et al. 2015): ResNet-18 and -34 with basic blocks, ResNet-50 (default) and -101 with bottlenecks.

Layer names. Every conv has no bias and is followed by "<conv>_bn" (and "<conv>_relu" where it has one):

    stem: conv1 (64, 7x7/2, pad 3), conv1_bn, conv1_relu, pool1 (max 3x3/2, pad 1)
    stages stage2..stage5 (64, 128, 256, 512 base filters), blocks "stage{s}_block{k}" from k = 1:
        basic block: {blk}_conv1 (3x3, stride), {blk}_conv1_bn, {blk}_conv1_relu, {blk}_conv2 (3x3), {blk}_conv2_bn
        bottleneck:  {blk}_conv1 (1x1), _bn, _relu, {blk}_conv2 (3x3, stride), _bn, _relu,
                     {blk}_conv3 (1x1, 4x filters), {blk}_conv3_bn
        shortcut where the shape changes: {blk}_shortcut (1x1, stride), {blk}_shortcut_bn
        then {blk}_add and {blk}_relu
    head: global_pool, output

The stride of a bottleneck sits on its 3x3 conv (torchvision's ResNet v1.5); parameter counts match
torchvision's resnet18/34/50/101. Images under 64 pixels a side get a small stem: conv1 is 3x3
with stride 1 and pool1 is left out. Padding everywhere lets any image size from 1x1 through.
"""
from __future__ import annotations

from .blocks import conv_bn, conv_bn_relu, is_small
from .graph import GraphBuilder

# depth -> (bottleneck?, blocks per stage)
DEPTHS: dict[int, tuple[bool, tuple[int, int, int, int]]] = {
    18: (False, (2, 2, 2, 2)),
    34: (False, (3, 4, 6, 3)),
    50: (True, (3, 4, 6, 3)),
    101: (True, (3, 4, 23, 3)),
}
EXPANSION = 4  # output channels of a bottleneck per base filter


def basic_block(b: GraphBuilder, name: str, x: str, filters: int, stride: int) -> str:
    """Two 3x3 convs; returns the residual branch (before the add)."""
    x = conv_bn_relu(b, f"{name}_conv1", x, filters, kernel=3, stride=stride, pad=1)
    return conv_bn(b, f"{name}_conv2", x, filters, kernel=3, pad=1)


def bottleneck(b: GraphBuilder, name: str, x: str, filters: int, stride: int) -> str:
    """1x1 reduce, 3x3 (strided), 1x1 expand; returns the residual branch (before the add)."""
    x = conv_bn_relu(b, f"{name}_conv1", x, filters, kernel=1)
    x = conv_bn_relu(b, f"{name}_conv2", x, filters, kernel=3, stride=stride, pad=1)
    return conv_bn(b, f"{name}_conv3", x, filters * EXPANSION, kernel=1)


def residual(b: GraphBuilder, name: str, x: str, filters: int, stride: int, use_bottleneck: bool) -> str:
    """One block with its shortcut (identity, or a 1x1 projection when the shape changes), add and relu."""
    branch = (bottleneck if use_bottleneck else basic_block)(b, name, x, filters, stride)
    shortcut = x
    if stride != 1 or b.shape(branch)[0] != b.shape(x)[0]:
        shortcut = conv_bn(b, f"{name}_shortcut", x, b.shape(branch)[0], kernel=1, stride=stride)
    return b.act(f"{name}_relu", b.add(f"{name}_add", branch, shortcut), "relu")


def stem(b: GraphBuilder, x: str) -> str:
    """conv1, conv1_bn, conv1_relu and, for large images, pool1."""
    if is_small(b, x):
        return conv_bn_relu(b, "conv1", x, 64, kernel=3, pad=1)
    return b.pool("pool1", conv_bn_relu(b, "conv1", x, 64, kernel=7, stride=2, pad=3), "max", 3, 2, 1)


def resnet(b: GraphBuilder, x: str, n_outputs: int, depth: int = 50) -> str:
    """ResNet-`depth` (18, 34, 50 or 101); see the module docstring for layer names."""
    if depth not in DEPTHS:
        raise ValueError(f"ResNet depth {depth} not in {sorted(DEPTHS)}")
    use_bottleneck, blocks = DEPTHS[depth]
    x = stem(b, x)
    for stage, count in enumerate(blocks, start=2):
        filters = 64 * 2 ** (stage - 2)
        for k in range(1, count + 1):
            stride = 2 if k == 1 and stage > 2 else 1
            x = residual(b, f"stage{stage}_block{k}", x, filters, stride, use_bottleneck)
    x = b.global_pool("global_pool", x, "avg")
    return b.dense("output", x, n_outputs)
