"""The layer Grad-CAM reads by default: each network's last convolutional feature map."""
from __future__ import annotations

from deepwater.errors import ParameterError

from .graph import Graph

# ops that keep a feature map's positions, through which the last convolution's output is followed
_SAME_POSITIONS = ("batch_norm", "act", "add", "concat")


def last_conv_layer(graph: Graph) -> str:
    """The name of the last convolution's feature map, taken after what follows it position by position (its
    batch norm, activation, a residual add, an inception concat): LeNet's 'tanh2', a ResNet's last block output.
    ParameterError when the network has no convolution."""
    convs = [node for node in graph.nodes if node.op == "conv"]
    if not convs:
        raise ParameterError("layer=None: this network has no convolutional layer for Grad-CAM to read; use "
                             "method='saliency' or 'integrated_gradients', or name a layer.")
    current = convs[-1]
    while True:
        consumers = [node for node in graph.nodes if current.name in node.inputs]
        if len(consumers) != 1 or consumers[0].op not in _SAME_POSITIONS \
                or consumers[0].shape[1:] != current.shape[1:]:
            return current.name
        current = consumers[0]


def map_geometry(graph: Graph, layer: str) -> tuple[float, float]:
    """Where the positions of `layer`'s feature map lie on the input image: (offset, stride) such that position i
    is centred on input pixel offset + i * stride (each convolution and pooling window centred on its inputs; the
    first input of a join). Grad-CAM places a map on its image by it."""
    chain = [graph.node(layer)]
    while chain[-1].inputs:
        chain.append(graph.node(chain[-1].inputs[0]))
    offset, stride = 0.0, 1.0
    for node in reversed(chain):
        if node.op in ("conv", "pool"):
            a = node.attrs
            offset, stride = offset + stride * ((a["kernel"] - 1) / 2 - a["pad"]), stride * a["stride"]
        elif node.op == "zero_pad":
            offset -= stride * node.attrs["top"]
        elif node.op == "upsample":
            scale = node.attrs["scale"]
            offset, stride = offset - stride * (scale - 1) / (2 * scale), stride / scale
    return offset, stride
