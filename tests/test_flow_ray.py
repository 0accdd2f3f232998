"""Deep Water Flow on Ray: once deepwater.init() has joined a cluster (here a local runtime of 2 CPUs), a training
job runs as a Ray task whose scorings reach the job (progress, history, checkpoints copied into the job's folder),
Cancel stops the task, the model joins the catalogue as a local job's does, and a grid's models train as tasks."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import job_ended as ended
from conftest import make_blobs, wait_for_job

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a runtime on 127.0.0.1 (as test_ray.py)
pytest.importorskip("torch")
pytest.importorskip("ray")
fastapi_testclient = pytest.importorskip("fastapi.testclient")
pytestmark = pytest.mark.ray

import deepwater as dw  # noqa: E402
from deepwater.flow.app import create_app  # noqa: E402
from deepwater.flow.config import FlowConfig  # noqa: E402
from deepwater.storage.saved_models import is_saved_model  # noqa: E402

GUARD_SECONDS = 180  # a hang guard while waiting for a job: no timing is asserted
SHARED = {"backend": "torch", "gpu": False, "seed": 1, "mini_batch_size": 16, "train_samples_per_iteration": 60}
SCORED_OFTEN = {**SHARED, "hidden": [8], "epochs": 30}  # about 60 scorings: several reach the job while it runs
LONG = {**SHARED, "hidden": [8], "epochs": 1e6, "max_runtime_secs": 900}  # runs until cancelled (past the guards)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    allowed = tmp_path_factory.mktemp("allowed")
    make_blobs(120, seed=1).to_csv(allowed / "blobs.csv", index=False)
    data = tmp_path_factory.mktemp("flow-data")
    dw.init(num_cpus=2)
    try:
        with fastapi_testclient.TestClient(create_app(FlowConfig(str(data), allow_dirs=(str(allowed),)))) as running:
            running.data = data
            yield running
    finally:
        dw.shutdown()


@pytest.fixture(scope="module")
def frame_id(client) -> str:
    return client.post("/api/frames", json={"path": "blobs.csv"}).json()["id"]


def test_a_job_trains_as_a_ray_task_reporting_its_scorings_and_its_model_joins_the_catalogue(client, frame_id):
    job = client.post("/api/models", json={"frame": frame_id, "y": "label", "params": SCORED_OFTEN}).json()
    running = wait_for_job(client, job["id"], lambda j: ended(j) or (j["status"] == "running" and j["history"]),
                           guard=GUARD_SECONDS)
    assert running["status"] == "running" and 0 < running["progress"] < 1  # reported by the task while it ran
    assert is_saved_model(next((client.data / "checkpoints" / job["id"]).iterdir()))  # its checkpoint, copied here
    done = wait_for_job(client, job["id"], ended, guard=GUARD_SECONDS)
    assert done["status"] == "done", done["error"]
    model = client.get(f"/api/models/{done['model']}").json()
    assert model["summary"]["epochs"] == 30.0 and len(model["history"]) >= len(running["history"])
    trained_in = Path(model["parameters"]["export_checkpoints_dir"])  # the task's own folder, not the job's
    assert client.data not in trained_in.parents
    predicted = client.post(f"/api/models/{done['model']}/predict", json={"frame": frame_id})
    assert predicted.status_code == 201, predicted.text
    assert not (client.data / "checkpoints" / job["id"]).exists()


def test_cancel_stops_the_ray_task_and_its_checkpoints_stay_with_the_job(client, frame_id):
    job = client.post("/api/models", json={"frame": frame_id, "y": "label", "params": LONG}).json()
    wait_for_job(client, job["id"], lambda j: ended(j) or len(j["history"]) >= 3, guard=GUARD_SECONDS)
    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 200
    cancelled = wait_for_job(client, job["id"], ended, guard=GUARD_SECONDS)
    assert cancelled["status"] == "cancelled" and cancelled["model"] is None, cancelled
    kept = list((client.data / "checkpoints" / job["id"]).iterdir())
    assert 1 <= len(kept) <= 2 and all(is_saved_model(path) for path in kept)


def test_a_grid_job_trains_its_models_as_ray_tasks(client, frame_id):
    job = client.post("/api/grids", json={"frame": frame_id, "y": "label", "params": {**SHARED, "epochs": 1},
                                          "hyper_params": {"hidden": [[4], [6]]}}).json()
    done = wait_for_job(client, job["id"], ended, guard=GUARD_SECONDS)
    assert done["status"] == "done", done["error"]
    assert done["grid_progress"] == {"done": 2, "total": 2, "running": None}
    board = client.get(f"/api/grids/{done['grid']}").json()["leaderboard"]
    assert len(board["rows"]) == 2
