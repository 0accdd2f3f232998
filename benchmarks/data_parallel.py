"""One model on 1 vs N devices: images/s of the MNIST MLP [200, 200] per backend, side by side.

Each backend runs in its own process (TensorFlow splits the CPU into logical devices only before it starts, so
its process is split from the start and its 1-device runs use the first logical CPU). In that process runs
alternate: 1 device, N devices, 1 device, ... (--repeats each), the same model, data, seed and global batch
(mini_batch_size, split across the devices); the figure is the training speed of deepwater's scoring history
(rows/s, scoring time excluded), and the ratio N / 1 is the median of each N-device run over the mean of the
1-device runs around it.

CPU (default): N CPU replicas (gpu=False, device_id=[0, ..., N-1]), every process limited to --threads
intra-op threads (OMP_NUM_THREADS): replicas of one machine's CPU share its cores, so on a small machine do not
expect a speed-up; the figure says what the replicas cost. GPU: `--gpu` trains on cuda:0 vs cuda:0..N-1
(run it where there are N GPUs; benchmarks/gpu_suite.sh).

Run: `python benchmarks/data_parallel.py [--backends torch tensorflow mxnet] [--devices 2] [--rows 20000]
[--epochs 1] [--batch 128] [--repeats 3] [--threads 1] [--gpu]`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

from common import write_result

HERE = os.path.dirname(os.path.abspath(__file__))


def speeds(backend: str, devices: int, rows: int, epochs: float, batch: int, repeats: int, gpu: bool) -> dict:
    """In this process: alternating 1-device and `devices`-device runs of `backend`; rows/s of each."""
    import deepwater as dw

    train, _ = dw.datasets.mnist()
    train = train.iloc[:rows].copy()
    train["label"] = train["label"].astype("category")
    pixels = [c for c in train.columns if c != "label"]

    def run(ids: list[int]) -> float:
        model = dw.DeepWaterEstimator(
            backend=backend, hidden=[200, 200], epochs=epochs, mini_batch_size=batch, gpu=gpu, device_id=ids,
            stopping_rounds=0, score_interval=1e9, score_training_samples=1000, seed=1, quiet_mode=True)
        model.train(x=pixels, y="label", training_frame=train)
        return float(model.scoring_history()["training_speed"].iloc[-1])

    several = list(range(devices))
    if backend == "tensorflow" and not gpu:
        run(several)  # the first run splits the CPU before TensorFlow starts (a warm-up)
    out: dict[str, list[float]] = {"1": [], str(devices): []}
    out["1"].append(run([0]))
    for _ in range(repeats):
        out[str(devices)].append(run(several))
        out["1"].append(run([0]))
    return out


def ratio(result: dict, devices: int) -> float:
    """Median over the N-device runs of its speed / the mean of the 1-device runs before and after it."""
    one, many = result["1"], result[str(devices)]
    return statistics.median(m / ((one[i] + one[i + 1]) / 2) for i, m in enumerate(many))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["torch", "tensorflow", "mxnet"])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of every process (CPU runs)")
    parser.add_argument("--gpu", action="store_true", help="GPUs cuda:0..N-1 instead of CPU replicas")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure this backend, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(speeds(args.one, args.devices, args.rows, args.epochs, args.batch, args.repeats, args.gpu)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    results, ratios = {}, {}
    for backend in args.backends:
        command = [sys.executable, os.path.join(HERE, "data_parallel.py"), "--one", backend,
                   *(f"--{k}={v}" for k, v in vars(args).items() if k in ("devices", "rows", "epochs", "batch",
                                                                            "repeats")),
                   *(["--gpu"] if args.gpu else [])]
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode:
            print(f"{backend}: failed\n{done.stderr[-2000:]}")
            continue
        results[backend] = json.loads(done.stdout.strip().splitlines()[-1])
        ratios[backend] = ratio(results[backend], args.devices)
        print(f"{backend:<11} 1 device {statistics.mean(results[backend]['1']):>9.0f} rows/s   "
              f"{args.devices} devices {statistics.mean(results[backend][str(args.devices)]):>9.0f} rows/s   "
              f"ratio {ratios[backend]:.3f}")
    kind = "gpu" if args.gpu else "cpu"
    path = write_result(f"data_parallel_{kind}", {
        "settings": vars(args), "rows_per_second": results, "ratio_n_over_1": ratios,
        "note": "training_speed of the scoring history (scoring excluded); ratio: median over the N-device runs of "
                "speed / mean of the 1-device runs around it. CPU replicas share the machine's cores.",
    })
    print("saved", path)


if __name__ == "__main__":
    main()
