"""VGG (Simonyan & Zisserman 2014), configurations A, B, D and E: VGG-11, -13, -16 (default) and -19.

Layer names: stage s (1..5) has convs "conv{s}_{i}" (3x3, pad 1), each followed by "conv{s}_{i}_relu",
and ends with "pool{s}" (max 2x2/2); then global_pool, fc6 (4096), fc6_relu, fc6_dropout,
fc7 (4096), fc7_relu, fc7_dropout, output. VGG-16: conv1_1, conv1_2, pool1, conv2_1, conv2_2, pool2,
conv3_1..conv3_3, pool3, conv4_1..conv4_3, pool4, conv5_1..conv5_3, pool5, ...

A global average pool replaces the flatten of a fixed 7x7 map, so any image size works. Images under
64 pixels a side leave out pool1 (the smallest accepted side is then 16).
"""
from __future__ import annotations

from .blocks import conv_relu, fc_relu_dropout, is_small
from .graph import GraphBuilder

# depth -> convolutions per stage; stage s has 64 * 2**(s-1) filters, at most 512
STAGE_CONVS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}


def stage_filters(stage: int) -> int:
    """Filters of every conv in stage 1..5."""
    return min(64 * 2 ** (stage - 1), 512)


def vgg(b: GraphBuilder, x: str, n_outputs: int, depth: int = 16) -> str:
    """VGG-`depth` (11, 13, 16 or 19); see the module docstring for layer names."""
    if depth not in STAGE_CONVS:
        raise ValueError(f"VGG depth {depth} not in {sorted(STAGE_CONVS)}")
    small = is_small(b, x)
    for stage, convs in enumerate(STAGE_CONVS[depth], start=1):
        for i in range(1, convs + 1):
            x = conv_relu(b, f"conv{stage}_{i}", x, stage_filters(stage), kernel=3, pad=1)
        if not (small and stage == 1):
            x = b.pool(f"pool{stage}", x, "max", 2, 2)
    x = b.global_pool("global_pool", x, "avg")
    x = fc_relu_dropout(b, "fc7", fc_relu_dropout(b, "fc6", x, 4096), 4096)
    return b.dense("output", x, n_outputs)
