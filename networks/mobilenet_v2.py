"""MobileNetV2 (Sandler et al. 2018), width 1.0: inverted residual blocks with depthwise convolutions.

Layer names. Every conv has no bias and is followed by "<conv>_bn"; relu6 follows where noted:

    stem: conv1 (32, 3x3/2, pad 1), conv1_bn, conv1_relu
    blocks block1..block17, in torchvision's order (block{i} is torchvision's features.{i}):
        block{i}_expand (1x1 to 6x the input channels; left out of block1, whose expansion is 1),
            block{i}_expand_bn, block{i}_expand_relu
        block{i}_dw (3x3 depthwise, the block's stride, pad 1), block{i}_dw_bn, block{i}_dw_relu
        block{i}_project (1x1, linear), block{i}_project_bn
        block{i}_add (input + block) where the stride is 1 and the channels do not change
    head: conv_last (1280, 1x1), conv_last_bn, conv_last_relu, global_pool, dropout (0.2), output

Parameter count with 3 channels and 1000 classes: 3,504,872, as torchvision's mobilenet_v2. The
network is the same at every image size (padding lets any size from 1x1 through); it downsamples by 32.
Batch norm uses torchvision's epsilon 1e-5 and momentum 0.1 (0.9 in this builder's convention).
"""
from __future__ import annotations

from collections.abc import Callable

from .blocks import conv_bn
from .graph import GraphBuilder

# (expansion, output channels, blocks, stride of the first block): the paper's Table 2
STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280
DROPOUT = 0.2


def conv_bn_relu6(b: GraphBuilder, name: str, x: str, filters: int, kernel: int, stride: int = 1,
                  groups: int = 1) -> str:
    """conv_bn with "same" padding (odd kernels) followed by "<name>_relu" (relu6)."""
    return b.act(f"{name}_relu", conv_bn(b, name, x, filters, kernel, stride, kernel // 2, groups), "relu6")


def project_bn(b: GraphBuilder, name: str, x: str, filters: int) -> str:
    """The linear bottleneck: a 1x1 conv_bn, no activation."""
    return conv_bn(b, name, x, filters, kernel=1)


def inverted_residual(b: GraphBuilder, name: str, x: str, filters: int, stride: int, expansion: int,
                      kernel: int = 3, activated: Callable[..., str] = conv_bn_relu6,
                      linear: Callable[..., str] = project_bn) -> str:
    """Expand (1x1), depthwise `kernel` (strided), project (1x1, linear); add the input when shapes allow.
    `activated` makes the two convolutions with relu6 (conv_bn_relu6's arguments), `linear` the projection
    (project_bn's): EfficientNet-Lite passes its own, with TensorFlow's padding and batch-norm constants."""
    channels = b.shape(x)[0]
    hidden = channels * expansion
    y = x if expansion == 1 else activated(b, f"{name}_expand", x, hidden, kernel=1)
    y = activated(b, f"{name}_dw", y, hidden, kernel=kernel, stride=stride, groups=hidden)
    y = linear(b, f"{name}_project", y, filters)
    if stride == 1 and channels == filters:
        y = b.add(f"{name}_add", x, y)
    return y


def mobilenet_v2(b: GraphBuilder, x: str, n_outputs: int) -> str:
    """MobileNetV2 with width multiplier 1.0; see the module docstring for layer names."""
    x = conv_bn_relu6(b, "conv1", x, STEM_CHANNELS, kernel=3, stride=2)
    index = 1
    for expansion, filters, count, first_stride in STAGES:
        for k in range(count):
            x = inverted_residual(b, f"block{index}", x, filters, first_stride if k == 0 else 1, expansion)
            index += 1
    x = conv_bn_relu6(b, "conv_last", x, LAST_CHANNELS, kernel=1)
    x = b.global_pool("global_pool", x, "avg")
    x = b.dropout("dropout", x, DROPOUT)
    return b.dense("output", x, n_outputs)
