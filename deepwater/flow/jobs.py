"""Training jobs: a queue in the server process and one worker thread that runs them one at a time, each job's
progress and scoring history kept live and recorded in the catalogue at each scoring. A job trains one model, saving
a checkpoint at each scoring under the data folder (so that a job a stopped server left unfinished resumes from it),
in this process (train()'s callbacks report it) or, once deepwater.init() has joined a Ray cluster, as a Ray task
(ray_training.py). Or a job is a grid search (H2OGridSearch) saving each model into the grid's folder as it
finishes (so that an interrupted grid resumes, keeping them), watched there (grid_watch.py); its models all join the
catalogue."""
from __future__ import annotations

import logging
import math
import queue
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deepwater.errors import DeepWaterError, first_lines
from deepwater.files import write_atomically
from deepwater.flow.catalogue import Catalogue, new_id
from deepwater.flow.grid_watch import GridWatch, grid_progress
from deepwater.flow.pictures import GRADCAM, write_gradcam
from deepwater.flow.reports import cross_validation, roc_points, table, variable_importances
from deepwater.flow.scorings import history_rows, run_progress
from deepwater.model.estimator import DeepWaterEstimator
from deepwater.runtime.cluster import connected
from deepwater.selection.grid_search import H2OGridSearch
from deepwater.training.trainer import TrainingOutcome

log = logging.getLogger("deepwater.flow")
STOP = None  # put on the queue: the worker ends
CHECKPOINTS = "checkpoints"  # the data folder's subfolder of checkpoints, one folder per job
CHECKPOINTS_KEPT = 2  # the newest checkpoints a job keeps (one is whole even if the server dies mid-write)
POLL_SECONDS = 0.5  # how often a job on Ray asks its task for news


class JobCancelled(Exception):
    """Raised by a job's callback at the first scoring after its cancel was asked: training stops there."""


@dataclass
class TrainingRequest:
    """What a job trains: the estimator's parameters on a frame of the catalogue (x, y by name)."""

    frame: str
    y: str | None
    x: list[str] | None
    params: dict[str, Any]
    validation_frame: str | None = None
    hyper_params: dict[str, list[Any]] | None = None  # a grid search over these values
    resume: str | None = None  # the interrupted job whose newest checkpoint this one continues

    def record(self) -> dict[str, Any]:
        """The request as the catalogue records it."""
        return asdict(self)


class JobQueue:
    """Jobs trained one at a time on a worker thread, their state in `catalogue`."""

    def __init__(self, catalogue: Catalogue, image_roots: tuple[str, ...] = ()) -> None:
        self.catalogue = catalogue
        self.image_roots = image_roots  # the folders whose images a model page may show (Grad-CAM)
        self._queue: queue.Queue = queue.Queue()
        self._cancels: dict[str, threading.Event] = {}  # by job, while it is queued or running
        self._thread = threading.Thread(target=self._work, name="deepwater-flow-jobs", daemon=True)

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel what runs and waits, and end the worker (waiting up to `timeout` seconds for it)."""
        for cancel in list(self._cancels.values()):
            cancel.set()
        self._queue.put(STOP)
        self._thread.join(timeout)

    def submit(self, request: TrainingRequest, model_id: str) -> dict[str, Any]:
        """Queue `request` to train the model `model_id`; returns the job's record."""
        key = new_id("job")
        job = self.catalogue.put_job({"id": key, "status": "queued", "progress": 0.0, "model_id": model_id,
                                      "model": None, "error": None, "request": request.record(), "history": [],
                                      "submitted": time.time(), "started": None, "ended": None})
        self._cancels[key] = threading.Event()
        self._queue.put((key, request, model_id))
        return job

    def cancel(self, key: str) -> dict[str, Any]:
        """Ask job `key` to stop: a queued job never starts, a running one stops at its next scoring."""
        job = self.catalogue.job(key)
        cancel = self._cancels.get(key)
        if cancel is not None and job["status"] in ("queued", "running"):
            cancel.set()
            if job["status"] == "queued":
                job = self.catalogue.put_job({**job, "status": "cancelled", "ended": time.time()})
        return job

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is STOP:
                return
            key, request, model_id = item
            try:
                self._run(key, request, model_id)
            finally:
                self._cancels.pop(key, None)

    def _run(self, key: str, request: TrainingRequest, model_id: str) -> None:
        cancel = self._cancels[key]
        if cancel.is_set():
            return
        job = self.catalogue.put_job({**self.catalogue.job(key), "status": "running", "started": time.time()})
        try:
            if request.hyper_params:
                made = self._grid(job, request, model_id)
            else:
                made = self._model(job, request, model_id, cancel)
        except JobCancelled:
            self._end(key, "cancelled", None)
        except DeepWaterError as error:
            self._end(key, "failed", str(error))
        except Exception as error:  # noqa: BLE001 - a job's failure is reported, never the worker's end
            log.error("job %s failed", key, exc_info=error)
            self._end(key, "failed", f"training failed with {type(error).__name__}: {error}")
        else:
            self._end(key, "done", None, progress=1.0, **made)

    def checkpoints(self, key: str) -> Path:
        """The folder of job `key`'s checkpoints (of grid `key`'s saved models, for a grid)."""
        return self.catalogue.root / CHECKPOINTS / key

    def _frames(self, request: TrainingRequest) -> tuple[Any, Any]:
        validation = request.validation_frame
        return (self.catalogue.load_frame(request.frame),
                None if validation is None else self.catalogue.load_frame(validation))

    def _add_model(self, model: DeepWaterEstimator, request: TrainingRequest, job: str, **fields: Any) -> None:
        info = {**model_info(model, request, job), **self._explained(model, request), **fields}
        self.catalogue.add_model(model, info)

    def _explained(self, model: DeepWaterEstimator, request: TrainingRequest) -> dict[str, Any]:
        """{'gradcam': overlays}; when they cannot be made, none and 'gradcam_error' says why: the trained model is
        recorded either way."""
        try:
            return {"gradcam": self._gradcam(model, request)}
        except Exception as error:  # the model matters more than its pictures
            log.error("Grad-CAM of model %s failed", model.model_id, exc_info=error)
            return {"gradcam": [], "gradcam_error": f"{type(error).__name__}: {first_lines(error)}"}

    def _model(self, job: dict[str, Any], request: TrainingRequest, model_id: str,
               cancel: threading.Event) -> dict[str, Any]:
        """Train, save and record one model (checkpointed at each scoring), here or on Ray; its job's fields."""
        model = (self._train_on_ray if connected() else self._train)(job, request, model_id, cancel)
        self._add_model(model, request, job["id"])
        for finished in (job["id"], request.resume):  # the saved model makes them useless
            if finished is not None:
                shutil.rmtree(self.checkpoints(finished), ignore_errors=True)
        return {"model": model.model_id}

    def _grid(self, job: dict[str, Any], request: TrainingRequest, grid_id: str) -> dict[str, Any]:
        """Train a grid search and record its models and leaderboard; its job's fields. Each model is saved into
        the grid's folder as it finishes (H2O's grid recovery: a resumed grid keeps those and trains the rest) and
        checkpointed there at each scoring (the job's progress: models done, the running one's share). One model
        after another here; on Ray, one per CPU of the cluster side by side."""
        frame, validation = self._frames(request)
        folder = self.checkpoints(grid_id)
        hyper = request.hyper_params or {}
        grid = H2OGridSearch(DeepWaterEstimator(**{**request.params, "quiet_mode": True,
                                                   "export_checkpoints_dir": str(folder),
                                                   "export_checkpoints_keep": CHECKPOINTS_KEPT}),
                             hyper, grid_id=grid_id, parallelism=0 if connected() else 1)
        total = math.prod(len(values) for values in hyper.values())

        def watched(state: dict[str, Any], history: list[dict[str, Any]]) -> None:
            self.catalogue.put_job({**self.catalogue.job(job["id"]), "grid_progress": state,
                                    "progress": grid_progress(state), "history": history})

        with GridWatch(folder, grid_id, total, len(frame), watched):
            grid.train(x=request.x, y=request.y, training_frame=frame, validation_frame=validation)
        for model in grid.models:
            self._add_model(model, request, job["id"], grid=grid_id)
        leaderboard = grid.sorted_metric_table()
        self.catalogue.put_grid({"id": grid_id, "job": job["id"], "request": request.record(),
                                 "metric": str(leaderboard.columns[-1]), "leaderboard": table(leaderboard),
                                 "failures": list(grid.failure_details)})
        shutil.rmtree(folder, ignore_errors=True)  # its models are in the catalogue now
        return {"grid": grid_id, "grid_progress": {"done": len(grid.models), "total": total, "running": None}}

    def _params(self, request: TrainingRequest, model_id: str) -> dict[str, Any]:
        """The estimator's parameters of a one-model job: a checkpoint named by catalogue id as its file, a resumed
        job's checkpoint folder as the checkpoint."""
        params = resolved_checkpoint(self.catalogue, request.params)
        if request.resume is not None:
            params = {**params, "checkpoint": str(self.checkpoints(request.resume))}
        return {**params, "model_id": model_id, "quiet_mode": True}

    def _scored(self, key: str, progress: float | None, history: list[dict[str, Any]]) -> None:
        """Record a scoring of job `key`'s run."""
        self.catalogue.put_job({**self.catalogue.job(key), "progress": progress, "history": history})

    def _train(self, job: dict[str, Any], request: TrainingRequest, model_id: str,
               cancel: threading.Event) -> DeepWaterEstimator:
        frame, validation = self._frames(request)
        model = DeepWaterEstimator(**{**self._params(request, model_id),
                                      "export_checkpoints_dir": str(self.checkpoints(job["id"])),
                                      "export_checkpoints_keep": CHECKPOINTS_KEPT})

        def scored(trained: DeepWaterEstimator, outcome: TrainingOutcome) -> None:
            if cancel.is_set():
                raise JobCancelled(job["id"])
            self._scored(job["id"], run_progress(outcome.samples, trained.epochs, len(frame)),
                         history_rows(outcome.history))

        return model.train(x=request.x, y=request.y, training_frame=frame, validation_frame=validation,
                           callbacks=[scored])

    def _train_on_ray(self, job: dict[str, Any], request: TrainingRequest, model_id: str,
                      cancel: threading.Event) -> DeepWaterEstimator:
        """Train as a Ray task, polling its reports into the job (its checkpoints copied into the job's folder)
        until it ends; Cancel stops the task."""
        from deepwater.flow.ray_training import RayTraining  # imports ray: only once deepwater.init() has run

        frame, validation = self._frames(request)
        params = self._params(request, model_id)
        run = RayTraining({key: value for key, value in params.items() if key != "checkpoint"}, request.x,
                          request.y, frame, validation, params.get("checkpoint"))
        copied, finished = None, False
        while not finished:
            finished = run.finished(POLL_SECONDS)
            if cancel.is_set() and not finished:
                run.cancel()
            report = run.newest()
            if report is not None and report["checkpoint"][0] != copied:
                copied = report["checkpoint"][0]
                self._keep_checkpoint(job["id"], copied, report["checkpoint"][1])
                self._scored(job["id"], report["progress"], report["history"])
        try:
            return run.model()
        except Exception:
            if cancel.is_set():
                raise JobCancelled(job["id"]) from None
            raise

    def _keep_checkpoint(self, key: str, name: str, data: bytes) -> None:
        """Write a checkpoint a task sent into job `key`'s folder, keeping the newest CHECKPOINTS_KEPT."""
        folder = self.checkpoints(key)
        write_atomically(folder / name, data)
        for old in sorted(path for path in folder.iterdir() if not path.name.startswith("."))[:-CHECKPOINTS_KEPT]:
            old.unlink()

    def _gradcam(self, model: DeepWaterEstimator, request: TrainingRequest) -> list[dict[str, Any]]:
        """Grad-CAM overlays of a few rows of an image model's training frame (none for another model)."""
        column = self.catalogue.frame(request.frame)["setup"]["image_column"]
        if column is None or (request.x is not None and column not in request.x):
            return []
        return write_gradcam(model, self.catalogue.load_frame(request.frame), column, self.image_roots,
                             self.catalogue.root / GRADCAM / model.model_id)

    def _end(self, key: str, status: str, error: str | None, **fields: Any) -> None:
        self.catalogue.put_job({**self.catalogue.job(key), "status": status, "error": error, "ended": time.time(),
                                **fields})


def resolved_checkpoint(catalogue: Catalogue, params: dict[str, Any]) -> dict[str, Any]:
    """`params` with a checkpoint named by its catalogue id replaced by that model's saved file."""
    if params.get("checkpoint") is None:
        return params
    return {**params, "checkpoint": catalogue.model(params["checkpoint"])["path"]}


def model_info(model: DeepWaterEstimator, request: TrainingRequest, job: str) -> dict[str, Any]:
    """What the catalogue records of a trained model: its summary, parameters, metrics, scoring history,
    confusion matrices, ROC curves, variable importances and cross-validation summary, so that lists and pages need
    not load it."""
    metrics = {}
    for part, found in (("training", model.model_performance(train=True)),
                        ("validation", model.model_performance(valid=True) if request.validation_frame else None)):
        if found is None:
            continue
        confusion = None
        if found.confusion is not None:
            table = found.confusion_matrix()
            confusion = {"columns": [str(c) for c in table.columns], "index": [str(i) for i in table.index],
                         "rows": table.to_numpy().tolist()}
        metrics[part] = {"values": found.values, "nobs": found.nobs, "confusion": confusion, "roc": roc_points(found)}
    return {"summary": model.summary(), "request": request.record(), "job": job,
            "parameters": {name: value["actual"] for name, value in model.params.items()},
            "metrics": metrics, "history": history_rows(model.scoring_history().to_dict("records")),
            "varimp": variable_importances(model), "cross_validation": cross_validation(model)}
