"""A convolutional autoencoder for images: a LeNet-like encoder of two conv/pool stages, mirrored by a decoder
of nearest-neighbour upsampling and convolutions, reconstructing the (mean-subtracted, scaled) input image."""
from __future__ import annotations

import math

from deepwater.errors import ParameterError

from .graph import GraphBuilder


def conv_autoencoder(b: GraphBuilder, x: str, n_outputs: int) -> str:
    """Layers: conv1, relu1, pool1, conv2, relu2, pool2 (the bottleneck: 8 maps of a quarter of the image's
    height and width), up1, conv3, relu3, up2, conv4, output (conv4 flattened: the reconstructed image)."""
    channels, height, width = b.shape(x)
    if n_outputs != math.prod(b.shape(x)):
        raise ParameterError("network='conv_autoencoder' reconstructs its input image, so it needs autoencoder=True; "
                             "for a classifier or a regression on images use 'lenet' or another image network.")
    if height % 4 or width % 4:
        raise ParameterError(f"network='conv_autoencoder' halves the image twice and doubles it back, so image_shape "
                             f"must be divisible by 4; got [{height}, {width}]. Use e.g. [28, 28] or [32, 32].")
    x = b.pool("pool1", b.act("relu1", b.conv("conv1", x, filters=16, kernel=3, pad=1), "relu"), "max", 2, 2)
    x = b.pool("pool2", b.act("relu2", b.conv("conv2", x, filters=8, kernel=3, pad=1), "relu"), "max", 2, 2)
    x = b.act("relu3", b.conv("conv3", b.upsample("up1", x, 2), filters=16, kernel=3, pad=1), "relu")
    x = b.conv("conv4", b.upsample("up2", x, 2), filters=channels, kernel=3, pad=1)
    return b.flatten("output", x)
