"""Where training starts: a new model's encoders, task and net, or a checkpoint's net continued.

settle_parameters() applies the checks that span parameters; new_start() and continue_start() build the
TrainingStart that the fit step (fitting.py) trains.
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from deepwater import networks
from deepwater.data.encoders import DatasetEncoder, Response
from deepwater.data.frames import detect_problem_type
from deepwater.data.images import ImageShape, load_mean_image
from deepwater.data.inputs import DatasetInputs, ImageInputs, PixelInputs, image_reader
from deepwater.data.training_data import TrainingData
from deepwater.errors import ParameterError, warn_user
from deepwater.model.pretrained_networks import PretrainedNetwork, pretrained_network
from deepwater.model.recipe import check_zoo_choices
from deepwater.runtime.build import build_net, draw_seed
from deepwater.runtime.user_graphs import ANY_BACKEND, describe_formats, output_labels, training_refused, user_graph
from deepwater.runtime.weight_files import OUTPUT_LAYER, load_network_weights
from deepwater.specs import (
    AUTOENCODER,
    CLASSIFICATION,
    RUN_LONG_SCHEDULES,
    OptimizerSpec,
    TaskSpec,
    UserGraph,
    autoencoder_task,
    smoothed,
    task_from_params,
)
from deepwater.training import autoencoder as unsupervised
from deepwater.training.fitted import FittedModel
from deepwater.training.parameters import PARAMETERS
from deepwater.training.pretraining import check_pretrained, encoder_state
from deepwater.training.trainer import TrainingOutcome

USER = "user"  # network="user": the graph comes from network_definition_file


def is_user(network: str) -> bool:
    """True for network='user' (any case): the net is the user's graph file."""
    return network.lower() == USER


def settle_parameters(values: dict[str, Any]) -> dict[str, Any]:
    """`values` after the checks that span parameters, with Deep Water's network='auto' -> 'user' for a graph
    file and a model_id generated when none is given."""
    network, definition = values["network"], values["network_definition_file"]
    if definition and network == "auto":
        network = USER
    if definition and not is_user(network):
        raise ParameterError(f"network={network!r} is a built-in network, so network_definition_file={definition!r} "
                             "cannot be used with it. Pass network='user' (or 'auto') to train the graph file, or "
                             "drop network_definition_file to train the built-in network.")
    if is_user(network) and not definition:
        raise ParameterError("network='user' needs network_definition_file: pass the path of your graph file "
                             f"({describe_formats()}), optionally with network_parameters_file for its "
                             "weights; or pick a built-in network.")
    if math.isinf(values["epochs"]) and not values["max_runtime_secs"]:
        raise ParameterError("epochs=inf trains until max_runtime_secs, but max_runtime_secs=0 (no limit). Pass "
                             "max_runtime_secs > 0 in the same call, or a finite number of epochs.")
    check_optimiser(values)
    check_layer_choices(values, network)
    check_zoo_choices(values)
    return {**values, "network": network,
            "model_id": values["model_id"] or f"DeepWater_model_{uuid.uuid4().hex[:8]}"}


def check_optimiser(values: dict[str, Any]) -> None:
    """The optimiser's parameters fit together (OptimizerSpec's own checks), a schedule that runs to the end of
    the run has an end (finite epochs), and label smoothing has classes to smooth (not an autoencoder)."""
    OptimizerSpec.from_params(values)
    schedule = values["lr_schedule"]
    if schedule in RUN_LONG_SCHEDULES and math.isinf(values["epochs"]):
        raise ParameterError(f"lr_schedule={schedule!r} follows the run to its end, but epochs=inf has none; pass "
                             "a finite number of epochs, or lr_schedule='h2o', 'constant' or 'step'.")
    if values["label_smoothing"] and values["autoencoder"]:
        raise ParameterError(f"label_smoothing={values['label_smoothing']!r} smooths class labels, but "
                             "autoencoder=True has none; drop label_smoothing (or pass 0).")


def check_layer_choices(values: dict[str, Any], network: str) -> None:
    """freeze and layer_lr_decay pick layers of a built-in network's blocks: a user graph has no blocks that
    deepwater builds, so they are refused there; freeze trains on one device (replicas step every layer)."""
    chosen = [f"{name}={values[name]!r}" for name in ("freeze", "layer_lr_decay")
              if values[name] != PARAMETERS[name].default]
    if chosen and is_user(network):
        raise ParameterError(f"{' and '.join(chosen)} work on a built-in network's layers (blocks of the graph "
                             "deepwater builds), not on a user graph file, whose layers deepwater does not order; "
                             "drop them, or fine-tune a built-in or zoo network.")
    if values["freeze"] is not None and (len(values["device_id"]) > 1 or values["num_workers"]):
        raise ParameterError(f"freeze={values['freeze']!r} trains on one device for now: the data-parallel replicas "
                             f"(device_id={values['device_id']}, num_workers={values['num_workers']}) step every "
                             "layer. Pass one device_id and num_workers=0, or drop freeze.")


@dataclass
class TrainingStart:
    """What training starts from: a new model's net, or a checkpoint's net continued."""

    backend: str
    device: str
    network: str
    graph: UserGraph | None
    net: Any
    task: TaskSpec
    response: Response
    inputs: DatasetInputs | ImageInputs
    problem_type: str
    seed: int

    scores_only: bool = False  # a graph scored with its own outputs: no training, no metrics

    def fitted(self, predictors: list[str], outcome: TrainingOutcome, params: dict[str, Any],
               given: frozenset[str]) -> FittedModel:
        """The trained model's parts once `outcome` is the run (or the run so far) with `params`."""
        return FittedModel(self.backend, self.device, self.network, self.net, self.task, self.response, self.inputs,
                           predictors, self.problem_type, self.seed, outcome, outcome.final_metrics.get("training"),
                           outcome.final_metrics.get("validation"), self.graph, params=dict(params), given=given)

    def with_graph_outputs(self) -> TrainingStart:
        """This start, scoring with the user graph's own classes when they are not the response's (epochs=0):
        predict names them by output_labels(), and there is nothing to train or score against."""
        outputs = self.net.predict(np.zeros((1,) + self.inputs.input_shape, dtype=np.float32)).shape[1]
        if outputs == self.task.n_outputs:
            return self
        task = TaskSpec(CLASSIFICATION, outputs, "cross_entropy", "bernoulli" if outputs == 2 else "multinomial")
        self.net.task = task
        return replace(self, task=task, response=Response(self.response.name, CLASSIFICATION,
                                                          output_labels(self.graph, outputs)), scores_only=True)


def new_start(p: dict[str, Any], data: TrainingData, response: Response | None, pretrained: Any | None,
              given: frozenset[str] = frozenset()) -> TrainingStart:
    """A new model's encoders, task and untrained net (or the net of `p`'s weights file, of the zoo's weights with
    pretrained=True, or with the encoder of the `pretrained` autoencoder model); `response` was fitted on the
    training frame (None: an autoencoder); `given` names the parameters the user gave."""
    train, predictors = data.frame, data.predictors
    problem_type = detect_problem_type(train, predictors, p["problem_type"])
    check_columns_used(p, data, problem_type, given)
    zoo = pretrained_network(p["network"]) if p["pretrained"] else None  # never an autoencoder (settle_parameters)
    if p["autoencoder"]:
        network = unsupervised.network_for(p["network"], problem_type == "image")
        inputs = make_inputs(p, train, predictors, problem_type, network)
        task, response = autoencoder_task(math.prod(inputs.input_shape)), Response(None, AUTOENCODER)
    else:
        task = task_from_params(response.kind, response.n_classes, p["distribution"], p["loss"],
                                p["label_smoothing"])
        network = USER if is_user(p["network"]) else zoo.architecture if zoo is not None else \
            networks.resolve_auto(p["network"], problem_type == "image")
        if pretrained is not None:  # its encoder too: the weights see the inputs they were trained on
            check_pretrained(pretrained, predictors, network, p)
        inputs = pretrained._fitted.inputs if pretrained is not None else \
            zoo_inputs(p, predictors, problem_type, zoo) if zoo is not None else \
            make_inputs(p, train, predictors, problem_type, network)
    graph = user_graph_for(p, inputs.input_shape, task.is_classification) if network == USER else None
    seed = draw_seed(p)
    backend, device, net = build_net(network, graph, p["backend"], inputs.input_shape, task, p, seed,
                                     rows=len(train))
    if graph is None and p["network_parameters_file"]:
        load_network_weights(net, p["network_parameters_file"], p["replace_output_layer"])
    if pretrained is not None:
        net.set_state({**net.get_state(), **encoder_state(pretrained, len(p["hidden"]))},
                      f"pretrained_autoencoder={pretrained.model_id!r}")
    if zoo is not None:
        load_zoo_weights(net, zoo, response)
    if graph is None and p["epochs"] == 0 and not p["network_parameters_file"] and pretrained is None and zoo is None:
        warn_user(f"epochs=0 and no network_parameters_file: network={network!r} keeps the random weights it "
                  f"was initialised with (seed {seed}), so its predictions mean nothing; train it "
                  "(epochs > 0) or pass its weights.", UserWarning)
    start = TrainingStart(backend.name, device, network, graph, net, task, response, inputs, problem_type, seed)
    return start.with_graph_outputs() if graph is not None and graph.outputs_stand else start


def zoo_inputs(p: dict[str, Any], predictors: list[str], problem_type: str, zoo: PretrainedNetwork) -> ImageInputs:
    """The image column read as the zoo model `zoo` was trained: its normalisation, at p's image_shape and
    channels (the zoo's unless given); a ParameterError for a dataset, which has no images to fine-tune on."""
    if problem_type != "image":
        raise ParameterError(f"pretrained=True fine-tunes the zoo's {zoo.name!r} on images, but x={predictors[:5]} "
                             "is read as a dataset; pass x=[<a column of image URIs>] (problem_type='image'), or "
                             "pretrained=False to train a network on these columns.")
    height, width = p["image_shape"] or zoo.image_shape
    shape = ImageShape(height, width, p["channels"], p["image_resize"])
    return ImageInputs(predictors[0], shape, zoo.offset, image_reader(shape, p), zoo.scale)


def load_zoo_weights(net: Any, zoo: PretrainedNetwork, response: Response) -> None:
    """The zoo model's weights into `net`; its output layer too where the response's classes are the zoo's (in
    order), else the net keeps its own new output layer (replace_output_layer's rule)."""
    state, classes = zoo.load()
    if response.kind != CLASSIFICATION or list(response.classes) != list(classes):
        state = {name: value for name, value in state.items() if name.partition(".")[0] != OUTPUT_LAYER}
    net.set_state({**net.get_state(), **state}, f"pretrained=True (the zoo's {zoo.name!r})")


def check_columns_used(p: dict[str, Any], data: TrainingData, problem_type: str, given: frozenset[str]) -> None:
    """Nothing given is ignored in silence: an image model reads one URI column (more in x is an error; more by
    x=None a warning), and image settings given for a dataset a built-in network reads as columns warn."""
    predictors = data.predictors
    if problem_type == "image" and len(predictors) > 1:
        extra = predictors[1:]
        if data.x_given:
            raise ParameterError(f"x={predictors[:6]}: an image model reads one column of image URIs, "
                                 f"{predictors[0]!r}, and cannot use {extra[:5]} too. Pass x=[{predictors[0]!r}], or "
                                 "train a dataset model on the other columns.")
        warn_user(f"x=None: an image model reads one column of image URIs, {predictors[0]!r}; the frame's other "
                  f"columns {extra[:5]} are not used. Pass x=[{predictors[0]!r}] to say so.", UserWarning)
    network = networks.resolve_auto(p["network"], problem_type == "image") if not is_user(p["network"]) else USER
    ignored = sorted(name for name in given & {"image_shape", "channels", "mean_image_file"}
                     if p[name] != PARAMETERS[name].default)  # a fold model is given all its main model's values
    if problem_type == "dataset" and network != USER and not networks.get(network).needs_image and ignored:
        warn_user(f"{', '.join(ignored)} given, but network={network!r} reads this frame's columns as a dataset, "
                  f"not as images, so {'it is' if len(ignored) == 1 else 'they are'} not used; drop "
                  f"{'it' if len(ignored) == 1 else 'them'}, or train an image network (network='lenet', ...) or "
                  "on a column of image URIs.", UserWarning)


def continue_start(p: dict[str, Any], previous_params: dict[str, Any], f: FittedModel, checkpoint_id: str,
                   data: TrainingData) -> TrainingStart:
    """A restart's net: the checkpoint's (`f`) network, encoders, weights and optimiser state, on a fresh net
    (the checkpoint model itself is left as it was), built with this restart's parameters `p`."""
    inputs = f.inputs
    if f.problem_type == "image" and p["image_shape"] != previous_params["image_shape"]:  # the zoo's normalisation
        inputs = zoo_inputs(p, data.predictors, "image", pretrained_network(p["network"])) if p["pretrained"] else \
            make_inputs(p, data.frame, data.predictors, "image", f.network)
    graph = None if f.graph is None else replace(f.graph, parameters_file=None, input_shape=inputs.input_shape)
    seed = draw_seed(p)
    task = smoothed(f.task, p["label_smoothing"])
    backend, device, net = build_net(f.network, graph, f.backend, inputs.input_shape, task, p, seed,
                                     rows=len(data.frame))
    source = f"checkpoint={checkpoint_id!r}"
    net.set_state(f.net.get_state(), source)
    net.set_training_state(f.net.training_state(), source)
    return TrainingStart(backend.name, device, f.network, graph, net, task, f.response, inputs, f.problem_type,
                         seed)


def user_graph_for(p: dict[str, Any], input_shape: tuple[int, ...], classification: bool) -> UserGraph:
    """The user's graph file, its format detected; ONNX graphs only score, so they need epochs=0. A classifier
    scored with epochs=0 keeps its own outputs (Deep Water's booklet scores ImageNet graphs on any frame)."""
    graph = user_graph(p["network_definition_file"], p["network_parameters_file"], input_shape,
                       p["replace_output_layer"])
    if graph.format.backend == ANY_BACKEND and p["epochs"] > 0:
        raise training_refused(graph.definition_file)
    return replace(graph, outputs_stand=classification and p["epochs"] == 0 and not p["replace_output_layer"])


def make_inputs(p: dict[str, Any], frame: Any, predictors: list[str], problem_type: str,
                network: str) -> DatasetInputs | ImageInputs:
    """Columns and their encoders, a built-in image network's pixel columns, or an image URI column."""
    # pixel columns as images: for a built-in image network, or for a user graph given image_shape (H2O's rule)
    pixels = problem_type == "dataset" and (networks.get(network).needs_image if network != USER else
                                            bool(p["image_shape"]))
    if problem_type == "dataset" and not pixels:
        return DatasetInputs(DatasetEncoder.fit(frame, predictors, p["standardize"], p["ignore_const_cols"],
                                                p["categorical_encoding"], p["max_categorical_features"]))
    default = (None if network == USER else networks.get(network).default_image_shape) or (224, 224)
    height, width = p["image_shape"] or default
    shape = ImageShape(height, width, p["channels"], p["image_resize"])
    if pixels:  # an image network on pixel columns (Deep Water's booklet, section 10)
        return PixelInputs.fit(frame, predictors, shape, p["standardize"])
    mean = None if p["mean_image_file"] is None else load_mean_image(p["mean_image_file"], shape)
    return ImageInputs(predictors[0], shape, mean, image_reader(shape, p))
