"""deepwater.init() and Ray tasks: cross-validation's folds side by side on a local Ray runtime give the
models they give in this process, the frames go to the object store once, models come
back as saved-model files."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from conftest import make_blobs

import deepwater as dw
from deepwater import execution
from deepwater.execution import Job

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

CLASSES = ["a", "b", "c"]
EXACT = 1e-6


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_blobs(90, seed=41)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray runtime of 2 CPUs for the module's tests, stopped at the end."""
    info = dw.init(num_cpus=2)
    yield info
    dw.shutdown()


def run_python(code: str, timeout: float, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env})


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
    assert dw.init() is cluster


def test_the_frames_go_to_the_object_store_once(cluster, frame, monkeypatch):
    put = ray.put
    sizes: list[int] = []

    def counting(value, **kwargs):
        sizes.append(len(value))
        return put(value, **kwargs)

    monkeypatch.setattr(ray, "put", counting)
    dw.DeepWaterEstimator(hidden=[8], epochs=1, gpu=False, quiet_mode=True, nfolds=3).train(
        y="label", training_frame=frame)
    assert sizes == [len(frame)]  # the folds' training and holdout rows come from one frame


def test_cross_validation_folds_on_ray_match_those_in_the_process(cluster, frame, monkeypatch):
    params = {"hidden": [8], "epochs": 1, "gpu": False, "quiet_mode": True, "seed": 5, "nfolds": 3,
              "keep_cross_validation_predictions": True}
    there = dw.DeepWaterEstimator(model_id="cv_ray", **params).train(y="label", training_frame=frame)
    with monkeypatch.context() as patch:
        patch.setattr(execution, "connected", lambda: False)
        here = dw.DeepWaterEstimator(model_id="cv_here", **params).train(y="label", training_frame=frame)
    pd.testing.assert_frame_equal(there.cross_validation_metrics_summary(), here.cross_validation_metrics_summary(),
                                  atol=EXACT)
    np.testing.assert_allclose(there.cross_validation_holdout_predictions()[CLASSES],
                               here.cross_validation_holdout_predictions()[CLASSES], atol=EXACT)
    assert [m.model_id for m in there.cross_validation_models()] == ["cv_ray_cv_1", "cv_ray_cv_2", "cv_ray_cv_3"]
    assert dw.get_model("cv_ray_cv_2") is there.cross_validation_models()[1]


def test_a_task_returns_the_saved_model_files_and_its_worker_forgets_the_model(frame):
    from deepwater.ray_tasks import load_files, train_task

    job = Job(dw.DeepWaterEstimator, {"hidden": [8], "epochs": 1, "gpu": False, "quiet_mode": True, "seed": 2,
                                      "model_id": "in_a_task"}, None, "label", np.arange(60))
    files = train_task(job, frame, None)
    assert set(files) == {"model.json", "arrays.safetensors", "checksums.json"}
    assert all(isinstance(data, bytes) for data in files.values())
    assert "in_a_task" not in dw.ls()["key"].tolist()
    model = load_files(files)
    assert model.model_id == "in_a_task" and dw.get_model("in_a_task") is model
    assert model.summary()["samples"] == 60
    with pytest.raises(dw.ModelFileError, match="outside a saved model's folder"):
        load_files({"../evil": b"x"})


def test_a_gpu_job_asks_ray_for_a_gpu_where_the_cluster_has_one(cluster, frame):
    from deepwater.ray_tasks import RayRunner

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
