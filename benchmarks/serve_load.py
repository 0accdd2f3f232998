"""Loopback load test of the prediction service (`deepwater serve`): 16 concurrent clients for 30 s against the
MNIST MLP [200, 200] (784 pixel values per row) and LeNet on MNIST PNGs (each row a base64 PNG), each with
batching on (--max-batch 64) and off (--max-batch 1), against the scorer called in the process on the same rows.

The server runs in its own process (`python -m deepwater serve`, uvicorn, one worker); the clients are threads in
this process, each with a keep-alive connection, sending one row per request in a loop until the time is up. The
figures: requests/s, p50 and p99 latency, errors; the service's throughput over the in-process scorer's (one row
per scorer.predict call, sequentially, for a third of the run's time; and all 512 rows in one call); batching's gain (on over off). The models train
briefly (accuracy is not the point). Results: benchmarks/results/serve_load.json.
Run: `python benchmarks/serve_load.py [--seconds 30] [--clients 16] [--train-rows 5000]`.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from common import ServerProcess, load, timed, write_result

import deepwater as dw
from deepwater import inference


def train_bundles(folder: Path, train_rows: int) -> dict[str, tuple[str, list[dict], pd.DataFrame]]:
    """The MLP's and LeNet's bundles, each with request rows and the same rows as a frame for the scorer."""
    train, test = dw.datasets.mnist()
    train, test = train.head(train_rows).copy(), test.head(512).copy()
    train["label"] = train["label"].astype("category")
    common = {"epochs": 1, "gpu": False, "quiet_mode": True, "seed": 1, "backend": "torch", "mini_batch_size": 64,
              "score_training_samples": 500}
    mlp = dw.DeepWaterEstimator(hidden=[200, 200], **common).train(y="label", training_frame=train)
    pixels = test.drop(columns="label")
    mlp_rows = json.loads(pixels.to_json(orient="records"))
    bundles = {"mlp": (mlp.export(folder / "mlp"), mlp_rows, pixels)}

    images, _ = dw.datasets.mnist_images(folder / "png", n_train=train_rows, n_test=0)
    lenet = dw.DeepWaterEstimator(network="lenet", problem_type="image", image_shape=[28, 28], channels=1,
                                  **common).train(x=["uri"], y="label", training_frame=images)
    uris = images["uri"].head(512).tolist()
    lenet_rows = [{"image": base64.b64encode(Path(uri).read_bytes()).decode()} for uri in uris]
    bundles["lenet"] = (lenet.export(folder / "lenet"), lenet_rows, pd.DataFrame({"uri": uris}))
    return bundles


class Service(ServerProcess):
    """`deepwater serve BUNDLE` in a subprocess, on a free loopback port."""

    def __init__(self, bundle: str, max_batch: int) -> None:
        super().__init__(lambda port: [sys.executable, "-m", "deepwater", "serve", bundle, "--port", str(port),
                                       "--max-batch", str(max_batch), "--log-level", "warning", "--device", "cpu"])

    def model(self) -> dict:
        return self.get("/model")


def in_process(bundle: str, frame: pd.DataFrame, seconds: float) -> dict:
    """scorer.predict on one row at a time, in order, for `seconds`: rows/s (the service's work without HTTP);
    and on all the rows in one call (the bulk rate, no request overhead at all)."""
    scorer = inference.load(bundle, device="cpu")
    rows = [frame.iloc[[i]] for i in range(len(frame))]
    done, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        scorer.predict(rows[done % len(rows)])
        done += 1
    elapsed = time.perf_counter() - began
    bulk = min(timed(lambda: scorer.predict(frame))[0] for _ in range(3))
    scorer.close()
    return {"rows": done, "rows_per_s": done / elapsed, "bulk_rows_per_s": len(frame) / bulk}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="each load run's length (default 30)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--train-rows", type=int, default=5000, help="MNIST rows each model trains on")
    args = parser.parse_args()
    results: dict = {"clients": args.clients, "seconds_per_run": args.seconds, "rows_per_request": 1}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (bundle, rows, frame) in train_bundles(Path(tmp), args.train_rows).items():
            figures: dict = {}
            for mode, max_batch in (("batching", 64), ("no_batching", 1)):
                with Service(bundle, max_batch) as service:
                    figures[mode] = load(service.port, rows, args.clients, args.seconds)
                    figures[mode]["network_calls"] = service.model()["batching"]["network_calls"]
                print(name, mode, figures[mode], flush=True)
            figures["in_process_scorer"] = in_process(bundle, frame, args.seconds / 3)
            figures["service_vs_in_process"] = (figures["batching"]["requests_per_s"]
                                                / figures["in_process_scorer"]["rows_per_s"])
            figures["batching_gain"] = (figures["batching"]["requests_per_s"]
                                        / figures["no_batching"]["requests_per_s"])
            print(name, {k: v for k, v in figures.items() if k not in ("batching", "no_batching")}, flush=True)
            results[name] = figures
    print(write_result("serve_load", results))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
