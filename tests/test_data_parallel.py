"""device_id=[0, 1, ...]: one model on several devices, every backend. Tested with CPU replicas (gpu=False and
two device ids): torch DDP over two gloo processes, TensorFlow's MirroredStrategy over two logical CPUs (in a
fresh process, since TensorFlow splits the CPU only before it starts), MXNet over cpu(0) and cpu(1)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import deepwater as dw
from conftest import installed_backends, make_blobs
from deepwater.backends.base import split_batch
from deepwater.errors import DeviceError

CLASSES = ["a", "b", "c"]
ROWS, BATCH, STEPS = 150, 15, 20  # 10 batches an epoch; 15 rows split 8 + 7 over two devices
FLOAT32_TOLERANCE = 1e-5  # two devices against one, in float32 (the bound)
BFLOAT16_TOLERANCE = 2e-3  # in bfloat16: the shards round alike only to its 8 significant bits (3e-4 seen)


def settings(device_id: list[int], backend: str, gpu: bool = False, precision: str = "float32") -> dict:
    """Dropout off, a fixed seed and a history scored every 5 batches, so that runs can be compared."""
    return {"backend": backend, "hidden": [16, 16], "gpu": gpu, "device_id": device_id, "seed": 7, "precision": precision,
            "epochs": STEPS * BATCH / ROWS, "mini_batch_size": BATCH, "quiet_mode": True, "stopping_rounds": 0,
            "train_samples_per_iteration": 5 * BATCH, "score_training_samples": 0,
            "overwrite_with_best_model": False}


def train_pair(backend: str, gpu: bool = False, precision: str = "float32") -> dict[str, np.ndarray]:
    """The weights, history and predictions of the same model (and the weights of an autoencoder) trained on
    two devices (CPU replicas, or GPUs 0 and 1 when `gpu`), then on one.

    Rows carry weights, so the shards' shares are weight sums (the harder case); two replicas train first,
    so that TensorFlow can still split the CPU."""
    frame = make_blobs(ROWS, seed=3)
    frame["w"] = np.random.default_rng(0).uniform(0.5, 2.0, ROWS)
    out = {}
    for name, ids in (("two", [0, 1]), ("one", [0])):
        model = dw.DeepWaterEstimator(weights_column="w", **settings(ids, backend, gpu, precision))
        model.train(x=["x1", "x2", "colour"], y="label", training_frame=frame)
        out.update({f"{name}/{key}": value for key, value in model._fitted.net.get_state().items()})
        out[f"{name}:loss"] = model.scoring_history()["training_logloss"].to_numpy()
        out[f"{name}:predict"] = model.predict(frame)[CLASSES].to_numpy()
        out[f"{name}:device"] = np.asarray(model.summary()["device"])
        out[f"{name}:samples"] = model._fitted.net.training_state()["samples"]  # the schedule's row count
        # an autoencoder too: its targets are its inputs, split with them
        encoder = dw.DeepWaterEstimator(autoencoder=True, **{**settings(ids, backend, gpu, precision), "hidden": [3]})
        encoder.train(x=["x1", "x2"], training_frame=frame)
        out.update({f"{name}/encoder.{key}": value for key, value in encoder._fitted.net.get_state().items()})
    return out


def trained_pair(backend: str, tmp_path: Path, gpu: bool = False, precision: str = "float32") -> dict[str, np.ndarray]:
    """train_pair(backend, gpu, precision), in a fresh Python process for TensorFlow."""
    if backend != "tensorflow":
        return train_pair(backend, gpu, precision)
    target = tmp_path / "pair.npz"
    code = f"""
    import sys, numpy as np
    sys.path.insert(0, {str(Path(__file__).parent)!r})
    from test_data_parallel import train_pair
    np.savez({str(target)!r}, **train_pair("tensorflow", {gpu}, {precision!r}))
    """
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    with np.load(target) as arrays:
        return dict(arrays)


def check_pair(out: dict[str, np.ndarray], devices: list[str], tolerance: float) -> None:
    """Two devices gave one device's weights, scoring history and predictions, within `tolerance`."""
    keys = [key[len("one/"):] for key in out if key.startswith("one/")]
    assert keys and all(np.allclose(out[f"two/{k}"], out[f"one/{k}"], rtol=0, atol=tolerance) for k in keys), \
        max(float(np.abs(out[f"two/{k}"] - out[f"one/{k}"]).max()) for k in keys)
    assert [str(out["two:device"]), str(out["one:device"])] == devices
    assert int(out["two:samples"]) == int(out["one:samples"]) == STEPS * BATCH
    assert len(out["two:loss"]) == STEPS // 5 and out["two:loss"][-1] < out["two:loss"][0]
    np.testing.assert_allclose(out["two:loss"], out["one:loss"], atol=tolerance)
    np.testing.assert_allclose(out["two:predict"], out["one:predict"], atol=tolerance)
    assert np.allclose(out["two:predict"].sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("backend", installed_backends())
def test_two_devices_train_the_weights_of_one(backend, tmp_path):
    check_pair(trained_pair(backend, tmp_path), ["cpu:0,cpu:1", "cpu"], FLOAT32_TOLERANCE)


@pytest.mark.parametrize("backend", [b for b in installed_backends() if b != "mxnet"])  # MXNet: float32 only
def test_replicas_train_in_the_models_precision(backend, tmp_path):
    mixed = trained_pair(backend, tmp_path, precision="bfloat16")
    check_pair(mixed, ["cpu:0,cpu:1", "cpu"], BFLOAT16_TOLERANCE)
    full = trained_pair(backend, tmp_path)  # the same runs in float32: replicas that ignored the precision would
    apart = max(float(np.abs(mixed[k] - full[k]).max()) for k in mixed if k.startswith("two/"))  # give its weights
    assert apart > FLOAT32_TOLERANCE, "the replicas trained in float32, not in the model's bfloat16"


def gpus(backend: str) -> int:
    from deepwater.runtime.registry import get_backend

    return len([d for d in get_backend(backend).devices() if d != "cpu"])


@pytest.mark.gpu
@pytest.mark.parametrize("backend", installed_backends())
def test_two_gpus_train_the_weights_of_one(backend, tmp_path):
    if gpus(backend) < 2:
        pytest.skip(f"{backend} sees fewer than 2 GPUs")
    check_pair(trained_pair(backend, tmp_path, gpu=True), ["cuda:0,cuda:1", "cuda:0"], 1e-4)


def test_a_batch_splits_by_rows_or_by_weight():
    x, y = np.arange(10.0).reshape(5, 2), np.arange(5)
    shards = split_batch(x, y, None, 2)
    assert [len(s.x) for s in shards] == [2, 3] and [s.share for s in shards] == [0.4, 0.6]
    np.testing.assert_array_equal(np.concatenate([s.x for s in shards]), x)
    weighted = split_batch(x, y, np.array([1.0, 1.0, 2.0, 2.0, 4.0]), 2)
    assert [s.share for s in weighted] == [0.2, 0.8]
    # a batch smaller than the devices: the extra replica steps on a placeholder row that weighs nothing
    small = split_batch(x[:1], y[:1], None, 3)
    assert [s.share for s in small] == [0.0, 1.0, 0.0] and all(len(s.x) == 1 for s in small)


def test_a_device_listed_twice_is_an_error(blobs):
    with pytest.raises(DeviceError, match=r"device_id=\[0, 0\] lists device 0 more than once"):
        dw.DeepWaterEstimator(gpu=False, device_id=[0, 0], hidden=[4], epochs=0.1, quiet_mode=True).train(
            y="label", training_frame=blobs)


def test_gpus_that_do_not_exist_are_named(blobs, monkeypatch):
    backend = installed_backends()[0]
    from deepwater.runtime.registry import get_backend

    monkeypatch.setattr(type(get_backend(backend)), "devices", lambda self: ["cpu", "cuda:0", "cuda:1"])
    with pytest.raises(DeviceError, match=r"device_id=\[0, 1, 2\] asks for GPU 2.*sees 2 GPU"):
        dw.DeepWaterEstimator(backend=backend, gpu=True, device_id=[0, 1, 2], hidden=[4], epochs=0.1,
                              quiet_mode=True).train(y="label", training_frame=blobs)


def test_a_user_graph_trains_on_one_device(blobs, tmp_path):
    graph = tmp_path / "graph.keras"
    graph.write_bytes(b"not read: the device list is refused first")
    with pytest.raises(DeviceError, match="device_id lists 2 devices .* user graph"):
        dw.DeepWaterEstimator(network="user", network_definition_file=str(graph), gpu=False, device_id=[0, 1],
                              epochs=0.1, quiet_mode=True).train(y="label", training_frame=blobs)


@pytest.mark.skipif("tensorflow" not in installed_backends(), reason="tensorflow is not installed")
def test_tensorflow_started_with_one_cpu_names_the_limit(blobs):
    small = {"backend": "tensorflow", "hidden": [4], "epochs": 0.1, "quiet_mode": True, "gpu": False}
    dw.DeepWaterEstimator(**small).train(y="label", training_frame=blobs)  # TensorFlow starts with its CPUs
    import tensorflow as tf

    replicas = len(tf.config.list_logical_devices("CPU")) + 1
    with pytest.raises(DeviceError, match=f"device_id asks for {replicas} CPU replicas.*fresh process"):
        dw.DeepWaterEstimator(**small, device_id=list(range(replicas))).train(y="label", training_frame=blobs)


def test_num_workers_needs_deepwater_init(blobs):
    with pytest.raises(dw.ParameterError, match=r"num_workers=2 .* call deepwater.init\(address=...\) first"):
        dw.DeepWaterEstimator(num_workers=2, gpu=False, hidden=[4], epochs=0.1, quiet_mode=True).train(
            y="label", training_frame=blobs)


# --------------------------------------------------------------------------- num_workers: Ray Train workers

@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray runtime on 127.0.0.1 for the module's Ray tests (4 logical CPUs: two Ray Train workers take
    one each, and Ray Train's own actors need room), stopped at the end."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read when ray is imported
    pytest.importorskip("ray")
    yield dw.init(num_cpus=4)
    dw.shutdown()


@pytest.mark.ray
@pytest.mark.parametrize("backend", installed_backends())
def test_two_ray_workers_train_the_weights_of_one_device(backend, ray_cluster):
    frame = make_blobs(ROWS, seed=3)
    model = dw.DeepWaterEstimator(num_workers=2, **settings([0], backend))
    if backend == "mxnet":
        with pytest.raises(dw.ParameterError, match="num_workers=2: backend 'mxnet' cannot .* ps-lite"):
            model.train(x=["x1", "x2", "colour"], y="label", training_frame=frame)
        return
    model.train(x=["x1", "x2", "colour"], y="label", training_frame=frame)
    one = dw.DeepWaterEstimator(**settings([0], backend)).train(x=["x1", "x2", "colour"], y="label",
                                                                training_frame=frame)
    two_state, one_state = model._fitted.net.get_state(), one._fitted.net.get_state()
    assert all(np.allclose(two_state[k], one_state[k], rtol=0, atol=1e-5) for k in one_state)
    np.testing.assert_allclose(model.predict(frame)[CLASSES].to_numpy(), one.predict(frame)[CLASSES].to_numpy(),
                               atol=1e-5)

