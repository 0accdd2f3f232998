"""Saved models: save_model / load_model on every backend and user-graph format, the models held in the
process (get_model, ls), and every bad input a clear ModelFileError or ParameterError."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import zipfile

import numpy as np
import pandas as pd
import pytest
from user_graph_cases import all_cases, fit_case

import deepwater as dw
from conftest import installed_backends, make_blobs
from deepwater.errors import ModelFileError, NotFittedError, ParameterError
from deepwater.storage import saved_models as model_files

BACKENDS = installed_backends()
EXACT = 1e-6


def mlp(backend: str, **params) -> dw.DeepWaterEstimator:
    defaults = {"hidden": [8], "epochs": 1, "gpu": False, "quiet_mode": True, "seed": 3, "backend": backend}
    return dw.DeepWaterEstimator(**{**defaults, **params})


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    data = make_blobs(120, seed=4)
    data["colour"] = pd.Categorical(np.where(np.arange(len(data)) % 3 == 0, "red", "blue"))
    return data


@pytest.fixture(scope="module")
def trained(frame):
    """One small trained classifier per backend, with a validation frame."""
    return {backend: mlp(backend).train(y="label", training_frame=frame, validation_frame=frame.iloc[:40],
                                        model_id=f"saved_mlp_{backend}") for backend in BACKENDS}


def probabilities(model: dw.DeepWaterEstimator, frame: pd.DataFrame) -> np.ndarray:
    return model.predict(frame).iloc[:, 1:].to_numpy()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_loaded_model_predicts_as_the_saved_one(trained, frame, tmp_path, backend):
    model = trained[backend]
    path = dw.save_model(model, tmp_path)
    assert path == str(tmp_path / model.model_id)
    loaded = dw.load_model(path)
    assert loaded.model_id == model.model_id
    assert loaded.summary()["backend"] == backend
    np.testing.assert_allclose(probabilities(loaded, frame), probabilities(model, frame), atol=EXACT)
    assert (loaded.predict(frame)["predict"] == model.predict(frame)["predict"]).all()
    np.testing.assert_allclose(loaded.deepfeatures(frame, "output").to_numpy(),
                               model.deepfeatures(frame, "output").to_numpy(), atol=EXACT)
    pd.testing.assert_frame_equal(loaded.scoring_history(), model.scoring_history())
    assert loaded.model_performance(valid=True).logloss() == model.model_performance(valid=True).logloss()
    assert loaded.model_performance(train=True).confusion_matrix().equals(
        model.model_performance(train=True).confusion_matrix())
    assert loaded.get_params() == {**model.get_params(), "model_id": model.model_id}


@pytest.mark.parametrize("target", BACKENDS)
def test_a_built_in_network_moves_to_another_backend(trained, frame, tmp_path, target):
    source = "torch" if "torch" in BACKENDS else BACKENDS[0]
    moved = dw.load_model(dw.save_model(trained[source], tmp_path), backend=target)
    assert moved.summary()["backend"] == target
    np.testing.assert_allclose(probabilities(moved, frame), probabilities(trained[source], frame), atol=1e-4)


def test_the_model_lives_on_in_the_process_after_its_folder_is_deleted(frame, tmp_path):
    model = mlp(BACKENDS[0]).train(y="label", training_frame=frame, model_id="kept_in_process")
    path = dw.save_model(model, tmp_path)
    loaded = dw.load_model(path)
    shutil.rmtree(path)
    assert dw.get_model("kept_in_process") is loaded
    assert "kept_in_process" in set(dw.ls()["key"])
    np.testing.assert_allclose(probabilities(dw.get_model("kept_in_process"), frame), probabilities(model, frame),
                               atol=EXACT)
    dw.remove("kept_in_process")
    with pytest.raises(ParameterError, match="model_id='kept_in_process' is not a model of this process"):
        dw.get_model("kept_in_process")


def test_a_folder_of_saved_models_loads_the_newest(trained, tmp_path):
    older, newer = list(trained.values())[0], list(trained.values())[-1]
    dw.save_model(older, tmp_path, filename="a")
    newest = dw.save_model(newer, tmp_path, filename="b")
    os.utime(newest, ns=(2**62, 2**62))
    assert dw.load_model(tmp_path).model_id == newer.model_id


def test_image_models_keep_their_mean_image(image_frame, tmp_path):
    mean = np.full((1, 16, 16), 100.0, np.float32)
    np.save(tmp_path / "mean.npy", mean)
    model = dw.DeepWaterEstimator(network="lenet", image_shape=[16, 16], channels=1, epochs=1, mini_batch_size=8,
                                  mean_image_file=str(tmp_path / "mean.npy"), gpu=False, quiet_mode=True, seed=1,
                                  backend=BACKENDS[0])
    model.train(x=["uri"], y="label", training_frame=image_frame)
    os.remove(tmp_path / "mean.npy")  # the saved model holds the mean image itself
    loaded = dw.load_model(dw.save_model(model, tmp_path / "models"))
    np.testing.assert_allclose(probabilities(loaded, image_frame), probabilities(model, image_frame), atol=EXACT)


USER_CASES = [case for case in all_cases() if case.trainable and case.input_shape[0] in (3, 6)]


@pytest.mark.parametrize("case", USER_CASES, ids=[case.id for case in USER_CASES])
def test_user_graphs_are_saved_with_their_graph_file(case, image_frame, tmp_path):
    if case.missing():
        pytest.skip(f"{case.missing()} not installed")
    model, frame = fit_case(case, tmp_path / "graph", image_frame)
    path = dw.save_model(model, tmp_path / "models")
    shutil.rmtree(tmp_path / "graph")  # the saved model holds the graph file itself
    loaded = dw.load_model(path)
    np.testing.assert_allclose(probabilities(loaded, frame), probabilities(model, frame), atol=EXACT)


# --------------------------------------------------------------------------- bad input

def test_saving_an_untrained_model_is_an_error(tmp_path):
    with pytest.raises(NotFittedError, match="not trained"):
        dw.save_model(mlp(BACKENDS[0]), tmp_path)


def test_force_false_refuses_to_replace_a_saved_model(trained, frame, tmp_path):
    model = trained[BACKENDS[0]]
    path = dw.save_model(model, tmp_path)
    with pytest.raises(ParameterError, match="already exists; pass force=True"):
        dw.save_model(model, tmp_path)
    assert dw.save_model(model, tmp_path, force=True) == path
    assert sorted(os.listdir(tmp_path)) == [model.model_id]  # nothing left aside
    np.testing.assert_allclose(probabilities(dw.load_model(path), frame), probabilities(model, frame), atol=EXACT)


def test_a_crash_while_saving_leaves_nothing_behind(trained, tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(model_files, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        dw.save_model(trained[BACKENDS[0]], tmp_path)
    assert os.listdir(tmp_path) == []


def test_a_missing_path_names_it(tmp_path):
    with pytest.raises(ModelFileError, match="no such saved model"):
        dw.load_model(tmp_path / "nowhere")


def test_a_pickle_or_a_zip_with_a_pickle_is_never_loaded(tmp_path):
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("model.pkl", pickle.dumps({"weights": [1, 2, 3]}))
    for path in (pickled, archive):
        with pytest.raises(ModelFileError, match="not a deepwater saved model.*never unpickles"):
            dw.load_model(path)


@pytest.fixture
def saved(trained, tmp_path):
    return dw.save_model(trained[BACKENDS[0]], tmp_path)


def test_a_truncated_file_is_refused(saved):
    arrays = os.path.join(saved, "arrays.safetensors")
    with open(arrays, "r+b") as handle:
        handle.truncate(os.path.getsize(arrays) // 2)
    with pytest.raises(ModelFileError, match=r"arrays\.safetensors.*checksum"):
        dw.load_model(saved)


def test_a_flipped_byte_is_refused(saved):
    path = os.path.join(saved, "model.json")
    data = bytearray(open(path, "rb").read())
    position = data.index(b'"seed"') + 1
    data[position] ^= 0x01
    open(path, "wb").write(bytes(data))
    with pytest.raises(ModelFileError, match=r"model\.json.*checksum"):
        dw.load_model(saved)


def test_a_flipped_byte_in_the_weights_is_refused(saved):
    path = os.path.join(saved, "arrays.safetensors")
    data = bytearray(open(path, "rb").read())
    data[-5] ^= 0x10
    open(path, "wb").write(bytes(data))
    with pytest.raises(ModelFileError, match=r"arrays\.safetensors.*checksum"):
        dw.load_model(saved)


def test_a_format_1_folder_still_loads(trained, frame, saved):
    """Format 1 held arrays.npz and SHA-256 digests, and no optimiser state: it loads and predicts."""
    from safetensors.numpy import load_file

    arrays = load_file(os.path.join(saved, "arrays.safetensors"))
    os.remove(os.path.join(saved, "arrays.safetensors"))
    np.savez(os.path.join(saved, "arrays.npz"), **{k: v for k, v in arrays.items() if not k.startswith("training/")})
    record = json.load(open(os.path.join(saved, "model.json")))
    record["format_version"] = 1
    open(os.path.join(saved, "model.json"), "w").write(json.dumps(record))
    sums = {name: model_files.digest(model_files.Path(saved, name), "sha256") for name in ("model.json", "arrays.npz")}
    open(os.path.join(saved, "checksums.json"), "w").write(json.dumps(sums))
    loaded = dw.load_model(saved)
    model = trained[BACKENDS[0]]
    np.testing.assert_allclose(probabilities(loaded, frame), probabilities(model, frame), atol=EXACT)
    assert int(loaded._fitted.net.training_state()["samples"]) == model.summary()["samples"]


def test_an_extra_or_missing_file_is_refused(saved):
    open(os.path.join(saved, "extra.pkl"), "wb").write(b"x")
    with pytest.raises(ModelFileError, match="not those its checksums.json lists"):
        dw.load_model(saved)


def test_a_newer_format_version_is_refused(saved):
    path = os.path.join(saved, "model.json")
    record = json.load(open(path))
    record["format_version"] = 999
    open(path, "w").write(json.dumps(record))
    sums = json.load(open(os.path.join(saved, "checksums.json")))
    sums["files"]["model.json"] = model_files.digest(model_files.Path(path))  # a consistent folder from the future
    open(os.path.join(saved, "checksums.json"), "w").write(json.dumps(sums))
    with pytest.raises(ModelFileError, match="format version 999.*upgrade deepwater"):
        dw.load_model(saved)


def rewrite_weights(folder: str, change) -> None:
    """Apply `change` to the saved arrays and re-write them with consistent checksums: damage the checksums
    cannot see, as a buggy or hostile writer would leave it."""
    from safetensors.numpy import load_file, save_file

    path = os.path.join(folder, "arrays.safetensors")
    arrays = load_file(path)
    change(arrays)
    save_file(arrays, path)
    sums = json.load(open(os.path.join(folder, "checksums.json")))
    sums["files"]["arrays.safetensors"] = model_files.digest(model_files.Path(path))
    open(os.path.join(folder, "checksums.json"), "w").write(json.dumps(sums))


@pytest.mark.parametrize("damage, words", [
    (lambda a: a["net/fc1.weight"].__setitem__((0, 0), np.nan), "net/fc1.weight holds NaN or infinite values"),
    (lambda a: a.__setitem__("net/fc1.weight", a["net/fc1.weight"].astype(np.int64)),
     "net/fc1.weight holds dtype int64"),
])
def test_weights_with_nan_or_another_dtype_are_refused_as_corrupt(saved, damage, words):
    rewrite_weights(saved, damage)
    with pytest.raises(ModelFileError, match=f"is corrupt: its weight {words}"):
        dw.load_model(saved)


def test_saved_files_get_the_mode_of_the_folders_other_files(saved):
    """arrays.safetensors is not private when model.json is not (safetensors writes a new file 0o600)."""
    modes = {name: os.stat(os.path.join(saved, name)).st_mode & 0o777 for name in os.listdir(saved)}
    assert len(set(modes.values())) == 1, modes
    assert modes["model.json"] == 0o666 & ~current_umask()


def current_umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


@pytest.mark.parametrize("backend", BACKENDS)
def test_parameters_changed_after_training_apply_to_the_next_train_not_to_what_is_saved(frame, tmp_path, backend):
    """m.hidden = [16] or m.activation = 'Tanh' on a trained model: save_model and export keep the fitted model."""
    from deepwater import inference

    model = mlp(backend, model_id=f"changed_{backend}").train(y="label", training_frame=frame)
    expected = probabilities(model, frame)
    model.hidden, model.activation = [16], "Tanh"
    loaded = dw.load_model(dw.save_model(model, tmp_path / "saved"))
    np.testing.assert_allclose(probabilities(loaded, frame), expected, atol=EXACT)
    assert (loaded.hidden, loaded.activation) == ([8], "Rectifier")
    scored = inference.load(model.export(tmp_path / "bundle")).predict(frame)
    np.testing.assert_allclose(scored.iloc[:, 1:].to_numpy(), expected, atol=1e-5)
    model.train(y="label", training_frame=frame)  # the next train() takes them
    assert model.layers() == ["fc1", "act1", "output"] and model._fitted.params["hidden"] == [16]
    assert model.varimp(use_pandas=True) is not None or not model.variable_importances
