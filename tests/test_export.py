"""model.export(path, format='onnx') and deepwater.inference: a bundle folder that scores a frame as the model does,
with onnxruntime alone, on every backend and for every user-graph format that exports; every bad input a clear
error."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from user_graph_cases import all_cases, fit_case

import deepwater as dw
from conftest import installed_backends, make_blobs, make_linear
from deepwater import inference
from deepwater.errors import DeviceError, ModelFileError, NotFittedError, ParameterError

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

BACKENDS = installed_backends()
CLOSE = 1e-4
BLOCKED = ("torch", "tensorflow", "mxnet", "keras")


def estimator(backend: str, **params) -> dw.DeepWaterEstimator:
    defaults = {"hidden": [8], "epochs": 1, "gpu": False, "quiet_mode": True, "seed": 5, "backend": backend,
                "mini_batch_size": 16}
    return dw.DeepWaterEstimator(**{**defaults, **params})


def dataset_frame(kind: str) -> pd.DataFrame:
    """Training rows with a constant column (dropped by the encoder): blobs, or a linear regression."""
    frame = make_blobs(150, seed=3) if kind == "classification" else make_linear(150, seed=3)
    frame["constant"] = 7.0
    return frame


def scoring_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` shuffled under a new index, with missing values and, in categorical columns, a level never seen."""
    scored = frame.sample(frac=1.0, random_state=0).set_index(pd.Index([f"r{i}" for i in range(len(frame))]))
    numeric = scored.columns[0]
    scored[numeric] = scored[numeric].where(np.arange(len(scored)) % 7 != 0)
    categorical = "colour" if "colour" in scored.columns else "group"
    scored[categorical] = scored[categorical].cat.add_categories(["unseen"])
    scored.iloc[::5, scored.columns.get_loc(categorical)] = "unseen"
    return scored


@pytest.fixture
def images(image_frame, tmp_path) -> tuple[pd.DataFrame, dict]:
    """The tiny PNG frame and LeNet's parameters for it, with a mean image that the bundle must carry."""
    np.save(tmp_path / "mean.npy", np.linspace(60.0, 160.0, 16 * 16, dtype=np.float32).reshape(1, 16, 16))
    return image_frame, {"network": "lenet", "image_shape": [16, 16], "channels": 1,
                         "mean_image_file": str(tmp_path / "mean.npy"), "mini_batch_size": 8}


def trained(kind: str, backend: str, images) -> tuple[dw.DeepWaterEstimator, pd.DataFrame, list[str]]:
    """A model of `kind` trained one epoch on `backend`, the frame to score and the layer to export."""
    if kind == "lenet":
        frame, params = images
        model = estimator(backend, **params).train(x=["uri"], y="label", training_frame=frame)
        return model, frame.iloc[::-1], ["pool2"]
    frame = dataset_frame(kind)
    model = estimator(backend).train(y=frame.columns[-2], training_frame=frame)
    return model, scoring_frame(frame), ["act1"]


def assert_same_predictions(expected: pd.DataFrame, got: pd.DataFrame, threshold: float | None = None) -> None:
    """The same columns, dtypes and index; labels equal; numbers within CLOSE. With two classes' `threshold`, a
    row whose second-class probability is within CLOSE of it may take either label: the max-F1 threshold is one
    of the training rows' own probabilities, and another runtime's rounding may put that row on either side."""
    assert list(got.columns) == list(expected.columns)
    assert got.dtypes.equals(expected.dtypes)
    assert got.index.equals(expected.index)
    if isinstance(expected["predict"].dtype, pd.CategoricalDtype):
        two_classes = threshold is not None and len(expected.columns) == 3  # predict and two probabilities
        tie = np.abs(expected.iloc[:, 2].to_numpy(float) - threshold) <= CLOSE if two_classes else \
            np.zeros(len(expected), dtype=bool)
        assert got["predict"][~tie].equals(expected["predict"][~tie])
        numbers = expected.columns[1:]
    else:
        numbers = expected.columns
    np.testing.assert_allclose(got[numbers].to_numpy(float), expected[numbers].to_numpy(float), atol=CLOSE)


# --------------------------------------------------------------------------- built-in networks

@pytest.mark.parametrize("kind", ["classification", "regression", "lenet"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_bundle_scores_as_the_model(backend, kind, images, tmp_path):
    model, frame, layers = trained(kind, backend, images)
    path = model.export(tmp_path / "bundle", layers=layers)
    assert path == str(tmp_path / "bundle")
    scorer = inference.load(path, device="cpu")
    assert_same_predictions(model.predict(frame), scorer.predict(frame))
    expected = model.deepfeatures(frame, layers[0])
    got = scorer.deepfeatures(frame, layers[0])
    assert list(got.columns) == list(expected.columns) and got.index.equals(expected.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=CLOSE)


def test_the_bundle_holds_the_network_and_what_scoring_needs(images, tmp_path):
    frame, params = images
    model = estimator(BACKENDS[0], **params).train(x=["uri"], y="label", training_frame=frame)
    folder = Path(model.export(tmp_path / "lenet", layers=["fc1", -1]))
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == [
        "arrays/inputs.mean_image.npy", "bundle.json", "checksums.json", "model.onnx"]
    graph = onnx.load(str(folder / "model.onnx"))
    assert max(op.version for op in graph.opset_import if op.domain in ("", "ai.onnx")) >= 17
    batch = graph.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value  # a symbolic batch axis
    bundle = json.loads((folder / "bundle.json").read_text())
    assert bundle["inputs"]["shape"] == {"height": 16, "width": 16, "channels": 1, "resize": "stretch"}
    assert bundle["response"]["classes"] == ["dark", "light"]
    assert set(bundle["graph"]["layers"]) == {"fc1", "output"}
    assert bundle["versions"]["deepwater"] and bundle["versions"]["onnxruntime"]
    np.testing.assert_array_equal(np.load(folder / "arrays/inputs.mean_image.npy"), np.load(params["mean_image_file"]))
    rows = ort.InferenceSession(str(folder / "model.onnx")).run(None, {"input": np.zeros((3, 1, 16, 16), np.float32)})
    assert [r.shape for r in rows] == [(3, 2), (3, 500), (3, 2)]  # probabilities, fc1, output
    np.testing.assert_allclose(rows[0].sum(axis=1), 1.0, atol=1e-6)


def test_the_bundle_holds_the_fitted_encoders(tmp_path):
    frame = dataset_frame("regression")
    model = estimator(BACKENDS[0]).train(y="y", training_frame=frame)
    bundle = json.loads((Path(model.export(tmp_path / "linear")) / "bundle.json").read_text())
    encoder = bundle["inputs"]["encoder"]
    assert encoder["dropped"] == ["constant"]
    assert [c["name"] for c in encoder["numeric"]] == ["a", "b"]
    assert encoder["numeric"][0]["mean"] == pytest.approx(frame["a"].mean(), abs=1e-6)
    assert encoder["categorical"] == [{"name": "group", "levels": ["u", "v"], "encoding": "one_hot", "buckets": 0}]
    assert bundle["response"]["mean"] == pytest.approx(frame["y"].mean())
    assert bundle["response"]["scale"] == pytest.approx(frame["y"].std(ddof=0))


def test_scoring_imports_no_framework(images, tmp_path):
    """The bundles score in a process where importing torch, tensorflow, mxnet or keras fails."""
    frame, params = images
    table = dataset_frame("classification")
    bundles = {"images": (estimator(BACKENDS[-1], **params).train(x=["uri"], y="label", training_frame=frame), frame),
               "rows": (estimator(BACKENDS[-1]).train(y="label", training_frame=table), scoring_frame(table))}
    for name, (model, scored) in bundles.items():
        model.export(tmp_path / f"bundle-{name}", layers=["output"])
        scored.to_pickle(tmp_path / f"{name}.pkl")  # the test's own file, written just now
    code = f"""
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {BLOCKED!r}:
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Refuse())
import pandas as pd
from deepwater import inference
for name in ("images", "rows"):
    scorer = inference.load(r"{tmp_path}/bundle-" + name)
    frame = pd.read_pickle(r"{tmp_path}/" + name + ".pkl")
    scorer.predict(frame).to_pickle(r"{tmp_path}/" + name + "-predict.pkl")
    scorer.deepfeatures(frame, "output").to_pickle(r"{tmp_path}/" + name + "-features.pkl")
print(sorted(m for m in sys.modules if m.partition(".")[0] in {BLOCKED!r}))
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "[]"
    for name, (model, scored) in bundles.items():
        assert_same_predictions(model.predict(scored), pd.read_pickle(tmp_path / f"{name}-predict.pkl"))
        np.testing.assert_allclose(pd.read_pickle(tmp_path / f"{name}-features.pkl").to_numpy(),
                                   model.deepfeatures(scored, "output").to_numpy(), atol=CLOSE)


# --------------------------------------------------------------------------- user graphs

EXPORTED_FORMATS = {"onnx-from-torch", "onnx-rows", "torch-export", "torch-export-rows", "keras", "keras-rows",
                    "saved-model"}
CASES = [case for case in all_cases() if len(case.input_shape) == 1 or case.input_shape[0] in (1, 3)]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_user_graphs_export_through_their_own_framework(case, image_frame, tmp_path):
    if case.missing():
        pytest.skip(f"{case.missing()} not installed")
    model, frame = fit_case(case, tmp_path / "graph", image_frame)
    layer = model.layers()[0]
    if case.id not in EXPORTED_FORMATS:
        with pytest.raises(ModelFileError, match=r"cannot be exported to ONNX|TorchScript.*export program"):
            model.export(tmp_path / "bundle", layers=[layer])
        assert not (tmp_path / "bundle").exists()
        return
    if case.backend == "tensorflow":
        pytest.importorskip("tf2onnx")
    scorer = inference.load(model.export(tmp_path / "bundle", layers=[layer]))
    assert_same_predictions(model.predict(frame), scorer.predict(frame), model._fitted.threshold())
    np.testing.assert_allclose(scorer.deepfeatures(frame, layer).to_numpy(),
                               model.deepfeatures(frame, layer).to_numpy(), atol=CLOSE)


def test_an_onnx_graph_with_a_fixed_batch_size_scores_in_chunks(tmp_path):
    from graph_files_onnx import FEATURES, rows_mlp

    onnx.save(rows_mlp(2, batch=4), str(tmp_path / "fixed.onnx"))
    values = np.random.default_rng(2).normal(size=(11, FEATURES))
    frame = pd.DataFrame(values, columns=[f"x{i}" for i in range(FEATURES)])
    frame["label"] = pd.Categorical(np.where(values[:, 1] > 0, "yes", "no"))
    model = dw.DeepWaterEstimator(network="user", network_definition_file=str(tmp_path / "fixed.onnx"), epochs=0,
                                  gpu=False, quiet_mode=True, standardize=False).train(y="label", training_frame=frame)
    scorer = inference.load(model.export(tmp_path / "bundle", layers=["hidden"]), batch_size=7, threads=1)
    assert_same_predictions(model.predict(frame), scorer.predict(frame))
    np.testing.assert_allclose(scorer.deepfeatures(frame, "hidden").to_numpy(),
                               model.deepfeatures(frame, "hidden").to_numpy(), atol=CLOSE)


# --------------------------------------------------------------------------- damaged bundles

@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, pd.DataFrame, dw.DeepWaterEstimator]:
    """A small classifier's bundle (shared: copy it before damaging it), its frame and the model."""
    frame = make_blobs(90, seed=8)
    model = estimator(BACKENDS[0]).train(y="label", training_frame=frame)
    return Path(model.export(tmp_path_factory.mktemp("bundle") / "blobs")), frame, model


@pytest.mark.parametrize("damage", ["missing model.onnx", "edited model.onnx", "edited bundle.json", "extra file",
                                    "missing checksums.json"])
def test_a_damaged_bundle_is_refused(bundle, tmp_path, damage):
    folder = Path(shutil.copytree(bundle[0], tmp_path / "copy"))
    if damage == "missing model.onnx":
        (folder / "model.onnx").unlink()
    elif damage == "edited model.onnx":
        data = bytearray((folder / "model.onnx").read_bytes())
        data[-10] ^= 0xFF
        (folder / "model.onnx").write_bytes(bytes(data))
    elif damage == "edited bundle.json":
        text = (folder / "bundle.json").read_text()
        (folder / "bundle.json").write_text(text.replace('"a"', '"z"', 1))
    elif damage == "extra file":
        (folder / "notes.txt").write_text("hello")
    else:
        (folder / "checksums.json").unlink()
    expected = {"missing model.onnx": "not those its checksums.json lists", "extra file": "not those its",
                "missing checksums.json": "not a deepwater bundle"}.get(damage, "does not match its checksum")
    with pytest.raises(ModelFileError, match=expected):
        inference.load(folder)


def test_a_saved_model_is_not_a_bundle(bundle, tmp_path):
    with pytest.raises(ModelFileError, match="is a saved model.*deepwater.load_model"):
        inference.load(dw.save_model(bundle[2], tmp_path))


# --------------------------------------------------------------------------- bad input

def test_bad_exports_are_clear_errors(bundle, tmp_path):
    frame, model = bundle[1], bundle[2]
    with pytest.raises(NotFittedError, match="not trained"):
        estimator(BACKENDS[0]).export(tmp_path / "untrained")
    with pytest.raises(ParameterError, match="format='tflite'.*format='onnx'"):
        model.export(tmp_path / "x", format="tflite")
    with pytest.raises(ParameterError, match="layer='no_such_layer'.*fc1"):
        model.export(tmp_path / "x", layers=["no_such_layer"])
    with pytest.raises(ParameterError, match=r"layers='fc1' must be a list.*\['fc1'\]"):
        model.export(tmp_path / "x", layers="fc1")
    assert not (tmp_path / "x").exists()
    path = model.export(tmp_path / "x")
    with pytest.raises(ParameterError, match="already exists; pass force=True"):
        model.export(tmp_path / "x")
    assert model.export(tmp_path / "x", force=True, layers=["fc1"]) == path
    assert sorted(os.listdir(tmp_path)) == ["x"]  # nothing left aside
    scorer = inference.load(path)
    assert scorer.layers() == ["fc1"]
    with pytest.raises(ParameterError, match=r"layer='act1' is not in this bundle.*layers=\['act1'\]"):
        scorer.deepfeatures(frame, "act1")
    with pytest.raises(ParameterError, match="batch_size=0"):
        inference.load(path, batch_size=0)
    with pytest.raises(ParameterError, match="threads=-1"):
        inference.load(path, threads=-1)
    with pytest.raises(ModelFileError, match="not a deepwater bundle"):
        inference.load(tmp_path / "nowhere")


def test_a_crash_while_exporting_leaves_nothing_behind(bundle, tmp_path, monkeypatch):
    from deepwater.deploy import export

    def crash() -> dict:
        raise OSError("disk full")

    monkeypatch.setattr(export, "framework_versions", crash)
    with pytest.raises(OSError, match="disk full"):
        bundle[2].export(tmp_path / "bundle")
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- devices

def test_scoring_picks_the_cpu_without_cuda(bundle):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    assert inference.load(bundle[0]).device == "cpu"
    with pytest.raises(DeviceError, match="onnxruntime-gpu"):
        inference.load(bundle[0], device="cuda:0")


@pytest.mark.gpu
def test_scoring_on_a_gpu_gives_the_cpu_predictions(bundle):
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("needs onnxruntime-gpu and a CUDA device")
    gpu = inference.load(bundle[0], device="cuda:0")
    assert gpu.device == "cuda:0"
    assert_same_predictions(inference.load(bundle[0], device="cpu").predict(bundle[1]), gpu.predict(bundle[1]))


# --------------------------------------------------------------------------- the deepwater command

def test_the_command_exports_a_saved_model_and_describes_bundles_and_models(bundle, tmp_path, capsys):
    from deepwater import cli

    frame, model = bundle[1], bundle[2]
    saved = dw.save_model(model, tmp_path / "models")
    assert cli.main(["export", saved, str(tmp_path / "bundle"), "--layers", "fc1"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "bundle")
    assert_same_predictions(model.predict(frame), inference.load(tmp_path / "bundle").predict(frame))
    assert cli.main(["info", str(tmp_path / "bundle")]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["kind"] == "bundle" and described["model_id"] == model.model_id
    assert described["graph"]["layers"] == ["fc1"] and "model.onnx" in described["files"]
    code = (f"import runpy, sys; sys.argv = ['deepwater', 'info', {str(tmp_path / 'bundle')!r}]\n"
            "try:\n    runpy.run_module('deepwater', run_name='__main__')\nexcept SystemExit as end:\n"
            f"    print(end.code, sorted(m for m in {BLOCKED!r} if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)  # python -m deepwater info
    assert run.stdout.strip().endswith("0 []"), run.stderr[-2000:]  # exit status 0, no framework imported
    assert json.loads(run.stdout.strip().rpartition("\n")[0])["model_id"] == model.model_id
    assert cli.main(["info", str(tmp_path / "models")]) == 0  # a folder of saved models: the newest
    described = json.loads(capsys.readouterr().out)
    assert described["kind"] == "saved model" and described["response"]["classes"] == ["a", "b", "c"]
    assert described["metrics"]["training"]["logloss"] == pytest.approx(model.model_performance(train=True).logloss())


def test_the_command_reports_errors_in_one_line(bundle, tmp_path, capsys):
    from deepwater import cli

    assert cli.main(["export", str(bundle[0]), str(tmp_path / "again")]) == 2  # a bundle is not a saved model
    assert "a bundle that model.export() wrote, not a saved model" in capsys.readouterr().err
    assert cli.main(["export", dw.save_model(bundle[2], tmp_path / "models"), str(bundle[0])]) == 2
    assert "already exists; pass force=True" in capsys.readouterr().err
    folder = Path(shutil.copytree(bundle[0], tmp_path / "copy"))
    (folder / "bundle.json").write_text("{}")
    assert cli.main(["info", str(folder)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("deepwater info: ") and "does not match its checksum" in error


def test_two_classes_are_labelled_at_the_models_max_f1_threshold(binary_blobs, tmp_path):
    """The bundle keeps the threshold predict() labels two classes at (H2O's max-F1 rule), not 0.5."""
    model = estimator(BACKENDS[0]).train(y="label", training_frame=binary_blobs)
    scorer = inference.load(model.export(str(tmp_path / "bundle")))
    assert json.loads((tmp_path / "bundle" / "bundle.json").read_text())["threshold"] == model._fitted.threshold()
    assert_same_predictions(model.predict(binary_blobs), scorer.predict(binary_blobs))
