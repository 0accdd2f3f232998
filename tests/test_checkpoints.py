"""Checkpoint restarts (checkpoint=) and crash-safe checkpoints (export_checkpoints_dir) on every backend:
a restart continues exactly where the run stopped, H2O Deep Water's rules refuse what a restart cannot
change, and a run killed with SIGKILL resumes from its newest complete checkpoint."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepwater as dw
from conftest import installed_backends, make_blobs, reproducible_mlp
from deepwater.errors import ModelFileError, NotFittedError, ParameterError
from deepwater.training import parameters as parameter_table

BACKENDS = installed_backends()
EXACT = 1e-6
ROWS = 96
HISTORY = ["epochs", "samples", "training_loss", "training_logloss", "training_classification_error",
           "validation_logloss", "validation_classification_error"]


def mlp(backend: str, **params) -> dw.DeepWaterEstimator:
    """A small MLP that scores once per epoch (a reproducible history) and keeps its last weights."""
    return dw.DeepWaterEstimator(**{**reproducible_mlp(backend, ROWS), **params})


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_blobs(ROWS, seed=11)


@pytest.fixture(scope="module")
def valid() -> pd.DataFrame:
    return make_blobs(40, seed=12)


def weights(model: dw.DeepWaterEstimator) -> dict[str, np.ndarray]:
    return model._fitted.net.get_state()


def assert_same_run(continued: dw.DeepWaterEstimator, straight: dw.DeepWaterEstimator) -> None:
    a, b = weights(continued), weights(straight)
    for name in b:
        np.testing.assert_allclose(a[name], b[name], atol=EXACT, rtol=EXACT, err_msg=name)
    history_a, history_b = continued.scoring_history(), straight.scoring_history()
    columns = [c for c in HISTORY if c in history_b]
    assert list(history_a.columns) == list(history_b.columns) and len(history_a) == len(history_b)
    np.testing.assert_allclose(history_a[columns].to_numpy(float), history_b[columns].to_numpy(float),
                               atol=EXACT, rtol=EXACT)


OPTIMIZERS = {"momentum": {}, "adadelta": {"adaptive_rate": True},
              "adamw": {"optimizer": "adamw", "weight_decay": 0.01, "label_smoothing": 0.1, "warmup_epochs": 0.5}}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_two_epochs_then_a_restart_to_four_equal_four_straight(backend, optimizer, frame, valid, tmp_path):
    """Through a saved model and a restart by path: same weights and same scoring history as one run (the
    optimiser's state, Adam's step count and the warm-up's samples carry over)."""
    straight = mlp(backend, epochs=4, **OPTIMIZERS[optimizer]).train(
        y="label", training_frame=frame, validation_frame=valid)
    first = mlp(backend, **OPTIMIZERS[optimizer]).train(y="label", training_frame=frame, validation_frame=valid)
    path = dw.save_model(first, tmp_path)
    continued = dw.DeepWaterEstimator(checkpoint=path, epochs=4).train(
        y="label", training_frame=frame, validation_frame=valid)
    assert continued.summary()["epochs"] == 4 and continued.summary()["backend"] == backend
    assert_same_run(continued, straight)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_restart_leaves_the_checkpoint_model_as_it_was(backend, frame):
    first = mlp(backend).train(y="label", training_frame=frame)
    before = weights(first)
    dw.DeepWaterEstimator(checkpoint=first, epochs=3).train(y="label", training_frame=frame)
    after = weights(first)
    assert all(np.array_equal(before[name], after[name]) for name in before)
    assert first.summary()["epochs"] == 2


def test_a_loaded_model_restarts_by_model_id_after_its_file_is_deleted(frame, tmp_path):
    """The issue's walk-through: save, load, delete the file, restart by the model_id held in the process."""
    first = mlp("auto").train(y="label", training_frame=frame, model_id="ckpt_walkthrough")
    path = dw.save_model(first, tmp_path / "models", force=True)
    loaded = dw.load_model(path)
    os.remove(path)
    warm = dw.H2ODeepWaterEstimator(checkpoint=loaded.model_id, epochs=3, model_id="ckpt_walkthrough_warm")
    warm.train(y="label", training_frame=frame)
    assert warm.summary()["epochs"] == 3
    assert list(warm.scoring_history()["epochs"]) == [1.0, 2.0, 3.0]
    assert dw.get_model("ckpt_walkthrough_warm") is warm


def test_parameters_not_given_are_the_checkpoints_and_mutable_ones_may_change(frame):
    first = mlp("auto", hidden=[6, 5], activation="Tanh").train(y="label", training_frame=frame)
    warm = dw.DeepWaterEstimator(checkpoint=first, epochs=3, learning_rate=0.05, mini_batch_size=7, seed=99)
    warm.train(y="label", training_frame=frame)
    assert warm.hidden == [6, 5] and warm.activation == "Tanh"
    assert warm.learning_rate == 0.05 and warm.mini_batch_size == 7
    assert warm.model_id != first.model_id
    assert warm._fitted.net.parameter_count() == first._fitted.net.parameter_count()


def test_a_restart_may_change_the_schedule_and_label_smoothing_but_not_the_optimizer(frame):
    first = mlp("auto", optimizer="adam").train(y="label", training_frame=frame)
    warm = dw.DeepWaterEstimator(checkpoint=first, epochs=3, lr_schedule="cosine", label_smoothing=0.2)
    warm.train(y="label", training_frame=frame)
    spec = warm._fitted.net.spec
    assert (spec.method, spec.lr_schedule, spec.total_samples) == ("adam", "cosine", 3 * ROWS)
    assert warm._fitted.task.label_smoothing == 0.2
    with pytest.raises(ParameterError, match=r"optimizer='adamw' differs from the checkpoint's optimizer='adam'"):
        dw.DeepWaterEstimator(checkpoint=first, epochs=3, optimizer="adamw").train(y="label", training_frame=frame)


def test_a_user_graph_restarts_from_its_saved_copy(frame, tmp_path):
    """A TorchScript MLP given by the user: trained, saved, the original graph deleted, restarted."""
    torch = pytest.importorskip("torch")
    graph_file = tmp_path / "mlp.pt"
    module = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    torch.jit.save(torch.jit.script(module), str(graph_file))
    first = mlp("torch", network="user", network_definition_file=str(graph_file)).train(
        y="label", training_frame=frame)
    straight = mlp("torch", network="user", network_definition_file=str(graph_file), epochs=4).train(
        y="label", training_frame=frame)
    loaded = dw.load_model(dw.save_model(first, tmp_path / "saved"))
    graph_file.unlink()
    continued = dw.DeepWaterEstimator(checkpoint=loaded, epochs=4).train(y="label", training_frame=frame)
    assert_same_run(continued, straight)


# --------------------------------------------------------------------------- H2O's rules

@pytest.fixture(scope="module")
def checkpoint(frame):
    return mlp("auto", model_id="ckpt_rules").train(y="label", training_frame=frame)


@pytest.mark.parametrize("name,value", [("hidden", [9]), ("activation", "Tanh"), ("momentum_start", 0.1),
                                        ("standardize", False), ("network", "lenet"), ("adaptive_rate", True)])
def test_a_forbidden_change_names_the_parameter_and_both_values(checkpoint, frame, name, value):
    with pytest.raises(ParameterError) as error:
        dw.DeepWaterEstimator(checkpoint=checkpoint, epochs=5, **{name: value}).train(y="label", training_frame=frame)
    message = str(error.value)
    assert name in message and repr(parameter_table.check(name, value)) in message
    assert repr(checkpoint._params[name]) in message


@pytest.mark.parametrize("epochs", [1, 2])
def test_epochs_must_exceed_those_already_trained(checkpoint, frame, epochs):
    with pytest.raises(ParameterError, match="must be larger than the 2 epochs"):
        dw.DeepWaterEstimator(checkpoint=checkpoint, epochs=epochs).train(y="label", training_frame=frame)


def test_another_response_or_other_predictors_are_refused(checkpoint, frame):
    other = frame.assign(label2=frame["label"])
    with pytest.raises(ParameterError, match="response column 'label'"):
        dw.DeepWaterEstimator(checkpoint=checkpoint, epochs=5).train(x=["x1", "x2", "colour"], y="label2",
                                                                     training_frame=other)
    with pytest.raises(ParameterError, match="missing: \\['colour'\\]"):
        dw.DeepWaterEstimator(checkpoint=checkpoint, epochs=5).train(x=["x1", "x2"], y="label", training_frame=frame)


def test_a_validation_frame_must_be_given_exactly_when_the_checkpoint_had_one(checkpoint, frame, valid):
    with pytest.raises(ParameterError, match="without a validation_frame"):
        dw.DeepWaterEstimator(checkpoint=checkpoint, epochs=5).train(y="label", training_frame=frame,
                                                                     validation_frame=valid)


def test_an_unknown_model_id_an_untrained_model_and_a_folder_without_checkpoints(frame, tmp_path):
    with pytest.raises(ParameterError, match="no_such_model"):
        dw.DeepWaterEstimator(checkpoint="no_such_model", epochs=5).train(y="label", training_frame=frame)
    with pytest.raises(NotFittedError, match="not trained"):
        dw.DeepWaterEstimator(checkpoint=mlp("auto"), epochs=5).train(y="label", training_frame=frame)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFileError, match="no saved model"):
        dw.DeepWaterEstimator(checkpoint=str(tmp_path / "empty"), epochs=5).train(y="label", training_frame=frame)
    with pytest.raises(ParameterError, match="checkpoint=3"):
        dw.DeepWaterEstimator(checkpoint=3)


def test_the_table_follows_deep_waters_checkpoint_rules():
    """DeepWaterParameters.Sanity: what a restart may and may not change."""
    mutable = {"seed", "epochs", "score_interval", "train_samples_per_iteration", "score_duty_cycle",
               "score_training_samples", "score_validation_samples", "stopping_rounds", "stopping_metric",
               "stopping_tolerance", "quiet_mode", "overwrite_with_best_model", "mini_batch_size",
               "network_parameters_file", "clip_gradient", "learning_rate", "learning_rate_annealing", "gpu",
               "device_id", "input_dropout_ratio", "hidden_dropout_ratios", "image_shape", "max_runtime_secs",
               "weight_decay", "lr_schedule", "warmup_epochs", "lr_step_epochs", "lr_step_gamma", "label_smoothing"}
    fixed = {"activation", "problem_type", "channels", "standardize", "network", "backend", "momentum_start",
             "momentum_ramp", "momentum_stable", "ignore_const_cols", "distribution", "network_definition_file",
             "mean_image_file", "hidden", "optimizer", "adaptive_rate"}
    table = parameter_table.PARAMETERS
    assert {name for name in mutable if not table[name].checkpoint_mutable} == set()
    assert {name for name in fixed if table[name].checkpoint_mutable} == set()


# --------------------------------------------------------------------------- export_checkpoints_dir

def test_a_checkpoint_at_every_scoring_the_newest_three_kept(frame, tmp_path):
    folder = tmp_path / "ckpt"
    model = mlp("auto", epochs=5, export_checkpoints_dir=str(folder), model_id="ckpt_every").train(
        y="label", training_frame=frame)
    kept = sorted(p.name for p in folder.iterdir())
    assert kept == [f"ckpt_every-{ROWS * k:012d}" for k in (3, 4, 5)]
    newest = dw.load_model(folder)
    assert newest.summary()["epochs"] == 5
    np.testing.assert_allclose(newest.predict(frame).iloc[:, 1:].to_numpy(),
                               model.predict(frame).iloc[:, 1:].to_numpy(), atol=EXACT)
    middle = dw.load_model(folder / kept[0])
    assert middle.summary()["epochs"] == 3 and len(middle.scoring_history()) == 3


def test_export_checkpoints_keep_sets_how_many_stay(frame, tmp_path):
    mlp("auto", epochs=4, export_checkpoints_dir=str(tmp_path), export_checkpoints_keep=1, model_id="keep1").train(
        y="label", training_frame=frame)
    assert [p.name for p in tmp_path.iterdir()] == [f"keep1-{ROWS * 4:012d}"]
    with pytest.raises(ParameterError, match="export_checkpoints_keep=0"):
        dw.DeepWaterEstimator(export_checkpoints_keep=0)


KILLED_RUN = """
import sys
sys.path.insert(0, {tests!r})
from conftest import make_blobs
import deepwater as dw
frame = make_blobs({rows}, seed=11)
dw.DeepWaterEstimator(hidden=[8], epochs={epochs}, gpu=False, quiet_mode=True, seed=7, mini_batch_size=16,
                      train_samples_per_iteration=32, stopping_rounds=0, model_id="killed",
                      export_checkpoints_dir={folder!r}).train(y="label", training_frame=frame)
"""


def test_a_run_killed_with_sigkill_resumes_from_its_newest_complete_checkpoint(tmp_path):
    folder, epochs = tmp_path / "ckpt", 400
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), rows=ROWS, epochs=epochs, folder=str(folder))
    run = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and run.poll() is None:
            if folder.is_dir() and sum(1 for p in folder.iterdir() if not p.name.startswith(".")) >= 2:
                break
            time.sleep(0.05)
        assert run.poll() is None, run.stderr.read().decode()[-2000:]
        os.kill(run.pid, signal.SIGKILL)
    finally:
        run.wait()
    assert run.returncode == -signal.SIGKILL
    complete = dw.load_model(folder)
    done = complete.summary()["samples"]
    assert 0 < done < epochs * ROWS
    asked = done / ROWS + 2
    resumed = dw.DeepWaterEstimator(checkpoint=str(folder), epochs=asked).train(
        y="label", training_frame=make_blobs(ROWS, seed=11))
    history = resumed.scoring_history()
    assert history["samples"].iloc[0] == complete.scoring_history()["samples"].iloc[0]
    assert resumed.summary()["samples"] == round(asked * ROWS)
    assert resumed.scoring_history()["samples"].iloc[-1] == round(asked * ROWS)
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # the resumed writer cleared leftovers


def test_the_checkpoints_example_runs_on_a_subset(tmp_path):
    example = Path(__file__).parent.parent / "examples" / "checkpoints.py"
    done = subprocess.run([sys.executable, str(example), str(tmp_path), "--rows", "1500"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "the loaded model predicts the same: True" in done.stdout
    assert "continued to 4.0 epochs" in done.stdout and "resumed and finished" in done.stdout
