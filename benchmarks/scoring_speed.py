"""Scoring at the speed of the runtime (issue 28): deepwater's scoring paths against the bare runtimes, on the MNIST
MLP [200, 200] (784 pixel columns, 10 classes), in one process and one session.

In process, on 1 row and on the 10,000 MNIST test rows: model.predict(frame) and the bundle's
inference.Scorer.predict(frame) (frame in, frame out: checks, encoders, network, labels) against the raw framework
forward (a torch.nn MLP of the same shapes, one inference-mode call with its softmax) and onnxruntime's own run on
the prepared (encoded) array, each computing with `--threads` threads (1 by default: on a shared machine, the
figure least disturbed by others). The four, with Scorer.predict_array on the float32 array of the model's columns
(and on one row Scorer.predict_row of the row as a dict and predict_array(as_frame=False), its answer as a dict
without a frame), run interleaved, `--repeats` times; a 1-row figure is
the time of one call (the median of `--calls` calls), a 10,000-row figure the median of the repeats. Then,
interleaved the same way, the microseconds of each stage of the bundle scorer (checking and encoding the frame, the
network call, onnxruntime's run alone, the answer's frame) and, on one row, of the service's frame-free path (a
JSON row read by its RowEncoder, the network call, the answer as dicts) and of Scorer.predict_row (a dict row in,
a dict out): where the time goes. Last, on one row of a tabular model (10 numeric and 2 categorical columns, MLP
[200, 200]): the bundle scorer on a frame and on a dict row (predict_row) against onnxruntime's run.

The service: `deepwater serve` against a hand-written FastAPI + onnxruntime app on the same model.onnx (the app
below: orjson, the bundle's means and scales, session.run), each under 16 clients posting one row per request for
`--seconds`, alternated (ours, theirs, ours, theirs). Every figure is a ratio measured side by side in this run.
Results: benchmarks/results/scoring_speed.json.
Run: `python benchmarks/scoring_speed.py [--seconds 15] [--clients 16] [--repeats 5] [--calls 200] [--threads 1]`.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnxruntime as ort
import orjson
import pandas as pd
from common import ServerProcess, alternate, load, write_result
from fastapi import FastAPI, Request, Response

import deepwater as dw
from deepwater import inference
from deepwater.serving.config import ServeConfig
from deepwater.serving.rows import RowEncoder

BUNDLE_VARIABLE = "SCORING_SPEED_BUNDLE"  # the bundle the hand-written app serves


def handwritten_app() -> FastAPI:
    """The hand-written service the issue measured: FastAPI, orjson and onnxruntime over the bundle's model.onnx,
    standardising the pixel columns with the bundle's means and scales (uvicorn's factory, bundle in the
    environment)."""
    folder = Path(os.environ[BUNDLE_VARIABLE])
    bundle = json.loads((folder / "bundle.json").read_text())
    numeric = bundle["inputs"]["encoder"]["numeric"]
    names = [c["name"] for c in numeric]
    mean, scale = (np.array([c[k] for c in numeric], dtype=np.float32) for k in ("mean", "scale"))
    classes = [str(c) for c in bundle["response"]["classes"]]
    session = ort.InferenceSession(str(folder / bundle["graph"]["file"]), providers=["CPUExecutionProvider"])
    graph = bundle["graph"]
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        rows = orjson.loads(await request.body())["rows"]
        x = (np.array([[row[name] for name in names] for row in rows], dtype=np.float32) - mean) / scale
        p = session.run([graph["output"]], {graph["input"]: x})[0]
        if not graph["probabilities"]:
            p = np.exp(p - p.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
        answer = [{"predict": classes[i], **dict(zip(classes, row))} for i, row in zip(p.argmax(1), p.tolist())]
        return Response(orjson.dumps({"predictions": answer}), media_type="application/json")

    return app


def train(folder: Path, train_rows: int) -> tuple[dw.DeepWaterEstimator, str, pd.DataFrame]:
    """The MLP trained briefly on torch (accuracy is not the point), its bundle, and the 10,000 test pixels."""
    train_frame, test = dw.datasets.mnist()
    train_frame = train_frame.head(train_rows).copy()
    train_frame["label"] = train_frame["label"].astype("category")
    model = dw.DeepWaterEstimator(hidden=[200, 200], epochs=1, gpu=False, quiet_mode=True, seed=1, backend="torch",
                                  mini_batch_size=64, score_training_samples=500)
    model.train(y="label", training_frame=train_frame)
    return model, model.export(folder / "mlp"), test.drop(columns="label")


def raw_torch(width: int, hidden: list[int], classes: int) -> Callable[[np.ndarray], np.ndarray]:
    """The raw framework forward: a torch.nn MLP of the model's shapes, called once under inference_mode, with
    its softmax, on a prepared float32 array."""
    import torch

    sizes = [width, *hidden]
    layers: list[torch.nn.Module] = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.ReLU()]
    module = torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-1], classes)).eval()

    def forward(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.softmax(module(torch.from_numpy(x)), dim=1).numpy()

    return forward


def medians(contenders: dict[str, Callable[[], Any]], calls: int, repeats: int) -> dict[str, float]:
    """Seconds per call of each contender: the median of `calls` calls in each of `repeats` interleaved runs."""
    runs = alternate({name: per_call(run, calls) for name, run in contenders.items()}, repeats)
    return {name: statistics.median(s for _, seconds in timed for s in seconds) for name, timed in runs.items()}


def per_call(function: Callable[[], Any], calls: int) -> Callable[[], list[float]]:
    """A run of `calls` calls of `function`, giving the seconds of each."""
    def run() -> list[float]:
        seconds = []
        for _ in range(calls):
            began = time.perf_counter()
            function()
            seconds.append(time.perf_counter() - began)
        return seconds
    return run


def onnxruntime_session(bundle: str, threads: int) -> Any:
    """A plain onnxruntime session of the bundle's model.onnx on the CPU, computing with `threads` threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(Path(bundle) / "model.onnx"), options, providers=["CPUExecutionProvider"])


def in_process(model: dw.DeepWaterEstimator, bundle: str, test: pd.DataFrame, repeats: int, calls: int,
               threads: int) -> dict:
    """Milliseconds per call of the four contenders on 1 row and on every test row, and the ratios."""
    scorer = inference.load(bundle, device="cpu", threads=threads)
    session = onnxruntime_session(bundle, threads)
    graph = scorer.bundle["graph"]
    forward = raw_torch(scorer.inputs.encoder.width, model.params["hidden"]["actual"],
                        len(scorer.response.classes))
    figures: dict[str, Any] = {}
    for label, frame in (("1_row", test.head(1)), (f"{len(test)}_rows", test)):
        x, numbers = scorer.encode(frame), frame[scorer.columns].to_numpy(dtype=np.float32)
        contenders = {"model_predict": lambda: model.predict(frame), "bundle_scorer": lambda: scorer.predict(frame),
                      "bundle_scorer_array": lambda: scorer.predict_array(numbers),
                      "raw_torch_forward": lambda: forward(x),
                      "onnxruntime_run": lambda: session.run([graph["output"]], {graph["input"]: x})}
        if len(frame) == 1:
            row = json_rows(frame)[0]
            contenders["bundle_scorer_row"] = lambda: scorer.predict_row(row)
            contenders["bundle_scorer_array_records"] = lambda: scorer.predict_array(numbers, as_frame=False)
        n = calls if len(frame) == 1 else 1
        ms = {name: 1e3 * seconds for name, seconds in medians(contenders, n, repeats).items()}
        figures[label] = {"ms": ms,
                          "bundle_scorer_vs_onnxruntime": ms["bundle_scorer"] / ms["onnxruntime_run"],
                          "bundle_scorer_array_vs_onnxruntime": ms["bundle_scorer_array"] / ms["onnxruntime_run"],
                          "model_predict_vs_raw_torch": ms["model_predict"] / ms["raw_torch_forward"],
                          "scorer_stages_us": scorer_stages(scorer, session, frame, n, repeats)}
        if len(frame) == 1:
            figures[label]["bundle_scorer_row_vs_onnxruntime"] = ms["bundle_scorer_row"] / ms["onnxruntime_run"]
            figures[label]["bundle_scorer_array_records_vs_onnxruntime"] = \
                ms["bundle_scorer_array_records"] / ms["onnxruntime_run"]
        print(label, json.dumps(figures[label], indent=1), flush=True)
    scorer.close()
    return figures


def json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as a client sends them (ints, floats, str)."""
    return orjson.loads(frame.to_json(orient="records"))


def tabular_bundle(folder: Path) -> tuple[str, pd.DataFrame]:
    """A tabular record's model: 10 numeric and 2 categorical columns, a two-class response, MLP [200, 200] on
    torch; its bundle and its first row."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(2000, 10)), columns=[f"x{i}" for i in range(10)])
    frame["city"] = pd.Categorical(rng.choice(["north", "south", "east", "west"], len(frame)))
    frame["plan"] = pd.Categorical(rng.choice(["basic", "plus", "pro"], len(frame)))
    frame["label"] = pd.Categorical(np.where(frame["x0"] + (frame["plan"] == "pro") > 0.5, "yes", "no"))
    model = dw.DeepWaterEstimator(hidden=[200, 200], epochs=1, gpu=False, quiet_mode=True, seed=1, backend="torch")
    model.train(y="label", training_frame=frame)
    return model.export(folder / "tabular"), frame.drop(columns="label").head(1)


def tabular_row(folder: Path, repeats: int, calls: int, threads: int) -> dict:
    """Milliseconds per call on one row of the tabular model: the bundle scorer on a frame and on a dict row
    (Scorer.predict_row, frame-free for plain rows), against onnxruntime's run on the prepared row."""
    bundle, frame = tabular_bundle(folder)
    scorer = inference.load(bundle, device="cpu", threads=threads)
    session, graph = onnxruntime_session(bundle, threads), scorer.bundle["graph"]
    x, row = scorer.encode(frame), json_rows(frame)[0]
    contenders = {"bundle_scorer": lambda: scorer.predict(frame), "bundle_scorer_row": lambda: scorer.predict_row(row),
                  "onnxruntime_run": lambda: session.run([graph["output"]], {graph["input"]: x})}
    ms = {name: 1e3 * seconds for name, seconds in medians(contenders, calls, repeats).items()}
    figures = {"ms": ms, "bundle_scorer_vs_onnxruntime": ms["bundle_scorer"] / ms["onnxruntime_run"],
               "bundle_scorer_row_vs_onnxruntime": ms["bundle_scorer_row"] / ms["onnxruntime_run"]}
    print("tabular_1_row", json.dumps(figures, indent=1), flush=True)
    return figures


def scorer_stages(scorer: inference.Scorer, session: Any, frame: pd.DataFrame, calls: int, repeats: int) -> dict:
    """Microseconds per call of each stage of the bundle scorer's predict(frame): checking and encoding the frame,
    the network call (onnxruntime's run with the scorer's batching and softmax), onnxruntime's run alone, the
    answer's frame, and the whole predict(); on one row also the service's frame-free path: a JSON row read into the
    network's input by its RowEncoder, the answer as dicts, and the two around the network call."""
    graph = scorer.bundle["graph"]
    x = scorer.encode(frame)
    out = scorer.outputs(x)
    positions = np.arange(len(frame))
    stages = {"check_and_encode_frame": lambda: scorer.encode(frame), "network_call": lambda: scorer.outputs(x),
              "onnxruntime_run": lambda: session.run([graph["output"]], {graph["input"]: x}),
              "answer_frame": lambda: scorer.response.predictions(out, positions, frame.index),
              "scorer_predict": lambda: scorer.predict(frame)}
    if len(frame) == 1:
        encoder = RowEncoder(scorer, ServeConfig(str(scorer.folder), device="cpu"))
        rows = json_rows(frame)
        stages |= {"predict_row_encode_row": lambda: scorer.inputs.encoder.encode_row(rows[0]),
                   "predict_row": lambda: scorer.predict_row(rows[0]),
                   "service_encode_rows": lambda: encoder.encode_rows(rows),
                   "service_answer_records": lambda: scorer.records(out),
                   "service_path": lambda: scorer.records(scorer.outputs(encoder.encode_rows(rows)))}
    return {name: 1e6 * seconds for name, seconds in medians(stages, calls, repeats).items()}


def services(bundle: str, test: pd.DataFrame, clients: int, seconds: float) -> dict:
    """`deepwater serve` and the hand-written app under the same load, alternated twice."""
    rows = json.loads(test.head(512).to_json(orient="records"))
    ours = lambda port: [sys.executable, "-m", "deepwater", "serve", bundle, "--port", str(port),  # noqa: E731
                         "--log-level", "warning", "--device", "cpu"]
    theirs = lambda port: [sys.executable, "-m", "uvicorn", "--app-dir", os.path.dirname(__file__),  # noqa: E731
                           "--factory", "scoring_speed:handwritten_app", "--port", str(port), "--log-level", "warning"]
    runs: dict[str, list[dict]] = {"deepwater_serve": [], "handwritten_app": []}
    for _ in range(2):
        for name, command in (("deepwater_serve", ours), ("handwritten_app", theirs)):
            with ServerProcess(command, {BUNDLE_VARIABLE: bundle}) as server:
                runs[name].append(load(server.port, rows, clients, seconds))
            print(name, runs[name][-1], flush=True)
    mean = {name: {key: statistics.fmean(run[key] for run in done) for key in ("requests_per_s", "p50_ms", "p99_ms")}
            | {"errors": sum(run["errors"] for run in done)} for name, done in runs.items()}
    ours, theirs = mean["deepwater_serve"], mean["handwritten_app"]
    return {"runs": runs, "mean": mean, "requests_per_s_ratio": ours["requests_per_s"] / theirs["requests_per_s"],
            "p99_ratio": ours["p99_ms"] / theirs["p99_ms"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="each load run's length (default 15)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats in process (default 5)")
    parser.add_argument("--calls", type=int, default=200, help="1-row calls per repeat (default 200)")
    parser.add_argument("--train-rows", type=int, default=5000, help="MNIST rows the model trains on")
    parser.add_argument("--threads", type=int, default=1, help="threads of torch and onnxruntime in process (0: "
                                                                   "each its default)")
    parser.add_argument("--skip-service", action="store_true", help="the in-process figures only")
    parser.add_argument("--skip-in-process", action="store_true", help="the service figures only")
    args = parser.parse_args()
    if args.threads:  # read by torch when it starts (deepwater imports it on first use)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    results: dict[str, Any] = {"settings": vars(args)}
    with tempfile.TemporaryDirectory() as folder:
        model, bundle, test = train(Path(folder), args.train_rows)
        if not args.skip_in_process:
            results["in_process"] = in_process(model, bundle, test, args.repeats, args.calls, args.threads)
            results["in_process"]["tabular_1_row"] = tabular_row(Path(folder), args.repeats, args.calls, args.threads)
        if not args.skip_service:
            results["service"] = services(bundle, test, args.clients, args.seconds)
            print("service", json.dumps({k: v for k, v in results["service"].items() if k != "runs"}, indent=1))
    print(write_result("scoring_speed", results))


if __name__ == "__main__":
    main()
