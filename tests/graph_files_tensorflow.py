"""TensorFlow graph files for the user graph conformance suite: a Keras .keras model (images and rows),
a SavedModel directory (model.export) and a TF1 .meta MetaGraph following Deep Water's `meta` contract.

Each reference runs the file in TensorFlow itself: the Keras model on the NHWC batch, the SavedModel's
serving signature, the TF1 graph's `predictions` in a Session on rows flattened channels-last.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from user_graph_cases import GraphCase

IMAGE = (3, 8, 8)     # canonical (C, H, W); the Keras models take (8, 8, 3)
ROWS = (6,)
META_IMAGE = (2, 6, 6)  # the TF1 graph reads x as flat rows (n, 72) and reshapes them to (n, 6, 6, 2)


def _nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def keras_image_model(classes: int):
    """A small functional Keras model: Conv2D, batch norm, pooling and a softmax Dense."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((IMAGE[1], IMAGE[2], IMAGE[0]), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Flatten(name="flat")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="out")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def make_keras(folder: Path, classes: int) -> tuple[str, None]:
    path = folder / "small_cnn.keras"
    keras_image_model(classes).save(path)
    return str(path), None


def make_keras_rows(folder: Path, classes: int) -> tuple[str, None]:
    """A Sequential MLP ending in a Softmax layer, with its weights in a separate .weights.h5 file."""
    import keras

    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input(ROWS), keras.layers.Dense(8, activation="tanh", name="hidden"),
                              keras.layers.Dense(classes, name="logits"), keras.layers.Softmax(name="softmax")])
    path, weights = folder / "mlp.keras", folder / "mlp.weights.h5"
    model.save(path)
    for variable in model.weights:  # the weights file differs from the .keras file's own weights
        variable.assign(variable.numpy() + 0.1)
    model.save_weights(weights)
    return str(path), str(weights)


def keras_reference(definition: str, parameters: str | None, x: np.ndarray) -> np.ndarray:
    import keras

    model = keras.saving.load_model(definition, compile=False)
    if parameters is not None:
        model.load_weights(parameters)
    return np.asarray(model(_nhwc(x), training=False))


def make_saved_model(folder: Path, classes: int) -> tuple[str, None]:
    path = folder / "small_cnn_savedmodel"
    keras_image_model(classes).export(str(path), verbose=False)
    return str(path), None


def saved_model_reference(definition: str, parameters: str | None, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    serve = tf.saved_model.load(definition).signatures["serving_default"]
    return next(iter(serve(image=tf.constant(_nhwc(x))).values())).numpy()


def make_tf1_meta(folder: Path, classes: int) -> tuple[str, str]:
    """A TF1 LeNet-like graph with Deep Water's collections, its weights in a Saver checkpoint."""
    import tensorflow as tf

    v1 = tf.compat.v1
    c, h, w = META_IMAGE
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(5)
        x = v1.placeholder(tf.float32, (None, c * h * w), name="x")
        labels = v1.placeholder(tf.float32, (None, classes), name="labels")
        is_training = v1.placeholder(tf.bool, name="global_is_training")
        batch_size = v1.placeholder(tf.float32, (), name="batch_size")
        learning_rate = v1.placeholder_with_default(0.01, (), name="learning_rate")
        momentum = v1.placeholder_with_default(0.9, (), name="momentum")
        global_step = v1.train.get_or_create_global_step()
        init = v1.glorot_uniform_initializer()
        kernel = v1.get_variable("conv1/weights", (3, 3, c, 4), initializer=init)
        bias = v1.get_variable("conv1/biases", (4,), initializer=v1.constant_initializer(0.1))
        images = tf.reshape(x, (-1, h, w, c), name="reshape1")
        conv = tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(images, kernel, 1, "SAME"), bias), name="conv1/Relu")
        pooled = tf.nn.max_pool2d(conv, 2, 2, "VALID", name="pool1")
        flat = tf.reshape(pooled, (-1, (h // 2) * (w // 2) * 4), name="flatten")
        fc_weights = v1.get_variable("fc/weights", (flat.shape[1], classes), initializer=init)
        fc_biases = v1.get_variable("fc/biases", (classes,), initializer=v1.zeros_initializer())
        logits = tf.nn.bias_add(tf.matmul(flat, fc_weights), fc_biases, name="fc/BiasAdd")
        predictions = tf.nn.softmax(logits, name="Softmax")
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=logits), name="loss")
        train_op = v1.train.MomentumOptimizer(learning_rate, momentum).minimize(loss, global_step)
        init_op = v1.global_variables_initializer()
        meta = {"inputs": {"batch_image_input": x.name, "categorical_labels": labels.name},
                "outputs": {"categorical_logits": logits.name},
                "metrics": {"total_loss": loss.name},
                "parameters": {"global_step": global_step.name, "learning_rate": learning_rate.name,
                               "momentum": momentum.name, "batch_size": batch_size.name,
                               "global_is_training": is_training.name}}
        v1.add_to_collection("meta", json.dumps(meta))
        v1.add_to_collection("train_op", train_op)
        v1.add_to_collection("init_op", init_op)
        v1.add_to_collection("predictions", predictions)
        saver = v1.train.Saver()
        with v1.Session(graph=graph) as session:
            session.run(init_op)
            prefix = saver.save(session, str(folder / "lenet_small.ckpt"))
        path = folder / "lenet_small.meta"
        saver.export_meta_graph(str(path))
    return str(path), prefix  # the prefix saver.save returns (the .index file and the folder work too)


def tf1_meta_reference(definition: str, parameters: str | None, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        saver = tf.compat.v1.train.import_meta_graph(definition, clear_devices=True)
        meta = json.loads(graph.get_collection("meta")[0])
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, parameters.removesuffix(".index"))
            return session.run(graph.get_collection("predictions")[0],
                               {meta["inputs"]["batch_image_input"]: _nhwc(x).reshape(len(x), -1),
                                meta["parameters"]["global_is_training"]: False})


CASES = [
    GraphCase("keras", "tensorflow", "keras", IMAGE, make_keras, keras_reference, trainable=True, replaceable=True),
    GraphCase("keras-rows", "tensorflow", "keras", ROWS, make_keras_rows, keras_reference, trainable=True,
              replaceable=True),
    GraphCase("saved-model", "tensorflow", "tensorflow", IMAGE, make_saved_model, saved_model_reference,
              trainable=True, replaceable=False),
    GraphCase("tf1-meta", "tensorflow", "tensorflow", META_IMAGE, make_tf1_meta, tf1_meta_reference, trainable=True,
              replaceable=False),
]
