"""The `deepwater` command (also `python -m deepwater`).

    deepwater export models/mnist bundles/mnist --layers fc2   # a saved model's ONNX bundle (model.export)
    deepwater info bundles/mnist                              # what a bundle or a saved model holds, as JSON

`info` checks the folder's checksums and reads its JSON only: it imports no deep learning framework. An error
deepwater raises on purpose is printed as one line on stderr, with exit status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import DeepWaterError
from .inference import read_bundle
from .model_files import BUNDLE_JSON, load_model, newest_model_folder, plain, read_model_folder


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deepwater", description="H2O Deep Water for today's frameworks.")
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="write the ONNX bundle of a saved model (model.export)",
                                 description="Write the ONNX bundle of a saved model, which deepwater.inference "
                                             "scores with onnxruntime alone; prints the bundle's folder.")
    export.add_argument("model", help="a saved model's folder (deepwater.save_model), or a folder of saved models "
                                      "(the newest is exported)")
    export.add_argument("bundle", help="the bundle folder to write")
    export.add_argument("--layers", nargs="+", metavar="LAYER", help="layers whose activations the bundle outputs "
                                                                     "too (for deepfeatures)")
    export.add_argument("--format", default="onnx", help="the bundle's format (onnx)")
    export.add_argument("--force", action="store_true", help="replace an existing bundle folder")
    info = commands.add_parser("info", help="describe a bundle or a saved model, as JSON",
                               description="Check a bundle's or saved model's checksums and print what it holds "
                                           "as JSON.")
    info.add_argument("path", help="a bundle folder (model.export) or a saved model's folder (save_model)")
    return parser


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
    record, _, folder = read_model_folder(newest_model_folder(folder))
    outcome = record["outcome"]
    metrics = {part: (record[f"{part}_metrics"] or {}).get("values") for part in ("training", "validation")}
    return {"kind": "saved model", "path": str(folder), **{key: record[key] for key in (
                "model_id", "backend", "network", "problem_type", "predictors", "response")},
            "epochs": outcome["epochs"], "samples": outcome["samples"], "stop_reason": outcome["stop_reason"],
            "metrics": {part: values for part, values in metrics.items() if values},
            "format_version": record.get("format_version"), "versions": record.get("versions", {})}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in `argv` (default: the process's arguments); returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "export":
            print(load_model(args.model).export(args.bundle, args.format, args.layers, args.force))
        else:
            print(json.dumps(plain(describe(args.path)), indent=1))
    except DeepWaterError as error:
        print(f"deepwater {args.command}: {error}", file=sys.stderr)
        return 2
    return 0
