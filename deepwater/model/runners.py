"""The runner for many models: Ray tasks once deepwater.init() has connected to a cluster, else this process."""
from __future__ import annotations

import pandas as pd

from deepwater.model.jobs import Failure, InProcess, Job, Runner
from deepwater.runtime.cluster import connected
from deepwater.storage.model_classes import Model


def runner(training: pd.DataFrame, validation: pd.DataFrame | None, width: int) -> Runner:
    """Ray tasks, at most `width` at a time (0: one per CPU of the cluster), once deepwater.init() has run;
    else this process, one job after another."""
    if connected():
        from deepwater.model.ray_jobs import RayRunner  # imports ray: only once deepwater.init() has run

        return RayRunner(training, validation, width)
    return InProcess(training, validation)


def train_models(jobs: list[Job], training: pd.DataFrame, validation: pd.DataFrame | None) -> list[Model]:
    """Every job's model, in the order of `jobs`, all side by side on Ray after deepwater.init(); the first
    failure to come back is raised (in the process, before the later jobs train)."""
    run = runner(training, validation, len(jobs))
    for job in jobs:
        run.submit(job)
    models = {}
    while len(run):
        job, outcome = run.next_done()
        if isinstance(outcome, Failure):
            raise outcome.error
        models[job.model_id] = outcome
    return [models[job.model_id] for job in jobs]
