"""ONNX graphs (network='user', .onnx): scored by onnxruntime on every backend with epochs=0.

The shared checks are in test_user_graph_conformance.py (cases in graph_files_onnx.py); these are the
format's own: the estimator on each backend, fixed batch sizes, inputs the graph does not take, broken
files, regression outputs and a missing onnxruntime.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from graph_files_onnx import (
    FEATURES,
    IMAGE_SHAPE,
    exported_cnn,
    make_torch_cnn,
    rows_logits,
    rows_mlp,
    rows_reference,
    torch_cnn_reference,
)
from PIL import Image

from deepwater.errors import MissingDependencyError, ModelFileError
from deepwater.runtime.user_graphs import graph_loader, user_graph
from deepwater.specs import CLASSIFICATION, REGRESSION, OptimizerSpec, task_from_params

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

CLASSES = 3
BACKENDS = {"auto": "onnxruntime", "torch": "torch", "tensorflow": "tensorflow", "mxnet": "mxnet"}


def load(path: Path | str, input_shape: tuple[int, ...], classes: int = CLASSES, kind: str = CLASSIFICATION,
         parameters: str | None = None):
    """The Net that network='user' gets for the graph at `path` (CPU)."""
    graph = user_graph(path, parameters, input_shape)
    task = task_from_params(kind, classes, "AUTO", "Automatic")
    return graph_loader(graph, "auto").load_user_network(graph, task, OptimizerSpec(), "cpu", 0)


def save(model, folder: Path, name: str) -> Path:
    path = folder / name
    onnx.save(model, str(path))
    return path


def rows(n: int) -> np.ndarray:
    """n rows for the rows_mlp graphs, the same for the same n."""
    return np.random.default_rng(n).normal(size=(n, FEATURES)).astype(np.float32)


# ----------------------------------------------------------------------------- the estimator

@pytest.fixture(scope="module")
def cnn_frame(tmp_path_factory) -> tuple[str, pd.DataFrame, np.ndarray]:
    """The exported CNN, a frame of six 8x8 RGB PNGs with classes a, b, c, and the pixels the network sees."""
    folder = tmp_path_factory.mktemp("onnx_estimator")
    definition, _ = make_torch_cnn(folder, CLASSES)
    pixels = np.random.default_rng(0).integers(0, 256, size=(6, IMAGE_SHAPE[1], IMAGE_SHAPE[2], 3), dtype=np.uint8)
    uris = []
    for i, image in enumerate(pixels):
        uris.append(str(folder / f"img{i}.png"))
        Image.fromarray(image, mode="RGB").save(uris[-1])
    frame = pd.DataFrame({"uri": uris, "label": pd.Categorical(["a", "b", "c"] * 2)})
    return definition, frame, (pixels.transpose(0, 3, 1, 2) / 255.0).astype(np.float32)


def estimator(definition: str, backend: str, epochs: float):
    from deepwater import DeepWaterEstimator

    return DeepWaterEstimator(network="user", network_definition_file=definition, backend=backend, epochs=epochs,
                              problem_type="image", image_shape=[8, 8], channels=3, gpu=False, quiet_mode=True)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_estimator_scores_on_every_backend(cnn_frame, backend) -> None:
    if importlib.util.find_spec(BACKENDS[backend]) is None:
        pytest.skip(f"{BACKENDS[backend]} is not installed")
    definition, frame, x = cnn_frame
    model = estimator(definition, backend, epochs=0).train(x=["uri"], y="label", training_frame=frame)
    predictions = model.predict(frame)
    np.testing.assert_allclose(predictions[["a", "b", "c"]].to_numpy(), torch_cnn_reference(definition, None, x),
                               atol=1e-5)
    layers = model.layers()
    assert layers and len(set(layers)) == len(layers)
    features = model.deepfeatures(frame, layers[0])
    assert features.shape == (6, 4 * IMAGE_SHAPE[1] * IMAGE_SHAPE[2])


def test_training_is_refused_with_the_way_to_train(cnn_frame) -> None:
    definition, frame, _ = cnn_frame
    with pytest.raises(ModelFileError, match="epochs=0") as error:
        estimator(definition, "auto", epochs=1).train(x=["uri"], y="label", training_frame=frame)
    assert "torch" in str(error.value)


# ----------------------------------------------------------------------------- what graphs are scored

@pytest.mark.parametrize("batch", [1, 4])
def test_a_fixed_batch_size_scores_any_number_of_rows(tmp_path, batch) -> None:
    fixed = load(save(rows_mlp(CLASSES, batch=batch), tmp_path, "fixed.onnx"), (FEATURES,))
    free = load(save(rows_mlp(CLASSES), tmp_path, "free.onnx"), (FEATURES,))
    for n in (0, 1, 7):
        np.testing.assert_allclose(fixed.predict(rows(n)), free.predict(rows(n)), atol=1e-6)
        assert fixed.predict(rows(n)).shape == (n, CLASSES)
    np.testing.assert_allclose(fixed.features(rows(7), "hidden"), free.features(rows(7), "hidden"), atol=1e-6)


def test_a_regression_graph_gives_its_values(tmp_path) -> None:
    path = save(rows_mlp(1, head=False), tmp_path, "regression.onnx")
    net = load(path, (FEATURES,), classes=1, kind=REGRESSION)
    np.testing.assert_allclose(net.predict(rows(5)), rows_logits(str(path), rows(5)), atol=1e-5)


def test_class_scores_without_a_softmax_node_become_probabilities(tmp_path) -> None:
    path = save(rows_mlp(CLASSES, head=False), tmp_path, "logits.onnx")
    probabilities = load(path, (FEATURES,)).predict(rows(5))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert np.argmax(probabilities, axis=1).tolist() == np.argmax(rows_logits(str(path), rows(5)), axis=1).tolist()


def test_initializers_listed_as_inputs_are_weights(tmp_path) -> None:
    """Old exporters (IR version 3) list every initializer among the graph's inputs too."""
    from onnx import helper

    model = rows_mlp(CLASSES)
    model.graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, t.dims)
                             for t in model.graph.initializer)
    path = save(model, tmp_path, "old_style.onnx")
    np.testing.assert_allclose(load(path, (FEATURES,)).predict(rows(3)), rows_reference(str(path), None, rows(3)),
                               atol=1e-6)


def test_two_inputs_are_refused(tmp_path) -> None:
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", CLASSES]) for name in ("a", "b")]
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["sum"])], "two_inputs", inputs,
                              [helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["n", CLASSES])])
    path = save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), tmp_path,
                "two_inputs.onnx")
    with pytest.raises(ModelFileError, match=r"2 inputs \['a', 'b'\]"):
        load(path, (CLASSES,))


def test_an_input_of_another_shape_names_both_shapes(tmp_path) -> None:
    path = save(rows_mlp(CLASSES), tmp_path, "rows.onnx")
    with pytest.raises(ModelFileError, match=r"network_definition_file.*\('n', 5\).*\(4,\)"):
        load(path, (4,))
    with pytest.raises(ModelFileError, match=r"\('n', 5\).*\(5, 1\)"):
        load(path, (5, 1))


@pytest.mark.parametrize("content", [b"", b"\x08\x07" + bytes(range(256)) * 4, b"not an ONNX model at all"],
                         ids=["empty", "garbage", "text"])
def test_a_file_that_is_not_onnx_names_the_file(tmp_path, content) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="broken.onnx"):
        load(path, (FEATURES,))


def test_a_parameters_file_is_refused(tmp_path) -> None:
    path = save(rows_mlp(CLASSES), tmp_path, "rows.onnx")
    weights = tmp_path / "rows.params"
    weights.write_bytes(b"")
    with pytest.raises(ModelFileError, match="hold their weights"):
        load(path, (FEATURES,), parameters=str(weights))


def test_set_state_refuses_unknown_names_and_wrong_shapes(tmp_path) -> None:
    net = load(save(rows_mlp(CLASSES), tmp_path, "rows.onnx"), (FEATURES,))
    state = net.get_state()
    assert sorted(state) == ["b1", "b2", "w1", "w2"] and net.parameter_count() == sum(v.size for v in state.values())
    with pytest.raises(ModelFileError, match="unknown names \\['w9'\\]"):
        net.set_state({**state, "w9": state["w1"]})
    with pytest.raises(ModelFileError, match="w1"):
        net.set_state({**state, "w1": state["w1"].T})


# ----------------------------------------------------------------------------- dependencies and devices

def test_without_onnxruntime_the_error_names_the_extra(tmp_path, monkeypatch) -> None:
    path = save(rows_mlp(CLASSES), tmp_path, "rows.onnx")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"deepwater\[onnx\]"):
        load(path, (FEATURES,))


def test_the_backend_module_imports_without_onnx(monkeypatch) -> None:
    import deepwater.backends.onnx as package
    from deepwater.backends.onnx import backend

    monkeypatch.setattr(package, "backend", backend)  # restored afterwards, like sys.modules
    monkeypatch.delitem(sys.modules, backend.__name__)
    for name in ("onnx", "onnxruntime"):
        monkeypatch.setitem(sys.modules, name, None)  # importing them now raises ImportError
    assert importlib.import_module(backend.__name__).OnnxRuntime.extra == "onnx"


def test_devices_follow_onnxruntimes_providers(monkeypatch) -> None:
    import onnxruntime as ort

    from deepwater.backends.onnx.backend import OnnxRuntime
    from deepwater.errors import DeviceError
    from deepwater.runtime.onnx_sessions import CUDA, execution_providers

    runtime = OnnxRuntime()
    if CUDA not in ort.get_available_providers():
        assert runtime.devices() == ["cpu"] and "onnxruntime-gpu" in runtime.gpu_hint()
        with pytest.raises(DeviceError, match="onnxruntime-gpu"):
            execution_providers("cuda:0")
    gpus = [SimpleNamespace(ep_name=CUDA)] * 2 + [SimpleNamespace(ep_name="CPUExecutionProvider")]
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "get_ep_devices", lambda: gpus, raising=False)
    assert runtime.devices() == ["cpu", "cuda:0", "cuda:1"]
    assert execution_providers("cuda:1") == [(CUDA, {"device_id": 1}), "CPUExecutionProvider"]


def test_the_exported_graph_holds_the_modules_weights(tmp_path) -> None:
    pytest.importorskip("torch")
    data, state = exported_cnn(CLASSES)
    path = tmp_path / "cnn.onnx"
    path.write_bytes(data)
    net = load(path, IMAGE_SHAPE)
    assert net.parameter_count() == sum(value.numel() for value in state.values())
