"""Checkpoints: save and load a model, continue it with checkpoint=, and resume a killed run.

Run it with `python examples/checkpoints.py [work_dir] [--rows N]`. It trains the booklet's MLP on MNIST
(the pixel columns from deepwater.datasets.mnist(), installed offline), then:

1. saves it (dw.save_model), loads it back (dw.load_model) and checks the predictions are the same;
2. continues the loaded model from 2 to 4 epochs with checkpoint=<its model_id> after deleting its file;
3. starts a run with export_checkpoints_dir in a child process, kills it with SIGKILL while it trains,
   and resumes it from the folder's newest complete checkpoint.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

import deepwater as dw

MLP = {"hidden": [200, 200], "mini_batch_size": 128, "learning_rate": 0.005, "seed": 42, "stopping_rounds": 0,
       "quiet_mode": True}


def mnist(rows: int):
    """MNIST's pixel columns with the digit as a categorical response (H2O's asfactor()), first `rows` rows."""
    train, test = dw.datasets.mnist()
    train, test = train.iloc[:rows].copy(), test.copy()
    for frame in (train, test):
        frame["label"] = frame["label"].astype("category")
    return train, test


def accuracy(model: dw.DeepWaterEstimator, test) -> float:
    return float((model.predict(test)["predict"].astype(str) == test["label"].astype(str)).mean())


def save_load_continue(work: str, rows: int) -> None:
    train, test = mnist(rows)
    model = dw.DeepWaterEstimator(epochs=2, model_id="mnist_mlp", **MLP).train(y="label", training_frame=train)
    path = dw.save_model(model, os.path.join(work, "models"), force=True)
    loaded = dw.load_model(path)
    same = np.allclose(loaded.predict(test).iloc[:, 1:], model.predict(test).iloc[:, 1:], atol=1e-6)
    print(f"saved to {path}; the loaded model predicts the same: {same}; test accuracy {accuracy(loaded, test):.4f}")
    os.remove(path)  # the loaded model lives on in this process, under its model_id
    warm = dw.DeepWaterEstimator(checkpoint="mnist_mlp", epochs=4, model_id="mnist_mlp_4").train(
        y="label", training_frame=train)
    print(warm.scoring_history()[["epochs", "samples", "training_logloss", "training_classification_error"]])
    print(f"continued to {warm.summary()['epochs']} epochs: test accuracy {accuracy(warm, test):.4f}")


CHILD = """
import deepwater as dw
train, _ = dw.datasets.mnist()
train = train.iloc[:{rows}].astype({{"label": "category"}})
dw.DeepWaterEstimator(epochs=50, export_checkpoints_dir={folder!r}, train_samples_per_iteration=5000,
                      model_id="killed", **{mlp!r}).train(y="label", training_frame=train)
"""


def kill_and_resume(work: str, rows: int) -> None:
    folder = os.path.join(work, "ckpt")
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(folder=folder, mlp=MLP, rows=rows)])
    while child.poll() is None and len([n for n in os.listdir(folder) if not n.startswith(".")]
                                       if os.path.isdir(folder) else []) < 2:
        time.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    child.wait()
    newest = dw.load_model(folder)
    print(f"killed after {newest.summary()['epochs']:.2f} epochs; checkpoints kept: {sorted(os.listdir(folder))}")
    resumed = dw.DeepWaterEstimator(checkpoint=folder, epochs=newest.summary()["epochs"] + 1).train(
        y="label", training_frame=mnist(rows)[0])
    print(f"resumed and finished at {resumed.summary()['epochs']:.2f} epochs, "
          f"{len(resumed.scoring_history())} scorings in its history")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir", nargs="?", default=None, help="where models go (default: a temporary folder)")
    parser.add_argument("--rows", type=int, default=20000, help="MNIST training rows")
    args = parser.parse_args()
    work = args.work_dir or tempfile.mkdtemp(prefix="deepwater-checkpoints-")
    save_load_continue(work, args.rows)
    kill_and_resume(work, args.rows)


if __name__ == "__main__":
    main()
