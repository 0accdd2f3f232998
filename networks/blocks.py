"""Small layer groups that several architectures share, and the small-image rule."""
from __future__ import annotations

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
