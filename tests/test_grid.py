"""H2OGridSearch with H2O's API and rules: the walk, the table and sorting, the search criteria, failures
that do not stop the grid, bad input, and models saved as they finish and taken back after a crash."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepwater as dw
from conftest import make_blobs, make_linear
from deepwater.errors import DeepWaterError, ParameterError
from deepwater.model import jobs as execution
from deepwater.selection import grid_search as grid_module

HYPER = {"hidden": [[8], [16]], "learning_rate": [0.01, 0.1]}
CLASSES = ["a", "b", "c"]


def base(**params) -> dw.DeepWaterEstimator:
    defaults = {"epochs": 1, "gpu": False, "quiet_mode": True, "seed": 3, "stopping_rounds": 0}
    return dw.DeepWaterEstimator(**{**defaults, **params})


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_blobs(90, seed=31)


@pytest.fixture(scope="module")
def valid() -> pd.DataFrame:
    return make_blobs(45, seed=32)


@pytest.fixture(scope="module")
def cartesian(frame, valid) -> dw.H2OGridSearch:
    return dw.H2OGridSearch(base(), HYPER, grid_id="cart").train(y="label", training_frame=frame,
                                                                 validation_frame=valid)


@pytest.fixture
def trained(monkeypatch) -> list[str]:
    """The model_ids trained from here on in this process (execution.fit counted)."""
    ids: list[str] = []
    fit = execution.fit

    def counting(job, training, validation):
        ids.append(job.model_id)
        return fit(job, training, validation)

    monkeypatch.setattr(execution, "fit", counting)
    return ids


def probabilities(model: dw.DeepWaterEstimator, frame: pd.DataFrame) -> np.ndarray:
    return model.predict(frame)[CLASSES].to_numpy()


def test_a_cartesian_grid_builds_every_combination_once_named_by_grid_id(cartesian):
    assert sorted(cartesian.model_ids) == [f"cart_model_{n}" for n in range(1, 5)]
    combos = {(tuple(m.hidden), m.learning_rate) for m in cartesian.models}
    assert combos == {((8,), 0.01), ((8,), 0.1), ((16,), 0.01), ((16,), 0.1)}
    assert [dw.get_model(i) for i in cartesian.model_ids] == cartesian.models
    assert cartesian.get_hyperparams_dict("cart_model_1", display=False) == {"hidden": [8], "learning_rate": 0.01}
    assert cartesian.get_hyperparams("cart_model_4", display=False) == [[16], 0.1]
    assert all(m.epochs == 1 and m.seed == 3 for m in cartesian)  # the model's parameters are the base


def test_printing_shows_h2os_table_sorted_by_the_validation_logloss(cartesian, capsys):
    table = cartesian.sorted_metric_table()
    assert list(table.columns) == ["hidden", "learning_rate", "model_ids", "logloss"]
    assert list(table["model_ids"]) == cartesian.model_ids
    expected = [m.model_performance(valid=True).logloss() for m in cartesian.models]
    np.testing.assert_allclose(table["logloss"], expected)
    assert expected == sorted(expected)
    for _, row in table.iterrows():
        assert cartesian.get_hyperparams_dict(row["model_ids"], display=False) == \
            {"hidden": row["hidden"], "learning_rate": row["learning_rate"]}
    print(cartesian)
    shown = capsys.readouterr().out
    assert "Grid ID: cart" in shown and "Number of models: 4" in shown and "Number of failed models: 0" in shown
    assert "Hyper-Parameter Search Summary: ordered by increasing logloss" in shown
    assert "  -  hidden" in shown and "cart_model_" in shown


def test_get_grid_sorts_by_a_metric_best_first_unless_told(cartesian):
    by_accuracy = cartesian.get_grid(sort_by="accuracy")
    accuracies = [m.model_performance(valid=True).accuracy() for m in by_accuracy.models]
    assert accuracies == sorted(accuracies, reverse=True)
    assert "ordered by decreasing accuracy" in str(by_accuracy)
    worst_first = cartesian.get_grid(sort_by="logloss", decreasing=True)
    assert worst_first.model_ids == cartesian.model_ids[::-1]
    assert cartesian.get_grid().model_ids == cartesian.model_ids  # the grid itself is not reordered
    with pytest.raises(ParameterError, match="'loglos'.*logloss"):
        cartesian.get_grid(sort_by="loglos")
    with pytest.raises(ParameterError, match="'auc' is not a metric of these classification models"):
        cartesian.get_grid(sort_by="auc")  # three classes


def test_models_with_cross_validation_are_ranked_by_their_xval_metrics(frame, valid):
    grid = dw.H2OGridSearch(base(nfolds=2), {"learning_rate": [0.01, 0.1]}, grid_id="xv").train(
        y="label", training_frame=frame, validation_frame=valid)
    table = grid.sorted_metric_table()
    np.testing.assert_allclose(table["logloss"], [m.model_performance(xval=True).logloss() for m in grid.models])
    assert not np.allclose(table["logloss"], [m.model_performance(valid=True).logloss() for m in grid.models])


def test_a_regression_grid_sorts_by_the_residual_deviance():
    frame, valid = make_linear(80, seed=1), make_linear(40, seed=2)
    grid = dw.H2OGridSearch(base(), {"learning_rate": [0.001, 0.05]}, grid_id="reg").train(
        y="y", training_frame=frame, validation_frame=valid)
    table = grid.sorted_metric_table()
    assert list(table.columns) == ["learning_rate", "model_ids", "residual_deviance"]
    deviances = [m.model_performance(valid=True).mean_residual_deviance() for m in grid.models]
    np.testing.assert_allclose(table["residual_deviance"], deviances)
    assert deviances == sorted(deviances)
    assert grid.get_grid("r2").model_ids == grid.model_ids  # larger r2 first: the same order


def test_the_booklet_call_a_class_and_model_parameters_in_train(frame):
    grid = dw.H2OGridSearch(dw.H2ODeepWaterEstimator, hyper_params={"activation": ["Tanh", "Rectifier"]},
                            grid_id="booklet")
    grid.train(x=["x1", "x2"], y="label", training_frame=frame, epochs=1, hidden=[8], gpu=False, quiet_mode=True,
               seed=1, stopping_rounds=0)
    assert len(grid) == 2 and {m.activation for m in grid} == {"Tanh", "Rectifier"}
    assert all(m.hidden == [8] and m._fitted.predictors == ["x1", "x2"] for m in grid)
    assert dw.GridSearch is dw.H2OGridSearch
    assert set(grid.predict(frame)) == set(grid.model_ids)
    model_metrics = grid.model_performance(train=True)
    assert model_metrics[grid.model_ids[0]].logloss() == grid.models[0].model_performance(train=True).logloss()


def test_random_discrete_walks_distinct_combinations_in_its_seeds_order(frame, trained):
    space = {"hidden": [[4], [8], [12]], "learning_rate": [0.01, 0.05, 0.1]}
    criteria = {"strategy": "RandomDiscrete", "max_models": 3, "seed": 42}
    first = dw.H2OGridSearch(base(), space, grid_id="rand_a", search_criteria=criteria).train(
        y="label", training_frame=frame)
    again = dw.H2OGridSearch(base(), space, grid_id="rand_b", search_criteria=criteria).train(
        y="label", training_frame=frame)
    assert len(first) == 3 and len(trained) == 6
    order = [tuple(map(str, first.get_hyperparams(f"rand_a_model_{n}", display=False))) for n in (1, 2, 3)]
    assert order == [tuple(map(str, again.get_hyperparams(f"rand_b_model_{n}", display=False))) for n in (1, 2, 3)]
    assert len(set(order)) == 3
    cartesian_order = [("[4]", "0.01"), ("[4]", "0.05"), ("[4]", "0.1")]
    assert order != cartesian_order


def test_a_random_grids_seed_seeds_models_that_have_none(frame):
    criteria = {"strategy": "RandomDiscrete", "max_models": 2, "seed": 7}
    grid = dw.H2OGridSearch(dw.DeepWaterEstimator(epochs=1, gpu=False, quiet_mode=True, stopping_rounds=0),
                            {"hidden": [[4], [8]]}, grid_id="seeded", search_criteria=criteria)
    grid.train(y="label", training_frame=frame)
    seeds = {m.model_id: m.seed for m in grid}
    again = dw.H2OGridSearch(dw.DeepWaterEstimator(epochs=1, gpu=False, quiet_mode=True, stopping_rounds=0),
                             {"hidden": [[4], [8]]}, grid_id="seeded2", search_criteria=criteria)
    again.train(y="label", training_frame=frame)
    assert all(seed >= 0 for seed in seeds.values()) and len(set(seeds.values())) == 2
    assert sorted(seeds.values()) == sorted(m.seed for m in again)


def test_early_stopping_ends_the_walk_when_the_best_models_stop_improving(frame, trained):
    criteria = {"strategy": "RandomDiscrete", "seed": 1, "stopping_rounds": 1, "stopping_tolerance": 10.0,
                "stopping_metric": "misclassification"}
    grid = dw.H2OGridSearch(base(), {"learning_rate": [0.001, 0.01, 0.05, 0.1, 0.2]}, grid_id="early",
                            search_criteria=criteria).train(y="label", training_frame=frame)
    assert len(grid) == 2 and len(trained) == 2  # 2 x stopping_rounds models, then no improvement of 1000 %


def test_max_runtime_secs_limits_the_walk_and_every_model(frame, monkeypatch):
    clock = iter(range(0, 10_000, 40))  # each look at the clock: 40 s later
    monkeypatch.setattr(grid_module, "time", types.SimpleNamespace(monotonic=lambda: float(next(clock))))
    grid = dw.H2OGridSearch(base(), HYPER, grid_id="timed", search_criteria={"max_runtime_secs": 100}).train(
        y="label", training_frame=frame)
    assert len(grid) == 2  # asked at 40 s and 80 s; at 120 s the grid's time is up
    assert sorted(m.max_runtime_secs for m in grid) == [20.0, 60.0]  # the time left when each started


def test_max_models_counts_the_models_built(frame):
    grid = dw.H2OGridSearch(base(), HYPER, grid_id="capped", search_criteria={"max_models": 3}).train(
        y="label", training_frame=frame)
    assert sorted(grid.model_ids) == ["capped_model_1", "capped_model_2", "capped_model_3"]


def test_a_combination_that_fails_is_listed_and_the_grid_goes_on(frame):
    with pytest.warns(UserWarning, match="1 of its models could not be built"):
        grid = dw.H2OGridSearch(base(), {"stopping_metric": ["AUC", "logloss"]}, grid_id="fails").train(
            y="label", training_frame=frame)
    assert grid.model_ids == ["fails_model_2"]
    [failure] = grid.failures
    assert failure.model_id == "fails_model_1" and failure.hyper_parameters == {"stopping_metric": "AUC"}
    assert failure.error.startswith("ParameterError: stopping_metric='AUC' needs two classes")
    assert "Traceback" in failure.traceback
    assert grid.failed_params == [{"stopping_metric": "AUC"}] and grid.failed_raw_params == [["AUC"]]
    assert grid.failure_details == [failure.error]
    shown = str(grid)
    assert "Number of failed models: 1" in shown and "Failed Hyperparameters and Message:" in shown
    assert "needs two classes" in shown


def test_a_grid_where_every_model_fails_says_so(frame):
    grid = dw.H2OGridSearch(base(), {"stopping_metric": ["AUC"]}, grid_id="all_fail")
    with pytest.warns(UserWarning), pytest.raises(DeepWaterError, match="built no model.*needs two classes"):
        grid.train(y="label", training_frame=frame)
    assert len(grid.failures) == 1


def test_a_hyper_parameter_that_is_not_a_parameter_is_named_with_close_names():
    with pytest.raises(ParameterError, match="'hiden'.*hidden"):
        dw.H2OGridSearch(base(), {"hiden": [[8], [16]]})


def test_a_value_the_table_rejects_is_named_with_its_combination():
    with pytest.raises(ParameterError, match=r"hyper_params\['epochs'\]\[1\] in the grid's combination "
                                             r"\{'hidden': \[8\], 'epochs': -1\}: epochs=-1 is not allowed"):
        dw.H2OGridSearch(base(), {"hidden": [[8], [16]], "epochs": [1, -1]})


def test_search_criteria_with_an_unknown_key_or_strategy_is_refused():
    with pytest.raises(ParameterError, match="no key 'max_model'.*max_models"):
        dw.H2OGridSearch(base(), HYPER, search_criteria={"max_model": 3})
    with pytest.raises(ParameterError, match="strategy.*'Bayesian'.*'Cartesian', 'RandomDiscrete'"):
        dw.H2OGridSearch(base(), HYPER, search_criteria={"strategy": "Bayesian"})
    with pytest.raises(ParameterError, match=r"\['seed'\] orders a RandomDiscrete walk"):
        dw.H2OGridSearch(base(), HYPER, search_criteria={"seed": 1})


@pytest.mark.parametrize("hyper, message", [
    ({"hidden": [[8], [8]]}, r"\[8\] is listed twice"),
    ({"hidden": []}, "non-empty list"),
    ({"model_id": ["a", "b"]}, "names its models"),
    ({}, "give a dict"),
])
def test_other_bad_hyper_params_are_refused(hyper, message):
    with pytest.raises(ParameterError, match=message):
        dw.H2OGridSearch(base(), hyper)


def test_a_parameter_set_on_the_model_and_in_the_grid_is_ambiguous(frame):
    with pytest.raises(ParameterError, match="hidden is set on the model.*hyper-parameter"):
        dw.H2OGridSearch(base(hidden=[4]), HYPER).train(y="label", training_frame=frame)
    with pytest.raises(ParameterError, match="learning_rate is set on the model"):
        dw.H2OGridSearch(base(), HYPER).train(y="label", training_frame=frame, learning_rate=0.5)
    with pytest.raises(ParameterError, match="'epoch'.*epochs"):
        dw.H2OGridSearch(base(), HYPER).train(y="label", training_frame=frame, epoch=2)
    with pytest.raises(ParameterError, match="model="):
        dw.H2OGridSearch("DeepWater", HYPER)


def test_a_grid_trained_again_takes_the_models_it_has(frame, trained):
    grid = dw.H2OGridSearch(base(), HYPER, grid_id="again").train(y="label", training_frame=frame)
    first = {m.model_id: m for m in grid}
    grid.train(y="label", training_frame=frame)
    assert len(trained) == 4 and {m.model_id: m for m in grid} == first
    changed = frame.assign(x1=frame["x1"] + 1.0)  # other data: other models, numbered on
    dw.H2OGridSearch(base(), HYPER, grid_id="again").train(y="label", training_frame=changed)
    assert trained[4:] == [f"again_model_{n}" for n in range(5, 9)]


def test_models_are_saved_as_they_finish_and_a_new_process_takes_them_back(frame, tmp_path, trained):
    folder = tmp_path / "grid"
    grid = dw.H2OGridSearch(base(), HYPER, grid_id="saved", export_checkpoints_dir=str(folder)).train(
        y="label", training_frame=frame)
    manifest = json.loads((folder / "saved.grid.json").read_text())["models"]
    assert set(manifest) == set(grid.model_ids)
    for model in grid:
        np.testing.assert_allclose(probabilities(dw.load_model(folder / model.model_id), frame),
                                   probabilities(model, frame), atol=1e-6)
    expected = {m.model_id: probabilities(m, frame) for m in grid}
    for model_id in grid.model_ids:  # as if this were a new process
        dw.remove(model_id)
    again = dw.H2OGridSearch(base(), HYPER, grid_id="saved", export_checkpoints_dir=str(folder)).train(
        y="label", training_frame=frame)
    assert len(trained) == 4 and sorted(again.model_ids) == sorted(expected)
    for model in again:
        np.testing.assert_allclose(probabilities(model, frame), expected[model.model_id], atol=1e-6)


CRASHING_GRID = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from conftest import make_blobs, make_linear
import deepwater as dw
from deepwater.model import jobs as execution
fit = execution.fit
def crash_at_the_third(job, training, validation):
    if job.model_id.endswith("_model_3"):
        os.kill(os.getpid(), signal.SIGKILL)
    return fit(job, training, validation)
execution.fit = crash_at_the_third
base = dw.DeepWaterEstimator(epochs=1, gpu=False, quiet_mode=True, seed=3, stopping_rounds=0,
                             export_checkpoints_dir={folder!r})
dw.H2OGridSearch(base, {hyper!r}, grid_id="crash").train(y="label", training_frame=make_blobs(90, seed=31))
"""


def test_a_grid_killed_mid_walk_resumes_from_its_export_folder(frame, tmp_path, trained):
    folder = tmp_path / "crash"
    script = CRASHING_GRID.format(tests=str(Path(__file__).parent), folder=str(folder), hyper=HYPER)
    run = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=300)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert sorted(json.loads((folder / "crash.grid.json").read_text())["models"]) == ["crash_model_1",
                                                                                      "crash_model_2"]
    grid = dw.H2OGridSearch(base(export_checkpoints_dir=str(folder)), HYPER, grid_id="crash").train(
        y="label", training_frame=frame)
    assert trained == ["crash_model_3", "crash_model_4"]
    assert sorted(grid.model_ids) == [f"crash_model_{n}" for n in range(1, 5)]
    assert sorted(json.loads((folder / "crash.grid.json").read_text())["models"]) == sorted(grid.model_ids)


def test_parallelism_without_deepwater_init_trains_here_one_after_another(frame, trained):
    with pytest.warns(UserWarning, match="after deepwater.init"):
        grid = dw.H2OGridSearch(base(), {"hidden": [[4], [8]]}, grid_id="no_ray", parallelism=2).train(
            y="label", training_frame=frame)
    assert trained == ["no_ray_model_1", "no_ray_model_2"] and len(grid) == 2
