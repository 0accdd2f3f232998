"""Training many models: one after another in this process, or as Ray tasks once deepwater.init() has run.

Cross-validation's fold models and a grid's models are `Job`s: an estimator class, its parameters, the
columns, and which rows of the shared training and validation frames the model trains and validates on.
A runner takes jobs and hands back each one's model or its `Failure`. In this process (`InProcess`) a
job runs when its result is asked for; on Ray (runtime/cluster.py) the frames go to the object store
once and the jobs run as tasks side by side (ray_jobs.py); runners.py picks the runner.
"""
from __future__ import annotations

import traceback
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol, Union

import numpy as np
import pandas as pd

from deepwater.storage.model_classes import Model


@dataclass(frozen=True, eq=False)
class Job:
    """One model to train: `estimator(**params).train(x, y, rows of the training frame, rows of the
    validation frame)`; rows are positions, None meaning every row."""

    estimator: type
    params: dict[str, Any]
    x: Any
    y: Any
    train_rows: np.ndarray | None = None
    valid_rows: np.ndarray | None = None

    @property
    def model_id(self) -> str:
        return self.params["model_id"]


@dataclass(frozen=True, eq=False)
class Failure:
    """A job whose model could not be built, and why."""

    job: Job
    error: BaseException
    traceback: str

    @property
    def message(self) -> str:
        """'<error type>: <message>' of the original error (a Ray task's error carries it as `cause`)."""
        cause = getattr(self.error, "cause", None) or self.error
        return f"{type(cause).__name__}: {cause}"


Outcome = Union[Model, Failure]


class Runner(Protocol):
    """Trains submitted jobs; next_done() blocks until one of them has a model or failed."""

    width: int  # how many jobs run at once

    def submit(self, job: Job) -> None: ...

    def __len__(self) -> int: ...  # jobs submitted and not yet handed back

    def next_done(self) -> tuple[Job, Outcome]: ...


def fit(job: Job, training: pd.DataFrame, validation: pd.DataFrame | None) -> Model:
    """Train `job`'s model here, on its rows of `training` (and `validation`)."""
    frame = _rows(training, job.train_rows)
    valid = None if validation is None else _rows(validation, job.valid_rows)
    return job.estimator(**job.params).train(x=job.x, y=job.y, training_frame=frame, validation_frame=valid)


def _rows(frame: pd.DataFrame, rows: np.ndarray | None) -> pd.DataFrame:
    return frame if rows is None else frame.iloc[rows]


class InProcess:
    """Jobs in this process, one at a time, each trained when next_done() asks for it."""

    width = 1

    def __init__(self, training: pd.DataFrame, validation: pd.DataFrame | None) -> None:
        self.training, self.validation = training, validation
        self._queue: deque[Job] = deque()

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def __len__(self) -> int:
        return len(self._queue)

    def next_done(self) -> tuple[Job, Outcome]:
        job = self._queue.popleft()
        try:
            return job, fit(job, self.training, self.validation)
        except Exception as error:  # the caller decides: a grid lists it, cross-validation raises it
            return job, Failure(job, error, traceback.format_exc())
