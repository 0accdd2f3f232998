"""Keras `.keras` files as user networks (network='user', backend 'tensorflow').

The file is what `model.save("name.keras")` writes: a zip archive with the model's config and weights.
It is read with safe_mode=True (no Python lambdas, no unregistered custom objects: nothing that runs
code from the file) and compile=False. network_parameters_file may name a `.weights.h5` file from
`model.save_weights()`, loaded over the file's own weights.

The model takes one input and gives one output. A classifier ending in a softmax (a Dense or
Activation with activation='softmax', or a Softmax layer) trains on the logits before it;
replace_output_layer=True swaps the last Dense layer for a new one with one unit per class (the
softmax behind it dropped), keeping every layer before it. layers() lists the model's layers by name (its
convolution layers, Conv2D and the like, are Grad-CAM's suggestions); the state is every model weight under its
Keras path ('conv/kernel', 'bn/moving_mean', ...).
"""
from __future__ import annotations

import math
import warnings
import zipfile

import keras
import tensorflow as tf

from deepwater.errors import ModelFileError, first_lines
from deepwater.runtime.user_graphs import UserGraph, check_outputs, no_replacement
from deepwater.specs import OptimizerSpec, TaskSpec

from .net import tf_device
from .user import EagerUserNet, input_layout

CONVOLUTION = "Conv"  # in the class name of each Keras convolution layer (Conv2D, DepthwiseConv2D, Conv2DTranspose...)


def read_keras(path: str) -> keras.Model:
    """keras.saving.load_model(path, safe_mode=True, compile=False), or a ModelFileError saying why not."""
    name = f"network_definition_file={path!r}"
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{name} is not a .keras zip archive (truncated, or an HDF5 .h5 file renamed?); "
                             "save the model with model.save('name.keras').")
    try:
        model = keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # Keras raises many types for bad archives; each means the same to the user
        raise ModelFileError(f"{name} cannot be loaded as a Keras model with safe_mode=True (which refuses "
                             f"Python lambdas and unregistered custom layers): {first_lines(error)}") from error
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelFileError(f"{name} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; a user "
                             "network takes one input (images or rows) and gives one output.")
    return model


def load_weights_file(model: keras.Model, path: str, definition_file: str) -> None:
    """Load a `.weights.h5` file (model.save_weights) into `model`; a ModelFileError when it does not fit."""
    name = f"network_parameters_file={path!r}"
    if not path.endswith(".weights.h5"):
        raise ModelFileError(f"{name}: a Keras model takes its weights from a .weights.h5 file written by "
                             "model.save_weights('name.weights.h5'), or from the .keras file itself (leave it None).")
    try:
        with warnings.catch_warnings(record=True) as caught:  # Keras warns, and goes on, when it skips layers
            warnings.simplefilter("always")
            model.load_weights(path)
    except Exception as error:  # wrong shapes, other layers, a broken HDF5 file
        raise ModelFileError(f"{name} does not fit the model in {definition_file!r}: "
                             f"{first_lines(error, 2)}") from error
    skipped = [str(w.message) for w in caught if "Skipping" in str(w.message)]
    if skipped:
        raise ModelFileError(f"{name} does not fit the model in {definition_file!r}: {skipped[0][:300]}")


def output_layer(model: keras.Model) -> keras.layers.Layer:
    """The layer (or op) whose output is the model's output: the one Keras records on the output tensor."""
    return model.outputs[0]._keras_history.operation


def _is_softmax(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, keras.layers.Softmax) or \
        getattr(getattr(layer, "activation", None), "__name__", None) == "softmax"


def logits_model(model: keras.Model) -> keras.Model:
    """The model without its final softmax: the layer's activation made linear, or a Softmax layer cut off."""
    last = output_layer(model)
    if not _is_softmax(last):
        return model
    if isinstance(last, (keras.layers.Softmax, keras.layers.Activation)):
        return keras.Model(model.inputs[0], last.input, name=model.name)
    last.activation = keras.activations.linear  # the model was just read from the file: it is ours to change
    return model


def replace_output(model: keras.Model, graph: UserGraph, units: int, seed: int) -> keras.Model:
    """The model with its last Dense layer (softmax already removed) replaced by a new one of `units` units."""
    last = output_layer(model)
    if not isinstance(last, keras.layers.Dense):
        raise no_replacement(graph, f"its output layer {last.name!r} is a {type(last).__name__}, not a Dense layer")
    head = keras.layers.Dense(units, name=last.name, kernel_initializer=keras.initializers.GlorotUniform(seed))
    return keras.Model(model.inputs[0], head(last.input), name=model.name)


def load_keras(graph: UserGraph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int) -> EagerUserNet:
    """A Net from a `.keras` file (and optional `.weights.h5` weights), see the module docstring."""
    path = graph.definition_file
    keras.utils.set_random_seed(seed)
    with tf.device(tf_device(device)):
        model = read_keras(path)
        if graph.parameters_file is not None:
            load_weights_file(model, graph.parameters_file, path)
        channels_first = any(getattr(layer, "data_format", None) == "channels_first" for layer in model.layers)
        layout = input_layout(path, model.inputs[0].shape[1:], graph.input_shape, channels_first)
        check_outputs(graph, math.prod(model.outputs[0].shape[1:]), task)
        if task.is_classification:
            model = logits_model(model)
        if graph.replace_output_layer:
            model = replace_output(model, graph, task.n_outputs, seed)
        else:
            model = keras.Model(model.inputs[0], model.outputs[0], name=model.name)

    def activations(layer: str):
        """The activations of `layer` (its first call's output, for a layer used twice)."""
        sub = keras.Model(model.inputs[0], model.get_layer(layer).output)
        return lambda x: sub(x, training=False)

    def layer_and_logits(layer: str):
        """The activations of `layer` and the model's output, from one run of a model giving both."""
        sub = keras.Model(model.inputs[0], [model.get_layer(layer).output, model.outputs[0]])
        return lambda x: tuple(sub(x, training=False))

    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    return EagerUserNet(
        path, lambda x, training: tf.reshape(model(x, training=training), [tf.shape(x)[0], -1]), layout,
        graph.input_shape, [w.value for w in model.weights], [w.value for w in model.trainable_weights],
        [layer.name for layer in layers], activations, task, optimizer, device, layer_and_logits,
        [layer.name for layer in layers if CONVOLUTION in type(layer).__name__])
