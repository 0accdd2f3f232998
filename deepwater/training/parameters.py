"""The one table of estimator parameters: H2O Deep Water's names, defaults and checks.

Every parameter the estimator accepts is a row of PARAMETERS. A row says its default, how a
value is checked, and whether a checkpoint restart may change it (H2O Deep Water's
DeepWaterParameters.Sanity; training/restart.py reads it).
"""
from __future__ import annotations

import inspect
import math
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepwater import networks
from deepwater.backends.base import PRECISIONS
from deepwater.data import augment
from deepwater.data.encoders import CATEGORICAL_ENCODINGS
from deepwater.data.stores import check_storage_options
from deepwater.errors import ParameterError, close_matches
from deepwater.runtime import registry
from deepwater.specs import LR_SCHEDULES, OPTIMIZERS

Check = Callable[[str, Any], Any]  # returns the normalised value or raises ParameterError

ACTIVATIONS = ("Rectifier", "Tanh", "Maxout", "RectifierWithDropout", "TanhWithDropout", "MaxoutWithDropout")
DISTRIBUTIONS = ("AUTO", "multinomial", "bernoulli", "gaussian", "laplace", "huber")
LOSSES = ("Automatic", "CrossEntropy", "Quadratic", "Absolute", "Huber")
STOPPING_METRICS = (
    "AUTO", "logloss", "misclassification", "mean_per_class_error", "MSE", "RMSE", "AUC", "deviance",
)
PROBLEM_TYPES = ("auto", "image", "dataset")
FOLD_ASSIGNMENTS = ("AUTO", "Random", "Modulo", "Stratified")
BAD_IMAGE_POLICIES = ("error", "skip")
MAX_MINI_BATCH = 2**31 - 1  # H2O's mini_batch_size is a Java int; frameworks count a batch's rows in 32 bits
TTA_VIEWS = ("flip", "crops")  # tta: the mirrored image; 4 corner and a centre crop of a larger resize
MAX_EPOCHS = 1e9  # finite passes beyond this never finish; float('inf') asks to train until stopped
SECRET_PARAMETERS = ("storage_options",)  # may hold credentials: never saved with a model, logged or shown


def _fail(name: str, value: Any, expected: str, hint: str = "") -> ParameterError:
    return ParameterError(f"{name}={value!r} is not allowed: {expected}.{hint}")


def did_you_mean(value: Any, allowed: Iterable[Any]) -> str:
    """' Did you mean ...?' naming the options of `allowed` that look like `value` (ignoring case), or ''."""
    options = {str(option).lower(): option for option in allowed}
    close = close_matches(str(value).lower(), options)
    return f" Did you mean {' or '.join(repr(options[c]) for c in close)}?" if close else ""


def one_of(*allowed: Any) -> Check:
    """Accept exactly one of `allowed` (strings compare case-insensitively, the canonical spelling is kept)."""

    def check(name: str, value: Any) -> Any:
        for option in allowed:
            if value == option or (isinstance(value, str) and isinstance(option, str) and value.lower() == option.lower()):
                return option
        raise _fail(name, value, "use one of " + ", ".join(repr(a) for a in allowed),
                    did_you_mean(value, allowed) if isinstance(value, str) else "")

    return check


def number(low: float | None = None, high: float | None = None, *, integer: bool = False,
           low_open: bool = False, high_open: bool = False, allow_none: bool = False) -> Check:
    """Accept a real (or integer) number inside [low, high]; open ends when asked."""

    def describe() -> str:
        kind = "an integer" if integer else "a number"
        parts = []
        if low is not None:
            parts.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            parts.append(f"{'<' if high_open else '<='} {high}")
        text = f"{kind} {' and '.join(parts)}".strip()
        return text + (" (or None)" if allow_none else "")

    def check(name: str, value: Any) -> Any:
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (isinstance(value, float) and math.isnan(value)):
            raise _fail(name, value, f"use {describe()}")
        if integer and not float(value).is_integer():
            raise _fail(name, value, f"use {describe()}")
        if low is not None and (value < low or (low_open and value == low)):
            raise _fail(name, value, f"use {describe()}")
        if high is not None and (value > high or (high_open and value == high)):
            raise _fail(name, value, f"use {describe()}")
        return int(value) if integer else float(value)

    return check


def capped(check: Check, high: float, reason: str) -> Check:
    """`check`, then refuse a finite value above `high`, the message saying `reason`."""

    def check_capped(name: str, value: Any) -> Any:
        checked = check(name, value)
        if checked > high and not math.isinf(checked):
            raise _fail(name, value, reason)
        return checked

    return check_capped


def list_of(item: Check, *, allow_none: bool = False, min_length: int = 0) -> Check:
    """Accept a list (or tuple) whose items all pass `item`."""

    def check(name: str, value: Any) -> Any:
        if value is None and allow_none:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)) or len(value) < min_length:
            raise _fail(name, value, f"use a list of at least {min_length} item(s)")
        return [item(f"{name}[{i}]", v) for i, v in enumerate(value)]

    return check


def optional_text(name: str, value: Any) -> Any:
    """Accept None or a string (a path or a column name)."""
    if value is None or isinstance(value, str):
        return value
    if hasattr(value, "__fspath__"):
        return str(value)
    raise _fail(name, value, "use a string or None")


def flag(name: str, value: Any) -> bool:
    """Accept True or False (numpy's bools too); no other value, however truthy."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise _fail(name, value, "use True or False")


def model_name(name: str, value: Any) -> Any:
    """Accept None (a name is generated) or a non-empty string that can name a saved model's folder: no path
    separator, not '.' or '..'."""
    if value is None or (isinstance(value, str) and value not in ("", ".", "..")
                         and not any(c in value for c in ("/", "\\", "\0"))):
        return value
    raise _fail(name, value, "use None (a generated name) or a non-empty string without '/' or '\\'; a model_id also "
                             "names the folder save_model() writes, so it cannot be a path")


def image_shape(name: str, value: Any) -> Any:
    """Accept None or [0, 0] (Deep Water's 'automatic'), both meaning the network's default, or [height, width]
    of positive integers."""
    if value is None:
        return None
    checked = list_of(number(0, integer=True), min_length=2)(name, value)
    if checked == [0, 0]:
        return None
    if len(checked) != 2 or 0 in checked:
        raise _fail(name, value, "use [height, width] of positive integers, e.g. [28, 28], or None for the "
                                 "network's default")
    return checked


def layer_selection(name: str, value: Any) -> int | list[str] | None:
    """Accept None (nothing), a count of leading blocks (an integer; a negative one counts from the output, as a
    Python slice: -1 is every block but the output's), or a layer name or '*' pattern, or a list of them."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    names = [value] if isinstance(value, str) else value
    if isinstance(names, (list, tuple)) and names and all(isinstance(n, str) and n for n in names):
        return list(names)
    raise _fail(name, value, "use None, a count of leading blocks (an integer; -1: all but the output block), a "
                             "layer name, a pattern such as 'conv*', or a list of them")


def tta_views(name: str, value: Any) -> bool | list[str]:
    """Accept False/None (no test-time augmentation), True (every view) or a list of TTA_VIEWS (or one, as text);
    return False or the views in TTA_VIEWS order."""
    if value is None or value is False:
        return False
    if value is True:
        return list(TTA_VIEWS)
    views = [value] if isinstance(value, str) else value
    if isinstance(views, (list, tuple)) and views and all(isinstance(v, str) and v.lower() in TTA_VIEWS for v in views):
        return [view for view in TTA_VIEWS if view in {v.lower() for v in views}]
    raise _fail(name, value, f"use False, True (every view) or a list of {list(TTA_VIEWS)}, e.g. ['flip']")


def storage_options(name: str, value: Any) -> dict[str, Any] | None:
    """Accept None or a dict of an object store's options by name."""
    return None if value is None else check_storage_options(value)


def channels(name: str, value: Any) -> int:
    """Accept 1 (grey) or 3 (RGB)."""
    if isinstance(value, bool) or value not in (1, 3):
        raise _fail(name, value, "use 1 (grey) or 3 (RGB)")
    return int(value)


def model_reference(name: str, value: Any) -> Any:
    """Accept None, a trained model (anything with a model_id), a model_id or a path."""
    if value is None or isinstance(value, str) or hasattr(value, "model_id"):
        return value
    if hasattr(value, "__fspath__"):
        return str(value)
    raise _fail(name, value, "use a model, a model_id of this process, a saved model's path or an "
                             "export_checkpoints_dir folder")


def fold_count(name: str, value: Any) -> int:
    """Accept 0 (no cross-validation) or a number of folds >= 2 (H2O refuses 1 and negative counts)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer() \
            or value < 0 or value == 1:
        raise _fail(name, value, "use 0 (no cross-validation) or 2 or more folds")
    return int(value)


def any_text(name: str, value: Any) -> str:
    """Accept a non-empty string."""
    if isinstance(value, str) and value:
        return value
    raise _fail(name, value, "use a non-empty string")


def backend_name(name: str, value: Any) -> str:
    """Accept 'auto' or a known backend, shipped or plugged in (any case); no framework is imported."""
    return registry.known_backend(any_text(name, value))


def network_name(name: str, value: Any) -> str:
    """Accept 'auto', 'user' or a network of deepwater.networks.NETWORKS (any case), kept in lower case."""
    text = any_text(name, value).lower()
    return text if text in ("auto", "user") else networks.get(text).name


@dataclass(frozen=True)
class Parameter:
    """One row of the parameter table."""

    name: str
    default: Any
    check: Check
    doc: str
    checkpoint_mutable: bool = False


PARAMETERS: dict[str, Parameter] = {p.name: p for p in [
    Parameter("model_id", None, model_name, "Name of the model (and of its saved folder: no '/' or '\\'); "
              "generated when None.", True),
    Parameter("backend", "auto", backend_name,
              "Framework that runs the network: 'auto' (first installed of torch, tensorflow, mxnet) or a backend "
              "name. Deep Water's default was 'mxnet'; deepwater's is 'auto' because MXNet is retired and often not "
              "installed."),
    Parameter("network", "auto", network_name,
              "Architecture: 'auto' (inception_bn for images, MLP for datasets; 'user' when network_definition_file is "
              "given, as in Deep Water), a name in deepwater.networks.NETWORKS, or 'user' (the graph in "
              "network_definition_file)."),
    Parameter("network_definition_file", None, optional_text,
              "Graph file of a user-defined network (network='user'): MXNet symbol .json, Keras .keras, a "
              "SavedModel directory, TF1 .meta, TorchScript .pt, torch.export .pt2 or ONNX .onnx (docs/guide/user-graphs.md)."),
    Parameter("network_parameters_file", None, optional_text,
              "Weights: for network='user' those of the graph file (MXNet .params, Keras .weights.h5, a TF1 "
              "checkpoint, a torch state dict); for a built-in network a torch state dict or .npz of its "
              "'<layer>.<param>' arrays. None: the graph's own weights, or initialise from seed. On a checkpoint "
              "restart the weights are the checkpoint's and this file is not read again.", True),
    Parameter("replace_output_layer", False, flag,
              "Replace the last layer of the loaded graph or weights by a new one with an output per class of "
              "this response (fine-tuning a pretrained network on new classes)."),
    Parameter("pretrained", False, flag,
              "Fine-tune the model zoo's pretrained weights of `network` (a name of deepwater.models_zoo: "
              "'mobilenet_v2', ...; network_parameters_file must be None): its image_shape and channels (unless "
              "given), its normalisation, and its output layer, replaced by a new one when the response's classes "
              "are not the zoo's. Every fine-tuning parameter not given gets the fine-tuning recipe's value "
              "(docs/guide/finetuning.md): optimizer='adamw', learning_rate=1e-3, weight_decay=0.01, "
              "lr_schedule='cosine' (epochs=inf: 'constant'), warmup_epochs a tenth of epochs (at most 5; "
              "epochs=inf: 1) and label_smoothing=0.1 (classification); summary() lists them. False: H2O's "
              "defaults, as Deep Water."),
    Parameter("tta", False, tta_views,
              "Test-time augmentation of image URI models in predict() and model_performance(frame) (each also "
              "takes it as an argument): the class probabilities (or regression values) averaged over the image "
              "and its views, 'flip' (mirrored left-right) and 'crops' (the 4 corners and the centre at "
              "image_shape of the image resized 8/7 larger, as ImageNet's 256 for 224); with both, the crops' "
              "mirror images too. True: ['flip', 'crops']; False: the image alone.", True),
    Parameter("problem_type", "auto", one_of(*PROBLEM_TYPES),
              "'image' (first x column holds image URIs), 'dataset' (numeric/categorical columns) or 'auto' (detect). "
              "Deep Water's 'text' is not supported."),
    Parameter("epochs", 10.0, capped(number(0), MAX_EPOCHS, "use a finite number up to 1e9 (more never finishes), "
                                     "or float('inf') with max_runtime_secs to train until stopped"),
              "How many passes over the training frame (may be fractional), at most 1e9; "
              "float('inf') trains until max_runtime_secs (which it needs) or early stopping.", True),
    Parameter("hidden", [200, 200], list_of(number(1, integer=True), min_length=1),
              "Hidden layer sizes of the MLP; for an autoencoder the whole stack between input and reconstruction "
              "(e.g. [50, 20, 50])."),
    Parameter("autoencoder", False, flag,
              "Train an autoencoder (H2O's parameter): no y; the network reconstructs its input (a dataset's "
              "standardised, one-hot encoded values with network 'mlp', or the mean-subtracted image with "
              "'conv_autoencoder') and trains on the reconstruction MSE. anomaly() gives the reconstruction error, "
              "predict() the reconstruction. nfolds must be 0 and stopping_metric 'AUTO' or 'MSE'."),
    Parameter("pretrained_autoencoder", None, model_reference,
              "An autoencoder (a model, its model_id in this process or a saved model's path) whose encoder "
              "weights start this supervised MLP's first hidden layers (H2O's parameter). It must have been "
              "trained on the same x, with a hidden list that starts with this model's and the same activation."),
    Parameter("variable_importances", True, flag,
              "Compute variable importances of an MLP on a dataset by Gedeon's method (H2O Deep Learning's "
              "parameter and default): model.varimp(). Other networks (convolutional, user graphs) have none: "
              "they train as usual and their varimp() raises an error that says why."),
    Parameter("activation", "Rectifier", one_of(*ACTIVATIONS), "Hidden activation of the MLP."),
    Parameter("input_dropout_ratio", 0.0, number(0, 1, high_open=True), "Fraction of inputs dropped in training.",
              True),
    Parameter("hidden_dropout_ratios", None, list_of(number(0, 1, high_open=True), allow_none=True),
              "Dropout per hidden layer; None means 0.5 for the *WithDropout activations, else 0.", True),
    Parameter("mini_batch_size", 32, capped(number(1, integer=True), MAX_MINI_BATCH,
                                            "use at most 2**31 - 1 rows per step (H2O's limit: frameworks count a "
                                            "batch's rows in 32-bit integers)"),
              "Rows per training step (at most 2**31 - 1).", True),
    Parameter("adaptive_rate", False, flag, "ADADELTA (rho, epsilon) instead of learning_rate and momentum, as "
              "optimizer='adadelta'. From H2O Deep Learning (default True there); Deep Water had no such parameter "
              "and trained with momentum SGD."),
    Parameter("rho", 0.99, number(0, 1, high_open=True), "ADADELTA decay of squared gradients.", True),
    Parameter("epsilon", 1e-8, number(0, low_open=True), "ADADELTA's (and Adam's) smoothing term.", True),
    Parameter("learning_rate", 5e-3, number(0, low_open=True), "Step size of sgd, adam and adamw (the top of "
              "lr_schedule's curve); ADADELTA has none. Deep Water's "
              "default for its momentum SGD; its last releases used 1e-3, chosen for the Adam optimiser of its "
              "TensorFlow graphs (h2o-3 commit d6d307b): pass 1e-3 for Deep Water's TF1 .meta graphs.", True),
    Parameter("learning_rate_annealing", 1e-6, number(0),
              "The rate is learning_rate / (1 + learning_rate_annealing * samples seen).", True),
    Parameter("momentum_start", 0.9, number(0, 1, high_open=True), "Momentum at the start of training."),
    Parameter("momentum_ramp", 1e4, number(0), "Samples over which momentum goes from start to stable."),
    Parameter("momentum_stable", 0.9, number(0, 1, high_open=True), "Momentum after the ramp."),
    Parameter("nesterov_accelerated_gradient", True, flag, "Use Nesterov momentum. H2O Deep Learning's parameter and "
              "default; Deep Water had no such parameter (its MXNet backend used plain momentum: pass False).", True),
    Parameter("l1", 0.0, number(0), "L1 penalty on weights (not biases).", True),
    Parameter("l2", 0.0, number(0), "L2 penalty on weights (not biases).", True),
    Parameter("clip_gradient", 10.0, number(0, low_open=True, allow_none=True),
              "Clip each gradient element to [-clip_gradient, clip_gradient]; None turns clipping off.", True),
    Parameter("optimizer", "auto", one_of(*OPTIMIZERS),
              "The update rule: 'sgd' (H2O's momentum SGD: momentum_*, nesterov_accelerated_gradient), 'adadelta' "
              "(rho, epsilon), 'adam' or 'adamw' (torch.optim's, betas 0.9 and 0.999, epsilon; adamw with "
              "weight_decay). 'auto' is H2O's rule: adaptive_rate picks adadelta or sgd. adaptive_rate=True with "
              "another optimizer is an error. l1, l2 and clip_gradient apply to every rule."),
    Parameter("weight_decay", 0.0, number(0),
              "AdamW's decoupled weight decay (optimizer='adamw' only): each step multiplies the weights (not "
              "biases) by 1 - rate * weight_decay.", True),
    Parameter("lr_schedule", "h2o", one_of(*LR_SCHEDULES),
              "How the rate of sgd, adam and adamw moves with the samples seen: 'h2o' (learning_rate / (1 + "
              "learning_rate_annealing * samples)), 'constant', 'cosine' (half a cosine down to 0 at the end of "
              "the run, epochs * training rows), 'one_cycle' (fastai's: a cosine up from learning_rate / 25 over "
              "the first quarter of the run, then down to learning_rate / 1e5) or 'step' (times lr_step_gamma "
              "every lr_step_epochs). 'cosine' and 'one_cycle' need finite epochs.", True),
    Parameter("warmup_epochs", 0.0, number(0),
              "Epochs over which the rate rises linearly from 0 to lr_schedule's (it multiplies any schedule, "
              "'h2o' too).", True),
    Parameter("lr_step_epochs", 1.0, number(0, low_open=True),
              "lr_schedule='step': epochs between two steps down of the rate.", True),
    Parameter("lr_step_gamma", 0.1, number(0, 1, low_open=True),
              "lr_schedule='step': the factor each step down multiplies the rate by.", True),
    Parameter("freeze", None, layer_selection,
              "Layers kept fixed while the rest trains (a built-in network's; a user graph is refused): a count of "
              "leading blocks (a block is a conv or dense layer with the batch norms after it; a negative count "
              "leaves that many blocks at the output to train: -1 trains only the output layer), layer names "
              "(model.layers()) or patterns such as 'conv*'. Frozen weights get no update at all (no penalty, "
              "decay or momentum), and frozen batch-norm layers normalise with their running statistics and keep "
              "them (eval mode). None: every layer trains."),
    Parameter("unfreeze_after_epochs", None, number(0, allow_none=True),
              "After this many epochs (counted over checkpoint restarts) the frozen layers train too; None: never.",
              True),
    Parameter("layer_lr_decay", 1.0, number(0, 1, low_open=True),
              "Discriminative rates: the last block (the head) learns at the scheduled rate, the block d places "
              "below it at rate * layer_lr_decay ** d (blocks as for freeze; any optimizer and schedule). 1: "
              "every layer at the same rate. A user graph is refused.", True),
    Parameter("distribution", "AUTO", one_of(*DISTRIBUTIONS),
              "Response distribution: AUTO picks multinomial/bernoulli for classes, gaussian for numbers."),
    Parameter("loss", "Automatic", one_of(*LOSSES), "Loss function; Automatic follows the distribution."),
    Parameter("label_smoothing", 0.0, number(0, 1, high_open=True),
              "Classification only: train the cross entropy against (1 - label_smoothing) * the class's one-hot "
              "+ label_smoothing / classes (torch's rule), on every backend.", True),
    Parameter("mixup", 0.0, number(0),
              "Classification only: mixup's alpha (0: off). Each training batch is blended with a shuffled copy of "
              "itself, lam * x_a + (1 - lam) * x_b with lam drawn from Beta(alpha, alpha) per batch (images, or a "
              "dataset's encoded rows), and trained against lam * onehot(y_a) + (1 - lam) * onehot(y_b), "
              "label_smoothing on top; drawn from seed. With cutmix too, each batch picks one of the two with "
              "probability 0.5. Scoring reads the rows unmixed; the training_loss in the scoring history is the "
              "mixed batches'. Not in Deep Water.", True),
    Parameter("cutmix", 0.0, number(0),
              "Classification of images only: CutMix's alpha (0: off). A box of another image of the batch, about "
              "1 - lam of the area (lam from Beta(alpha, alpha)), is pasted into each image, which trains against "
              "its classes weighted by their areas (label_smoothing on top); see mixup. Not in Deep Water.", True),
    Parameter("ema", None, number(0, 1, high_open=True, allow_none=True),
              "Decay of an exponential moving average of the weights (e.g. 0.999; None or 0: off), updated after "
              "every step as timm's ModelEmaV2 does (batch-norm running statistics averaged too): average = ema * "
              "average + (1 - ema) * weights. The average is what scoring, validation metrics, early stopping, "
              "predict, deepfeatures, export and the saved model use; checkpoints keep both it and the weights "
              "being trained, so a restart continues both. One device only. Not in Deep Water.", True),
    Parameter("stopping_rounds", 5, number(0, integer=True),
              "Stop when the moving average of stopping_metric over this many scorings stops improving; 0 turns it off.", True),
    Parameter("stopping_metric", "AUTO", one_of(*STOPPING_METRICS),
              "Metric for early stopping; AUTO is logloss (classification), deviance (regression) or MSE (an "
              "autoencoder, which takes only AUTO or MSE).", True),
    Parameter("stopping_tolerance", 0.0, number(0), "Relative improvement below which training stops; 0 (Deep "
              "Water's default): stop when the moving average no longer improves at all.", True),
    Parameter("score_interval", 5.0, number(0), "Shortest time in seconds between two scorings.", True),
    Parameter("score_duty_cycle", 0.1, number(0, 1), "Largest fraction of the run time spent scoring.", True),
    Parameter("score_training_samples", 10000, number(0, integer=True),
              "Training rows sampled for scoring; 0 means all.", True),
    Parameter("score_validation_samples", 0, number(0, integer=True),
              "Validation rows sampled for scoring; 0 means all.", True),
    Parameter("train_samples_per_iteration", -2, number(-2, integer=True),
              "-2 or -1 or 0: score by time (score_interval, score_duty_cycle); N > 0: score every N samples "
              "(a reproducible history).", True),
    Parameter("overwrite_with_best_model", True, flag, "Keep the weights of the best scoring, not the last.", True),
    Parameter("max_runtime_secs", 0.0, number(0), "Stop training after this many seconds; 0 means no limit.", True),
    Parameter("seed", -1, number(-1, 2**32 - 1, integer=True), "Random seed; -1 picks one.", True),
    Parameter("gpu", True, flag, "Train on the GPUs of device_id where there are GPUs, else warn and use the CPU.",
              True),
    Parameter("device_id", [0], list_of(number(0, integer=True), min_length=1),
              "Devices one model trains on: with gpu=True the GPUs cuda:<id>, all of them, data-parallel (each step's "
              "mini_batch_size rows split across them); with gpu=False one id is the CPU and several ids ask for "
              "that many CPU replicas (the several-device path without GPUs).", True),
    Parameter("num_workers", 0, number(0, integer=True),
              "After deepwater.init(): train one model data-parallel over this many Ray workers (Ray Train, one "
              "device each, the global batch split as for device_id); 0 trains in this process.", True),
    Parameter("precision", "auto", one_of(*PRECISIONS),
              "What training and prediction compute in: 'auto' (bfloat16 on GPUs that have it, else float16 with "
              "loss scaling; float32 on the CPU), 'float32', 'bfloat16' or 'float16' (mixed precision: weights, "
              "optimiser state, saved models and predictions stay float32). The torch and TensorFlow backends' "
              "built-in networks (and torch user graphs) offer all four; MXNet trains in float32 only.", True),
    Parameter("compile", False, flag,
              "Run training steps through the framework's compiler: torch.compile (torch), XLA jit_compile "
              "(TensorFlow); MXNet's bound executors are static graphs already. Off by default: compiling costs "
              "10-30 s up front and again for each new batch shape, and on the CPU here it did not pay consistently "
              "(0.53x-2.15x of float32's speed across networks, backends and runs: benchmarks/precision_cpu.py).",
              True),
    Parameter("image_shape", None, image_shape, "[height, width] images are resized to; None or [0, 0]: the "
              "network's default. Deep Water read [width, height] (the same for square images); deepwater keeps "
              "height first, as saved models and the model zoo store it.", True),
    Parameter("image_resize", "stretch", one_of("stretch", "crop"),
              "How a photo meets image_shape, in training, scoring and the exported bundle alike: 'stretch' (default, "
              "as Deep Water) resizes the whole photo to the shape, changing its aspect ratio; 'crop' keeps the aspect "
              "ratio, resizing the short side to the shape and cutting off the rest of the long side around the "
              "centre (as photo models such as the zoo's were trained). Saved with the model."),
    Parameter("image_decode_processes", 0, number(0, integer=True),
              "Worker processes that decode images (0, default: threads of this process decode them). Pillow holds "
              "Python's interpreter lock for part of each decode, so on many cores threads can leave some idle; "
              "processes cost a copy of each decoded array, and the first pool of a Python process waits while "
              "multiprocessing's fork server imports deepwater (seconds; later pools start at once). On 2 cores "
              "threads were faster (benchmarks/image_pipeline.py). Bad images and bad_images behave the same.", True),
    Parameter("channels", 3, channels, "Image channels: 1 (grey) or 3 (RGB)."),
    Parameter("mean_image_file", None, optional_text, "Mean image (.npy, MXNet .nd or an image file) subtracted from inputs."),
    Parameter("bad_images", "error", one_of(*BAD_IMAGE_POLICIES),
              "'error': stop at a missing or corrupt image; 'skip': leave it out and count it.", True),
    Parameter("augment", None, augment.check,
              "Random changes to training images (image URI columns): a comma-separated list of 'flip' (mirror half the "
              "images left-right), 'shift' (move each by up to 2 pixels each way, zeros filling in; 'shift:N' for up "
              "to N), 'crop' (a random resized crop of 8%..100% of the area; 'crop:S' from S), 'color_jitter' "
              "(brightness, contrast, saturation x 1 +- 0.4; 'color_jitter:S:H' with hue +- H), and one policy: "
              "'randaugment' (2 operations at magnitude 9 of 30; 'randaugment:N:M') or 'trivial' (TrivialAugment), "
              "e.g. 'flip,shift' or 'crop,trivial,flip'. crop, the policies and color_jitter need "
              "pip install 'deepwater[augment]' (albumentations). Drawn from seed on the thread that prepares "
              "batches, before the normalisation; scoring and predict see the images unchanged. None (default): no "
              "change. Not in Deep Water.", True),
    Parameter("image_cache_mb", 1024.0, number(0),
              "Memory for decoded images kept across epochs: the images that fit are kept, the rest are decoded again "
              "each epoch, just ahead of the step that needs them.", True),
    Parameter("image_cache_dir", None, optional_text,
              "A local folder where decoded images are kept as .npy arrays (no pickle), keyed by URI and image "
              "shape, so that later epochs, runs and cross-validation folds decode nothing: for images that do not "
              "fit in image_cache_mb, or that come from a store. None (default): none kept on disk.", True),
    Parameter("image_cache_dir_mb", 10240.0, number(0, low_open=True),
              "Most megabytes image_cache_dir may hold; past it the oldest arrays are removed first.", True),
    Parameter("storage_options", None, storage_options,
              "Options of the object store's fsspec filesystem for s3://, gs://, az:// and hf:// image URIs, e.g. "
              "{'key': ..., 'secret': ..., 'endpoint_url': ...}; None: the store's usual credentials (environment "
              "variables, profile files). Never saved with the model: a loaded model reads with the environment's "
              "credentials.", True),
    Parameter("standardize", True, flag, "Scale numeric columns to mean 0, variance 1 (and a numeric response)."),
    Parameter("ignore_const_cols", True, flag, "Drop columns that hold one value in the training frame."),
    Parameter("categorical_encoding", "AUTO", one_of(*CATEGORICAL_ENCODINGS),
              "How categorical columns become numbers: AUTO/OneHotInternal/OneHotExplicit (a column per level), "
              "Binary (the level's number in binary digits: log2(levels) columns) or LabelEncoder (the level's "
              "number). H2O's Eigen, SortByResponse and EnumLimited are not offered."),
    Parameter("max_categorical_features", 2**31 - 1, number(1, integer=True),
              "A one-hot column with more levels than this is hashed into this many columns (H2O's rule)."),
    Parameter("weights_column", None, optional_text, "Column of row weights."),
    Parameter("quiet_mode", False, flag, "Hide the progress bar.", True),
    Parameter("nfolds", 0, fold_count,
              "Cross-validation folds: 0 for none, or k >= 2 (k fold models, then the main model on all rows); "
              "a checkpoint restart needs 0."),
    Parameter("fold_assignment", "AUTO", one_of(*FOLD_ASSIGNMENTS),
              "How rows go to folds: AUTO and Random (shuffled by seed), Modulo (row i to fold i % nfolds), "
              "Stratified (each fold keeps the class proportions). Any case is read as the name it spells "
              "('random' is 'Random'), as H2O's server reads its enums; a misspelling is an error that names the "
              "closest."),
    Parameter("fold_column", None, optional_text, "Column whose values are the folds (instead of nfolds)."),
    Parameter("keep_cross_validation_models", True, flag, "Keep the fold models (cross_validation_models())."),
    Parameter("keep_cross_validation_predictions", False, flag,
              "Keep the fold models' holdout predictions (cross_validation_predictions(), stacked ensembles)."),
    Parameter("keep_cross_validation_fold_assignment", False, flag,
              "Keep each row's fold (cross_validation_fold_assignment())."),
    Parameter("checkpoint", None, model_reference,
              "Continue training this model: a trained model, its model_id in this process, a saved model's path, "
              "or an export_checkpoints_dir folder (its newest complete checkpoint). Parameters not given are "
              "the checkpoint's; those that are given must equal the checkpoint's unless the table marks them "
              "checkpoint-mutable, and epochs must exceed the epochs already trained.", True),
    Parameter("export_checkpoints_dir", None, optional_text,
              "Folder that gets a saved model at every scoring (the newest export_checkpoints_keep are kept), "
              "so that a run killed at any moment resumes with checkpoint=<this folder>.", True),
    Parameter("export_checkpoints_keep", 3, number(1, integer=True),
              "How many of the newest checkpoints export_checkpoints_dir keeps.", True),
    Parameter("mlflow", False, flag,
              "Log the run to MLflow (the tracking URI and experiment MLflow is set to): the parameters, scoring "
              "history, final metrics, plots and the model (docs/guide/tracking.md; pip install "
              "'deepwater[mlflow]'). A checkpoint restart continues the checkpoint's run.", True),
]}


def unknown_parameter(name: str, known: Iterable[str]) -> ParameterError:
    """The error for a parameter name the table does not hold, with the closest known names."""
    close = close_matches(name, known)
    hint = f" Did you mean {', '.join(close)}?" if close else " See deepwater.training.parameters.PARAMETERS for the list."
    return ParameterError(f"unknown parameter {name!r}.{hint}")


def python_value(value: Any) -> Any:
    """`value` with numpy scalars (np.int64(4), np.bool_(False)) as the Python values they hold, in lists too."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(python_value(v) for v in value)
    return value


def check(name: str, value: Any) -> Any:
    """The checked value of parameter `name`; ParameterError for an unknown name or a value it cannot take."""
    if name not in PARAMETERS:
        raise unknown_parameter(name, PARAMETERS)
    return PARAMETERS[name].check(name, python_value(value))


def resolve(given: Mapping[str, Any]) -> dict[str, Any]:
    """Return every parameter: checked values for those given, defaults for the rest."""
    for name in given:
        if name not in PARAMETERS:
            raise unknown_parameter(name, PARAMETERS)
    values = {}
    for name, row in PARAMETERS.items():
        values[name] = row.check(name, python_value(given[name])) if name in given else _copy_default(row.default)
    return values


def _copy_default(default: Any) -> Any:
    return list(default) if isinstance(default, list) else default


def signature() -> inspect.Signature:
    """Every parameter of the table as a keyword-only parameter with its default, in table order."""
    return inspect.Signature([inspect.Parameter(row.name, inspect.Parameter.KEYWORD_ONLY, default=row.default)
                              for row in PARAMETERS.values()])


def docstring() -> str:
    """A numpydoc 'Parameters' section: each row's name, default and doc."""
    entries = [f"{row.name} : default {row.default!r}\n" + textwrap.indent(textwrap.fill(
        row.doc + (" A checkpoint restart may change it." if row.checkpoint_mutable else ""), 96), "    ")
               for row in PARAMETERS.values()]
    return "Parameters\n----------\n" + "\n".join(entries)


def documented(cls: type) -> type:
    """Class decorator: the table becomes the signature of `cls` and the parameter section of its docstring."""
    cls.__signature__ = signature()
    cls.__doc__ = inspect.cleandoc(cls.__doc__ or "") + "\n\n" + docstring()
    return cls
