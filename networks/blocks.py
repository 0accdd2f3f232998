"""Small layer groups that several architectures share, and the small-image rule."""
from __future__ import annotations

from typing import Callable

from .graph import GraphBuilder

SMALL_SIDE = 64


def is_small(b: GraphBuilder, x: str) -> bool:
    """Whether image node `x` is small enough for the stride-1 stem."""
    return min(b.shape(x)[1:]) < SMALL_SIDE


def conv_relu(b: GraphBuilder, name: str, x: str, filters: int, kernel: int, stride: int = 1, pad: int = 0) -> str:
    """Convolution `name` followed by "<name>_relu"."""
    return b.act(f"{name}_relu", b.conv(name, x, filters, kernel, stride, pad), "relu")


def fc_relu_dropout(b: GraphBuilder, name: str, x: str, units: int, rate: float = 0.5) -> str:
    """Dense `name`, "<name>_relu" and "<name>_dropout"."""
    return b.dropout(f"{name}_dropout", b.act(f"{name}_relu", b.dense(name, x, units), "relu"), rate)


def conv_bn(b: GraphBuilder, name: str, x: str, filters: int, kernel: int, stride: int = 1, pad: int = 0,
            groups: int = 1) -> str:
    """Bias-free (optionally grouped) convolution `name` followed by "<name>_bn"."""
    return b.batch_norm(f"{name}_bn", b.conv(name, x, filters, kernel, stride, pad, bias=False, groups=groups))


def conv_bn_relu(b: GraphBuilder, name: str, x: str, filters: int, kernel: int, stride: int = 1,
                 pad: int = 0) -> str:
    """conv_bn followed by "<name>_relu"."""
    return b.act(f"{name}_relu", conv_bn(b, name, x, filters, kernel, stride, pad), "relu")


def inception_stem(b: GraphBuilder, x: str, conv_block: Callable[..., str]) -> str:
    """The Inception stem: conv1 [pool1] conv2_reduce conv2 pool2, with `conv_block` as each convolution
    (conv_relu for GoogLeNet, conv_bn_relu for Inception-BN); small images skip pool1 and use a 3x3 conv1."""
    if is_small(b, x):
        x = conv_block(b, "conv1", x, 64, kernel=3, pad=1)
    else:
        x = b.pool("pool1", conv_block(b, "conv1", x, 64, kernel=7, stride=2, pad=3), "max", 3, 2, 1)
    x = conv_block(b, "conv2", conv_block(b, "conv2_reduce", x, 64, kernel=1), 192, kernel=3, pad=1)
    return b.pool("pool2", x, "max", 3, 2, 1)
