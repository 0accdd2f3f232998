"""Network architectures, each written once over the GraphBuilder in graph.py.

`build_graph(name, input_shape, n_outputs, options)` turns an architecture into a Graph that every
backend compiles natively, so a network has the same layer names and parameter count everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Mapping

from deepwater.errors import ParameterError

from .alexnet import alexnet
from .aliases import deep_water_names, resolve_deep_water_name
from .conv_autoencoder import conv_autoencoder
from .efficientnet_lite import efficientnet_lite0
from .feature_maps import last_conv_layer, map_geometry
from .googlenet import googlenet
from .graph import FLOAT32_BYTES, Graph, GraphBuilder, MemoryEstimate, Node, ShapeError, check_state
from .inception_bn import inception_bn
from .lenet import lenet
from .mlp import hidden_layer, mlp
from .mobilenet_v2 import mobilenet_v2
from .resnet import resnet
from .vgg import vgg

__all__ = ["Graph", "GraphBuilder", "MemoryEstimate", "FLOAT32_BYTES", "Node", "ShapeError", "check_state",
           "NetworkSpec", "NETWORKS", "get", "build_graph", "resolve_auto", "hidden_layer", "deep_water_names",
           "resolve_deep_water_name", "last_conv_layer", "map_geometry"]


@dataclass(frozen=True)
class NetworkSpec:
    """An architecture: its builder function, whether it needs images, and its default image size."""

    name: str
    function: Callable[..., str]
    needs_image: bool
    default_image_shape: tuple[int, int] | None
    options: tuple[str, ...] = ()  # estimator parameters the function takes as keyword arguments


NETWORKS: dict[str, NetworkSpec] = {
    "mlp": NetworkSpec("mlp", mlp, False, None,
                       ("hidden", "activation", "input_dropout_ratio", "hidden_dropout_ratios")),
    "lenet": NetworkSpec("lenet", lenet, True, (28, 28)),
    "alexnet": NetworkSpec("alexnet", alexnet, True, (224, 224)),
    "vgg": NetworkSpec("vgg", partial(vgg, depth=16), True, (224, 224)),
    **{f"vgg{d}": NetworkSpec(f"vgg{d}", partial(vgg, depth=d), True, (224, 224)) for d in (11, 13, 16, 19)},
    "googlenet": NetworkSpec("googlenet", googlenet, True, (224, 224)),
    "inception_bn": NetworkSpec("inception_bn", inception_bn, True, (224, 224)),
    "resnet": NetworkSpec("resnet", partial(resnet, depth=50), True, (224, 224)),
    **{f"resnet{d}": NetworkSpec(f"resnet{d}", partial(resnet, depth=d), True, (224, 224)) for d in (18, 34, 50, 101)},
    "mobilenet_v2": NetworkSpec("mobilenet_v2", mobilenet_v2, True, (224, 224)),
    "efficientnet_lite0": NetworkSpec("efficientnet_lite0", efficientnet_lite0, True, (224, 224)),
    "conv_autoencoder": NetworkSpec("conv_autoencoder", conv_autoencoder, True, (28, 28)),
}

# Deep Water's "auto": inception_bn for images, an MLP for datasets.
_AUTO_IMAGE_PREFERENCE = ("inception_bn", "lenet")


def get(name: str) -> NetworkSpec:
    """The architecture called `name`, or a ParameterError listing the known ones."""
    try:
        return NETWORKS[name.lower()]
    except KeyError:
        raise ParameterError(
            f"network={name!r} is not a known network. Use one of: 'auto', {', '.join(map(repr, NETWORKS))}, "
            "or 'user' with network_definition_file (a graph file of your own)."
        ) from None


def resolve_auto(name: str, is_image: bool) -> str:
    """Map network='auto' to Deep Water's choice for the problem type."""
    if name.lower() != "auto":
        return get(name).name
    if not is_image:
        return "mlp"
    return next(n for n in _AUTO_IMAGE_PREFERENCE if n in NETWORKS)


def build_graph(name: str, input_shape: tuple[int, ...], n_outputs: int,
                options: Mapping[str, Any] | None = None) -> Graph:
    """Build network `name` for inputs of `input_shape` (C, H, W) or (K,) and `n_outputs` outputs."""
    spec = get(name)
    if spec.needs_image and len(input_shape) != 3:
        raise ParameterError(f"network={spec.name!r} needs images (problem_type='image'); use network='mlp' for "
                             "a dataset of numeric and categorical columns.")
    kwargs = {k: v for k, v in (options or {}).items() if k in spec.options}
    try:
        return _build(spec, input_shape, n_outputs, kwargs)
    except ShapeError as error:
        if len(input_shape) != 3:
            raise
        smallest = smallest_image_size(spec, input_shape[0], n_outputs)
        raise ParameterError(
            f"image_shape={list(input_shape[1:])} is too small for network={spec.name!r} ({error}). "
            f"The smallest image_shape it accepts is [{smallest}, {smallest}]; use that or larger."
        ) from None


def _build(spec: NetworkSpec, input_shape: tuple[int, ...], n_outputs: int, kwargs: Mapping[str, Any]) -> Graph:
    builder = GraphBuilder(input_shape)
    spec.function(builder, "input", n_outputs, **kwargs)
    return builder.graph


def smallest_image_size(spec: NetworkSpec, channels: int, n_outputs: int, limit: int = 4096) -> int:
    """The smallest square image side the network accepts (binary search over the shape checks)."""

    def fits(side: int) -> bool:
        try:
            _build(spec, (channels, side, side), n_outputs, {})
            return True
        except ShapeError:
            return False

    low, high = 1, limit
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle + 1, high)
    return low
