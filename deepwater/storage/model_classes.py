"""Model classes found by the name a saved record holds (its `algo`), as Keras 3 finds registered objects.

Storage saves and loads models without importing the layers above it: a model class registers itself with
`@saved_as_algo`, and load_model() asks `model_class(record["algo"])` for the class that rebuilds the record.
"""
from __future__ import annotations

from typing import Any, Protocol, TypeVar

import numpy as np

from deepwater.errors import ModelFileError
from deepwater.storage.saved_files import SavedFiles


class Model(Protocol):
    """What storage needs of a model: its name, its kind, and its record (JSON values, arrays, graph files)."""

    model_id: str
    algo: str

    def _to_record(self) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, str]]: ...


class ModelClass(Protocol):
    """A class whose saved records load back: `_from_record` rebuilds a model from its record, arrays and
    saved files, with its member models (an ensemble's) already loaded, on `backend` (None: the saved one)."""

    algo: str

    def _from_record(self, record: dict[str, Any], arrays: dict[str, np.ndarray], files: SavedFiles,
                     members: dict[str, Model], backend: str | None) -> Model: ...


_CLASSES: dict[str, ModelClass] = {}
Class = TypeVar("Class")


def saved_as_algo(cls: Class) -> Class:
    """Class decorator: records whose `algo` is `cls.algo` load as `cls`."""
    _CLASSES[cls.algo] = cls
    return cls


def model_class(algo: str) -> ModelClass:
    """The class registered for `algo`; a ModelFileError naming the known ones when none is."""
    if algo not in _CLASSES:
        raise ModelFileError(f"the saved model's algo={algo!r} is not a kind of model deepwater knows (known: "
                             f"{', '.join(sorted(_CLASSES))}); it was written by another program or a newer "
                             "deepwater: load it there.")
    return _CLASSES[algo]
