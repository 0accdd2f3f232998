"""ONNX graph files for the user-graph conformance suite, scored by onnxruntime (never trained).

onnx-from-torch: a small torch CNN exported by torch.onnx.export (the default, dynamo-based exporter, which
needs onnxscript) with a dynamic batch axis; its state dict is saved beside the graph so that the reference
is the torch module's own output. onnx-rows: an MLP on rows written with onnx.helper, ending in a Softmax
node; the reference computes it in numpy from the file's weights.
"""
from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
from user_graph_cases import GraphCase, softmax

IMAGE_SHAPE = (3, 8, 8)
FEATURES = 5
HIDDEN = 8


# ----------------------------------------------------------------------------- onnx-from-torch

def small_cnn(n_outputs: int):
    """Conv2d(3 -> 4) and ReLU on (3, 8, 8) images, then Linear(256 -> n_outputs) logits."""
    import torch

    return torch.nn.Sequential(torch.nn.Conv2d(IMAGE_SHAPE[0], 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Flatten(), torch.nn.Linear(4 * IMAGE_SHAPE[1] * IMAGE_SHAPE[2], n_outputs))


@functools.cache
def exported_cnn(n_outputs: int) -> tuple[bytes, dict]:
    """The ONNX bytes of small_cnn(n_outputs) (seeded weights) and its state dict, exported once per process."""
    import tempfile

    import torch

    torch.manual_seed(0)
    module = small_cnn(n_outputs).eval()
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's own deprecation notices
        path = Path(folder) / "cnn.onnx"
        torch.onnx.export(module, (torch.zeros((2,) + IMAGE_SHAPE),), str(path), dynamo=True, verbose=False,
                          external_data=False, input_names=["images"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},))
        return path.read_bytes(), module.state_dict()


def make_torch_cnn(folder: Path, n_outputs: int) -> tuple[str, None]:
    """small_cnn.onnx, with the module's weights in small_cnn.pt beside it for the reference."""
    import torch

    data, state = exported_cnn(n_outputs)
    definition = folder / "small_cnn.onnx"
    definition.write_bytes(data)
    torch.save(state, definition.with_suffix(".pt"))
    return str(definition), None


def torch_cnn_reference(definition: str, parameters: str | None, x: np.ndarray) -> np.ndarray:
    """Softmax of the torch module's own logits, its weights read from the state dict beside the graph."""
    import torch

    state = torch.load(Path(definition).with_suffix(".pt"), weights_only=True)
    module = small_cnn(len(state["3.bias"])).eval()
    module.load_state_dict(state)
    with torch.no_grad():
        return softmax(module(torch.from_numpy(x)).numpy())


# ----------------------------------------------------------------------------- onnx-rows

def rows_mlp(n_outputs: int, batch: int | str = "n", features: int = FEATURES, head: bool = True):
    """An onnx.helper MLP on (batch, features) rows: MatMul+Add, Relu, MatMul+Add, then (head) Softmax on axis 1.

    `batch` is a symbolic name, or a number for a graph with a fixed batch size. Without the head the graph
    outputs its 'logits' (class scores, or the value of a regression).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = {"w1": rng.normal(scale=0.8, size=(features, HIDDEN)), "b1": rng.normal(scale=0.1, size=HIDDEN),
               "w2": rng.normal(scale=0.8, size=(HIDDEN, n_outputs)), "b2": rng.normal(scale=0.1, size=n_outputs)}
    nodes = [helper.make_node("MatMul", ["rows", "w1"], ["dense1"]),
             helper.make_node("Add", ["dense1", "b1"], ["pre1"]),
             helper.make_node("Relu", ["pre1"], ["hidden"]), helper.make_node("MatMul", ["hidden", "w2"], ["dense2"]),
             helper.make_node("Add", ["dense2", "b2"], ["logits"])]
    if head:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes, "rows_mlp", [helper.make_tensor_value_info("rows", TensorProto.FLOAT, [batch, features])],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, [batch, n_outputs])],
        [numpy_helper.from_array(value.astype(np.float32), name) for name, value in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def make_rows(folder: Path, n_outputs: int) -> tuple[str, None]:
    """rows_mlp.onnx with a symbolic batch axis."""
    import onnx

    definition = folder / "rows_mlp.onnx"
    onnx.save(rows_mlp(n_outputs), str(definition))
    return str(definition), None


def rows_logits(definition: str, x: np.ndarray) -> np.ndarray:
    """The MLP's logits computed in numpy from the weights stored in the file."""
    import onnx
    from onnx import numpy_helper

    w = {t.name: numpy_helper.to_array(t) for t in onnx.load(definition).graph.initializer}
    return np.maximum(x @ w["w1"] + w["b1"], 0.0) @ w["w2"] + w["b2"]


def rows_reference(definition: str, parameters: str | None, x: np.ndarray) -> np.ndarray:
    """The MLP's class probabilities computed in numpy from the weights stored in the file."""
    return softmax(rows_logits(definition, x))


CASES = [
    GraphCase("onnx-from-torch", "auto", ("onnxruntime", "torch"), IMAGE_SHAPE, make_torch_cnn, torch_cnn_reference,
              trainable=False, replaceable=False),
    GraphCase("onnx-rows", "auto", "onnxruntime", (FEATURES,), make_rows, rows_reference,
              trainable=False, replaceable=False),
]
