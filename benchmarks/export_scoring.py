"""Scoring throughput of an exported ONNX bundle (deepwater.inference, onnxruntime) against the model's own
predict(), for the MNIST MLP [200, 200] trained on each backend, side by side in one process.

Both score the 10,000 MNIST test rows end to end (the same DatasetEncoder turns the 784 pixel columns into the
network's input, 256 rows a batch), interleaved A B A B so machine noise hits both alike; the figure is the
median of the repeats. Every framework and onnxruntime compute with `--threads` threads (0: each its own
default). The bundle's predictions are checked against the model's.
Run: `python benchmarks/export_scoring.py [--backends torch tensorflow mxnet] [--epochs 1] [--repeats 5]
[--threads 1]`.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
from common import alternate, timed, write_result

import deepwater as dw
from deepwater import inference


def compare(backend: str, train, test, epochs: float, repeats: int, threads: int, folder: Path) -> dict:
    """Train the MLP on `backend`, export it, and time predict() against the bundle's Scorer.predict()."""
    model = dw.DeepWaterEstimator(
        backend=backend, hidden=[200, 200], activation="Rectifier", epochs=epochs, mini_batch_size=128,
        stopping_rounds=0, score_interval=1e9, score_training_samples=1000, gpu=False, seed=42, quiet_mode=True)
    model.train(y="label", training_frame=train)
    export_seconds, path = timed(lambda: model.export(folder / backend))
    scorer = inference.load(path, device="cpu", threads=threads)
    runs = alternate({"predict": lambda: model.predict(test), "bundle": lambda: scorer.predict(test)}, repeats)
    seconds = {name: statistics.median(t for t, _ in timed_runs) for name, timed_runs in runs.items()}
    expected, got = runs["predict"][-1][1], runs["bundle"][-1][1]
    return {
        "export_seconds": export_seconds,
        "predict_rows_per_s": len(test) / seconds["predict"],
        "bundle_rows_per_s": len(test) / seconds["bundle"],
        "bundle_vs_predict": seconds["predict"] / seconds["bundle"],
        "max_probability_difference": float(np.abs(got.iloc[:, 1:].to_numpy() - expected.iloc[:, 1:].to_numpy()).max()),
        "same_labels": bool((got["predict"] == expected["predict"]).all()),
        "test_accuracy": float((expected["predict"].astype(int) == test["label"].astype(int)).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["torch", "tensorflow", "mxnet"])
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.threads:  # read by torch, MXNet and TensorFlow when they start (deepwater imports them on first use)
        for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
            os.environ[name] = str(args.threads)
    train, test = dw.datasets.mnist()
    for frame in (train, test):
        frame["label"] = frame["label"].astype("category")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for backend in args.backends:
            r = results[backend] = compare(backend, train, test, args.epochs, args.repeats, args.threads, Path(folder))
            print(f"{backend:<11} predict {r['predict_rows_per_s']:>9,.0f} rows/s   bundle "
                  f"{r['bundle_rows_per_s']:>9,.0f} rows/s   x{r['bundle_vs_predict']:.2f}   max |dp| "
                  f"{r['max_probability_difference']:.1e}   export {r['export_seconds']:.1f} s", flush=True)
    print("saved", write_result("export_scoring", {"settings": vars(args), "rows": len(test), "results": results}))


if __name__ == "__main__":
    main()
