"""Saved models: one archive file per model (storage/saved_files.py), JSON for everything but arrays.

A saved model is the file `<path>/<model_id>` (H2O's name; a zip archive, read in place) whose members are

* `model.json`   the format version, deepwater's and the frameworks' versions, the parameter table's values,
                 the backend, network and task, the encoders and class levels, the scoring history and
                 metrics, and how to rebuild the inputs (image shape, scale; the mean image is an array);
* `arrays.safetensors`  the network's weights and statistics (`net/<name>`), the optimiser's state
                 (`training/<name>`) and the inputs' arrays (`inputs/<name>`), in safetensors (no code, only
                 a JSON header and raw tensors; format 1 wrote a .npz read with allow_pickle=False);
* `graph/`       for network='user', the user's graph file (or SavedModel folder) and weights file as they
                 were, so the model outlives the originals;
* `members/<model_id>/`  for an ensemble, each deepwater member as a saved model of its own;
* `checksums.json`  the BLAKE3 digest of every other member (format 1: SHA-256), checked before anything is
                 read: a truncated, damaged or edited file is refused.

Folders with the same files (what deepwater wrote before it wrote archives) load as they did. No file is ever
unpickled.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from dataclasses import asdict
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save_file

from deepwater.analysis.metrics import ModelMetrics
from deepwater.errors import ModelFileError, NotFittedError, ParameterError
from deepwater.files import give_default_mode, path_text
from deepwater.storage.model_classes import Model, model_class
from deepwater.storage.model_store import register
from deepwater.storage.saved_files import CHECKSUMS, SavedFiles, check_files, open_files, write_archive
from deepwater.training.trainer import TrainingOutcome

FORMAT_VERSION = 2  # 2 added the optimiser state (training/<name>) and the shuffler's state; 1 still loads
MODEL_JSON = "model.json"
ARRAYS = "arrays.safetensors"
FORMAT_1_ARRAYS = "arrays.npz"
GRAPH_DIR = "graph"
MEMBERS = "members"
BUNDLE_JSON = "bundle.json"  # marks a folder that model.export() wrote (deepwater/export.py): not a saved model
DISTRIBUTIONS = ("deepwater", "torch", "tensorflow", "tensorflow-cpu", "keras", "mxnet", "onnx", "onnxruntime", "numpy",
                 "pandas")


# --------------------------------------------------------------------------- JSON values

def json_values(value: Any) -> Any:
    """`value` with numpy scalars and arrays, tuples and datetimes made JSON values (datetimes as ISO text)."""
    if isinstance(value, dict):
        return {str(k): json_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_values(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_values(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def framework_versions() -> dict[str, str]:
    """Installed versions of deepwater and the frameworks a saved model may need."""
    versions = {}
    for name in DISTRIBUTIONS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


# --------------------------------------------------------------------------- saving

def save_model(model: Model, path: str | os.PathLike = ".", force: bool = False,
               filename: str | None = None) -> str:
    """Save a trained model as the file `<path>/<filename or model_id>`; returns that file's path.

    `force=False` refuses to replace an existing model (H2O's h2o.save_model). The file is complete or
    absent: it is written under a temporary name and renamed. `os.remove(path)` deletes the model.
    """
    if getattr(model, "_fitted", None) is None:
        raise NotFittedError(f"model {getattr(model, 'model_id', None)!r} is not trained, so there is nothing to "
                             "save; call train(...) first.")
    folder = Path(path_text(path, "path"))
    if folder.exists() and not folder.is_dir():
        raise ParameterError(f"path={os.fspath(path)!r} is a file; pass the folder to save the model in.")
    if any(parent.is_file() for parent in folder.parents):
        raise ParameterError(f"path={os.fspath(path)!r} lies inside a file, not a folder; pass a folder's path.")
    target = folder / (filename or model.model_id)
    write_archive(target, lambda staging: _write_model(model, staging), force)
    return str(target)


def _write_model(model: Model, folder: Path) -> None:
    """Write `model` into `folder`: its record, arrays and graph files, and for a model made of models (an
    ensemble) each member as a saved model under members/ and its other parts as files (`_blobs`)."""
    for name, member in getattr(model, "_members", dict)().items():
        (folder / MEMBERS / name).mkdir(parents=True)
        _write_model(member, folder / MEMBERS / name)
    for relative, data in getattr(model, "_blobs", dict)().items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_bytes(data)
    record, arrays, graph_files = model._to_record()
    for key, source in graph_files.items():
        (folder / GRAPH_DIR).mkdir(exist_ok=True)
        copy = folder / GRAPH_DIR / Path(source).name
        (shutil.copytree if Path(source).is_dir() else shutil.copyfile)(source, copy)
        record["graph_files"][key] = f"{GRAPH_DIR}/{copy.name}"
    record = {"format_version": FORMAT_VERSION, "versions": framework_versions(), **record}
    (folder / MODEL_JSON).write_text(json.dumps(json_values(record), indent=1))
    save_file({name: np.require(value, requirements="C") for name, value in arrays.items()}, str(folder / ARRAYS))
    give_default_mode(folder / ARRAYS)  # safetensors writes it private; the other files are not


# --------------------------------------------------------------------------- loading

def is_saved_model(path: Path) -> bool:
    """True when `path` is a saved model: an archive file, or a folder holding checksums.json."""
    return (path / CHECKSUMS).is_file() or (path.is_file() and zipfile.is_zipfile(path))


def newest_saved_model(path: Path) -> Path:
    """`path` itself when it is a saved model (or not a folder), else the newest saved model directly in it."""
    if is_saved_model(path) or not path.is_dir():
        return path
    models = [p for p in path.iterdir() if not p.name.startswith(".") and is_saved_model(p)]
    if not models and not (path / MODEL_JSON).exists():
        raise ModelFileError(f"path={str(path)!r} is a folder with no saved model in it (an export_checkpoints_dir "
                             "gets its first checkpoint at the first scoring); pass a saved model's path.")
    return max(models, key=lambda p: (p.stat().st_mtime_ns, p.name)) if models else path


def open_saved_model(path: str | os.PathLike) -> SavedFiles:
    """The files of the saved model at `path`, their checksums checked (ModelFileError naming the file).
    Use it in a `with` block."""
    path = Path(os.fspath(path))
    if not path.exists():
        raise ModelFileError(f"path={str(path)!r}: no such saved model; pass the path save_model() returned.")
    files = open_files(path)
    try:
        if BUNDLE_JSON in files and MODEL_JSON not in files:
            raise ModelFileError(f"path={str(path)!r} is a bundle that model.export() wrote, not a saved model: "
                                 "score it with deepwater.inference.load(path), or pass the saved model's path.")
        check_files(files, MODEL_JSON, "saved model", "save the model again")
    except BaseException:
        files.close()
        raise
    return files


def read_record(files: SavedFiles) -> dict:
    """The saved model's record (model.json), refused when a newer deepwater wrote it."""
    record = json.loads(files.read_bytes(MODEL_JSON))
    version = record.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(f"{files.location}/{MODEL_JSON} has format version {version!r}, newer than this "
                             f"deepwater reads ({FORMAT_VERSION}); upgrade deepwater to load it.")
    return record


def read_arrays(files: SavedFiles) -> dict[str, np.ndarray]:
    """The saved arrays: safetensors, or format 1's .npz read without pickle."""
    try:
        if FORMAT_1_ARRAYS in files:
            with np.load(io.BytesIO(files.read_bytes(FORMAT_1_ARRAYS)), allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        return load_safetensors(files.read_bytes(ARRAYS))
    except (ValueError, OSError, SafetensorError) as error:
        raise ModelFileError(f"{files.location!r}: its arrays cannot be read ({error}); save the model "
                             "again.") from error


def load_model(path: str | os.PathLike, backend: str | None = None) -> Model:
    """The model saved at `path` (or the newest saved model in the folder `path`), ready to predict.

    `backend` moves a built-in network to another installed backend (its weights are canonical); None
    keeps the backend it was trained on. A model trained on a GPU loads on a machine without one.
    """
    with open_saved_model(newest_saved_model(Path(path_text(path, "path")))) as files:
        return register(_model_from_files(files, backend))


def _model_from_files(files: SavedFiles, backend: str | None) -> Model:
    """The model saved in `files`, of the class its record's algo names (its members loaded first)."""
    record = read_record(files)
    members = {name: _model_from_files(files.under(f"{MEMBERS}/{name}"), backend)
               for name in record.get("members", ()) if name}
    return model_class(record.get("algo", "deepwater"))._from_record(record, read_arrays(files), files, members,
                                                                     backend)


# --------------------------------------------------------------------------- records of the model's parts

def record_of(metrics: ModelMetrics | None) -> dict | None:
    """A ModelMetrics as JSON values (None stays None)."""
    return None if metrics is None else json_values(asdict(metrics))


def metrics_from_record(record: dict | None) -> ModelMetrics | None:
    """The ModelMetrics that record_of() wrote."""
    if record is None:
        return None
    confusion = None if record["confusion"] is None else np.asarray(record["confusion"])
    return ModelMetrics(**{**record, "confusion": confusion})


def outcome_record(outcome: TrainingOutcome) -> dict:
    """A run's history and ending as JSON values (the final metrics are saved on their own)."""
    return json_values({key: value for key, value in asdict(outcome).items() if key != "final_metrics"})


def outcome_from_record(record: dict) -> TrainingOutcome:
    """The TrainingOutcome that outcome_record() wrote, timestamps as datetimes again."""
    history = [{**row, "timestamp": datetime.fromisoformat(row["timestamp"])} if "timestamp" in row else row
               for row in record["history"]]
    return TrainingOutcome(**{**record, "history": history})
