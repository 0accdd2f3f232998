"""Hand-written training loops, one per framework: what a user would write without deepwater.

Each loop trains on in-memory uint8 images (N, C, H, W), scaled to [0, 1] per batch, with SGD
(momentum 0.9, Nesterov, constant rate), shuffling every epoch, and returns images/s of the
timed epochs (after one warm-up epoch that pays for graph building and compilation).
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

LEARNING_RATE, MOMENTUM = 0.01, 0.9


def _epochs(n: int, batch: int, epochs: int, rng: np.random.Generator):
    for _ in range(epochs):
        order = rng.permutation(n)
        yield [order[i:i + batch] for i in range(0, n, batch)]


def _timed_epochs(step: Callable[[np.ndarray], None], n: int, batch: int, epochs: int,
                  finish: Callable[[], None] = lambda: None) -> float:
    """Run one warm-up epoch, then `epochs` timed ones; images per second of the timed ones. `finish` waits for
    work still queued on a device (a GPU loop that does not read every loss) before each clock reading."""
    rng = np.random.default_rng(0)
    for rows in next(_epochs(n, batch, 1, rng)):
        step(rows)
    finish()
    start = time.perf_counter()
    for epoch in _epochs(n, batch, epochs, rng):
        for rows in epoch:
            step(rows)
    finish()
    return n * epochs / (time.perf_counter() - start)


def torch_lenet(channels: int, classes: int):
    """LeNet written directly with torch.nn (Deep Water's layout)."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(channels, 20, 5), nn.Tanh(), nn.MaxPool2d(2, 2), nn.Conv2d(20, 50, 5), nn.Tanh(),
                         nn.MaxPool2d(2, 2), nn.Flatten(), nn.Linear(800, 500), nn.Tanh(), nn.Linear(500, classes))


def torch_loop(model, images: np.ndarray, labels: np.ndarray, batch: int, epochs: int) -> float:
    import torch
    from torch.nn import functional as F

    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM, nesterov=True)
    model.train()

    def step(rows: np.ndarray) -> None:
        x = torch.from_numpy(images[rows].astype(np.float32) / 255.0)
        y = torch.from_numpy(labels[rows])
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        loss.item()

    return _timed_epochs(step, len(images), batch, epochs)


def torch_mlp(inputs: int, classes: int, hidden: tuple[int, ...] = (200, 200)):
    """The booklet's MLP written directly with torch.nn (ReLU)."""
    from torch import nn

    layers, width = [nn.Flatten()], inputs
    for units in hidden:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    return nn.Sequential(*layers, nn.Linear(width, classes))


def keras_mlp(shape: tuple[int, ...], classes: int, hidden: tuple[int, ...] = (200, 200)):
    """The booklet's MLP written directly with Keras layers."""
    import keras

    return keras.Sequential([keras.Input(shape), keras.layers.Flatten(),
                             *[keras.layers.Dense(units, activation="relu") for units in hidden],
                             keras.layers.Dense(classes)])


def gluon_mlp(classes: int, hidden: tuple[int, ...] = (200, 200)):
    """The booklet's MLP written directly with MXNet Gluon, hybridized."""
    from deepwater.backends.mxnet.net import mx

    net = mx.gluon.nn.HybridSequential()
    for units in hidden:
        net.add(mx.gluon.nn.Dense(units, activation="relu"))
    net.add(mx.gluon.nn.Dense(classes))
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def torch_h2o_sgd(model, x: np.ndarray, targets: np.ndarray, loss: Callable, epochs: int, batch: int, seed: int,
                  rate: float, annealing: float, momentum: float, clip: float) -> float:
    """Train `model` on the float32 rows `x` with H2O's SGD as a torch user writes it (rate / (1 + annealing *
    samples), Nesterov momentum, element-wise gradient clipping), `loss(output, target batch)`; the loop's seconds."""
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=rate, momentum=momentum, nesterov=True)
    rng, seen = np.random.default_rng(seed), 0
    start = time.perf_counter()
    for epoch in _epochs(len(x), batch, epochs, rng):
        for rows in epoch:
            xb, yb = torch.from_numpy(x[rows]), torch.from_numpy(targets[rows])
            optimizer.param_groups[0]["lr"] = rate / (1 + annealing * seen)
            optimizer.zero_grad(set_to_none=True)
            value = loss(model(xb), yb)
            value.backward()
            torch.nn.utils.clip_grad_value_(model.parameters(), clip)
            optimizer.step()
            value.item()
            seen += len(rows)
    return time.perf_counter() - start


def keras_lenet(channels: int, classes: int):
    """LeNet written directly with Keras layers, channels-last as TensorFlow prefers."""
    import keras

    return keras.Sequential([
        keras.Input((28, 28, channels)), keras.layers.Conv2D(20, 5, activation="tanh"), keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(50, 5, activation="tanh"), keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
        keras.layers.Dense(500, activation="tanh"), keras.layers.Dense(classes)])


def tf_loop(model, images: np.ndarray, labels: np.ndarray, batch: int, epochs: int, channels_last: bool) -> float:
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.SGD(LEARNING_RATE, momentum=MOMENTUM, nesterov=True)
    data = np.ascontiguousarray(images.transpose(0, 2, 3, 1)) if channels_last else images
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(reduce_retracing=True)
    def train(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    def step(rows: np.ndarray) -> None:
        float(train(tf.convert_to_tensor(data[rows].astype(np.float32) / 255.0), tf.convert_to_tensor(labels[rows])))

    with tf.device("/CPU:0"):
        return _timed_epochs(step, len(images), batch, epochs)


def gluon_lenet(classes: int):
    """LeNet written directly with MXNet Gluon, hybridized."""
    from deepwater.backends.mxnet.net import mx  # the shim that lets MXNet 1.9 import under numpy 1.24+

    nn = mx.gluon.nn
    net = nn.HybridSequential()
    net.add(nn.Conv2D(20, 5, activation="tanh"), nn.MaxPool2D(2, 2), nn.Conv2D(50, 5, activation="tanh"),
            nn.MaxPool2D(2, 2), nn.Flatten(), nn.Dense(500, activation="tanh"), nn.Dense(classes))
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def gluon_loop(net, images: np.ndarray, labels: np.ndarray, batch: int, epochs: int) -> float:
    from deepwater.backends.mxnet.net import mx

    trainer = mx.gluon.Trainer(net.collect_params(), "nag", {"learning_rate": LEARNING_RATE, "momentum": MOMENTUM})
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()

    def step(rows: np.ndarray) -> None:
        x = mx.nd.array(images[rows].astype(np.float32) / 255.0)
        y = mx.nd.array(labels[rows])
        with mx.autograd.record():
            loss = loss_fn(net(x), y).mean()
        loss.backward()
        trainer.step(1)
        loss.asscalar()

    return _timed_epochs(step, len(images), batch, epochs)
