"""Deep Water's own names for the layers of its built-in networks, as aliases of ours.

Deep Water built its networks as MXNet symbols whose layers MXNet named by operation and count ('convolution0',
'activation2', 'pooling1', 'fullyconnected0', ...), and users asked deepfeatures() for them with get_internals()'
'_output' suffix ('pooling1_output'). Counting our graph's layers by the same operations gives the same names for
networks laid out as Deep Water's were (LeNet layer for layer); a name with '_output' may also end one of ours
('global_pool_output' is our 'global_pool').
"""
from __future__ import annotations

from collections import Counter

from .graph import Graph

MXNET_OPERATIONS = {"conv": "convolution", "act": "activation", "pool": "pooling", "global_pool": "pooling",
                    "dense": "fullyconnected", "flatten": "flatten", "dropout": "dropout", "batch_norm": "batchnorm",
                    "concat": "concat"}
OUTPUT_SUFFIX = "_output"


def deep_water_names(graph: Graph) -> dict[str, str]:
    """Deep Water's (MXNet's) name of each layer of `graph` -> our name, e.g. 'pooling1' -> 'pool2' in LeNet."""
    counts: Counter[str] = Counter()
    names = {}
    for node in graph.nodes[1:]:
        operation = MXNET_OPERATIONS.get(node.op)
        if operation is not None:
            names[f"{operation}{counts[operation]}"] = node.name
            counts[operation] += 1
    return names


def resolve_deep_water_name(graph: Graph, layer: str) -> str:
    """Our name for `layer` when it is one of Deep Water's (with or without '_output'); else `layer` as given."""
    ours = graph.layer_names()
    if layer in ours:
        return layer
    base = layer.removesuffix(OUTPUT_SUFFIX)
    if base in ours:
        return base
    return deep_water_names(graph).get(base, layer)
