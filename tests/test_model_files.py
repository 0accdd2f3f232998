"""Saved models: save_model / load_model on every backend and user-graph format, the models held in the
process (get_model, ls), and every bad input a clear ModelFileError or ParameterError."""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import shutil
import zipfile
from pathlib import Path

import blake3
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


def test_save_model_writes_one_archive_of_json_and_safetensors(trained, tmp_path):
    """H2O's save_model (and Keras's .keras) give one file: a zip of model.json, arrays.safetensors and their
    checksums, nothing pickled; os.remove(path) deletes the model."""
    path = dw.save_model(trained[BACKENDS[0]], tmp_path)
    assert os.path.isfile(path) and zipfile.is_zipfile(path)
    assert sorted(members(path)) == ["arrays.safetensors", "checksums.json", "model.json"]
    assert all(b"pickle" not in data and not data.startswith(b"\x80") for data in members(path).values())
    os.remove(path)
    assert os.listdir(tmp_path) == []


def test_the_model_lives_on_in_the_process_after_its_file_is_deleted(frame, tmp_path):
    model = mlp(BACKENDS[0]).train(y="label", training_frame=frame, model_id="kept_in_process")
    path = dw.save_model(model, tmp_path)
    loaded = dw.load_model(path)
    os.remove(path)
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


def members(path: str) -> dict[str, bytes]:
    """The members of a saved model, archive or folder, by name."""
    if os.path.isdir(path):
        return {p.relative_to(path).as_posix(): p.read_bytes() for p in Path(path).rglob("*") if p.is_file()}
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def write_members(path: str, files: dict[str, bytes]) -> None:
    """Replace the saved model at `path` (archive or folder) by `files`: damage as a disk or an editor leaves it."""
    if os.path.isdir(path):
        shutil.rmtree(path)
        for name, data in files.items():
            os.makedirs(os.path.dirname(os.path.join(path, name)), exist_ok=True)
            open(os.path.join(path, name), "wb").write(data)
        return
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def change_member(path: str, name: str, change, reseal: bool = False) -> None:
    """Apply `change` (bytes -> bytes) to one member; `reseal` writes checksums that agree with the change."""
    files = members(path)
    files[name] = change(files[name])
    if reseal:
        sums = json.loads(files["checksums.json"])
        sums["files"][name] = blake3.blake3(files[name]).hexdigest()
        files["checksums.json"] = json.dumps(sums).encode()
    write_members(path, files)


def as_folder(archive: str) -> str:
    """The saved model's members as a folder beside it: what deepwater wrote before it wrote archives."""
    folder = archive + "_folder"
    with zipfile.ZipFile(archive) as handle:
        handle.extractall(folder)
    return folder


@pytest.fixture(params=["archive", "folder"])
def saved(trained, tmp_path, request):
    path = dw.save_model(trained[BACKENDS[0]], tmp_path)
    return path if request.param == "archive" else as_folder(path)


def test_a_folder_saved_by_an_earlier_version_still_loads(trained, frame, tmp_path):
    model = trained[BACKENDS[0]]
    folder = as_folder(dw.save_model(model, tmp_path))
    np.testing.assert_allclose(probabilities(dw.load_model(folder), frame), probabilities(model, frame), atol=EXACT)


def flip(byte_at):
    def change(data: bytes) -> bytes:
        data = bytearray(data)
        data[byte_at(data)] ^= 0x01
        return bytes(data)
    return change


@pytest.mark.parametrize("name, change", [
    ("arrays.safetensors", lambda data: data[:len(data) // 2]),  # truncated
    ("model.json", flip(lambda data: data.index(b'"seed"') + 1)),
    ("arrays.safetensors", flip(lambda data: len(data) - 5)),
], ids=["truncated-weights", "flipped-byte-record", "flipped-byte-weights"])
def test_damage_is_refused_by_the_checksums(saved, name, change):
    change_member(saved, name, change)
    with pytest.raises(ModelFileError, match=rf"{re.escape(name)}.*checksum"):
        dw.load_model(saved)


def test_a_format_1_folder_still_loads(trained, frame, tmp_path):
    """Format 1 held arrays.npz and SHA-256 digests, and no optimiser state: it loads and predicts."""
    from safetensors.numpy import load

    saved = as_folder(dw.save_model(trained[BACKENDS[0]], tmp_path))
    files = members(saved)
    arrays = load(files.pop("arrays.safetensors"))
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v for k, v in arrays.items() if not k.startswith("training/")})
    record = json.loads(files["model.json"])
    record["format_version"] = 1
    files.update({"arrays.npz": buffer.getvalue(), "model.json": json.dumps(record).encode()})
    files["checksums.json"] = json.dumps({name: hashlib.sha256(files[name]).hexdigest()
                                          for name in ("model.json", "arrays.npz")}).encode()
    write_members(saved, files)
    loaded = dw.load_model(saved)
    model = trained[BACKENDS[0]]
    np.testing.assert_allclose(probabilities(loaded, frame), probabilities(model, frame), atol=EXACT)
    assert int(loaded._fitted.net.training_state()["samples"]) == model.summary()["samples"]


def test_an_extra_or_missing_file_is_refused(saved):
    write_members(saved, {**members(saved), "extra.pkl": b"x"})
    with pytest.raises(ModelFileError, match="not those its checksums.json lists"):
        dw.load_model(saved)
    write_members(saved, {name: data for name, data in members(saved).items() if name != "arrays.safetensors"})
    with pytest.raises(ModelFileError, match="not those its checksums.json lists"):
        dw.load_model(saved)


def test_an_archive_whose_members_reach_outside_it_is_refused(trained, tmp_path):
    archive = tmp_path / "escape"
    with zipfile.ZipFile(archive, "w") as handle:
        for name, data in members(dw.save_model(trained[BACKENDS[0]], tmp_path)).items():
            handle.writestr(name, data)
        handle.writestr("../outside.txt", b"x")
    with pytest.raises(ModelFileError, match=r"member names outside it \(\['\.\./outside\.txt'\]\)"):
        dw.load_model(archive)
    assert not (tmp_path.parent / "outside.txt").exists()


def test_a_newer_format_version_is_refused(saved):
    def future(data: bytes) -> bytes:
        return json.dumps({**json.loads(data), "format_version": 999}).encode()

    change_member(saved, "model.json", future, reseal=True)  # a consistent model from the future
    with pytest.raises(ModelFileError, match="format version 999.*upgrade deepwater"):
        dw.load_model(saved)


def rewrite_weights(path: str, change) -> None:
    """Apply `change` to the saved arrays and re-write them with consistent checksums: damage the checksums
    cannot see, as a buggy or hostile writer would leave it."""
    from safetensors.numpy import load, save

    def rewrite(data: bytes) -> bytes:
        arrays = load(data)
        change(arrays)
        return save(arrays)

    change_member(path, "arrays.safetensors", rewrite, reseal=True)


@pytest.mark.parametrize("damage, words", [
    (lambda a: a["net/fc1.weight"].__setitem__((0, 0), np.nan), "net/fc1.weight holds NaN or infinite values"),
    (lambda a: a.__setitem__("net/fc1.weight", a["net/fc1.weight"].astype(np.int64)),
     "net/fc1.weight holds dtype int64"),
])
def test_weights_with_nan_or_another_dtype_are_refused_as_corrupt(saved, damage, words):
    rewrite_weights(saved, damage)
    with pytest.raises(ModelFileError, match=f"is corrupt: its weight {words}"):
        dw.load_model(saved)


def test_a_saved_model_gets_the_mode_open_gives_a_new_file(trained, tmp_path):
    """Not private (a temporary file, and safetensors' own file, start 0o600); its members keep that mode too."""
    path = dw.save_model(trained[BACKENDS[0]], tmp_path)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~current_umask()
    with zipfile.ZipFile(path) as archive:
        modes = {info.filename: (info.external_attr >> 16) & 0o777 for info in archive.infolist()}
    assert set(modes.values()) == {0o666 & ~current_umask()}, modes


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
