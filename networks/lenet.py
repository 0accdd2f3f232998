"""LeNet as Deep Water shipped it: two 5x5 tanh convolutions with max pooling, fc 500, output."""
from __future__ import annotations

from .graph import GraphBuilder


def lenet(b: GraphBuilder, x: str, n_outputs: int) -> str:
    """Layers: conv1, tanh1, pool1, conv2, tanh2, pool2, flatten, fc1, tanh3, output."""
    x = b.pool("pool1", b.act("tanh1", b.conv("conv1", x, filters=20, kernel=5), "tanh"), "max", 2, 2)
    x = b.pool("pool2", b.act("tanh2", b.conv("conv2", x, filters=50, kernel=5), "tanh"), "max", 2, 2)
    x = b.act("tanh3", b.dense("fc1", b.flatten("flatten", x), 500), "tanh")
    return b.dense("output", x, n_outputs)
