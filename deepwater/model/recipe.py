"""The fine-tuning recipe: the values pretrained=True gives the training parameters the user did not give.

H2O's defaults (momentum SGD at 5e-3 with annealing) were chosen for training from random weights. Fine-tuning
pretrained weights today follows fastai's fine_tune and timm's recipes, which agree on the parts taken here:
AdamW (fastai's default optimiser, timm's usual one) at 1e-3 (fastai's fine-tuning rate for the head, Deep Water's
last default for Adam), decoupled weight decay 0.01 (fastai's wd and torch.optim.AdamW's default; timm's 0.05 is
for training from scratch), a cosine decay (timm's default schedule; fastai's one-cycle ends the same way) after a
linear warm-up (a tenth of the run here, between fastai's quarter and timm's 5 epochs of 300, at most those 5),
and label smoothing 0.1 (timm's default, Inception-v3's). Given values are kept, and a recipe value that would
contradict one (weight decay with another optimizer, ADADELTA's adaptive_rate) is left out.
"""
from __future__ import annotations

import math
from typing import Any

from deepwater.errors import ParameterError
from deepwater.model.pretrained_networks import pretrained_network
from deepwater.specs import CLASSIFICATION
from deepwater.training.parameters import PARAMETERS

OPTIMIZER, LEARNING_RATE, WEIGHT_DECAY, LABEL_SMOOTHING = "adamw", 1e-3, 0.01, 0.1
WARMUP_FRACTION, MAX_WARMUP_EPOCHS, ENDLESS_WARMUP_EPOCHS = 0.1, 5.0, 1.0
RECIPE_PARAMETERS = ("optimizer", "learning_rate", "weight_decay", "lr_schedule", "warmup_epochs",
                     "label_smoothing")
ZOO_PARAMETERS = ("image_shape", "channels")  # pretrained=True takes the zoo model's unless given
RECIPE_SOURCE = "fine-tuning recipe"


def recipe_values(values: dict[str, Any], given: frozenset[str], kind: str | None = None) -> dict[str, Any]:
    """The recipe's value of each fine-tuning parameter that `values` (a model's parameters) takes from it: those
    not in `given`, when pretrained=True (else none). `kind`, once the response is known, leaves label smoothing
    out of a response without classes."""
    if not values["pretrained"]:
        return {}
    finite = math.isfinite(values["epochs"])
    recipe: dict[str, Any] = {
        "optimizer": None if values["adaptive_rate"] else OPTIMIZER,  # adaptive_rate=True asks for ADADELTA
        "learning_rate": LEARNING_RATE,
        "lr_schedule": "cosine" if finite else "constant",  # cosine needs the run's end
        "warmup_epochs": round(min(WARMUP_FRACTION * values["epochs"], MAX_WARMUP_EPOCHS), 6) if finite else
        ENDLESS_WARMUP_EPOCHS,
        "label_smoothing": None if values["autoencoder"] or kind not in (None, CLASSIFICATION) else LABEL_SMOOTHING,
    }
    optimizer = values["optimizer"] if "optimizer" in given else recipe["optimizer"]
    recipe["weight_decay"] = WEIGHT_DECAY if optimizer == OPTIMIZER else None  # AdamW's decay only
    return {name: value for name, value in recipe.items() if name not in given and value is not None}


def with_recipe(values: dict[str, Any], given: frozenset[str]) -> dict[str, Any]:
    """`values` (checked parameters) with the recipe's values and the zoo model's image_shape and channels where
    pretrained=True and the user gave none; every other recipe parameter not given at its table default."""
    defaults = {name: PARAMETERS[name].default for name in RECIPE_PARAMETERS + ZOO_PARAMETERS if name not in given}
    values = {**values, **defaults}
    if values["pretrained"]:
        zoo = pretrained_network(values["network"])
        values.update({name: value for name, value in (("image_shape", list(zoo.image_shape)),
                                                         ("channels", zoo.channels)) if name not in given})
    return {**values, **recipe_values(values, given)}


def for_response(values: dict[str, Any], given: frozenset[str], kind: str) -> dict[str, Any]:
    """`values` for a response of `kind`: the recipe's label smoothing taken back where it has no classes."""
    smoothing_from_recipe = values["pretrained"] and "label_smoothing" not in given
    return {**values, "label_smoothing": 0.0} if smoothing_from_recipe and kind != CLASSIFICATION else values


def check_zoo_choices(values: dict[str, Any]) -> None:
    """pretrained=True asks for a zoo network, its weights, channels and normalisation: a weights file, other
    channels, a mean image or an autoencoder contradict it (a ParameterError naming the value and the fix)."""
    if not values["pretrained"]:
        return
    zoo = pretrained_network(values["network"])
    conflicts = {
        "network_parameters_file": (values["network_parameters_file"] is not None,
                                    "the weights are the zoo's; drop network_parameters_file, or pass "
                                    "pretrained=False to load that file"),
        "channels": (values["channels"] != zoo.channels,
                     f"the zoo's {zoo.name!r} takes {zoo.channels} channels; drop channels"),
        "mean_image_file": (values["mean_image_file"] is not None,
                            f"the zoo's {zoo.name!r} normalises images as it was trained; drop mean_image_file"),
        "autoencoder": (values["autoencoder"], "fine-tuning trains a classifier or a regression; drop autoencoder"),
    }
    for name, (conflict, fix) in conflicts.items():
        if conflict:
            raise ParameterError(f"pretrained=True with {name}={values[name]!r}: {fix}.")
