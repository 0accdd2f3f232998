"""network='user' with PyTorch graph files: TorchScript archives and torch.export programs (.pt2).

The checks every graph format passes are in test_user_graph_conformance.py; these are the PyTorch-specific
ones: training through the estimator, state dict files, a final softmax, training/inference modes and the
files deepwater refuses.
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from graph_files_torch import IMAGE, ROWS, archive, conv_net, exported, scripted
from torch import nn

from deepwater import DeepWaterEstimator
from deepwater.errors import ModelFileError
from deepwater.runtime.user_graphs import graph_loader, user_graph
from deepwater.specs import CLASSIFICATION, REGRESSION, OptimizerSpec, task_from_params


def write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def load(definition: str, parameters: str | None = None, input_shape: tuple[int, ...] = IMAGE, classes: int = 3,
         replace: bool = False, kind: str = CLASSIFICATION):
    graph = user_graph(definition, parameters, input_shape, replace)
    task = task_from_params(kind, classes, "AUTO", "Automatic")
    optimizer = OptimizerSpec(learning_rate=0.05, momentum_start=0.5, momentum_stable=0.5)
    return graph_loader(graph, "auto").load_user_network(graph, task, optimizer, "cpu", 0)


def images(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n,) + IMAGE).astype(np.float32)


def saved(value) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def tiny_image_net(outputs: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                         nn.Linear(16, outputs)).eval()


def with_softmax(module: nn.Module) -> nn.Module:
    return nn.Sequential(module, nn.Softmax(dim=1)).eval()


class LogSoftmaxed(nn.Module):
    """A network whose forward ends in F.log_softmax."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.log_softmax(self.inner(x), dim=1)


# --- through the estimator ------------------------------------------------------------------

def test_a_torchscript_image_graph_trains_predicts_and_gives_features(image_frame, tmp_path) -> None:
    graph = write(tmp_path / "net.pt", scripted(tiny_image_net(2)))
    model = DeepWaterEstimator(network="user", network_definition_file=graph, backend="auto", gpu=False,
                               image_shape=[8, 8], channels=1, epochs=30, learning_rate=0.05, quiet_mode=True, seed=1)
    model.train(x="uri", y="label", training_frame=image_frame)
    assert model.summary()["backend"] == "torch"
    predictions = model.predict(image_frame)
    assert (predictions["predict"].astype(str) == image_frame["label"].astype(str)).mean() > 0.9
    assert model.layers() == ["0", "1", "2", "3", "4"]
    assert model.deepfeatures(image_frame, "2").shape == (len(image_frame), 16)


def test_a_pt2_rows_graph_trains_predicts_and_gives_features(blobs, tmp_path) -> None:
    frame = blobs
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    graph = write(tmp_path / "net.pt2", exported(net, (2,)))
    model = DeepWaterEstimator(network="user", network_definition_file=graph, backend="torch", gpu=False,
                               epochs=20, learning_rate=0.05, quiet_mode=True, seed=1)
    model.train(x=["x1", "x2"], y="label", training_frame=frame)
    assert model.model_performance(train=True).logloss() < 0.3
    assert model.layers() == ["linear", "relu", "linear_1"]
    assert model.deepfeatures(frame, "relu").shape == (300, 16)


def test_a_torchscript_graph_trains_on_cutmix_s_soft_targets_and_a_seed_repeats_it(image_frame, tmp_path) -> None:
    graph = write(tmp_path / "net.pt", scripted(tiny_image_net(2)))
    options = {"network": "user", "network_definition_file": graph, "backend": "torch", "gpu": False,
               "image_shape": [8, 8], "channels": 1, "epochs": 2, "learning_rate": 0.05, "quiet_mode": True,
               "seed": 1}
    plain, cut, again = (DeepWaterEstimator(**options, **extra).train(x="uri", y="label", training_frame=image_frame)
                         for extra in ({}, {"cutmix": 1.0, "mixup": 0.4}, {"cutmix": 1.0, "mixup": 0.4}))
    states = [model._fitted.net.get_state() for model in (plain, cut, again)]
    assert any(not np.allclose(states[0][name], states[1][name]) for name in states[0])
    assert all(np.array_equal(states[1][name], states[2][name]) for name in states[1])


# --- weights: network_parameters_file ------------------------------------------------------

@pytest.mark.parametrize("change, complaint", [
    (lambda s: {**s, "extra.weight": torch.zeros(2)}, r"unknown names \['extra.weight'\]"),
    (lambda s: {k: v for k, v in s.items() if k != "fc.bias"}, r"missing names \['fc.bias'\]"),
    (lambda s: {**s, "fc.weight": torch.zeros(3, 7)}, r"fc.weight: \(3, 7\) but the graph has \(3, 256\)"),
], ids=["unknown", "missing", "wrong-shape"])
def test_a_state_dict_that_does_not_fit_names_the_file_and_keys(tmp_path, change, complaint) -> None:
    weights = write(tmp_path / "weights.pth", saved(change(conv_net(3, seed=1).state_dict())))
    with pytest.raises(ModelFileError, match=complaint) as raised:
        load(write(tmp_path / "net.pt", archive("script", 3)), weights)
    assert "weights.pth" in str(raised.value)


class Payload:
    """Any Python object: torch.load(weights_only=True) must refuse to build it."""


@pytest.mark.parametrize("content, complaint", [
    (saved({"x": Payload()}), "weights_only=True.*Unsupported global: GLOBAL .*Payload was not an allowed global"),
    (saved([torch.zeros(2)]), "holds a list, not a state dict"),
    (saved({"fc.weight": 3}), r"\['fc.weight'\] are not name -> tensor pairs"),
    (b"not a torch file", "weights_only=True.*Unsupported operand"),
], ids=["pickled-object", "list", "not-a-tensor", "garbage"])
def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path, content, complaint) -> None:
    weights = write(tmp_path / "weights.pth", content)
    with pytest.raises(ModelFileError, match=complaint) as raised:
        load(write(tmp_path / "net.pt", archive("script", 3)), weights)
    assert "weights.pth" in str(raised.value)


def test_a_state_dict_as_the_graph_file_is_refused(tmp_path) -> None:
    weights = write(tmp_path / "weights.pt", archive("weights", 3))
    with pytest.raises(ModelFileError, match="is not a TorchScript archive.*network_parameters_file"):
        load(weights)


# --- torch.export files ---------------------------------------------------------------------

def test_a_truncated_pt2_file_names_the_file(tmp_path) -> None:
    data = archive("export", 3)
    with pytest.raises(ModelFileError, match="net.pt2.*truncated"):
        load(write(tmp_path / "net.pt2", data[: len(data) // 3]))


def test_a_pt2_exported_for_a_fixed_batch_size_asks_for_a_dynamic_one(tmp_path) -> None:
    graph = write(tmp_path / "fixed.pt2", exported(conv_net(3, seed=2), IMAGE, dynamic=False))
    with pytest.raises(ModelFileError, match=r"exactly 2 rows; export with a dynamic batch dimension"):
        load(graph)


def test_a_pt2_with_pickled_objects_is_refused_before_loading(tmp_path) -> None:
    """torch.export.load would unpickle the example inputs without weights_only once weights_only refuses them."""
    source, target = tmp_path / "good.pt2", tmp_path / "pickled.pt2"
    source.write_bytes(archive("export-rows", 3))
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for entry in old.namelist():
            pickled = entry.endswith("sample_inputs/model.pt")
            new.writestr(entry, saved({"x": Payload()}) if pickled else old.read(entry))
    with pytest.raises(ModelFileError, match="pickled.pt2.*pickled Python objects.*sample_inputs/model.pt"):
        load(str(target), input_shape=ROWS)


def test_training_uses_training_mode_and_predictions_inference_mode(tmp_path) -> None:
    """Dropout and batch norm in a .pt2 switch modes: training updates the running statistics; predictions
    stay deterministic."""
    net = load(write(tmp_path / "net.pt2", archive("export", 3)))
    x = images(8)
    before = net.get_state()["norm.running_mean"]
    net.train_batch(x, np.arange(8) % 3)
    assert not np.allclose(net.get_state()["norm.running_mean"], before)
    np.testing.assert_array_equal(net.predict(x), net.predict(x))


def test_regression_gives_one_value_per_row(tmp_path) -> None:
    torch.manual_seed(0)
    graph = write(tmp_path / "reg.pt2", exported(nn.Sequential(nn.Linear(ROWS[0], 1)).eval(), ROWS))
    net = load(graph, input_shape=ROWS, classes=1, kind=REGRESSION)
    x = np.random.default_rng(0).normal(size=(32,) + ROWS).astype(np.float32)
    y = x.sum(axis=1).astype(np.float32)
    first = net.train_batch(x, y)
    for _ in range(30):
        last = net.train_batch(x, y)
    assert last < 0.5 * first
    assert net.predict(x).shape == (32, 1)


# --- a final softmax, layers, the output layer ------------------------------------------------

@pytest.mark.parametrize("suffix, head, logits_layer", [
    (".pt", "module", "0"), (".pt", "function", "inner"), (".pt2", "module", "linear"), (".pt2", "function", "linear"),
])
def test_a_final_softmax_is_left_out(tmp_path, suffix, head, logits_layer) -> None:
    """Predictions are the graph's own; training's loss is the cross entropy of the logits before the softmax."""
    inner = tiny_image_net(3)
    module = with_softmax(inner) if head == "module" else LogSoftmaxed(inner)
    data = scripted(module) if suffix == ".pt" else exported(module, (1, 8, 8))
    net = load(write(tmp_path / f"soft{suffix}", data), input_shape=(1, 8, 8))
    x, y = np.random.default_rng(0).normal(size=(4, 1, 8, 8)).astype(np.float32), np.arange(4) % 3
    logits = inner(torch.from_numpy(x)).detach()
    np.testing.assert_allclose(net.predict(x), torch.softmax(logits, 1).numpy(), atol=1e-6)
    np.testing.assert_allclose(net.features(x, logits_layer), logits.numpy(), atol=1e-6)
    expected_loss = nn.functional.cross_entropy(logits, torch.from_numpy(y)).item()
    assert net.train_batch(x, y) == pytest.approx(expected_loss, rel=1e-5)


def test_torchscript_layers_are_the_submodules_it_calls(tmp_path) -> None:
    module = conv_net(3, seed=0)
    net = load(write(tmp_path / "net.pt", scripted(module)))
    assert net.layers() == ["conv", "norm", "drop", "fc"]
    x = images()
    np.testing.assert_allclose(net.features(x, "conv"), module.conv(torch.from_numpy(x)).detach().reshape(4, -1),
                               atol=1e-6)


class Doubled(nn.Module):
    """Logits that no linear layer computes: the output layer cannot be replaced."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(ROWS[0], 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * 2.0


@pytest.mark.parametrize("suffix", [".pt", ".pt2"])
def test_an_output_that_is_no_linear_layer_cannot_be_replaced(tmp_path, suffix) -> None:
    module = Doubled().eval()
    data = scripted(module) if suffix == ".pt" else exported(module, ROWS)
    with pytest.raises(ModelFileError, match="replace_output_layer=True cannot replace.*not by a"):
        load(write(tmp_path / f"doubled{suffix}", data), input_shape=ROWS, classes=5, replace=True)


def test_a_nested_torchscript_linear_layer_is_replaced(tmp_path) -> None:
    net = load(write(tmp_path / "net.pt", scripted(with_softmax(tiny_image_net(3)))), input_shape=(1, 8, 8),
               classes=5, replace=True)
    assert net.get_state()["0.4.weight"].shape == (5, 16)
    assert net.predict(np.zeros((2, 1, 8, 8), np.float32)).shape == (2, 5)
