"""mlflow=True and deepwater.mlflow against a real MLflow tracking server (`mlflow server`, SQLite store, local
artifacts, on a free loopback port): the params, metric histories, tags and artifacts of a training, a checkpoint
restart, a cross-validated model and a grid read back with MlflowClient; a logged model served by
`mlflow models serve` scores as model.predict; a server that is down costs one warning, never the model."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

import deepwater as dw
import deepwater.mlflow as dw_mlflow
from conftest import make_blobs
from deepwater.errors import MissingDependencyError
from deepwater.tracking import flavour
from deepwater.training.parameters import PARAMETERS, SECRET_PARAMETERS

CLOSE = 1e-5
CLASSES = ["a", "b", "c"]
X = ["x1", "x2", "colour"]
QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, log: Path, seconds: float = 180.0) -> None:
    """Poll `url` until it answers 200; fail with the process's log if it exits or the time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{process.args[:3]} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {seconds} s:\n{log.read_text()[-3000:]}")


def start(command: list[str], health: str, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])  # its uvicorn
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, **QUIET, "PATH": path}, start_new_session=True)
    wait_until_up(health, process, log)
    return process


def stop(process: subprocess.Popen) -> None:
    """End the process group the server started (mlflow server runs uvicorn as a child)."""
    os.killpg(process.pid, 15)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()


@pytest.fixture(scope="module")
def tracking(tmp_path_factory) -> Iterator[str]:
    """A tracking server for the module, set as MLflow's tracking URI and experiment while its tests run."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    server = start([sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
                    f"sqlite:///{folder / 'runs.sqlite'}", "--default-artifact-root", str(folder / "artifacts"),
                    "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                   f"http://127.0.0.1:{port}/health", folder / "server.log")
    saved = {name: os.environ.get(name) for name in QUIET}
    os.environ.update(QUIET)
    uri = f"http://127.0.0.1:{port}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("deepwater-tests")
    try:
        yield uri
    finally:
        mlflow.set_tracking_uri(None)
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value
        stop(server)


SETTINGS = {"backend": "torch", "gpu": False, "epochs": 2, "quiet_mode": True, "seed": 3, "mini_batch_size": 20,
            "train_samples_per_iteration": 100, "mlflow": True}


def estimator(**params) -> dw.DeepWaterEstimator:
    """A tiny torch MLP that scores every 100 samples (a history of several rows), logged to MLflow."""
    return dw.DeepWaterEstimator(**{**SETTINGS, "hidden": [8], **params})


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_blobs(150, seed=0), make_blobs(60, seed=1)


@pytest.fixture(scope="module")
def trained(tracking, frames) -> dw.DeepWaterEstimator:
    train, valid = frames
    return estimator().train(x=X, y="label", training_frame=train, validation_frame=valid,
                             model_id=f"mlp_{uuid.uuid4().hex[:6]}")


def history(client: mlflow.MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def logged_model_files(client: mlflow.MlflowClient, run_id: str) -> set[str]:
    """The files of the MLflow models the run logged (MLflow 3 keeps them beside the run, as LoggedModels)."""
    outputs = client.get_run(run_id).outputs.model_outputs
    return {item.path for output in outputs for item in client.list_logged_model_artifacts(output.model_id)}


def test_a_trained_model_logs_its_run(trained):
    client, run_id = mlflow.MlflowClient(), trained.mlflow_run_id
    run = client.get_run(run_id)
    assert run.info.run_name == trained.model_id and run.info.status == "FINISHED"
    params = run.data.params
    assert set(PARAMETERS) - set(SECRET_PARAMETERS) <= set(params)  # every parameter as used (auto resolved) ...
    assert not set(SECRET_PARAMETERS) & set(params)  # ... but credentials (storage_options)
    assert params["backend"] == "torch" and params["network"] == "mlp" and params["hidden"] == "[8]"
    assert params["epochs"] == "2.0" and params["mlflow"] == "True" and params["seed"] == "3"
    scoring = trained.scoring_history()
    assert len(scoring) >= 3
    for key in ("training_logloss", "validation_logloss", "epochs"):
        steps, values = zip(*history(client, run_id, key))
        assert list(steps) == scoring["samples"].tolist() and list(values) == pytest.approx(scoring[key].tolist())
    final = run.data.metrics
    assert final["training.logloss"] == pytest.approx(trained.model_performance(train=True).logloss())
    assert final["validation.logloss"] == pytest.approx(trained.model_performance(valid=True).logloss())
    assert final["validation.classification_error"] == pytest.approx(
        trained.model_performance(valid=True).classification_error())
    summary = trained.summary()
    tags = run.data.tags
    assert tags["deepwater.backend"] == "torch" and tags["deepwater.device"] == summary["device"]
    assert tags["deepwater.precision"] == summary["precision"] and tags["deepwater.network"] == "mlp"
    assert tags["deepwater.version"] == dw.__version__
    plots = {item.path for item in client.list_artifacts(run_id, "plots")}
    assert plots == {"plots/scoring_history.png", "plots/confusion_matrix.png"}
    assert {"MLmodel", "deepwater_model", "bundle", "requirements.txt"} <= logged_model_files(client, run_id)


def test_a_checkpoint_restart_continues_the_run(trained, frames, tmp_path):
    train, valid = frames
    saved = dw.save_model(trained, tmp_path)  # the run id travels in the saved model's record
    assert dw.load_model(saved).mlflow_run_id == trained.mlflow_run_id
    restarted = estimator(checkpoint=saved, epochs=3).train(x=X, y="label", training_frame=train,
                                                            validation_frame=valid, model_id=trained.model_id)
    client, run_id = mlflow.MlflowClient(), trained.mlflow_run_id
    assert restarted.mlflow_run_id == run_id
    steps = [step for step, _ in history(client, run_id, "training_logloss")]
    assert steps == sorted(set(steps)) == restarted.scoring_history()["samples"].tolist()  # no row twice
    run = client.get_run(run_id)
    assert run.data.params["epochs"] == "2.0" and run.data.params["epochs.restart_1"] == "3.0"
    assert run.data.tags["deepwater.restarts"] == "1"
    assert run.data.metrics["training.logloss"] == pytest.approx(restarted.model_performance(train=True).logloss())
    assert len(run.outputs.model_outputs) == 2  # the first model and the continued one


def test_a_checkpoint_written_during_training_carries_the_run_a_restart_continues(tracking, frames, tmp_path):
    """The run opens with the training: a run killed midway leaves checkpoints that continue it."""
    train, _ = frames
    model = estimator(export_checkpoints_dir=str(tmp_path), export_checkpoints_keep=10).train(
        x=X, y="label", training_frame=train, model_id=f"ckpt_{uuid.uuid4().hex[:6]}")
    first = min(tmp_path.iterdir())  # the first scoring's checkpoint, as a killed run leaves it
    assert dw.load_model(first).summary()["samples"] < model.summary()["samples"]
    assert dw.load_model(first).mlflow_run_id == model.mlflow_run_id is not None
    run = mlflow.MlflowClient().get_run(model.mlflow_run_id)
    assert run.info.run_name == model.model_id and "deepwater.restarts" not in run.data.tags


def test_a_cross_validated_model_logs_its_folds_under_its_run(tracking, frames):
    train, _ = frames
    model = estimator(nfolds=2, epochs=1).train(x=X, y="label", training_frame=train,
                                                model_id=f"cv_{uuid.uuid4().hex[:6]}")
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name("deepwater-tests").experiment_id
    named = client.search_runs([experiment], f"attributes.run_name LIKE '{model.model_id}%'")
    assert [run.info.run_id for run in named] == [model.mlflow_run_id]  # the fold models have no runs of their own
    metrics = named[0].data.metrics
    assert metrics["cross_validation.logloss"] == pytest.approx(model.model_performance(xval=True).logloss())
    summary = model.cross_validation_metrics_summary()
    for fold in (1, 2):
        assert metrics[f"cv_{fold}_valid.logloss"] == pytest.approx(summary.loc["logloss", f"cv_{fold}_valid"])
    table = client.load_table(experiment, "cross_validation_metrics_summary.json", run_ids=[model.mlflow_run_id])
    assert table.set_index("metric").loc["logloss", "mean"] == pytest.approx(summary.loc["logloss", "mean"])


def test_a_grid_logs_each_model_as_a_child_run(tracking, frames):
    train, valid = frames
    grid_id = f"grid_{uuid.uuid4().hex[:6]}"
    grid = dw.H2OGridSearch(dw.DeepWaterEstimator(**{**SETTINGS, "epochs": 1}), {"hidden": [[4], [8]]},
                            grid_id=grid_id)
    grid.train(x=X, y="label", training_frame=train, validation_frame=valid)
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name("deepwater-tests").experiment_id
    parent = client.search_runs([experiment], f"attributes.run_name = '{grid_id}'")
    assert len(parent) == 1
    children = client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent[0].info.run_id}'")
    assert {run.info.run_name for run in children} == set(grid.model_ids)
    assert {run.info.run_id for run in children} == {model.mlflow_run_id for model in grid.models}
    assert {run.data.params["hidden"] for run in children} == {"[4]", "[8]"}
    board = client.load_table(experiment, "leaderboard.json", run_ids=[parent[0].info.run_id])
    expected = grid.sorted_metric_table()
    assert board["model_ids"].tolist() == expected["model_ids"].tolist()
    assert board["logloss"].to_numpy() == pytest.approx(expected["logloss"].to_numpy())


def test_a_logged_model_is_served_and_scores_as_predict(trained, frames, tmp_path):
    _, valid = frames
    rows = valid.drop(columns="label")
    with mlflow.start_run(run_name="served"):
        info = dw_mlflow.log_model(trained)
    expected = trained.predict(rows)
    assert dw_mlflow.load_model(info.model_uri).predict(rows)[CLASSES].to_numpy() == pytest.approx(
        expected[CLASSES].to_numpy(), abs=CLOSE)
    loaded = mlflow.pyfunc.load_model(info.model_uri).predict(rows)
    assert np.abs(loaded[CLASSES].to_numpy() - expected[CLASSES].to_numpy()).max() < CLOSE
    assert loaded["predict"].astype(str).tolist() == expected["predict"].astype(str).tolist()

    port = free_port()
    server = start([sys.executable, "-m", "mlflow", "models", "serve", "-m", info.model_uri, "--env-manager",
                    "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"], f"http://127.0.0.1:{port}/ping",
                   tmp_path / "serve.log")
    try:
        body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split"))}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", body,
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            served = pd.DataFrame(json.loads(answer.read())["predictions"])
    finally:
        stop(server)
    assert np.abs(served[CLASSES].to_numpy() - expected[CLASSES].to_numpy()).max() < CLOSE
    assert served["predict"].tolist() == expected["predict"].astype(str).tolist()


@pytest.mark.parametrize("server", ["stopped", "silent"])
def test_a_tracking_server_that_is_down_costs_one_warning_not_the_model(server, frames, monkeypatch):
    """Stopped: nothing listens on the port (connection refused). Silent: a socket that takes connections and never
    answers, where the user's MLFLOW_HTTP_REQUEST_TIMEOUT (1 s) is kept and MLflow's retries are not made."""
    train, _ = frames
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        if server == "silent":
            silent.listen(8)
            monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
        down = f"http://127.0.0.1:{silent.getsockname()[1]}"
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(down)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model = estimator(epochs=1).train(x=X, y="label", training_frame=train)
        finally:
            mlflow.set_tracking_uri(previous)
    tracking_warnings = [w for w in caught if "MLflow tracking" in str(w.message)]
    assert len(tracking_warnings) == 1 and tracking_warnings[0].category is RuntimeWarning
    assert down in str(tracking_warnings[0].message) and "log_run" in str(tracking_warnings[0].message)
    assert model.mlflow_run_id is None and len(model.predict(train)) == len(train)


def test_mlflow_true_without_mlflow_installed_names_the_extra(frames, monkeypatch):
    train, _ = frames
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what `import mlflow` meets when it is not installed
    with pytest.raises(MissingDependencyError, match=r"deepwater\[mlflow\]"):
        estimator(epochs=1).train(x=X, y="label", training_frame=train)


def test_deepwater_imports_no_mlflow_unless_asked():
    code = ("import sys, deepwater, deepwater.mlflow; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mlflow'))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_pyfunc_flavour_scores_without_a_deep_learning_framework(frames, tmp_path):
    train, valid = frames
    model = estimator(epochs=1, mlflow=False).train(x=X, y="label", training_frame=train)
    folder = tmp_path / "logged"
    flavour.save_model(str(folder), model=model)  # the folder Model.log uploads
    valid.drop(columns="label").to_json(tmp_path / "rows.json", orient="split")
    code = f"""
import sys
class Refuse:  # the deep learning frameworks cannot be imported in this process
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("torch", "tensorflow", "keras", "mxnet"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Refuse())
import mlflow.pyfunc, pandas as pd
rows = pd.read_json({str(tmp_path / "rows.json")!r}, orient="split")
mlflow.pyfunc.load_model({str(folder)!r}).predict(rows).to_json({str(tmp_path / "out.json")!r}, orient="split")
"""
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **QUIET}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    scored = pd.read_json(tmp_path / "out.json", orient="split")
    expected = model.predict(valid)
    assert np.abs(scored[CLASSES].to_numpy() - expected[CLASSES].to_numpy()).max() < CLOSE
    assert scored["predict"].tolist() == expected["predict"].astype(str).tolist()
    assert dw_mlflow.load_model(str(folder)).predict(valid)["predict"].tolist() == expected["predict"].tolist()
