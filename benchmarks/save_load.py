"""Saved models: ResNet-50 save/load against raw safetensors, and what a checkpoint restart costs.

1. Save and load a ResNet-50 model (25.6 M parameters, with its momentum buffers) through
   deepwater.save_model / load_model, side by side with safetensors.torch.save_file / load_file of the
   same tensors (weights plus optimiser state), interleaved. deepwater also writes model.json, digests every
   file with BLAKE3 and checks the digests when it loads; load_model also builds the network. Raw
   load_file maps the file and reads it lazily, so a "raw load + copy" row copies every tensor as well.
2. Resume overhead: a 4-epoch MNIST MLP [200, 200] straight vs 2 epochs, save, load, restart to 4,
   interleaved (straight, resumed, straight, resumed) so that load on the machine hits both alike.

Run: `python benchmarks/save_load.py [--repeats 3] [--rows 20000]`.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile

import numpy as np
import torch
from common import alternate, write_result
from safetensors.torch import load_file, save_file

import deepwater as dw
from deepwater.networks import build_graph
from deepwater.runtime.registry import get_backend
from deepwater.specs import OptimizerSpec, TaskSpec
from deepwater.storage.saved_models import read_model_folder


def resnet50_model() -> dw.DeepWaterEstimator:
    """A ResNet-50 classifier of 1000 classes with He-initialised weights and momentum buffers."""
    graph = build_graph("resnet50", (3, 224, 224), 1000, {})
    task = TaskSpec("classification", 1000, "cross_entropy", "multinomial")
    state = get_backend("torch").build(graph, task, OptimizerSpec(), "cpu", 0).get_state()
    return dw.DeepWaterEstimator.from_pretrained("resnet50", state, list(range(1000)), [224, 224],
                                                 backend="torch", gpu=False, quiet_mode=True)


def folder_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


def save_load(repeats: int, work: str) -> dict:
    model = resnet50_model()
    net = model._fitted.net
    tensors = {f"net/{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in net.get_state().items()}
    tensors.update({f"training/{k}": torch.from_numpy(np.ascontiguousarray(v))
                    for k, v in net.training_state().items() if np.ndim(v)})
    raw_path = os.path.join(work, "raw.safetensors")
    saved = os.path.join(work, "models", model.model_id)

    def raw_read() -> list[torch.Tensor]:
        return [t.clone() for t in load_file(raw_path).values()]

    runs = alternate({
        "raw_save": lambda: save_file(tensors, raw_path),
        "deepwater_save": lambda: dw.save_model(model, os.path.join(work, "models"), force=True),
    }, repeats)
    runs.update(alternate({
        "raw_load": lambda: load_file(raw_path),
        "raw_load_and_copy": raw_read,
        "deepwater_read_checked": lambda: read_model_folder(saved),
        "deepwater_load_model": lambda: dw.load_model(saved),
    }, repeats))
    seconds = {name: statistics.median(t for t, _ in values) for name, values in runs.items()}
    raw_bytes, saved_bytes = os.path.getsize(raw_path), folder_bytes(saved)
    return {
        "parameters": net.parameter_count(),
        "seconds": seconds,
        "save_ratio": seconds["deepwater_save"] / seconds["raw_save"],
        "load_ratio_vs_raw_load": seconds["deepwater_read_checked"] / seconds["raw_load"],
        "load_ratio_vs_raw_load_and_copy": seconds["deepwater_read_checked"] / seconds["raw_load_and_copy"],
        "bytes": {"raw_weights_and_optimiser": raw_bytes, "deepwater_folder": saved_bytes},
        "size_ratio": saved_bytes / raw_bytes,
    }


def resume_overhead(rows: int, repeats: int, work: str) -> dict:
    train, test = dw.datasets.mnist()
    train, test = train.iloc[:rows].astype({"label": "category"}), test.astype({"label": "category"})
    common = {"hidden": [200, 200], "mini_batch_size": 128, "seed": 1, "gpu": False, "quiet_mode": True,
              "stopping_rounds": 0, "train_samples_per_iteration": len(train), "overwrite_with_best_model": False,
              "score_training_samples": 2000}
    def straight() -> dw.DeepWaterEstimator:
        return dw.DeepWaterEstimator(epochs=4, **common).train(y="label", training_frame=train)

    def in_two() -> dw.DeepWaterEstimator:
        first = dw.DeepWaterEstimator(epochs=2, **common).train(y="label", training_frame=train)
        path = dw.save_model(first, os.path.join(work, "resume"), force=True)
        return dw.DeepWaterEstimator(checkpoint=path, epochs=4).train(y="label", training_frame=train)

    dw.DeepWaterEstimator(epochs=1, **common).train(y="label", training_frame=train.iloc[:1000])  # imports, warm-up
    runs = alternate({"straight": straight, "two_plus_two": in_two}, repeats)
    seconds = {name: statistics.median(t for t, _ in values) for name, values in runs.items()}
    accuracy = {name: float((values[-1][1].predict(test)["predict"].astype(str) == test["label"].astype(str)).mean())
                for name, values in runs.items()}
    return {"rows": len(train), "seconds": seconds, "ratio": seconds["two_plus_two"] / seconds["straight"],
            "test_accuracy": accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20000, help="MNIST training rows for the resume benchmark")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    work = tempfile.mkdtemp(prefix="deepwater-save-load-")
    try:
        result = {"resnet50": save_load(args.repeats, work), "resume_mnist_mlp": resume_overhead(args.rows, args.repeats, work)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(write_result("save_load", result))
    print(result)


if __name__ == "__main__":
    main()
