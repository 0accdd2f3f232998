"""The `deepwater` command (also `python -m deepwater`).

    deepwater train data.csv --y label --epochs 2 --hidden [32,32] --out models/m   # train and save a model
    deepwater train digits/ --y label --network lenet --out models/lenet             # an image folder: class/file.png
    deepwater predict models/m test.csv --out preds.csv       # a saved model's (or a bundle's) predictions
    deepwater export models/mnist bundles/mnist --layers fc2   # a saved model's ONNX bundle (model.export)
    deepwater explain models/lenet cats/ --out heatmaps        # Grad-CAM overlays of an image model, as PNG files
    deepwater serve bundles/mnist --port 8080                  # the prediction service (deepwater[serve])
    deepwater flow --data-dir flow-data --allow-dir data       # the web UI, Deep Water Flow (deepwater[flow])
    deepwater info bundles/mnist                              # what a bundle or a saved model holds, as JSON
    deepwater info                                            # the installed backends, versions and devices

A parameter takes a value (--epochs 2); a True/False one alone means True (--compile). `train` refuses an --out
that exists unless --force is given. `info`, `serve` and `predict` with a bundle check the folder's checksums and
import no deep learning framework.
An error deepwater raises on purpose (a bad parameter, file or value) is printed as one line on stderr, with exit
status 2.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd
from PIL import Image

from deepwater.analysis.plots import overlays
from deepwater.data.frames import import_file
from deepwater.data.images import is_image_uri
from deepwater.deploy import inference
from deepwater.deploy.inference import read_bundle
from deepwater.errors import DeepWaterError, ParameterError
from deepwater.files import write_atomically
from deepwater.flow import server as flow_server
from deepwater.flow.config import FlowConfig
from deepwater.model.estimator import DeepWaterEstimator
from deepwater.runtime import cluster
from deepwater.runtime.registry import get_backend, installed_backends
from deepwater.serving import server
from deepwater.serving.config import ServeConfig
from deepwater.storage.saved_models import (
    BUNDLE_JSON,
    framework_versions,
    is_saved_model,
    json_values,
    load_model,
    newest_saved_model,
    open_saved_model,
    read_record,
    save_model,
)
from deepwater.training.parameters import PARAMETERS

PORTS = range(1, 65536)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error printed as one line, and no abbreviated options (`--epochs` is a parameter,
    never short for another option)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="deepwater", description="H2O Deep Water for today's frameworks.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = commands.add_parser(
        "train", help="train a model on a file or an image folder and save it",
        description="Train a model on DATA and save it (deepwater.save_model). Any estimator parameter follows as "
                    "--name value, the value read as JSON where it is JSON (--epochs 2 --hidden [32,32] "
                    "--gpu false), else as text (--activation Tanh); a True/False parameter alone means True "
                    "(--compile); each is checked by the parameter table.")
    train.add_argument("data", help="a .csv, .csv.gz or .parquet file, or an image folder laid out as class/file.png "
                                    "(a frame of 'uri' and 'label', problem_type='image')")
    train.add_argument("--y", required=True, help="the response column ('label' for an image folder)")
    train.add_argument("--x", nargs="+", metavar="COLUMN", help="the predictor columns (default: all but y)")
    train.add_argument("--out", required=True, help="the saved model's file to write")
    train.add_argument("--force", action="store_true", help="replace an existing model (without it, an "
                                                             "existing --out is refused before training)")
    predict = commands.add_parser("predict", help="score a file or an image folder with a saved model or a bundle",
                                  description="Write MODEL's predictions for DATA as csv: a 'predict' column and, for "
                                              "classification, one probability column per class.")
    predict.add_argument("model", help="a saved model (save_model's file), or a bundle folder (model.export)")
    predict.add_argument("data", help="a .csv, .csv.gz or .parquet file, or an image folder (class/file.png)")
    predict.add_argument("--out", required=True, help="the csv file to write")
    export = commands.add_parser("export", help="write the ONNX bundle of a saved model (model.export)",
                                 description="Write the ONNX bundle of a saved model, which deepwater.inference "
                                             "scores with onnxruntime alone; prints the bundle's folder.")
    export.add_argument("model", help="a saved model (deepwater.save_model's file), or a folder of saved models "
                                      "(the newest is exported)")
    export.add_argument("bundle", help="the bundle folder to write")
    export.add_argument("--layers", nargs="+", metavar="LAYER", help="layers whose activations the bundle outputs "
                                                                     "too (for deepfeatures)")
    export.add_argument("--format", default="onnx", help="the bundle's format (onnx)")
    export.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    _add_explain(commands)
    info = commands.add_parser("info", help="describe a bundle, a saved model or the installation, as JSON",
                               description="Check a bundle's or saved model's checksums and print what it holds "
                                           "as JSON; without a path, print the installed backends, their versions "
                                           "and devices.")
    info.add_argument("path", nargs="?", help="a bundle folder (model.export) or a saved model "
                                              "(save_model's file); without it, the installed backends and their devices")
    _add_serve(commands)
    _add_flow(commands)
    return parser


def _add_explain(commands: argparse._SubParsersAction) -> None:
    explain = commands.add_parser(
        "explain", help="write heatmaps of why a saved image model predicts what it does, as PNG overlays",
        description="Explain MODEL's prediction for each image (model.explain) and write the image with its "
                    "heatmap drawn over it to DIR/<image name>.png (needs deepwater[plot]); prints each file.")
    explain.add_argument("model", help="a saved image model (save_model's file)")
    explain.add_argument("images", nargs="+", help="image files, or folders whose images are explained")
    explain.add_argument("--out", required=True, help="the folder to write the PNG overlays to")
    explain.add_argument("--method", default="gradcam", help="gradcam (default), saliency or integrated_gradients")
    explain.add_argument("--layer", help="the layer Grad-CAM reads (default: the last convolutional one)")
    explain.add_argument("--target", help="the class to explain (default: each image's predicted class)")
    explain.add_argument("--alpha", type=float, default=0.5, help="the heatmaps' opacity, 0..1 (default: 0.5)")


def _add_flow(commands: argparse._SubParsersAction) -> None:
    flow = commands.add_parser(
        "flow", help="start Deep Water Flow, the web UI (pip install 'deepwater[flow]')",
        description="Start Deep Water Flow: import frames, build models, watch their jobs and predict, in a browser "
                    "(pages at /, the REST API under /api/, its docs at /docs). Off 127.0.0.1 it asks a token of "
                    "every request: --token, or one it makes and prints.")
    flow.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)")
    flow.add_argument("--port", type=int, default=54321, help="the port, 1-65535 (default: %(default)s)")
    flow.add_argument("--data-dir", default="deepwater-flow", help="the folder of Flow's catalogue, frames and "
                                                                    "models, kept across restarts (default: "
                                                                    "%(default)s)")
    flow.add_argument("--allow-dir", action="append", default=[], metavar="DIR",
                      help="a folder whose files may be imported by path (repeat for several; default: none, "
                           "uploads only)")
    flow.add_argument("--allow-store", action="append", default=[], metavar="PREFIX",
                      help="an object store prefix (s3://bucket/photos/) whose objects may be imported, with the "
                           "store's usual credentials from the environment (repeat for several; default: none)")
    flow.add_argument("--token", help="the token every request must carry (default: none on 127.0.0.1; made and "
                                      "printed on any other address)")
    flow.add_argument("--max-upload-mb", type=float, default=FlowConfig("_").max_upload_mb,
                      help="the largest uploaded file in MB (default: %(default)s)")
    flow.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                      help="uvicorn's log level (default: %(default)s)")
    flow.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                      help="train Flow's jobs as Ray tasks: on a local Ray started here (no ADDRESS) or on the "
                           "cluster at ADDRESS, as dw.init(ADDRESS) joins it (pip install 'deepwater[ray]')")


def _add_serve(commands: argparse._SubParsersAction) -> None:
    defaults = ServeConfig("")
    serve = commands.add_parser(
        "serve", help="serve a bundle over HTTP (FastAPI + uvicorn; pip install 'deepwater[serve]')",
        description="Serve a bundle: POST /predict {\"rows\": [{column: value}, ...]}, POST /predict/images "
                    "(multipart), GET /health, GET /model, docs at /docs.")
    serve.add_argument("bundle", help="the bundle folder (model.export, deepwater export)")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8080, help="the port, 1-65535 (default: %(default)s)")
    serve.add_argument("--workers", type=int, default=1, help="server processes, each with the bundle (default: 1)")
    serve.add_argument("--max-batch", type=int, default=defaults.max_batch,
                       help="the most rows gathered into one network call; 1 turns batching off (default: "
                            "%(default)s)")
    serve.add_argument("--max-wait-ms", type=float, default=defaults.max_wait_ms,
                       help="how long a request waits for others to batch with (default: %(default)s)")
    serve.add_argument("--max-rows", type=int, default=defaults.max_rows,
                       help="the most rows per request (default: %(default)s)")
    serve.add_argument("--max-body-mb", type=float, default=defaults.max_body_mb,
                       help="the largest request body in MB; larger is a 413 (default: %(default)s)")
    serve.add_argument("--allow-dir", help="the folder whose images requests may name by local path (default: "
                                           "none, every local path refused)")
    serve.add_argument("--device", default=defaults.device, help="'cpu', 'cuda:<i>' or 'auto' (default)")
    serve.add_argument("--threads", type=int, default=defaults.threads,
                       help="onnxruntime's CPU threads (0: one per core)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                       help="uvicorn's log level; 'info' logs every request (default: %(default)s)")


def parse_params(tokens: Sequence[str]) -> dict[str, Any]:
    """Estimator parameters from `--name value ...` tokens: a value is JSON where it parses as JSON (2, [32,32],
    false), True/False/None as Python writes them, else text; several values make a list. A bare --name means True
    for a True/False parameter, and is a ParameterError for one of the table that needs a value (--epochs)."""
    params: dict[str, Any] = {}
    name = None
    for token in tokens:
        if token.startswith("--") and len(token) > 2:
            name = token[2:].replace("-", "_")
            if name in params:
                raise ParameterError(f"--{name} is given twice; give each parameter once.")
            params[name] = []
        elif name is None:
            raise ParameterError(f"{token!r} is not a parameter: give parameters as --name value (e.g. --epochs 2).")
        else:
            params[name].append(_value(token))
    return {key: _bare_flag(key) if not values else values[0] if len(values) == 1 else values
            for key, values in params.items()}


def _bare_flag(name: str) -> bool:
    """True for `--name` given alone, where the parameter table lets `name` be True (or does not hold it: the
    estimator then refuses the name); a ParameterError naming the value it needs, where it does not."""
    row = PARAMETERS.get(name)
    if row is None:
        return True
    try:
        return row.check(name, True)
    except ParameterError as error:
        need = str(error).partition(" is not allowed: ")[2].rstrip(".") or "give a value"
        example = _example(row.default)
        hint = f", e.g. --{name} {example}" if example else ""
        raise ParameterError(f"--{name} is given without a value, but it needs one: {need}{hint}.") from None


def _example(default: Any) -> str | None:
    """A parameter's default as it is written on the command line (10, [200,200], Rectifier), None for None."""
    if default is None:
        return None
    if isinstance(default, str):
        return default
    if isinstance(default, float) and default.is_integer():
        default = int(default)  # --epochs 10, not 10.0
    try:
        return json.dumps(default, separators=(",", ":"))
    except TypeError:
        return None


def _value(token: str) -> Any:
    """A command-line value as JSON, a Python constant or text."""
    constants = {"True": True, "False": False, "None": None}
    if token in constants:
        return constants[token]
    try:
        return json.loads(token)
    except ValueError:
        return token


def installation() -> dict[str, Any]:
    """What this machine runs: H2ODeepWaterEstimator.available(), and each installed backend's framework versions
    and devices."""
    versions = framework_versions()
    backends = {name: {"versions": {dist: v for dist, v in versions.items() if dist.split("-")[0] == name},
                       "devices": get_backend(name).devices()} for name in installed_backends()}
    return {"available": DeepWaterEstimator.available(), "deepwater": versions.get("deepwater"), "backends": backends}


def describe(path: str) -> dict[str, Any]:
    """What the bundle or saved model at `path` holds: its model, network, response and versions, checked."""
    folder = Path(path)
    if (folder / BUNDLE_JSON).is_file():
        bundle, folder = read_bundle(folder)
        graph = bundle["graph"]
        return {"kind": "bundle", "path": str(folder), **{key: bundle[key] for key in (
                    "model_id", "backend", "network", "graph_format", "problem_type", "predictors", "response")},
                "graph": {"file": graph["file"], "input": graph["input"], "output": graph["output"],
                          "layers": list(graph["layers"])},
                "files": sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()),
                "versions": bundle["versions"]}
    with open_saved_model(newest_saved_model(Path(path))) as files:
        record, location = read_record(files), files.location
    outcome = record["outcome"]
    metrics = {part: (record[f"{part}_metrics"] or {}).get("values") for part in ("training", "validation")}
    return {"kind": "saved model", "path": location, **{key: record[key] for key in (
                "model_id", "backend", "network", "problem_type", "predictors", "response")},
            "epochs": outcome["epochs"], "samples": outcome["samples"], "stop_reason": outcome["stop_reason"],
            "metrics": {part: values for part, values in metrics.items() if values},
            "format_version": record.get("format_version"), "versions": record.get("versions", {})}


def train(args: argparse.Namespace, params: dict[str, Any]) -> str:
    """Train on args.data with `params` and save the model as the file args.out; returns its path."""
    check_out(Path(args.out), args.force)
    frame = import_file(args.data)
    if Path(args.data).is_dir():
        params.setdefault("problem_type", "image")
    model = DeepWaterEstimator(**params).train(x=args.x, y=args.y, training_frame=frame)
    out = Path(args.out)
    return save_model(model, out.parent, force=args.force, filename=out.name)


def check_out(out: Path, force: bool) -> None:
    """A ParameterError, before any training, when the model file `out` cannot be written: it exists and `force`
    is False, or its parent is a file."""
    if out.parent.exists() and not out.parent.is_dir():
        raise ParameterError(f"--out {str(out)!r} is inside {str(out.parent)!r}, which is a file; give --out a "
                             "path in a folder.")
    if out.exists() and not force:
        what = "is a saved model" if is_saved_model(out) else "already exists"
        raise ParameterError(f"--out {str(out)!r} {what}; pass --force to replace it, or give another --out.")


def predict(args: argparse.Namespace) -> str:
    """Write the predictions of the model (or bundle) args.model for args.data to args.out; returns the path."""
    frame = import_file(args.data)
    if (Path(args.model) / BUNDLE_JSON).is_file():
        predictions = inference.load(args.model).predict(frame)
    else:
        predictions = load_model(args.model).predict(frame)
    return str(write_atomically(args.out, predictions.to_csv(index=False).encode()))


def image_files(paths: Sequence[str]) -> list[Path]:
    """The image files named, and those inside the folders named (sorted); ParameterError when a path is neither or
    no image is found."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and is_image_uri(str(p)))
        elif path.is_file():
            found.append(path)
        else:
            raise ParameterError(f"{str(path)!r} is neither an image file nor a folder; check the path.")
    if not found:
        raise ParameterError(f"no image file in {list(paths)}; give image files (.png, .jpg, ...) or their folders.")
    names = [p.stem for p in found]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ParameterError(f"several images are called {twice[:5]}, and each overlay is written as DIR/<name>.png; "
                             "explain them in separate runs.")
    return found


def explain(args: argparse.Namespace) -> list[str]:
    """Write args.model's heatmaps over args.images to args.out as PNG files; returns their paths."""
    facts = describe(args.model)
    if facts["problem_type"] != "image":
        raise ParameterError(f"{args.model!r} is a {facts['problem_type']} model; `deepwater explain` draws heatmaps "
                             "over images, for an image model. Use model.explain(frame) in Python for a dataset.")
    images = image_files(args.images)
    frame = pd.DataFrame({facts["predictors"][0]: [str(p) for p in images]})
    target = None if args.target is None else _value(args.target)
    model = load_model(args.model)
    heatmaps = model.explain(frame, method=args.method, layer=args.layer, target=target)
    written = []
    for path, picture in zip(images, overlays(frame, heatmaps, alpha=args.alpha, resize=model.image_resize)):
        png = io.BytesIO()
        Image.fromarray(picture).save(png, format="PNG")
        written.append(str(write_atomically(Path(args.out) / f"{path.stem}.png", png.getvalue())))
    return written


def serve(args: argparse.Namespace) -> None:
    """Serve args.bundle until interrupted; a bad --port is refused before the bundle is read."""
    if args.port not in PORTS:
        raise ParameterError(f"--port {args.port} is out of range; give a port in {PORTS.start}-{PORTS.stop - 1}, "
                             "e.g. --port 8080.")
    config = ServeConfig(args.bundle, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_rows=args.max_rows,
                         max_body_mb=args.max_body_mb, allow_dir=args.allow_dir, device=args.device,
                         threads=args.threads)
    server.serve(config, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in `argv` (default: the process's arguments); returns the exit status."""
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "train":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        if args.command == "train":
            print(train(args, parse_params(rest)))
        elif args.command == "predict":
            print(predict(args))
        elif args.command == "serve":
            serve(args)
        elif args.command == "flow":
            if args.ray is not None:
                cluster.init(args.ray or None)
            flow_server.run(FlowConfig(args.data_dir, tuple(args.allow_dir), args.token, args.max_upload_mb,
                                       allow_stores=tuple(args.allow_store)),
                            host=args.host, port=args.port, log_level=args.log_level)
        elif args.command == "explain":
            print("\n".join(explain(args)))
        elif args.command == "export":
            print(load_model(args.model).export(args.bundle, args.format, args.layers, args.force))
        else:
            print(json.dumps(json_values(describe(args.path) if args.path else installation()), indent=1))
    except (DeepWaterError, OSError) as error:
        message = " ".join(str(error).split())  # one line
        print(f"deepwater {args.command}: {message}", file=sys.stderr)
        return 2
    return 0
