"""Deep Water Flow's REST API and pages (FastAPI's TestClient), and one real `deepwater flow` server in a subprocess:
frames imported by path and upload, training jobs with live progress and history, models, predictions, the token
rule, the allowed folders, and a catalogue that survives a restart; every refusal a 4xx JSON naming its field."""
from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_blobs, write_png

pytest.importorskip("torch")
pytest.importorskip("jinja2")
uvicorn = pytest.importorskip("uvicorn")
fastapi_testclient = pytest.importorskip("fastapi.testclient")
httpx2 = pytest.importorskip("httpx2")

import deepwater as dw  # noqa: E402
from deepwater import cli  # noqa: E402
from deepwater.flow.app import create_app  # noqa: E402
from deepwater.flow.config import FlowConfig  # noqa: E402
from deepwater.flow.forms import NOT_OFFERED, form_parameters, offered  # noqa: E402
from deepwater.flow.server import guarded  # noqa: E402

TestClient = fastapi_testclient.TestClient
GUARD_SECONDS = 120  # a hang guard while waiting for a job: no timing is asserted
TINY = {"hidden": [8], "epochs": 3, "backend": "torch", "gpu": False, "seed": 1, "mini_batch_size": 16,
        "train_samples_per_iteration": 60}
LONG = {**TINY, "epochs": 1e6, "max_runtime_secs": 120}  # runs until cancelled or killed


def wait_for_job(client, key: str, until=lambda job: job["status"] not in ("queued", "running")) -> dict:
    """Job `key` polled until `until(job)`."""
    deadline = time.monotonic() + GUARD_SECONDS
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{key}").json()
        if until(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {key} did not get there: {job}")


def refusal(response, status: int, field: str) -> str:
    """The message of a refusal, checked to be JSON with this status naming `field`."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["field"] == field and body["error"].startswith(f"{field}: "), body
    assert "Traceback" not in body["error"]
    return body["error"]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """An allowed folder with a csv, a parquet file and an image folder; a folder outside it with a csv."""
    allowed = tmp_path_factory.mktemp("allowed")
    make_blobs(120, seed=1).to_csv(allowed / "blobs.csv", index=False)
    make_blobs(30, seed=2).to_parquet(allowed / "blobs.parquet")
    (allowed / "broken.csv").write_text("a,b\n1,2,3,4\n5\n")
    for label, value in (("dark", 40), ("light", 215)):
        (allowed / "images" / label).mkdir(parents=True)
        for i in range(3):
            write_png(allowed / "images" / label / f"{i}.png", value, seed=i)
    outside = tmp_path_factory.mktemp("outside")
    make_blobs(10).to_csv(outside / "secret.csv", index=False)
    os.symlink(outside / "secret.csv", allowed / "link.csv")  # resolves outside: refused
    return {"allowed": allowed, "outside": outside, "data": tmp_path_factory.mktemp("flow-data")}


@pytest.fixture(scope="module")
def client(folders):
    config = FlowConfig(str(folders["data"]), allow_dirs=(str(folders["allowed"]),), max_upload_mb=0.05)
    with TestClient(create_app(config)) as running:
        yield running


@pytest.fixture(scope="module")
def frame_id(client) -> str:
    return client.post("/api/frames", json={"path": "blobs.csv"}).json()["id"]


@pytest.fixture(scope="module")
def trained(client, frame_id) -> dict:
    """A finished job of a tiny MLP on the blobs, and how long its first chart point took to come."""
    posted = time.monotonic()
    job = client.post("/api/models", json={"frame": frame_id, "y": "label", "params": TINY}).json()
    first = wait_for_job(client, job["id"], lambda j: j["history"] or j["status"] not in ("queued", "running"))
    first_point = time.monotonic() - posted
    print(f"POST /api/models to the first chart point: {first_point:.2f} s")
    return {**wait_for_job(client, job["id"]), "first_point_seconds": first_point, "first": first}


# --------------------------------------------------------------------------- frames

def test_a_csv_imported_by_path_shows_its_parse_setup_summaries_and_first_rows(client, folders, frame_id):
    frame = client.get(f"/api/frames/{frame_id}").json()
    setup = frame["setup"]
    assert setup["column_types"] == {"x1": "numeric", "x2": "numeric", "colour": "categorical",
                                     "label": "categorical"}
    assert setup["response_guess"] == "label" and setup["image_column"] is None
    expected = pd.read_csv(folders["allowed"] / "blobs.csv")
    assert frame["rows"] == 120 and frame["columns"] == 4
    assert frame["head"]["rows"][0] == list(expected.iloc[0])
    x1 = next(s for s in frame["summaries"] if s["name"] == "x1")
    assert x1["mean"] == pytest.approx(expected["x1"].mean()) and x1["missing"] == 0
    colour = next(s for s in frame["summaries"] if s["name"] == "colour")
    assert colour["levels"] == 3 and sum(colour["top"].values()) == 120
    assert frame_id in [f["id"] for f in client.get("/api/frames").json()["frames"]]
    csv = pd.read_csv(io.StringIO(client.get(f"/api/frames/{frame_id}/csv").text))
    pd.testing.assert_frame_equal(csv, expected)


def test_a_parquet_file_an_image_folder_and_an_upload_are_frames(client, folders):
    parquet = client.post("/api/frames", json={"path": "blobs.parquet", "name": "small"})
    assert parquet.status_code == 201 and parquet.json()["rows"] == 30 and parquet.json()["name"] == "small"
    images = client.post("/api/frames", json={"path": "images"}).json()
    assert images["setup"]["image_column"] == "uri" and images["setup"]["problem_type"] == "image"
    assert images["rows"] == 6 and images["setup"]["response_guess"] == "label"
    data = (folders["allowed"] / "blobs.csv").read_bytes()[:2000].rsplit(b"\n", 1)[0] + b"\n"
    uploaded = client.post("/api/frames", files={"file": ("mine.csv", data, "text/csv")})
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["name"] == "mine.csv" and uploaded.json()["rows"] == data.count(b"\n") - 1


def test_imports_outside_the_allowed_folders_or_of_bad_files_are_refused(client, folders):
    assert "outside the folders" in refusal(client.post("/api/frames", json={"path": "../outside/x.csv"}), 403,
                                            "path")
    refusal(client.post("/api/frames", json={"path": str(folders["outside"] / "secret.csv")}), 403, "path")
    refusal(client.post("/api/frames", json={"path": "link.csv"}), 403, "path")  # a link out of the folder
    refusal(client.post("/api/frames", json={"path": "nothing.csv"}), 404, "path")
    assert "fields" in refusal(client.post("/api/frames", json={"path": "broken.csv"}), 422, "path")
    refusal(client.post("/api/frames", json={"name": "no path"}), 422, "path")
    refusal(client.post("/api/frames", content=b"{not json", headers={"content-type": "application/json"}), 422,
            "body")
    refusal(client.post("/api/frames", files={"file": ("notes.txt", b"hello", "text/plain")}), 422, "file")
    refusal(client.post("/api/frames", files={"other": ("a.csv", b"a\n1\n", "text/csv")}), 422, "file")
    big = b"x1,x2\n" + b"1.0,2.0\n" * 20_000  # 160 kB > max_upload_mb=0.05
    assert "larger than" in refusal(client.post("/api/frames", files={"file": ("big.csv", big, "text/csv")}), 413,
                                    "file")
    refusal(client.get("/api/frames/frame_nothere"), 404, "frame")
    refusal(client.get("/api/frames/frame_nothere/csv"), 404, "frame")


def test_without_an_allowed_folder_no_path_is_read(tmp_path, folders):
    with TestClient(create_app(FlowConfig(str(tmp_path / "data")))) as bare:
        assert "--allow-dir" in refusal(bare.post("/api/frames", json={"path": str(folders["allowed"] /
                                                                                      "blobs.csv")}), 403, "path")


# --------------------------------------------------------------------------- jobs and models

def test_a_training_job_reports_progress_and_history_then_its_model(client, frame_id, trained):
    assert trained["status"] == "done" and trained["error"] is None and trained["progress"] == 1.0
    assert trained["first"]["history"], "the first point came while the job ran"
    assert len(trained["history"]) >= 3  # train_samples_per_iteration=60 on 120 rows for 3 epochs
    assert [row["samples"] for row in trained["history"]] == sorted(row["samples"] for row in trained["history"])
    model = client.get(f"/api/models/{trained['model']}").json()
    assert model["summary"]["network"] == "mlp" and model["summary"]["epochs"] == 3.0
    assert model["request"]["frame"] == frame_id and model["job"] == trained["id"]
    assert model["parameters"]["hidden"] == [8]
    assert 0 <= model["metrics"]["training"]["values"]["logloss"] < 5
    confusion = model["metrics"]["training"]["confusion"]
    assert confusion["index"] == ["a", "b", "c"] and sum(sum(row[:3]) for row in confusion["rows"]) == 120
    assert [row["samples"] for row in model["history"]] == [row["samples"] for row in trained["history"]]
    assert trained["model"] in [m["id"] for m in client.get("/api/models").json()["models"]]
    assert trained["id"] in [j["id"] for j in client.get("/api/jobs").json()["jobs"]]


def test_predictions_are_a_frame_and_a_csv_equal_to_the_saved_models(client, frame_id, trained, folders):
    answer = client.post(f"/api/models/{trained['model']}/predict", json={"frame": frame_id})
    assert answer.status_code == 201, answer.text
    csv = pd.read_csv(io.StringIO(client.get(f"/api/frames/{answer.json()['id']}/csv").text))
    saved = dw.load_model(client.get(f"/api/models/{trained['model']}").json()["path"])
    expected = saved.predict(pd.read_csv(folders["allowed"] / "blobs.csv"))
    assert list(csv.columns) == ["predict", "a", "b", "c"]
    assert list(csv["predict"]) == list(expected["predict"].astype(str))
    np.testing.assert_allclose(csv[["a", "b", "c"]].to_numpy(), expected[["a", "b", "c"]].to_numpy(), atol=1e-6)
    refusal(client.post(f"/api/models/{trained['model']}/predict", json={"frame": "frame_nothere"}), 404, "frame")
    refusal(client.post(f"/api/models/{trained['model']}/predict", json={}), 422, "frame")
    refusal(client.post("/api/models/model_nothere/predict", json={"frame": frame_id}), 404, "model")
    parquet = client.post("/api/frames", json={"path": "images"}).json()["id"]
    assert "x1" in refusal(client.post(f"/api/models/{trained['model']}/predict", json={"frame": parquet}), 422,
                           "frame")


def test_the_saved_model_file_and_the_onnx_bundle_download(client, trained, tmp_path):
    saved = client.get(f"/api/models/{trained['model']}/file")
    assert saved.status_code == 200
    (tmp_path / "model").write_bytes(saved.content)
    assert dw.load_model(tmp_path / "model").model_id == trained["model"]
    bundle = client.get(f"/api/models/{trained['model']}/bundle")
    assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
    assert f"{trained['model']}/model.onnx" in names
    refusal(client.get("/api/models/model_nothere/file"), 404, "model")
    refusal(client.get("/api/models/model_nothere"), 404, "model")


def test_training_requests_are_checked_before_they_are_queued(client, frame_id, trained):
    jobs = len(client.get("/api/jobs").json()["jobs"])
    post = lambda body: client.post("/api/models", json=body)  # noqa: E731
    refusal(post({"frame": "frame_nothere", "y": "label"}), 404, "frame")
    refusal(post({"y": "label"}), 422, "frame")
    refusal(post({"frame": frame_id}), 422, "y")
    assert "x1, x2, colour, label" in refusal(post({"frame": frame_id, "y": "nope"}), 422, "y")
    refusal(post({"frame": frame_id, "y": "label", "x": ["x1", "nope"]}), 422, "x[1]")
    refusal(post({"frame": frame_id, "y": "label", "x": []}), 422, "x")
    assert "epochs=-1" in refusal(post({"frame": frame_id, "y": "label", "params": {"epochs": -1}}), 422,
                                  "params.epochs")
    assert "Did you mean" in refusal(post({"frame": frame_id, "y": "label", "params": {"epoch": 2}}), 422,
                                     "params.epoch")
    refusal(post({"frame": frame_id, "y": "label", "params": {"network_definition_file": "/tmp/x.pt"}}), 422,
            "params.network_definition_file")
    assert "network_definition_file" in refusal(post({"frame": frame_id, "y": "label", "params": {"network": "user"}}),
                                                422, "params.network")  # a check that spans parameters
    refusal(post({"frame": frame_id, "y": "label", "params": {"model_id": trained["model"]}}), 409,
            "params.model_id")
    refusal(post({"frame": frame_id, "y": "label", "params": {"checkpoint": "/etc"}}), 404, "params.checkpoint")
    refusal(post({"frame": frame_id, "y": "label", "params": [1]}), 422, "params")
    assert len(client.get("/api/jobs").json()["jobs"]) == jobs  # nothing was queued
    refusal(client.get("/api/jobs/job_nothere"), 404, "job")


def test_a_failing_job_says_why_in_words(client, frame_id):
    job = client.post("/api/models", json={"frame": frame_id, "y": "label",
                                           "params": {**TINY, "network": "lenet"}}).json()
    failed = wait_for_job(client, job["id"])
    assert failed["status"] == "failed" and failed["model"] is None
    assert "image network on a dataset frame" in failed["error"] and "Traceback" not in failed["error"]


def test_a_job_cancelled_while_queued_never_runs_and_a_running_one_stops_at_a_scoring(client, frame_id):
    running = client.post("/api/models", json={"frame": frame_id, "y": "label", "params": LONG}).json()
    queued = client.post("/api/models", json={"frame": frame_id, "y": "label", "params": TINY}).json()
    wait_for_job(client, running["id"], lambda j: len(j["history"]) >= 2)
    assert client.post(f"/api/jobs/{queued['id']}/cancel").json()["status"] == "cancelled"
    client.post(f"/api/jobs/{running['id']}/cancel")
    stopped = wait_for_job(client, running["id"])
    assert stopped["status"] == "cancelled" and stopped["model"] is None and 0 < stopped["progress"] < 1
    assert wait_for_job(client, queued["id"])["history"] == []
    refusal(client.post("/api/jobs/job_nothere/cancel"), 404, "job")


def test_continuing_a_model_trains_it_further_from_its_checkpoint(client, frame_id, trained):
    job = client.post("/api/models", json={"frame": frame_id, "y": "label",
                                           "params": {"checkpoint": trained["model"], "epochs": 5}}).json()
    done = wait_for_job(client, job["id"])
    assert done["status"] == "done", done["error"]
    model = client.get(f"/api/models/{done['model']}").json()
    assert model["summary"]["epochs"] == 5.0
    assert model["history"][:len(trained["history"])] == trained["history"]  # the checkpoint's run goes on


# --------------------------------------------------------------------------- pages

def test_the_pages_show_frames_jobs_models_and_the_chart(client, frame_id, trained):
    assert client.get("/", follow_redirects=False).headers["location"] == "/frames"
    assert frame_id in client.get("/frames").text
    frame_page = client.get(f"/frames/{frame_id}").text
    assert 'id="response-guess">label<' in frame_page and "categorical" in frame_page
    job_page = client.get(f"/jobs/{trained['id']}").text
    assert f"/models/{trained['model']}" in job_page and job_page.count('class="point training"') == len(
        trained["history"])
    model_page = client.get(f"/models/{trained['model']}").text
    assert 'id="history-chart"' in model_page and 'id="confusion-training"' in model_page
    assert trained["model"] in client.get("/models").text and trained["id"] in client.get("/jobs").text
    assert client.get("/models/model_nothere").status_code == 404
    continuing = client.get(f"/build?checkpoint={trained['model']}").text  # the model page's Continue training
    assert f'name="checkpoint" value="{trained["model"]}"' in continuing and 'value="label" selected' not in continuing
    assert "<option selected>label</option>" in continuing
    assert client.get("/docs").status_code == 200


def test_the_build_form_has_a_field_per_parameter_and_shows_errors_beside_them(client, frame_id):
    page = client.get(f"/build?frame={frame_id}").text
    for name in offered():
        assert f'name="{name}"' in page
    for name in NOT_OFFERED:
        assert f'name="{name}"' not in page
    bad = client.post("/build", data={"frame": frame_id, "y": "label", "epochs": "-2", "hidden": "8,x",
                                      "gpu": "on"})
    assert bad.status_code == 422
    assert 'id="error-epochs"' in bad.text and 'id="error-hidden"' in bad.text and "epochs=-2" in bad.text
    no_frame = client.post("/build", data={"frame": "frame_nothere", "y": "label"})
    assert no_frame.status_code == 404 and 'id="form-error">frame: ' in no_frame.text
    good = client.post("/build", data={"frame": frame_id, "y": "label", "x": ["x1", "x2"], "epochs": "1",
                                       "hidden": "4", "backend": "torch", "nesterov_accelerated_gradient": "on",
                                       "overwrite_with_best_model": "on", "variable_importances": "on",
                                       "standardize": "on", "ignore_const_cols": "on",
                                       "keep_cross_validation_models": "on"}, follow_redirects=False)
    assert good.status_code == 303, good.text
    job = wait_for_job(client, good.headers["location"].rsplit("/", 1)[1])
    assert job["request"]["x"] == ["x1", "x2"]
    assert job["request"]["params"] == {"epochs": 1, "hidden": [4], "backend": "torch", "gpu": False}


def test_form_values_are_read_by_the_parameter_types_and_only_changes_are_kept():
    params, errors = form_parameters({"epochs": "2.5", "hidden": "[16, 8]", "activation": "Tanh", "seed": "",
                                      "clip_gradient": "None", "image_shape": "28,28", "gpu": "on",
                                      "nesterov_accelerated_gradient": "on", "learning_rate": "fast"})
    assert errors.keys() == {"learning_rate"} and "learning_rate='fast'" in errors["learning_rate"]
    assert params["epochs"] == 2.5 and params["hidden"] == [16, 8] and params["activation"] == "Tanh"
    assert params["clip_gradient"] is None and params["image_shape"] == [28, 28]
    assert "seed" not in params and "gpu" not in params  # defaults are not sent
    assert params["overwrite_with_best_model"] is False  # an unchecked box


# --------------------------------------------------------------------------- the token and the address

def test_a_token_is_asked_of_every_page_and_api_call(tmp_path):
    token = "s3cret-token-123"
    with TestClient(create_app(FlowConfig(str(tmp_path / "data"), token=token))) as guarded_client:
        for url in ("/api/frames", "/frames", "/docs", "/openapi.json", "/models"):
            assert guarded_client.get(url).status_code == 401
            refusal(guarded_client.get(url, headers={"Authorization": "Bearer wrong-token"}), 401, "token")
        assert guarded_client.get("/api/frames", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert guarded_client.get(f"/frames?token={token}").status_code == 200  # sets the cookie
        assert guarded_client.get("/models").status_code == 200


def test_a_post_from_another_site_is_refused(client, frame_id):
    answer = client.post("/api/models", json={"frame": frame_id, "y": "label"},
                         headers={"Origin": "https://evil.example"})
    refusal(answer, 403, "origin")


def test_off_the_loopback_address_a_token_is_made():
    config = FlowConfig("data")
    assert guarded(config, "127.0.0.1").token is None and guarded(config, "::1").token is None
    made = guarded(config, "0.0.0.0").token
    assert made and len(made) >= 24 and guarded(config, "0.0.0.0").token != made
    assert guarded(FlowConfig("data", token="given-token"), "0.0.0.0").token == "given-token"


# --------------------------------------------------------------------------- a real server, killed and restarted

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_deepwater_flow_serves_and_a_restart_keeps_the_catalogue_with_the_killed_job_interrupted(folders, tmp_path):
    port, token = free_port(), "restart-token-1"
    data = tmp_path / "data"
    command = [sys.executable, "-m", "deepwater", "flow", "--port", str(port), "--data-dir", str(data),
               "--allow-dir", str(folders["allowed"]), "--token", token, "--log-level", "warning"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert f"?token={token}" in process.stdout.readline()
        http = httpx2.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                             timeout=GUARD_SECONDS)
        deadline = time.monotonic() + GUARD_SECONDS
        while time.monotonic() < deadline:
            try:
                http.get("/api/frames")
                break
            except httpx2.TransportError:
                time.sleep(0.1)
        assert httpx2.get(f"http://127.0.0.1:{port}/api/frames").status_code == 401
        frame = http.post("/api/frames", json={"path": "blobs.csv"}).json()["id"]
        job = http.post("/api/models", json={"frame": frame, "y": "label", "params": LONG}).json()["id"]
        wait_for_job(http, job, lambda j: j["history"])
    finally:
        process.send_signal(signal.SIGKILL)  # a server that stops mid-job
        process.wait(GUARD_SECONDS)
    with TestClient(create_app(FlowConfig(str(data)))) as restarted:
        assert [f["id"] for f in restarted.get("/api/frames").json()["frames"]] == [frame]
        interrupted = restarted.get(f"/api/jobs/{job}").json()
        assert interrupted["status"] == "interrupted" and "server stopped" in interrupted["error"]
        assert interrupted["history"]  # what it had scored is kept


@pytest.mark.parametrize("argv, named", [(["--allow-dir", "/no/such/folder"], "allow_dir="),
                                         (["--port", "70000"], "port="), (["--token", "short"], "token"),
                                         (["--max-upload-mb", "0"], "max_upload_mb=")])
def test_deepwater_flow_refuses_bad_options_in_one_line_before_it_starts(tmp_path, capsys, argv, named):
    assert cli.main(["flow", "--data-dir", str(tmp_path / "data"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepwater flow: ") and named in err and err.count("\n") == 1
    assert not (tmp_path / "data").exists()  # nothing made
