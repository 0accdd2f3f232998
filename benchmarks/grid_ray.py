"""Grid search and cross-validation in the process vs as Ray tasks, side by side on this machine.

1. A Cartesian grid of 8 MNIST MLPs (hidden x learning_rate x activation, 2 epochs each, batch 128) trained
   one after another in the process, at torch's default threads and at one thread, and with parallelism=2 on
   a local Ray runtime of 2 CPUs (one thread per task), interleaved in each repeat. A first, untimed Ray grid
   starts the worker processes (its time is reported as cold). The grids give the same models (checked).
2. Ray's overhead per task: the same 8 jobs alone, each in the process and then as a Ray task, both at one
   torch thread; the difference is what a task adds (sending the job, reading the frames from the object
   store, saving the model, sending its files, loading them).
3. 5-fold cross-validation (5 fold models, then the main model) vs 6 single trainings on every row, in the
   process and with the folds as Ray tasks (one torch thread throughout), interleaved.

Run: `python benchmarks/grid_ray.py [--rows 60000] [--repeats 2]`; --rows takes the first rows of the
60,000 training digits. The machine is shared: medians over the repeats are reported beside every run.
"""
from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from common import alternate, timed, write_result

import deepwater as dw
from deepwater.model import jobs as execution
from deepwater.model import runners as job_runners
from deepwater.model.ray_jobs import RayRunner

HYPER = {"hidden": [[64], [128]], "learning_rate": [0.005, 0.02], "activation": ["Rectifier", "Tanh"]}
BASE = {"epochs": 2, "mini_batch_size": 128, "gpu": False, "quiet_mode": True, "seed": 1, "stopping_rounds": 0,
        "score_training_samples": 1000, "score_validation_samples": 1000, "backend": "torch"}


def grid(grid_id: str, train: pd.DataFrame, test: pd.DataFrame, parallelism: int) -> dw.H2OGridSearch:
    return dw.H2OGridSearch(dw.DeepWaterEstimator(**BASE), HYPER, grid_id=grid_id, parallelism=parallelism).train(
        y="label", training_frame=train, validation_frame=test)


def largest_difference(a: dw.H2OGridSearch, b: dw.H2OGridSearch, frame: pd.DataFrame) -> float:
    """The largest difference of the two grids' class probabilities on `frame`, model by model."""
    classes = [str(c) for c in range(10)]

    def number(model: dw.DeepWaterEstimator) -> int:
        return int(model.model_id.rsplit("_", 1)[1])

    pairs = zip(sorted(a.models, key=number), sorted(b.models, key=number))
    return max(float(np.abs(x.predict(frame)[classes].to_numpy() - y.predict(frame)[classes].to_numpy()).max())
               for x, y in pairs)


def alone(runners: dict[str, execution.Runner], jobs: list[execution.Job]) -> dict[str, list[float]]:
    """Wall seconds of each job run alone on each runner, interleaved job by job."""
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for job in jobs:
        for name, run in runners.items():
            start = time.perf_counter()
            run.submit(replace(job, params={**job.params, "model_id": f"{job.model_id}_{name}"}))
            _, outcome = run.next_done()
            assert not isinstance(outcome, execution.Failure), outcome.message
            seconds[name].append(time.perf_counter() - start)
    return seconds


def task_overhead(train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """The 8 grid jobs alone, in the process and as Ray tasks, at one torch thread each."""
    space = dw.H2OGridSearch(dw.DeepWaterEstimator, HYPER)._space
    jobs = [execution.Job(dw.DeepWaterEstimator, {**BASE, **space.combination(i), "model_id": f"alone_{i}"},
                          None, "label") for i in range(space.size)]
    put_seconds, ray_runner = timed(lambda: RayRunner(train, test, 1))  # the frames to the object store, once
    with torch_threads(1):
        seconds = alone({"in_process": execution.InProcess(train, test), "ray_task": ray_runner}, jobs)
    overhead = [b - a for a, b in zip(seconds["in_process"], seconds["ray_task"])]
    return {"frames_to_object_store_seconds": put_seconds, "in_process_seconds": seconds["in_process"],
            "ray_task_seconds": seconds["ray_task"], "overhead_seconds": overhead,
            "median_overhead_seconds": statistics.median(overhead),
            "median_overhead_share": statistics.median(o / a for o, a in zip(overhead, seconds["in_process"]))}


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cross_validation(train: pd.DataFrame, repeats: int) -> dict:
    """5-fold CV vs 6 single trainings in the process, and the CV with its folds as Ray tasks, interleaved."""
    params = {**BASE, "hidden": [128], "learning_rate": 0.02}

    def six_single() -> None:
        for _ in range(6):
            dw.DeepWaterEstimator(**params).train(y="label", training_frame=train)

    def cv5() -> None:
        dw.DeepWaterEstimator(nfolds=5, **params).train(y="label", training_frame=train)

    def cv5_here() -> None:  # the folds in the process while the Ray runtime stays up
        connected = job_runners.connected
        job_runners.connected = lambda: False
        try:
            cv5()
        finally:
            job_runners.connected = connected

    with torch_threads(1):
        runs = alternate({"six_single": six_single, "cv5_in_process": cv5_here, "cv5_folds_on_ray": cv5}, repeats)
    seconds = {name: [s for s, _ in timings] for name, timings in runs.items()}
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    return {"seconds": seconds, "median_seconds": medians,
            "cv5_in_process_vs_six_single": medians["cv5_in_process"] / medians["six_single"],
            "cv5_folds_on_ray_vs_six_single": medians["cv5_folds_on_ray"] / medians["six_single"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    train, test = dw.datasets.mnist()
    train = train.iloc[:args.rows].copy()
    for frame in (train, test):
        frame["label"] = frame["label"].astype("category")
    threads = torch.get_num_threads()
    init_seconds, cluster = timed(lambda: dw.init(num_cpus=2))
    cold_seconds, _ = timed(lambda: grid("cold", train, test, 2))
    grids: dict[str, dw.H2OGridSearch] = {}
    numbers = itertools.count()

    def contender(name: str, parallelism: int, count: int) -> Callable[[], dw.H2OGridSearch]:
        def run() -> dw.H2OGridSearch:
            with torch_threads(count):
                grids[name] = grid(f"{name}_{next(numbers)}", train, test, parallelism)
            return grids[name]

        return run

    runs = alternate({"sequential_default_threads": contender("seq", 1, threads),
                      "sequential_1_thread": contender("seq1", 1, 1),
                      "parallelism_2_on_ray": contender("ray", 2, 1)}, args.repeats)
    seconds = {name: [s for s, _ in timings] for name, timings in runs.items()}
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    best = grids["seq"].models[0]
    result = {
        "settings": {"rows": len(train), "models": 8, "hyper_params": HYPER, **BASE, "repeats": args.repeats,
                     "torch_default_threads": threads, "torch_threads_per_ray_task": 1, "ray_cpus": cluster.cpus,
                     "ray_version": __import__("ray").__version__},
        "ray_init_seconds": init_seconds,
        "grid_cold_ray_seconds": cold_seconds,
        "grid_seconds": seconds,
        "grid_median_seconds": medians,
        "ray_vs_sequential_default_threads": medians["parallelism_2_on_ray"] / medians["sequential_default_threads"],
        "ray_vs_sequential_1_thread": medians["parallelism_2_on_ray"] / medians["sequential_1_thread"],
        "largest_probability_difference_sequential_vs_ray": largest_difference(grids["seq1"], grids["ray"], test),
        "best_model": {"hyper": grids["seq"].get_hyperparams_dict(0, display=False),
                       "test_accuracy": float(best.model_performance(test).accuracy())},
        "task_overhead": task_overhead(train, test),
        "cross_validation": cross_validation(train, args.repeats),
        "note": "Ray runs 2 tasks of 1 torch thread each on the 2 cores. The machine is shared with other "
                "work; each repeat runs the contenders one after another, so load hits all alike.",
    }
    print(write_result("grid_ray", result))
    for key in ("grid_median_seconds", "ray_vs_sequential_default_threads", "ray_vs_sequential_1_thread",
                "largest_probability_difference_sequential_vs_ray", "best_model"):
        print(key, result[key])
    print({k: v for k, v in result["task_overhead"].items() if k.startswith(("median", "frames"))})
    print(result["cross_validation"])


if __name__ == "__main__":
    main()
