"""EfficientNet-Lite0 (Tan and Le 2019; the Lite variants of TensorFlow's TPU repository): MobileNetV2's
inverted residual blocks with 3x3 and 5x5 depthwise convolutions, relu6 and no squeeze-excitation.

Layer names. Every conv has no bias and is followed by "<conv>_bn"; relu6 follows where noted:

    stem: conv1_pad, conv1 (32, 3x3/2), conv1_bn, conv1_relu
    blocks block1..block16, in the order of the source's _blocks.0.._blocks.15 (block{i} is _blocks.{i-1}):
        block{i}_expand (1x1 to 6x the input channels; left out of block1, whose expansion is 1),
            block{i}_expand_bn, block{i}_expand_relu
        block{i}_dw_pad (strided blocks only), block{i}_dw (3x3 or 5x5 depthwise, the block's stride),
            block{i}_dw_bn, block{i}_dw_relu
        block{i}_project (1x1, linear), block{i}_project_bn
        block{i}_add (input + block) where the stride is 1 and the channels do not change
    head: conv_last (1280, 1x1), conv_last_bn, conv_last_relu, global_pool, dropout (0.2), output

The weights were trained in TensorFlow, whose "same" padding of a strided convolution puts the odd row and
column after the image: the "_pad" layers reproduce it (zero_pad), so the converted weights give the
source's numbers. Stride-1 convolutions pad k // 2 on every side, which is the same. Parameter count with 3
channels and 1000 classes: 4,652,008. Batch norm uses TensorFlow's epsilon 1e-3 and momentum 0.99.
"""
from __future__ import annotations

from .graph import GraphBuilder
from .mobilenet_v2 import inverted_residual

# (expansion, kernel, output channels, blocks, stride of the first block): efficientnet_lite_builder's
# block strings for Lite0 (width and depth 1.0)
STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 16, 1, 1),
    (6, 3, 24, 2, 2),
    (6, 5, 40, 2, 2),
    (6, 3, 80, 3, 2),
    (6, 5, 112, 3, 1),
    (6, 5, 192, 4, 2),
    (6, 3, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280
DROPOUT = 0.2
EPSILON = 1e-3
MOMENTUM = 0.99


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "same" padding of one axis: (before, after), the odd one after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_bn_relu6(b: GraphBuilder, name: str, x: str, filters: int, kernel: int, stride: int = 1,
                  groups: int = 1) -> str:
    """Convolution with TensorFlow's "same" padding, batch norm and relu6 ("<name>_bn", "<name>_relu")."""
    pad = kernel // 2
    if stride > 1:
        _, h, w = b.shape(x)
        (top, bottom), (left, right) = same_padding(h, kernel, stride), same_padding(w, kernel, stride)
        x, pad = b.zero_pad(f"{name}_pad", x, top, bottom, left, right), 0
    y = b.conv(name, x, filters, kernel, stride, pad, bias=False, groups=groups)
    return b.act(f"{name}_relu", b.batch_norm(f"{name}_bn", y, EPSILON, MOMENTUM), "relu6")


def project_bn(b: GraphBuilder, name: str, x: str, filters: int) -> str:
    """The linear bottleneck: a 1x1 convolution and batch norm ("<name>_bn"), no activation."""
    return b.batch_norm(f"{name}_bn", b.conv(name, x, filters, 1, bias=False), EPSILON, MOMENTUM)


def efficientnet_lite0(b: GraphBuilder, x: str, n_outputs: int) -> str:
    """EfficientNet-Lite0; see the module docstring for layer names."""
    x = conv_bn_relu6(b, "conv1", x, STEM_CHANNELS, kernel=3, stride=2)
    index = 1
    for expansion, kernel, filters, count, first_stride in STAGES:
        for k in range(count):
            x = inverted_residual(b, f"block{index}", x, filters, first_stride if k == 0 else 1, expansion, kernel,
                                  conv_bn_relu6, project_bn)
            index += 1
    x = conv_bn_relu6(b, "conv_last", x, LAST_CHANNELS, kernel=1)
    x = b.global_pool("global_pool", x, "avg")
    x = b.dropout("dropout", x, DROPOUT)
    return b.dense("output", x, n_outputs)
