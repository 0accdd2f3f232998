"""deepwater.init() and Ray tasks: a grid's models and cross-validation's folds side by side on a local Ray
runtime give the models they give in this process, the frames go to the object store once, models come
back as saved-model archives, and without deepwater.init() Ray is never imported."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepwater as dw
from conftest import make_blobs
from deepwater.model import runners
from deepwater.model.jobs import Job

# Ray's switch for a runtime that stays on this machine: it then runs on 127.0.0.1 (read when ray is imported)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

HYPER = {"learning_rate": [0.01, 0.1], "activation": ["Tanh", "Rectifier"]}
CLASSES = ["a", "b", "c"]
EXACT = 1e-6
WALL_CLOCK = ["timestamp", "duration", "training_speed"]


def base(**params) -> dw.DeepWaterEstimator:
    defaults = {"hidden": [8], "epochs": 1, "gpu": False, "quiet_mode": True, "seed": 3, "stopping_rounds": 0}
    return dw.DeepWaterEstimator(**{**defaults, **params})


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_blobs(90, seed=41)


@pytest.fixture(scope="module")
def valid() -> pd.DataFrame:
    return make_blobs(45, seed=42)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray runtime of 2 CPUs on 127.0.0.1 for the module's tests (dw.init() calls ray.init(num_cpus=2,
    include_dashboard=False)), stopped at the end."""
    info = dw.init(num_cpus=2)
    yield info
    dw.shutdown()


def probabilities(model: dw.DeepWaterEstimator, frame: pd.DataFrame) -> np.ndarray:
    return model.predict(frame)[CLASSES].to_numpy()


def run_python(code: str, timeout: float, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env})


def test_without_deepwater_init_nothing_imports_ray():
    code = f"""
    import sys, warnings
    sys.path.insert(0, {str(Path(__file__).parent)!r})
    from conftest import make_blobs
    import deepwater as dw
    warnings.simplefilter("ignore")
    model = dw.DeepWaterEstimator(hidden=[4], epochs=1, gpu=False, quiet_mode=True, nfolds=2)
    grid = dw.H2OGridSearch(model, {{"learning_rate": [0.01, 0.1]}}, parallelism=2)
    grid.train(y="label", training_frame=make_blobs(40))
    assert len(grid) == 2, grid
    print("ray" in sys.modules)
    """
    run = run_python(code, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "False"


def test_an_unreachable_cluster_is_a_clear_error_not_a_hang():
    code = """
    import time
    import deepwater as dw
    for address in ("ray://127.0.0.1:1", None):  # None: the RAY_ADDRESS variable
        start = time.monotonic()
        try:
            dw.init(address=address)
        except dw.ClusterError as error:
            print(round(time.monotonic() - start), error)
    try:
        dw.init(num_cpus=2)
    except dw.ParameterError as error:
        print("refused:", error)
    """
    run = run_python(code, timeout=120, RAY_ADDRESS="ray://127.0.0.1:1")
    assert run.returncode == 0, run.stderr[-2000:]
    *lines, refused = run.stdout.strip().splitlines()
    assert refused.startswith("refused: num_cpus size a local runtime, and address='ray://127.0.0.1:1' joins")
    assert len(lines) == 2
    for line in lines:
        seconds, message = line.split(" ", 1)
        assert int(seconds) < 30
        assert "address='ray://127.0.0.1:1'): nothing answers at 127.0.0.1:1" in message
        assert "ray start --head" in message


def test_init_is_idempotent(cluster):
    assert cluster.cpus == 2.0 and cluster.managed and cluster.address == "local"
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert dw.init() is cluster


def test_a_parallel_grid_on_ray_gives_the_models_of_a_sequential_one(cluster, frame, valid):
    sequential = dw.H2OGridSearch(base(), HYPER, grid_id="seq").train(y="label", training_frame=frame,
                                                                      validation_frame=valid)
    parallel = dw.H2OGridSearch(base(), HYPER, grid_id="par", parallelism=2).train(
        y="label", training_frame=frame, validation_frame=valid)
    assert [i.replace("seq", "par") for i in sequential.model_ids] == parallel.model_ids
    for n in range(1, 5):
        here, there = dw.get_model(f"seq_model_{n}"), dw.get_model(f"par_model_{n}")
        assert parallel.get_hyperparams_dict(there.model_id, display=False) == \
            sequential.get_hyperparams_dict(here.model_id, display=False)
        np.testing.assert_allclose(probabilities(there, valid), probabilities(here, valid), atol=EXACT)
        pd.testing.assert_frame_equal(there.scoring_history().drop(columns=WALL_CLOCK),
                                      here.scoring_history().drop(columns=WALL_CLOCK))
    pd.testing.assert_series_equal(parallel.sorted_metric_table()["logloss"],
                                   sequential.sorted_metric_table()["logloss"], atol=EXACT)


def test_the_frames_go_to_the_object_store_once(cluster, frame, valid, monkeypatch):
    put = ray.put
    sizes: list[int] = []

    def counting(value, **kwargs):
        sizes.append(len(value))
        return put(value, **kwargs)

    monkeypatch.setattr(ray, "put", counting)
    dw.H2OGridSearch(base(), HYPER, grid_id="once", parallelism=2).train(y="label", training_frame=frame,
                                                                         validation_frame=valid)
    assert sizes == [len(frame), len(valid)]
    sizes.clear()
    dw.DeepWaterEstimator(hidden=[8], epochs=1, gpu=False, quiet_mode=True, nfolds=3).train(
        y="label", training_frame=frame)
    assert sizes == [len(frame)]  # the folds' training and holdout rows come from one frame


def test_cross_validation_folds_on_ray_match_those_in_the_process(cluster, frame, monkeypatch):
    params = {"hidden": [8], "epochs": 1, "gpu": False, "quiet_mode": True, "seed": 5, "nfolds": 3,
              "keep_cross_validation_predictions": True}
    there = dw.DeepWaterEstimator(model_id="cv_ray", **params).train(y="label", training_frame=frame)
    with monkeypatch.context() as patch:
        patch.setattr(runners, "connected", lambda: False)
        here = dw.DeepWaterEstimator(model_id="cv_here", **params).train(y="label", training_frame=frame)
    pd.testing.assert_frame_equal(there.cross_validation_metrics_summary(), here.cross_validation_metrics_summary(),
                                  atol=EXACT)
    np.testing.assert_allclose(there.cross_validation_holdout_predictions()[CLASSES],
                               here.cross_validation_holdout_predictions()[CLASSES], atol=EXACT)
    assert [m.model_id for m in there.cross_validation_models()] == ["cv_ray_cv_1", "cv_ray_cv_2", "cv_ray_cv_3"]
    assert dw.get_model("cv_ray_cv_2") is there.cross_validation_models()[1]


def test_a_failing_combination_on_ray_is_listed_and_the_grid_goes_on(cluster, frame, tmp_path):
    folder = tmp_path / "models"
    with pytest.warns(UserWarning, match="could not be built"):
        grid = dw.H2OGridSearch(base(), {"stopping_metric": ["AUC", "logloss", "MSE"]}, grid_id="ray_fails",
                                parallelism=0, export_checkpoints_dir=str(folder)).train(y="label",
                                                                                        training_frame=frame)
    assert sorted(grid.model_ids) == ["ray_fails_model_2", "ray_fails_model_3"]
    [failure] = grid.failures
    assert failure.hyper_parameters == {"stopping_metric": "AUC"}
    assert failure.error.startswith("ParameterError: stopping_metric='AUC' needs two classes")
    assert sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.endswith(".json")) == sorted(
        grid.model_ids)  # saved by the driver, one file each beside the grid's manifest


def test_a_task_returns_the_saved_model_archive_and_its_worker_forgets_the_model(frame):
    from deepwater.model.ray_jobs import load_archive, train_task

    job = Job(dw.DeepWaterEstimator, {"hidden": [8], "epochs": 1, "gpu": False, "quiet_mode": True, "seed": 2,
                                      "model_id": "in_a_task"}, None, "label", np.arange(60))
    archive = train_task(job, frame, None)
    with zipfile.ZipFile(io.BytesIO(archive)) as members:
        assert set(members.namelist()) == {"model.json", "arrays.safetensors", "checksums.json"}
    assert "in_a_task" not in dw.ls()["key"].tolist()
    model = load_archive(archive)
    assert model.model_id == "in_a_task" and dw.get_model("in_a_task") is model
    assert model.summary()["samples"] == 60
    escape = io.BytesIO()
    with zipfile.ZipFile(escape, "w") as members:
        members.writestr("../evil", b"x")
    with pytest.raises(dw.ModelFileError, match="member names outside it"):
        load_archive(escape.getvalue())


def test_a_gpu_job_asks_ray_for_a_gpu_where_the_cluster_has_one(cluster, frame):
    from deepwater.model.ray_jobs import RayRunner

    class Recorder:
        def __init__(self):
            self.asked = []

        def options(self, **options):
            self.asked.append(options)
            return self

        def remote(self, job, training, validation):
            self.asked[-1]["device_id"] = job.params.get("device_id")
            return object()

    runner = RayRunner(frame, None, 2)
    runner._task, runner._gpus = Recorder(), True
    for gpu in (True, False):
        runner.submit(Job(dw.DeepWaterEstimator, {"gpu": gpu, "device_id": [3], "model_id": f"g{gpu}"}, None, "label"))
    assert runner._task.asked == [{"num_cpus": 1, "num_gpus": 1, "device_id": [0]},
                                  {"num_cpus": 1, "num_gpus": 0, "device_id": [3]}]
    runner._gpus = False
    runner.submit(Job(dw.DeepWaterEstimator, {"model_id": "default"}, None, "label"))  # gpu=True by default
    assert runner._task.asked[-1]["num_gpus"] == 0
