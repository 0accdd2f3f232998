"""Saved models: one folder per model, JSON for everything but arrays, a .npz of arrays read without pickle.

A saved model is the folder `<path>/<model_id>` holding

* `model.json`   the format version, deepwater's and the frameworks' versions, the parameter table's values,
                 the backend, network and task, the encoders and class levels, the scoring history and
                 metrics, and how to rebuild the inputs (image shape, scale; the mean image is an array);
* `arrays.safetensors`  the network's weights and statistics (`net/<name>`), the optimiser's state
                 (`training/<name>`) and the inputs' arrays (`inputs/<name>`), in safetensors (no code, only
                 a JSON header and raw tensors; format 1 wrote a .npz read with allow_pickle=False);
* `graph/`       for network='user', the user's graph file (or SavedModel folder) and weights file as they
                 were, so the model outlives the originals;
* `checksums.json`  the BLAKE3 digest of every other file (format 1: SHA-256), checked before anything is
                 read: a truncated, damaged or edited file is refused.

The folder is written under a temporary name beside the target and renamed, so a crash never leaves half
a model. No file in it is ever unpickled.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import blake3
import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from deepwater.analysis.metrics import ModelMetrics
from deepwater.errors import ModelFileError, NotFittedError, ParameterError
from deepwater.files import give_default_mode, path_text
from deepwater.storage.model_classes import Model, model_class
from deepwater.storage.model_store import register
from deepwater.training.trainer import TrainingOutcome

FORMAT_VERSION = 2  # 2 added the optimiser state (training/<name>) and the shuffler's state; 1 still loads
MODEL_JSON = "model.json"
ARRAYS = "arrays.safetensors"
FORMAT_1_ARRAYS = "arrays.npz"
CHECKSUMS = "checksums.json"
DIGEST = "blake3"  # cryptographic and about 8 GB/s on one core: SHA-256 took 5x longer on ResNet-50's 200 MB
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


def digest(path: Path, algorithm: str = DIGEST) -> str:
    """The hex digest of the file at `path` ('blake3', or 'sha256' for format 1's checksums)."""
    if algorithm == DIGEST:
        return blake3.blake3().update_mmap(path).hexdigest()
    hashed = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            hashed.update(chunk)
    return hashed.hexdigest()


# --------------------------------------------------------------------------- saving

def save_model(model: Model, path: str | os.PathLike = ".", force: bool = False,
               filename: str | None = None) -> str:
    """Save a trained model as the folder `<path>/<filename or model_id>`; returns that folder's path.

    `force=False` refuses to replace an existing model (H2O's h2o.save_model). The folder is complete or
    absent: it is written under a temporary name and renamed.
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
    write_folder(target, lambda staging: _write_folder(model, staging), force)
    return str(target)


def write_folder(target: Path, fill: Callable[[Path], None], force: bool) -> None:
    """Have `fill` write files into a new temporary folder beside `target`, add their checksums.json, and
    rename that folder to `target`, so that `target` is complete or absent. An existing `target` is replaced
    when `force`, else a ParameterError."""
    if target.exists() and not force:
        raise ParameterError(f"{str(target)!r} already exists; pass force=True to replace it, or another path.")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        staging.mkdir()
        fill(staging)
        _write_checksums(staging)
        _replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_checksums(folder: Path) -> None:
    """checksums.json: the digest of every file in `folder`, by its path relative to `folder`."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    sums = {p.relative_to(folder).as_posix(): digest(p) for p in files}
    (folder / CHECKSUMS).write_text(json.dumps({"algorithm": DIGEST, "files": sums}, indent=1))


def _write_folder(model: Model, folder: Path) -> None:
    """Write `model` into `folder`: its record, arrays and graph files, and for a model made of models (an
    ensemble) each member as a saved model under members/ and its other parts as files (`_blobs`)."""
    for name, member in getattr(model, "_members", dict)().items():
        (folder / MEMBERS / name).mkdir(parents=True)
        _write_folder(member, folder / MEMBERS / name)
        _write_checksums(folder / MEMBERS / name)  # a member is a complete saved model too
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
    give_default_mode(folder / ARRAYS)  # safetensors writes it private; the folder's other files are not


def _replace(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`, moving an existing `target` aside first and removing it after."""
    aside = None
    if target.exists():
        aside = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
        target.rename(aside)
    staging.rename(target)
    if aside is not None and aside.is_dir():
        shutil.rmtree(aside, ignore_errors=True)
    elif aside is not None:
        aside.unlink()


# --------------------------------------------------------------------------- loading

def read_model_folder(path: str | os.PathLike) -> tuple[dict, dict[str, np.ndarray], Path]:
    """The record, arrays and folder of the saved model at `path`, checked (ModelFileError naming the file)."""
    folder = Path(os.fspath(path))
    if not folder.exists():
        raise ModelFileError(f"path={os.fspath(path)!r}: no such saved model; pass the path save_model() returned.")
    if not folder.is_dir() or not (folder / CHECKSUMS).is_file():
        raise ModelFileError(f"path={os.fspath(path)!r} is not a deepwater saved model (a folder with {MODEL_JSON}, "
                             f"{ARRAYS} and {CHECKSUMS}, written by deepwater.save_model). deepwater never "
                             "unpickles files; save the model with deepwater.save_model.")
    if (folder / BUNDLE_JSON).is_file() and not (folder / MODEL_JSON).exists():
        raise ModelFileError(f"path={os.fspath(path)!r} is a bundle that model.export() wrote, not a saved model: "
                             "score it with deepwater.inference.load(path), or pass the saved model's folder.")
    check_files(folder, MODEL_JSON, "saved model", "save the model again")
    record = json.loads((folder / MODEL_JSON).read_text())
    version = record.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(f"{str(folder / MODEL_JSON)!r} has format version {version!r}, newer than this "
                             f"deepwater reads ({FORMAT_VERSION}); upgrade deepwater to load it.")
    return record, _read_arrays(folder), folder


def check_files(folder: Path, required: str, what: str, fix: str) -> None:
    """ModelFileError unless the files in `folder` are exactly those its checksums.json lists, `required`
    among them, each matching its digest. `what` names the folder's kind in messages ("saved model"),
    `fix` says what to do ("save the model again")."""
    algorithm, sums = _read_checksums(folder / CHECKSUMS, what, fix)
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {CHECKSUMS}
    if set(sums) != present or required not in sums:
        raise ModelFileError(f"{str(folder)!r}: the files {sorted(present)} are not those its {CHECKSUMS} lists; "
                             f"the {what} was changed or is incomplete: {fix}.")
    for name, expected in sums.items():
        if digest(folder / name, algorithm) != expected:
            raise ModelFileError(f"{str(folder / name)!r} does not match its checksum: the file was changed or "
                                 f"damaged after it was written; {fix}.")


def _read_checksums(path: Path, what: str, fix: str) -> tuple[str, dict[str, str]]:
    """The digest algorithm and the digest of each file, from checksums.json (format 1: SHA-256 by file)."""
    try:
        sums = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{str(path)!r} is not readable JSON ({error}); the {what} is damaged: {fix}.") from error
    if isinstance(sums, dict) and sums.get("algorithm") == DIGEST and isinstance(sums.get("files"), dict):
        return DIGEST, sums["files"]
    if isinstance(sums, dict) and all(isinstance(v, str) for v in sums.values()) and "algorithm" not in sums:
        return "sha256", sums
    raise ModelFileError(f"{str(path)!r} does not list the files' digests as deepwater writes them; the {what} "
                         f"is damaged or was not written by deepwater: {fix}.")


def _read_arrays(folder: Path) -> dict[str, np.ndarray]:
    """The saved arrays: safetensors, or format 1's .npz read without pickle."""
    try:
        if (folder / FORMAT_1_ARRAYS).is_file():
            with np.load(folder / FORMAT_1_ARRAYS, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        return load_file(str(folder / ARRAYS))
    except (ValueError, OSError, SafetensorError) as error:
        raise ModelFileError(f"{str(folder)!r}: its arrays cannot be read ({error}); save the model again.") from error


def newest_model_folder(path: Path) -> Path:
    """`path` itself when it is a saved model, else the newest saved model directly inside it."""
    if (path / CHECKSUMS).is_file() or not path.is_dir():
        return path
    models = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / CHECKSUMS).is_file()]
    if not models and not (path / MODEL_JSON).exists():
        raise ModelFileError(f"path={str(path)!r} is a folder with no saved model in it (an export_checkpoints_dir "
                             "gets its first checkpoint at the first scoring); pass a saved model's folder.")
    return max(models, key=lambda p: (p.stat().st_mtime_ns, p.name)) if models else path


def load_model(path: str | os.PathLike, backend: str | None = None) -> Model:
    """The model saved at `path` (or the newest saved model in the folder `path`), ready to predict.

    `backend` moves a built-in network to another installed backend (its weights are canonical); None
    keeps the backend it was trained on. A model trained on a GPU loads on a machine without one.
    """
    return register(_model_from_folder(newest_model_folder(Path(path_text(path, "path"))), backend))


def _model_from_folder(folder: Path, backend: str | None) -> Model:
    """The model saved in `folder`, of the class its record's algo names (its members loaded first)."""
    record, arrays, folder = read_model_folder(folder)
    members = {name: _model_from_folder(folder / MEMBERS / name, backend) for name in record.get("members", ())
               if name}
    return model_class(record.get("algo", "deepwater"))._from_record(record, arrays, folder, members, backend)


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
