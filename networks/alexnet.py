"""AlexNet (Krizhevsky et al. 2012) in its single-tower form, without local response normalisation.

Layer names (every conv is followed by "<conv>_relu"):

    conv1 (96, 11x11/4, pad 2), pool1 (max 3x3/2), conv2 (256, 5x5, pad 2), pool2 (max 3x3/2),
    conv3 (384, 3x3), conv4 (384, 3x3), conv5 (256, 3x3), pool5 (max 3x3/2),
    global_pool, fc6 (4096), fc6_relu, fc6_dropout, fc7 (4096), fc7_relu, fc7_dropout, output.

A global average pool replaces the flatten of a fixed 6x6 map, so any image size works. Images under
64 pixels a side get a small stem: conv1 is 3x3 with stride 1 and pool1 is left out.
"""
from __future__ import annotations

from .blocks import conv_relu, fc_relu_dropout, is_small
from .graph import GraphBuilder


def alexnet(b: GraphBuilder, x: str, n_outputs: int) -> str:
    """AlexNet for images of any size from 7x7 (see the module docstring for layer names)."""
    if is_small(b, x):
        x = conv_relu(b, "conv1", x, 96, kernel=3, pad=1)
    else:
        x = b.pool("pool1", conv_relu(b, "conv1", x, 96, kernel=11, stride=4, pad=2), "max", 3, 2)
    x = b.pool("pool2", conv_relu(b, "conv2", x, 256, kernel=5, pad=2), "max", 3, 2)
    x = conv_relu(b, "conv3", x, 384, kernel=3, pad=1)
    x = conv_relu(b, "conv4", x, 384, kernel=3, pad=1)
    x = b.pool("pool5", conv_relu(b, "conv5", x, 256, kernel=3, pad=1), "max", 3, 2)
    x = b.global_pool("global_pool", x, "avg")
    x = fc_relu_dropout(b, "fc7", fc_relu_dropout(b, "fc6", x, 4096), 4096)
    return b.dense("output", x, n_outputs)
