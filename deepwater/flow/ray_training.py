"""A Flow job's model trained as a Ray task once deepwater.init() has joined a cluster (imported only then: it
imports Ray). The task reports its scorings to a small actor (its progress, scoring history and newest checkpoint as
a saved-model file's bytes; a scoring made while the previous report is still on its way is not sent) that the
job's thread polls, so the server keeps a job's checkpoints even when the task
runs on another machine; Cancel is ray.cancel; the model comes back as its saved-model archive (model/ray_jobs.py),
so no network is ever pickled."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import ray

from deepwater.flow.scorings import history_rows, run_progress
from deepwater.model.estimator import DeepWaterEstimator
from deepwater.model.ray_jobs import archived, load_archive, placed
from deepwater.storage.saved_models import newest_saved_model

STARTING_POINT = "checkpoint"  # the task's copy of the checkpoint it continues


@ray.remote(num_cpus=0)
class ScoringReports:
    """A task's newest report: {"progress", "history", "checkpoint": [file name, bytes]}; None before its first
    scoring."""

    def __init__(self) -> None:
        self._newest: dict[str, Any] | None = None

    def put(self, report: dict[str, Any]) -> None:
        self._newest = report

    def newest(self) -> dict[str, Any] | None:
        return self._newest


def train_reporting(params: dict[str, Any], x: Any, y: Any, training: pd.DataFrame,
                    validation: pd.DataFrame | None, start: bytes | None, reports: Any) -> bytes:
    """In a Ray worker: train DeepWaterEstimator(**params) (on from the saved model `start`, when given) with a
    checkpoint at each scoring, report each scoring to the actor `reports`, and return the model's archive."""
    with tempfile.TemporaryDirectory() as folder:
        if start is not None:
            (Path(folder) / STARTING_POINT).write_bytes(start)
            params = {**params, "checkpoint": str(Path(folder) / STARTING_POINT)}
        checkpoints = Path(folder) / "checkpoints"
        model = DeepWaterEstimator(**{**params, "export_checkpoints_dir": str(checkpoints),
                                      "export_checkpoints_keep": 1})

        in_flight: list[Any] = []  # the report on its way to the actor

        def scored(trained: DeepWaterEstimator, outcome: Any) -> None:
            if in_flight and not ray.wait(in_flight, timeout=0)[0]:
                return  # the actor keeps only the newest report: one that scores often is not queued behind
            newest = newest_saved_model(checkpoints)
            in_flight[:] = [reports.put.remote({"progress": run_progress(outcome.samples, trained.epochs,
                                                                         len(training)),
                                                "history": history_rows(outcome.history),
                                                "checkpoint": [newest.name, newest.read_bytes()]})]

        return archived(lambda: model.train(x=x, y=y, training_frame=training, validation_frame=validation,
                                            callbacks=[scored]), params["model_id"])


_TRAIN_REPORTING = ray.remote(train_reporting)


class RayTraining:
    """One model trained as a Ray task of one CPU (and one GPU when it trains with gpu=True on a cluster that has
    GPUs): its newest report, its cancel, and the model once the task is done."""

    def __init__(self, params: dict[str, Any], x: Any, y: Any, training: pd.DataFrame,
                 validation: pd.DataFrame | None, start: str | None) -> None:
        """`start`: the path of the checkpoint to continue (a saved model, or a folder of them: its newest), read
        here and sent to the task."""
        params, gpus = placed(params, ray.cluster_resources().get("GPU", 0) > 0)
        start_bytes = None if start is None else newest_saved_model(Path(start)).read_bytes()
        self.reports = ScoringReports.remote()
        self._task = _TRAIN_REPORTING.options(num_cpus=1, num_gpus=gpus).remote(
            params, x, y, training, validation, start_bytes, self.reports)

    def finished(self, timeout: float) -> bool:
        """True once the task has ended (waiting up to `timeout` seconds for it)."""
        ready, _ = ray.wait([self._task], timeout=timeout)
        return bool(ready)

    def newest(self) -> dict[str, Any] | None:
        """The task's newest scoring report (ScoringReports)."""
        return ray.get(self.reports.newest.remote())

    def cancel(self) -> None:
        """Stop the task (Ray interrupts it wherever it is)."""
        ray.cancel(self._task)

    def model(self) -> DeepWaterEstimator:
        """The trained model, loaded from the archive the task sent back; the task's own error raised as it was
        (its cause), a lost or cancelled task's as Ray's."""
        try:
            archive = ray.get(self._task)
        except ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            raise (cause if isinstance(cause, Exception) else error) from None
        finally:
            ray.kill(self.reports)
        return load_archive(archive)
