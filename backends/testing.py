"""The backend conformance checks, public so that a plug-in backend can run them on itself.

Every backend compiles the same networks.Graph; these checks say that the result is the same network
everywhere: parameter counts, layer names and feature shapes, probabilities, learning, weights moved from
one backend to another giving the same predictions and the same gradients (explanations), and the shared
behaviour of BaseNet (empty batches, unknown layers, weights that do not fit). Each check raises AssertionError
(or the error it expected not being raised) when the backend falls short.

A plug-in runs them all with::

    from deepwater.backends.testing import check_backend
    check_backend(MyBackend())
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from deepwater.errors import ModelFileError, ParameterError
from deepwater.networks import Graph, build_graph, last_conv_layer
from deepwater.specs import OptimizerSpec, TaskSpec

from .base import Backend, Net, class_gradients

# network name -> input shape used by the checks (small, so that they stay quick)
NETWORKS = {
    "mlp": (20,),
    "lenet": (1, 28, 28),
    "alexnet": (3, 16, 16),
    "vgg11": (3, 16, 16),
    "googlenet": (3, 16, 16),
    "inception_bn": (3, 16, 16),
    "resnet18": (3, 16, 16),
    "mobilenet_v2": (3, 32, 32),
    "efficientnet_lite0": (3, 32, 32),
}
CLASSES = 3
CLASSIFY = TaskSpec("classification", CLASSES, "cross_entropy", "multinomial")
REGRESS = TaskSpec("regression", 1, "quadratic", "gaussian")
SGD = OptimizerSpec(learning_rate=0.01, momentum_start=0.9, momentum_stable=0.9, learning_rate_annealing=0.0)


def graph_for(network: str, n_outputs: int = CLASSES) -> Graph:
    """The checks' graph of `network` (one of NETWORKS)."""
    return build_graph(network, NETWORKS[network], n_outputs, {"hidden": [16, 16]})


def build(backend: Backend, network: str, task: TaskSpec = CLASSIFY, optimizer: OptimizerSpec = SGD,
          seed: int = 0) -> Net:
    """`network` built by `backend` on the CPU."""
    return backend.build(graph_for(network, task.n_outputs), task, optimizer, "cpu", seed)


def inputs(network: str, rows: int = 4, seed: int = 1) -> np.ndarray:
    """A float32 batch of `rows` random rows for `network`."""
    return np.random.default_rng(seed).normal(size=(rows, *NETWORKS[network])).astype(np.float32)


# --------------------------------------------------------------------------- the backend object

def check_protocol(backend: Backend) -> None:
    """The object implements the Backend protocol, lists the CPU and explains a missing GPU."""
    assert isinstance(backend, Backend), f"{type(backend).__name__} does not implement deepwater's Backend"
    assert backend.available(), f"backend {backend.name!r} is not available here"
    assert "cpu" in backend.devices()
    assert isinstance(backend.gpu_hint(), str) and backend.gpu_hint()
    assert all(fmt.backend == backend.name for fmt in backend.graph_formats if fmt.backend != "any")


# --------------------------------------------------------------------------- one built net

def check_parameter_count(net: Net, network: str) -> None:
    """The framework counts the graph's parameters."""
    assert net.parameter_count() == graph_for(network).param_count()


def check_layers_and_features(net: Net, network: str) -> None:
    """layers() are the graph's, and features() of a layer has the layer's flattened width."""
    graph = graph_for(network)
    assert net.layers() == graph.layer_names()
    x = inputs(network)
    for layer in ("output", graph.layer_names()[0], *[n for n in graph.layer_names() if n == "global_pool"]):
        assert net.features(x, layer).shape == (len(x), int(np.prod(graph.node(layer).shape)))


def check_probabilities(net: Net, network: str) -> None:
    """predict() gives one float32 probability per class, summing to 1."""
    probabilities = net.predict(inputs(network))
    assert probabilities.shape == (4, CLASSES) and probabilities.dtype == np.float32
    assert (probabilities >= 0).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def check_scoring_in_chunks(net: Net, network: str) -> None:
    """predict() and features() cut into forward passes of scoring_rows rows give what one pass gives."""
    x, layer = inputs(network, rows=7), net.layers()[0]
    whole, features = net.predict(x), net.features(x, layer)
    kept = net.scoring_rows
    try:
        net.scoring_rows = 3
        np.testing.assert_allclose(net.predict(x), whole, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(net.features(x, layer), features, rtol=1e-5, atol=1e-6)
    finally:
        net.scoring_rows = kept


def check_empty_batches(net: Net, network: str) -> None:
    """An empty batch predicts and extracts zero rows of the right width, and trains no step."""
    empty = inputs(network)[:0]
    assert net.predict(empty).shape == (0, CLASSES)
    width = int(np.prod(graph_for(network).node("output").shape))
    assert net.features(empty, "output").shape == (0, width)
    before = net.get_state()
    assert np.isnan(net.train_batch(empty, np.zeros(0, np.int64)))
    after = net.get_state()
    assert all(np.array_equal(before[k], after[k]) for k in before)


def check_unknown_layer(net: Net) -> None:
    """An unknown layer name is a ParameterError that names it and lists the valid names."""
    try:
        net.features(np.zeros((1, 1), np.float32), "no_such_layer")
    except ParameterError as error:
        assert "no_such_layer" in str(error) and net.layers()[0] in str(error)
    else:
        raise AssertionError("features(x, 'no_such_layer') did not raise ParameterError")


def check_state_misfit(net: Net) -> None:
    """Weights with a wrong shape, or an unknown name, are a ModelFileError naming the entry."""
    state = net.get_state()
    name = next(iter(state))
    for bad, named in [({**state, name: np.zeros((1, 2, 3, 4, 5), np.float32)}, name),
                       ({**state, "no_such.weight": np.zeros(1, np.float32)}, "no_such.weight")]:
        try:
            net.set_state(bad)
        except ModelFileError as error:
            assert named in str(error)
        else:
            raise AssertionError(f"set_state() with a bad {named!r} did not raise ModelFileError")


# --------------------------------------------------------------------------- training and state

def check_regression(backend: Backend) -> None:
    """A regression MLP predicts one finite value per row."""
    values = build(backend, "mlp", REGRESS).predict(inputs("mlp"))
    assert values.shape == (4, 1) and np.isfinite(values).all()


def check_training_lowers_loss(backend: Backend, network: str) -> None:
    """Ten steps on one batch lower its training loss."""
    x = inputs(network, rows=8, seed=2)
    y = np.random.default_rng(0).integers(0, CLASSES, size=len(x)).astype(np.int64)
    net = build(backend, network, optimizer=OptimizerSpec(learning_rate=0.01, learning_rate_annealing=0.0))
    losses = [net.train_batch(x, y) for _ in range(10)]
    assert np.mean(losses[-3:]) < losses[0], losses


def check_weights_move(source: Backend, target: Net, network: str) -> None:
    """Weights trained a little on `source` give the same predictions when set on `target`."""
    exporter = build(source, network, seed=3)
    x = inputs(network, seed=5)
    y = np.arange(len(x)) % CLASSES
    for _ in range(2):  # a few steps move batch-norm statistics away from their initial values too
        exporter.train_batch(x, y)
    target.set_state(exporter.get_state())
    np.testing.assert_allclose(target.predict(x), exporter.predict(x), atol=1e-4, rtol=1e-4)


RAMPED_SGD = OptimizerSpec(learning_rate=0.01, learning_rate_annealing=0.05, momentum_start=0.5, momentum_ramp=12,
                           momentum_stable=0.9)
ADADELTA = OptimizerSpec(adaptive_rate=True)
ADAM = OptimizerSpec(optimizer="adam", learning_rate=0.01)
# AdamW at a cosine rate over a 40-row run with a 6-row warm-up: the checks' 3 + 2 steps of 4 rows cross both
ADAMW = OptimizerSpec(optimizer="adamw", learning_rate=0.01, weight_decay=0.05, lr_schedule="cosine",
                      total_samples=40, warmup_samples=6)
# name -> (task, optimiser) whose steps every backend takes as torch does (check_steps_match)
TRAINING_RULES = {
    "adam": (CLASSIFY, ADAM),
    "adamw_cosine_warmup": (CLASSIFY, ADAMW),
    "sgd_one_cycle": (CLASSIFY, replace(RAMPED_SGD, lr_schedule="one_cycle", total_samples=24)),
    "sgd_step": (CLASSIFY, replace(SGD, lr_schedule="step", step_samples=8, step_gamma=0.5)),
    "label_smoothing": (replace(CLASSIFY, label_smoothing=0.2), ADAM),
}


def deterministic(network: str) -> bool:
    """True when `network` trains without dropout, so that two nets given one state take equal steps."""
    return all(node.op != "dropout" for node in graph_for(network).nodes)


def check_training_state_continues(backend: Backend, network: str, optimizer: OptimizerSpec = RAMPED_SGD) -> None:
    """A fresh net given another's weights and training_state() takes the very steps the other takes next
    (the optimiser's buffers and the samples that drive the schedule carry over). Networks with dropout
    draw their masks from the framework's generator, which is not part of the state: for them the check
    asserts that training continues from the same samples, not equal weights."""
    x = inputs(network, rows=4, seed=6)
    y = np.arange(len(x)) % CLASSES
    trained, fresh = build(backend, network, optimizer=optimizer, seed=1), build(backend, network, optimizer=optimizer,
                                                                                seed=2)
    for _ in range(3):
        trained.train_batch(x, y)
    assert int(trained.training_state()["samples"]) == 3 * len(x)
    fresh.set_state(trained.get_state())
    fresh.set_training_state(trained.training_state())
    for _ in range(2):
        trained.train_batch(x, y)
        fresh.train_batch(x, y)
    after, continued = trained.get_state(), fresh.get_state()
    for name in after if deterministic(network) else ():
        np.testing.assert_allclose(continued[name], after[name], atol=1e-6, rtol=1e-6, err_msg=name)
    assert int(fresh.training_state()["samples"]) == 5 * len(x)


def check_steps_match(backend: Backend, reference: Backend, rule: str, network: str = "mlp") -> None:
    """From the reference's weights, six steps on the same batches of TRAINING_RULES[`rule`] (an optimiser, a
    rate schedule, a loss) give the losses and weights the `reference` backend's net gives (to 1e-5)."""
    task, optimizer = TRAINING_RULES[rule]
    expected, net = build(reference, network, task, optimizer, seed=1), build(backend, network, task, optimizer)
    net.set_state(expected.get_state())
    for step in range(6):
        x = inputs(network, rows=4, seed=10 + step)
        y = np.random.default_rng(step).integers(0, CLASSES, size=len(x))
        np.testing.assert_allclose(net.train_batch(x, y), expected.train_batch(x, y), atol=1e-5, rtol=1e-5)
    mine, theirs = net.get_state(), expected.get_state()
    for name in theirs:
        np.testing.assert_allclose(mine[name], theirs[name], atol=1e-5, rtol=1e-5, err_msg=f"{rule}: {name}")


def check_training_state_misfit(backend: Backend) -> None:
    """An ADADELTA net refuses the training state of a momentum net: a ModelFileError, not a wrong step."""
    adadelta = build(backend, "mlp", optimizer=ADADELTA)
    try:
        adadelta.set_training_state(build(backend, "mlp").training_state(), "the checkpoint")
    except ModelFileError as error:
        assert "the checkpoint" in str(error)
    else:
        raise AssertionError("set_training_state() with another optimiser's state did not raise ModelFileError")


def check_mixed_precision(backend: Backend, network: str, precision: str) -> None:
    """A net either trains in `precision` (bfloat16 or float16) with float32 weights, optimiser state and
    predictions, or refuses it with a ParameterError naming the parameter; 'auto' is float32 on the CPU."""
    net = build(backend, network, optimizer=OptimizerSpec(learning_rate=0.01, learning_rate_annealing=0.0))
    net.configure_steps("auto")
    assert net.precision == "float32"
    if precision not in net.precisions():
        try:
            net.configure_steps(precision)
        except ParameterError as error:
            assert f"precision={precision!r}" in str(error) and "precision='auto'" in str(error), str(error)
            return
        raise AssertionError(f"configure_steps({precision!r}) outside precisions() did not raise ParameterError")
    net.configure_steps(precision)
    assert net.precision == precision
    x = inputs(network, rows=8, seed=2)
    y = np.random.default_rng(0).integers(0, CLASSES, size=len(x)).astype(np.int64)
    losses = [net.train_batch(x, y) for _ in range(10)]
    assert np.isfinite(losses).all() and np.mean(losses[-3:]) < losses[0], losses
    arrays = {**net.get_state(), **{k: v for k, v in net.training_state().items() if k != "samples"}}
    assert {str(v.dtype) for v in arrays.values()} == {"float32"}, {k: v.dtype for k, v in arrays.items()}
    probabilities = net.predict(x)
    assert probabilities.dtype == np.float32 and np.isfinite(probabilities).all()


def explained_layer(network: str) -> str | None:
    """The layer Grad-CAM reads by default in `network` (its last convolutional map); None for an MLP."""
    graph = graph_for(network)
    return last_conv_layer(graph) if any(node.op == "conv" for node in graph.nodes) else None


def check_class_gradients(net: Net, network: str, reference: Net | None = None) -> None:
    """class_gradients() leaves the weights and batch-norm statistics as they were, gives a layer's values and
    gradients shaped as the layer (channels-first), input gradients that agree with finite differences of the
    logits, zero rows for an empty batch, and, given a `reference` net of another backend, its very values and
    gradients (to 1e-3) once it holds the reference's weights."""
    x, target = inputs(network, rows=3, seed=7), np.array([0, 2, 1])
    layer = explained_layer(network)
    before = net.get_state()
    values, gradients = class_gradients(net, x, layer, target)
    after = net.get_state()
    assert all(np.array_equal(before[k], after[k]) for k in before), "class_gradients() changed the net's state"
    shape = (len(x), *graph_for(network).node(layer or "input").shape)
    assert values.shape == gradients.shape == shape and gradients.dtype == np.float32, (values.shape, shape)
    _, input_gradients = class_gradients(net, x, None, target)
    # along each row's own gradient, the logit changes by the gradient's norm per unit step
    norms = np.sqrt((input_gradients.reshape(len(x), -1).astype(np.float64) ** 2).sum(axis=1))
    direction = input_gradients / np.maximum(norms, 1e-12).reshape((-1,) + (1,) * (x.ndim - 1)).astype(np.float32)
    step = 1e-2
    picked = [net.features(x + sign * step * direction, "output")[np.arange(len(x)), target] for sign in (1, -1)]
    np.testing.assert_allclose((picked[0] - picked[1]) / (2 * step), norms, rtol=5e-2, atol=1e-4)  # float32 logits
    empty = class_gradients(net, x[:0], layer, target[:0])
    assert empty[0].shape == empty[1].shape == (0, *shape[1:])
    if reference is not None:
        net.set_state(reference.get_state())
        for chosen in (layer, None):
            theirs = class_gradients(reference, x, chosen, target)
            for mine, expected in zip(class_gradients(net, x, chosen, target), theirs):
                np.testing.assert_allclose(mine, expected, atol=1e-3 * max(1.0, np.abs(expected).max()), rtol=1e-3,
                                           err_msg=f"layer {chosen!r}")


def check_backend(backend: Backend, networks: tuple[str, ...] = tuple(NETWORKS)) -> None:
    """Every check, on `backend` alone (a plug-in's conformance run)."""
    check_protocol(backend)
    check_regression(backend)
    check_training_state_misfit(backend)
    for network in networks:
        net = build(backend, network)
        check_parameter_count(net, network)
        check_layers_and_features(net, network)
        check_probabilities(net, network)
        check_scoring_in_chunks(net, network)
        check_empty_batches(net, network)
        check_unknown_layer(net)
        check_state_misfit(net)
        check_weights_move(backend, net, network)
        check_training_lowers_loss(backend, network)
        check_training_state_continues(backend, network)
        check_class_gradients(net, network)
    for optimizer in (ADADELTA, ADAM, ADAMW):
        check_training_state_continues(backend, "mlp", optimizer)
    for precision in ("bfloat16", "float16"):
        check_mixed_precision(backend, "mlp", precision)
