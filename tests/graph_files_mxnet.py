"""MXNet symbol JSON graphs with .params weights, written by MXNet itself, for the user-graph suite."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from user_graph_cases import GraphCase

INPUT_SHAPE = (3, 8, 8)


def _symbol(outputs: int):
    from deepwater.backends.mxnet.runtime import load_mxnet

    mx = load_mxnet()
    data = mx.sym.Variable("data")
    x = mx.sym.Convolution(data, kernel=(3, 3), num_filter=4, name="conv1")
    x = mx.sym.Activation(x, act_type="relu", name="relu1")
    x = mx.sym.Pooling(x, kernel=(2, 2), stride=(2, 2), pool_type="max", name="pool1")
    x = mx.sym.flatten(x, name="flatten1")
    x = mx.sym.FullyConnected(x, num_hidden=outputs, name="fc1")
    return mx, mx.sym.SoftmaxOutput(x, name="softmax")


def make_symbol(folder: Path, outputs: int) -> tuple[str, str]:
    """A conv-pool-dense symbol saved with Symbol.save, and seeded weights saved as 'arg:' .params."""
    mx, symbol = _symbol(outputs)
    arg_shapes, _, _ = symbol.infer_shape(data=(1,) + INPUT_SHAPE)
    rng = np.random.default_rng(7)
    weights = {f"arg:{name}": mx.nd.array(rng.normal(scale=0.3, size=shape))
               for name, shape in zip(symbol.list_arguments(), arg_shapes) if name not in ("data", "softmax_label")}
    definition, parameters = folder / "net-symbol.json", folder / "net-0001.params"
    symbol.save(str(definition))
    mx.nd.save(str(parameters), weights)
    return str(definition), str(parameters)


def symbol_probabilities(definition: str, parameters: str | None, x: np.ndarray) -> np.ndarray:
    """The symbol's SoftmaxOutput, run by an MXNet executor with the saved weights."""
    from deepwater.backends.mxnet.runtime import load_mxnet

    mx = load_mxnet()
    symbol = mx.sym.load(definition)
    args = {name.split(":", 1)[1]: value for name, value in mx.nd.load(parameters).items()}
    args["data"], args["softmax_label"] = mx.nd.array(x), mx.nd.zeros((len(x),))
    executor = symbol.bind(mx.cpu(), args)
    executor.forward(is_train=False)
    return executor.outputs[0].asnumpy()


CASES = [GraphCase("mxnet-symbol", "mxnet", "mxnet", INPUT_SHAPE, make_symbol, symbol_probabilities,
                   trainable=True, replaceable=True)]
