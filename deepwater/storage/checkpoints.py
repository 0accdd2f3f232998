"""Checkpoints: finding the model a `checkpoint=` names, and the crash-safe checkpoints of
`export_checkpoints_dir`. The rules of a restart (what it may change) are training/restart.py's."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from deepwater.errors import NotFittedError, ParameterError
from deepwater.storage.model_classes import Model
from deepwater.storage.model_store import get_model, held
from deepwater.storage.saved_files import remove_saved
from deepwater.storage.saved_models import is_saved_model, load_model, save_model


def resolve_checkpoint(value: Any, parameter: str = "checkpoint") -> Model:
    """The trained model `value` names: the model itself, a model_id held in this process, a saved
    model's path, or an export_checkpoints_dir folder (its newest complete checkpoint); errors name `parameter`."""
    if hasattr(value, "model_id") and not isinstance(value, str):
        model = value
    elif value in held():
        model = get_model(value)
    elif os.path.exists(value):
        model = load_model(value)
    else:
        raise ParameterError(f"{parameter}={value!r} is neither a model_id of this process (deepwater.ls() lists "
                             "them) nor an existing saved model or export_checkpoints_dir folder; pass a trained "
                             "model, its model_id, or the path deepwater.save_model() returned.")
    if getattr(model, "_fitted", None) is None:
        raise NotFittedError(f"{parameter}={model.model_id!r} is not trained, so there is nothing to start from; "
                             f"train it first or drop {parameter}.")
    return model


class CheckpointWriter:
    """Saves a model into `folder` at each call, named '<model_id>-<samples>', and keeps the newest `keep`.

    Each checkpoint is a complete saved model, one archive file (written under a temporary name and renamed),
    so a process killed at any moment leaves only complete checkpoints and, at worst, a hidden temporary file
    or folder, which the next writer in that folder removes.
    """

    def __init__(self, folder: str | os.PathLike, model_id: str, keep: int) -> None:
        self.folder, self.model_id, self.keep = Path(os.fspath(folder)), model_id, keep
        if self.folder.exists() and not self.folder.is_dir():
            raise ParameterError(f"export_checkpoints_dir={os.fspath(folder)!r} is a file; pass a folder.")
        self.folder.mkdir(parents=True, exist_ok=True)
        for left in self.folder.glob(".*.tmp"):  # a killed run's half-written checkpoint
            remove_saved(left)

    def __call__(self, model: Model, samples: int) -> str:
        """Save `model` (trained for `samples` rows) and drop checkpoints beyond the newest `keep`."""
        path = save_model(model, self.folder, force=True, filename=f"{self.model_id}-{samples:012d}")
        ours = sorted(p for p in self.folder.glob(f"{self.model_id}-*") if is_saved_model(p))
        for old in ours[:-self.keep]:
            remove_saved(old)
        return path
