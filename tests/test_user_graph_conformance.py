"""One suite for every user graph format (network='user'): each GraphCase goes through the same checks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from user_graph_cases import GraphCase, all_cases

from deepwater.errors import ModelFileError, ParameterError
from deepwater.runtime.user_graphs import graph_loader, user_graph
from deepwater.specs import CLASSIFICATION, OptimizerSpec, task_from_params

CASES = all_cases()
CLASSES = 3


def optimizer() -> OptimizerSpec:
    from deepwater.training import parameters as params

    return OptimizerSpec.from_params(params.resolve({"learning_rate": 0.05, "momentum_start": 0.5,
                                                     "momentum_stable": 0.5}))


def load(case: GraphCase, definition: str, parameters: str | None, classes: int = CLASSES, replace: bool = False,
         input_shape: tuple[int, ...] | None = None):
    graph = user_graph(definition, parameters, input_shape or case.input_shape, replace)
    task = task_from_params(CLASSIFICATION, classes, "AUTO", "Automatic")
    return graph_loader(graph, "auto").load_user_network(graph, task, optimizer(), "cpu", 1)


def learnable(case: GraphCase, n: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose class is told by the sign pattern of the input's mean, easy for any network."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % CLASSES
    x = rng.normal(scale=0.3, size=(n,) + case.input_shape).astype(np.float32)
    x += (y - 1).reshape((n,) + (1,) * len(case.input_shape)).astype(np.float32)
    return x, y.astype(np.int64)


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def case(request) -> GraphCase:
    return request.param.installed()


@pytest.fixture
def files(case: GraphCase, tmp_path: Path) -> tuple[str, str | None]:
    return case.make(tmp_path, CLASSES)


def test_predictions_are_the_frameworks_own(case, files) -> None:
    x, _ = learnable(case, 6)
    net = load(case, *files)
    probabilities = net.predict(x)
    assert probabilities.shape == (6, CLASSES)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probabilities, case.reference(*files, x), atol=1e-4)


def test_layers_give_flat_features(case, files) -> None:
    x, _ = learnable(case, 4)
    net = load(case, *files)
    names = net.layers()
    assert names and len(set(names)) == len(names)
    for layer in (names[0], names[-1]):
        features = net.features(x, layer)
        assert features.ndim == 2 and features.shape[0] == 4 and features.shape[1] > 0
    with pytest.raises(ParameterError, match="no_such_layer"):
        net.features(x, "no_such_layer")


def test_state_round_trips(case, files) -> None:
    x, _ = learnable(case, 4)
    net = load(case, *files)
    state = net.get_state()
    assert state and net.parameter_count() > 0
    before = net.predict(x)
    net.set_state({name: np.zeros_like(value) for name, value in state.items()})
    assert not np.allclose(net.predict(x), before, atol=1e-6)
    net.set_state(state)
    np.testing.assert_allclose(net.predict(x), before, atol=1e-6)


def test_training_lowers_the_loss_or_says_it_cannot(case, files) -> None:
    x, y = learnable(case)
    net = load(case, *files)
    if not case.trainable:
        with pytest.raises(ModelFileError, match="epochs=0"):
            net.train_batch(x, y)
        return
    first = [net.train_batch(x[i:i + 16], y[i:i + 16]) for i in range(0, len(x), 16)]
    for _ in range(15):
        last = [net.train_batch(x[i:i + 16], y[i:i + 16]) for i in range(0, len(x), 16)]
    assert np.mean(last) < 0.7 * np.mean(first)


def test_soft_targets_train_as_the_class_codes_or_are_refused(case, files) -> None:
    """mixup's and cutmix's soft targets: one-hot ones step as the class codes do, or the net says it cannot."""
    x, y = learnable(case, 16)
    net = load(case, *files)
    if not case.trainable:
        return
    one_hot = np.eye(CLASSES, dtype=np.float32)[y]
    if not net.takes_soft_targets:
        with pytest.raises(ParameterError, match="trains on class labels only.*drop mixup and cutmix"):
            net.train_batch(x, one_hot)
        return
    np.testing.assert_allclose(net.train_batch(x, one_hot), load(case, *files).train_batch(x, y), rtol=1e-5)


def test_outputs_must_match_the_classes(case, files) -> None:
    advice = "replace_output_layer=True" if case.replaceable else "Use a graph built for them"
    with pytest.raises(ModelFileError, match=rf"{CLASSES} outputs.*{advice}"):
        load(case, *files, classes=CLASSES + 2)


def test_replace_output_layer(case, files) -> None:
    x, _ = learnable(case, 5)
    if not case.replaceable:
        with pytest.raises(ModelFileError, match="replace_output_layer"):
            load(case, *files, classes=CLASSES + 2, replace=True)
        return
    net = load(case, *files, classes=CLASSES + 2, replace=True)
    probabilities = net.predict(x)
    assert probabilities.shape == (5, CLASSES + 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_a_truncated_graph_file_names_the_file(case, files, tmp_path) -> None:
    definition = Path(files[0])
    if definition.is_dir():
        definition = definition / "saved_model.pb"
    data = definition.read_bytes()
    definition.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=definition.name if definition.name != "saved_model.pb" else "saved"):
        load(case, *files)


def test_a_wrong_input_shape_is_refused(case, files) -> None:
    shape = tuple(d * 3 + 1 for d in case.input_shape)
    with pytest.raises(ModelFileError, match="network_(definition|parameters)_file"):
        load(case, *files, input_shape=shape)
