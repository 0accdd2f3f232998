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
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import make_blobs, wait_for_job, write_png

pytest.importorskip("torch")
pytest.importorskip("jinja2")
uvicorn = pytest.importorskip("uvicorn")
fastapi_testclient = pytest.importorskip("fastapi.testclient")
httpx2 = pytest.importorskip("httpx2")

import deepwater as dw  # noqa: E402
from deepwater import cli  # noqa: E402
from deepwater.flow.app import create_app  # noqa: E402
from deepwater.flow.config import FlowConfig  # noqa: E402
from deepwater.flow.forms import NOT_OFFERED, form_hyper_params, form_parameters, offered  # noqa: E402
from deepwater.flow.scorings import history_rows  # noqa: E402
from deepwater.flow.server import guarded  # noqa: E402
from deepwater.selection.grid_search import read_manifest  # noqa: E402

TestClient = fastapi_testclient.TestClient
GUARD_SECONDS = 120  # a hang guard while waiting for a job: no timing is asserted
TINY = {"hidden": [8], "epochs": 3, "backend": "torch", "gpu": False, "seed": 1, "mini_batch_size": 16,
        "train_samples_per_iteration": 60}
LONG = {**TINY, "epochs": 1e6, "max_runtime_secs": 900}  # runs until cancelled or killed (longer than the guards)
RESUMABLE = {**TINY, "epochs": 12}  # long enough to be killed after a few scorings


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
    with zipfile.ZipFile(allowed / "images.zip", "w") as archive:
        for file in sorted((allowed / "images").rglob("*.png")):
            archive.write(file, file.relative_to(allowed / "images").as_posix())
    two = make_blobs(90, seed=4)
    two[two["label"] != "c"].to_csv(allowed / "two.csv", index=False)
    outside = tmp_path_factory.mktemp("outside")
    make_blobs(10).to_csv(outside / "secret.csv", index=False)
    write_png(outside / "secret.png", 128)
    pd.DataFrame({"uri": [str(outside / "secret.png"), str(allowed / "images" / "dark" / "0.png")],
                  "label": ["x", "y"]}).to_csv(allowed / "named.csv", index=False)  # a table naming any file
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


def test_an_image_frame_shows_thumbnails_of_its_images_under_the_allowed_folders_only(client, folders):
    images = client.post("/api/frames", json={"path": "images"}).json()
    page = client.get(f"/api/frames/{images['id']}").json()
    assert page["thumbnails"] == list(range(6))  # up to 8, spread over the frame
    thumbnail = client.get(f"/api/frames/{images['id']}/thumbnails/5.png")
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/png"
    pixels = np.asarray(Image.open(io.BytesIO(thumbnail.content)))
    assert pixels.shape == (64, 64, 3) and pixels.mean() > 150  # row 5 is a light image
    assert f"/api/frames/{images['id']}/thumbnails/0.png" in client.get(f"/frames/{images['id']}").text
    named = client.post("/api/frames", json={"path": "named.csv"}).json()
    assert named["setup"]["image_column"] == "uri"
    assert client.get(f"/api/frames/{named['id']}").json()["thumbnails"] == [1]
    assert "not a file under the folders" in refusal(client.get(f"/api/frames/{named['id']}/thumbnails/0.png"),
                                                     403, "row")
    assert client.get(f"/api/frames/{named['id']}/thumbnails/1.png").status_code == 200
    refusal(client.get(f"/api/frames/{named['id']}/thumbnails/2.png"), 404, "row")
    blobs = client.post("/api/frames", json={"path": "blobs.parquet"}).json()
    refusal(client.get(f"/api/frames/{blobs['id']}/thumbnails/0.png"), 404, "column")


def test_a_zip_of_images_is_a_frame_read_in_place(client, folders):
    imported = client.post("/api/frames", json={"path": "images.zip"})
    assert imported.status_code == 201, imported.text
    frame = client.get(f"/api/frames/{imported.json()['id']}").json()
    assert frame["rows"] == 6 and frame["setup"]["image_column"] == "uri"
    assert frame["head"]["rows"][0] == [f"zip://dark/0.png::{folders['allowed'] / 'images.zip'}", "dark"]
    assert client.get(f"/api/frames/{frame['id']}/thumbnails/3.png").status_code == 200


def test_an_object_store_prefix_is_read_only_when_allowed_and_no_credential_is_kept(tmp_path, monkeypatch):
    pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for name, value in (("AWS_ENDPOINT_URL", endpoint), ("AWS_ACCESS_KEY_ID", "flow-key"),
                            ("AWS_SECRET_ACCESS_KEY", "flow-secret-never-stored"), ("AWS_DEFAULT_REGION", "us-east-1")):
            monkeypatch.setenv(name, value)
        deadline = time.monotonic() + GUARD_SECONDS
        while not listening(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        s3 = boto3.client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket="pictures")
        for i in range(4):
            label = ("dark", "light")[i % 2]
            s3.upload_file(str(write_png(tmp_path / f"{i}.png", 40 if label == "dark" else 215, seed=i)), "pictures",
                           f"train/{label}/{i}.png")
        config = FlowConfig(str(tmp_path / "data"), allow_stores=("s3://pictures/train",))
        with TestClient(create_app(config)) as flow:
            assert "not under the object store prefixes" in refusal(
                flow.post("/api/frames", json={"path": "s3://pictures/other/"}), 403, "path")
            imported = flow.post("/api/frames", json={"path": "s3://pictures/train/"})
            assert imported.status_code == 201, imported.text
            frame = flow.get(f"/api/frames/{imported.json()['id']}").json()
            assert frame["rows"] == 4 and frame["head"]["rows"][0] == ["s3://pictures/train/dark/0.png", "dark"]
            assert frame["thumbnails"] == []  # a store's object is never read for a picture
            refusal(flow.get(f"/api/frames/{frame['id']}/thumbnails/0.png"), 403, "row")
    finally:
        server.terminate()
        server.wait(GUARD_SECONDS)
    assert b"flow-secret" not in (tmp_path / "data" / "catalogue.sqlite").read_bytes()
    with pytest.raises(dw.ParameterError, match="allow_stores='data/'"):
        FlowConfig(str(tmp_path / "data"), allow_stores=("data/",))


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


def test_an_image_model_page_shows_grad_cam_overlays_and_its_roc_curve(client, folders):
    images = client.post("/api/frames", json={"path": "images"}).json()
    job = client.post("/api/models", json={"frame": images["id"], "y": "label", "params": {
        "network": "lenet", "epochs": 2, "backend": "torch", "gpu": False, "seed": 1}}).json()
    done = wait_for_job(client, job["id"])
    assert done["status"] == "done", done["error"]
    model = client.get(f"/api/models/{done['model']}").json()
    assert [g["row"] for g in model["gradcam"]] == [0, 2, 3, 5]  # spread over the frame: both classes
    overlay = client.get(f"/api/models/{done['model']}/gradcam/{model['gradcam'][0]['file']}")
    assert overlay.status_code == 200 and overlay.headers["content-type"] == "image/png"
    pixels = np.asarray(Image.open(io.BytesIO(overlay.content)))
    assert pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.std(axis=2).max() > 0  # coloured: a heatmap drawn
    refusal(client.get(f"/api/models/{done['model']}/gradcam/9.png"), 404, "file")  # only the files it lists
    assert client.get(f"/api/models/{done['model']}/gradcam/..%2F..%2Fcatalogue.sqlite").status_code == 404
    roc = model["metrics"]["training"]["roc"]
    assert roc[0] == [0.0, 0.0] and roc[-1] == [1.0, 1.0] and model["varimp"] is None
    page = client.get(f"/models/{done['model']}").text
    assert page.count(f'src="/api/models/{done["model"]}/gradcam/') == 4 and 'id="roc-training"' in page


def test_a_model_whose_grad_cam_cannot_be_written_is_kept_and_its_page_says_why(client, folders):
    images = client.post("/api/frames", json={"path": "images"}).json()
    blocked = folders["data"] / "gradcam" / "lenet_no_pictures"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("a file where the model's overlays would go")  # a real failure: no folder can be made there
    job = client.post("/api/models", json={"frame": images["id"], "y": "label", "params": {
        "network": "lenet", "epochs": 1, "backend": "torch", "gpu": False, "seed": 1,
        "model_id": "lenet_no_pictures"}}).json()
    done = wait_for_job(client, job["id"])
    assert done["status"] == "done", done["error"]
    model = client.get("/api/models/lenet_no_pictures").json()
    assert model["gradcam"] == [] and model["gradcam_error"].startswith(("FileExistsError", "NotADirectoryError"))
    assert 'id="gradcam-error"' in client.get("/models/lenet_no_pictures").text


def test_a_model_page_shows_variable_importances_and_cross_validation_metrics(client, folders, trained):
    two = client.post("/api/frames", json={"path": "two.csv"}).json()
    job = client.post("/api/models", json={"frame": two["id"], "y": "label", "params": {**TINY, "nfolds": 2}}).json()
    done = wait_for_job(client, job["id"])
    assert done["status"] == "done", done["error"]
    model = client.get(f"/api/models/{done['model']}").json()
    saved = dw.load_model(model["path"])
    expected = saved.varimp(use_pandas=True)
    assert model["varimp"]["index"] == list(expected["variable"])
    assert [row[0] for row in model["varimp"]["rows"]] == pytest.approx(list(expected["relative_importance"]))
    summary = saved.cross_validation_metrics_summary()
    assert model["cross_validation"]["columns"] == ["mean", "sd", "cv_1_valid", "cv_2_valid"]
    assert model["cross_validation"]["rows"][model["cross_validation"]["index"].index("auc")][0] == pytest.approx(
        summary.loc["auc", "mean"])
    roc = np.array(model["metrics"]["training"]["roc"])
    assert (np.diff(roc, axis=0) >= 0).all()  # a ROC curve climbs from (0, 0) to (1, 1)
    page = client.get(f"/models/{done['model']}").text
    assert 'id="varimp"' in page and 'id="cross-validation"' in page and 'id="roc-training"' in page
    multinomial = client.get(f"/models/{trained['model']}").text  # three classes: no ROC curve, no CV
    assert 'id="varimp"' in multinomial and "roc-training" not in multinomial and "cross-validation" not in multinomial


def test_a_grid_search_is_one_job_whose_models_and_leaderboard_join_the_catalogue(client, frame_id):
    base = {name: value for name, value in TINY.items() if name not in ("hidden", "epochs")}
    job = client.post("/api/grids", json={"frame": frame_id, "y": "label", "params": base,
                                          "hyper_params": {"hidden": [[2], [8]], "epochs": [1, 2]}}).json()
    done = wait_for_job(client, job["id"])
    assert done["status"] == "done", done["error"]
    grid = client.get(f"/api/grids/{done['grid']}").json()
    board = grid["leaderboard"]
    assert board["columns"] == ["hidden", "epochs", "model_ids", "logloss"] and len(board["rows"]) == 4
    losses = [row[3] for row in board["rows"]]
    assert losses == sorted(losses)  # best first
    for row in board["rows"]:
        model = client.get(f"/api/models/{row[2]}").json()
        assert model["grid"] == done["grid"] and model["parameters"]["hidden"] == row[0]
        assert model["metrics"]["training"]["values"]["logloss"] == pytest.approx(row[3])
    assert done["grid"] in [g["id"] for g in client.get("/api/grids").json()["grids"]]
    page = client.get(f"/grids/{done['grid']}").text
    assert 'id="leaderboard"' in page and page.count('<a href="/models/') == 4
    assert f'/grids/{done["grid"]}' in client.get(f"/jobs/{done['id']}").text


def test_grid_requests_are_checked_before_they_are_queued(client, frame_id):
    grid = {"frame": frame_id, "y": "label", "params": TINY}
    refusal(client.post("/api/grids", json={**grid, "hyper_params": {}}), 422, "hyper_params")
    assert "hidden[0]=-4" in refusal(client.post("/api/grids", json={**grid, "hyper_params": {"hidden": [[-4]]}}),
                                     422, "hyper_params.hidden")
    refusal(client.post("/api/grids", json={**grid, "hyper_params": {"epochs": []}}), 422, "hyper_params.epochs")
    refusal(client.post("/api/grids", json={**grid, "hyper_params": {"mlflow": [True]}}), 422, "hyper_params.mlflow")
    refusal(client.post("/api/grids", json={**grid, "params": {"model_id": "mine"}, "hyper_params": {"l1": [0.0]}}),
            422, "params.model_id")
    assert "set it in one place" in refusal(client.post("/api/grids", json={**grid, "hyper_params": {"epochs": [1]}}),
                                            422, "params.epochs")
    refusal(client.post("/api/grids", json={**grid, "y": "nothere", "hyper_params": {"l1": [0.0]}}), 422, "y")
    refusal(client.get("/api/grids/grid_nothere"), 404, "grid")


def test_the_build_form_searches_over_values_separated_by_semicolons(client, frame_id):
    assert form_hyper_params({"hidden": "4; 6", "epochs": "1", "activation": "Tanh;Rectifier"}) == (
        {"hidden": [[4], [6]], "activation": ["Tanh", "Rectifier"]}, {})
    params = form_parameters({"hidden": "4; 6", "epochs": "1"})[0]
    assert params["epochs"] == 1 and "hidden" not in params  # the grid's, not a value of its own
    bad = client.post("/build", data={"frame": frame_id, "y": "label", "hidden": "4; -6", "backend": "torch"})
    assert bad.status_code == 422 and 'id="error-hidden"' in bad.text
    posted = client.post("/build", data={"frame": frame_id, "y": "label", "hidden": "4; 6", "epochs": "1",
                                         "backend": "torch"}, follow_redirects=False)
    assert posted.status_code == 303, posted.text
    done = wait_for_job(client, posted.headers["location"].rsplit("/", 1)[1])
    assert done["status"] == "done" and done["request"]["hyper_params"] == {"hidden": [[4], [6]]}


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


def listening(port: int) -> bool:
    """True once a server accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def killed_server(folders, data: Path, token: str):
    """A real `deepwater flow` process on a free port (client: an httpx2 client carrying the token), killed with
    SIGKILL at the end of the block, as a server that stops mid-job."""
    port = free_port()
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
        yield http
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(GUARD_SECONDS)


def test_a_restart_keeps_the_catalogue_and_the_killed_job_resumes_from_its_checkpoint(folders, tmp_path):
    data = tmp_path / "data"
    with killed_server(folders, data, "restart-token-1") as http:
        frame = http.post("/api/frames", json={"path": "blobs.csv"}).json()["id"]
        job = http.post("/api/models", json={"frame": frame, "y": "label", "params": RESUMABLE}).json()["id"]
        wait_for_job(http, job, lambda j: len(j["history"]) >= 2)  # the first scoring's checkpoint is written
    with TestClient(create_app(FlowConfig(str(data)))) as restarted:
        assert [f["id"] for f in restarted.get("/api/frames").json()["frames"]] == [frame]
        interrupted = restarted.get(f"/api/jobs/{job}").json()
        assert interrupted["status"] == "interrupted" and "server stopped" in interrupted["error"]
        assert interrupted["history"]  # what it had scored is kept
        assert 'id="resume"' in restarted.get(f"/jobs/{job}").text  # the page's Resume button
        resumed = restarted.post(f"/api/jobs/{job}/resume")
        assert resumed.status_code == 202, resumed.text
        done = wait_for_job(restarted, resumed.json()["id"])
        assert done["status"] == "done", done["error"]
        assert done["request"]["resume"] == job
        model = restarted.get(f"/api/models/{done['model']}").json()
        assert model["id"] == interrupted["model_id"] and model["summary"]["epochs"] == 12.0
        assert model["history"][1] == interrupted["history"][1]  # continued from a checkpoint, not started anew
        assert restarted.get(f"/api/jobs/{job}").json()["resumed_by"] == done["id"]
        assert "is resumed" in refusal(restarted.post(f"/api/jobs/{job}/resume"), 409, "job")
        assert not (data / "checkpoints" / job).exists() and not (data / "checkpoints" / done["id"]).exists()


def test_a_grid_shows_models_done_and_resumes_after_a_kill_keeping_the_models_it_had(folders, tmp_path):
    data, params = tmp_path / "data", {name: value for name, value in RESUMABLE.items() if name != "epochs"}
    with killed_server(folders, data, "grid-token-1") as http:
        frame = http.post("/api/frames", json={"path": "blobs.csv"}).json()["id"]
        job = http.post("/api/grids", json={"frame": frame, "y": "label", "params": params,  # the second runs longest:
                                            "hyper_params": {"epochs": [12, 150, 13]}}).json()  # killed while it runs
        grid = job["model_id"]
        seen = wait_for_job(http, job["id"], lambda j: (j.get("grid_progress") or {}).get("done", 0) >= 1
                            and j["grid_progress"]["running"] is not None)
    progress = seen["grid_progress"]
    assert progress["total"] == 3 and progress["running"]["model"] == f"{grid}_model_{progress['done'] + 1}"
    assert progress["done"] / 3 <= seen["progress"] < 1 and seen["history"]  # the running model's scorings
    kept = sorted(read_manifest(data / "checkpoints" / grid, grid))  # the models saved before the kill
    kept_history = {model_id: history_rows(dw.load_model(data / "checkpoints" / grid / model_id).scoring_history()
                                           .to_dict("records")) for model_id in kept}
    with TestClient(create_app(FlowConfig(str(data)))) as restarted:
        interrupted = restarted.get(f"/api/jobs/{job['id']}").json()
        assert interrupted["status"] == "interrupted" and interrupted["grid_progress"]["done"] == len(kept) >= 1
        page = restarted.get(f"/jobs/{job['id']}").text
        assert f"Models done:\n{len(kept)} / 3" in page and 'id="resume"' in page
        resumed = restarted.post(f"/api/jobs/{job['id']}/resume")
        assert resumed.status_code == 202, resumed.text
        done = wait_for_job(restarted, resumed.json()["id"])
        assert done["status"] == "done", done["error"]
        assert done["grid"] == grid and done["grid_progress"] == {"done": 3, "total": 3, "running": None}
        board = restarted.get(f"/api/grids/{grid}").json()["leaderboard"]
        assert sorted(row[1] for row in board["rows"]) == [f"{grid}_model_{n}" for n in (1, 2, 3)]
        for model_id in kept:  # kept as they were trained before the kill, not trained again
            model = restarted.get(f"/api/models/{model_id}").json()
            assert [row["timestamp"] for row in model["history"]] == [row["timestamp"] for row in
                                                                      kept_history[model_id]]
        assert not (data / "checkpoints" / grid).exists()


@pytest.mark.parametrize("argv, named", [(["--allow-dir", "/no/such/folder"], "allow_dir="),
                                         (["--port", "70000"], "port="), (["--token", "short"], "token"),
                                         (["--max-upload-mb", "0"], "max_upload_mb="),
                                         (["--allow-store", "/not/a/store"], "allow_stores="),
                                         (["--ray", "127.0.0.1:1"], "address='127.0.0.1:1'")])
def test_deepwater_flow_refuses_bad_options_in_one_line_before_it_starts(tmp_path, capsys, argv, named):
    assert cli.main(["flow", "--data-dir", str(tmp_path / "data"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepwater flow: ") and named in err and err.count("\n") == 1
    assert not (tmp_path / "data").exists()  # nothing made
