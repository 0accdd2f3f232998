"""The training loop: reproducible scoring history, scoring schedule, early stopping, time limit, best model,
and the batch sources it walks."""
from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import deepwater as dw
from conftest import installed_backends, write_png
from deepwater import DeepWaterEstimator
from deepwater.analysis.metrics import ModelMetrics
from deepwater.data.sources import ArraySource, batches, iterate, prefetch
from deepwater.specs import OptimizerSpec
from deepwater.training import parameters as table
from deepwater.training.schedule import ScoringSchedule, should_stop
from deepwater.training.trainer import LoopSettings, StoppingRule, Trainer

FAST = {"gpu": False, "quiet_mode": True, "hidden": [16], "mini_batch_size": 32, "learning_rate": 0.05}
TIMING_COLUMNS = ["timestamp", "duration", "training_speed"]


def fit(frame, y="label", validation_frame=None, **params):
    options = {**FAST, "seed": 11, "epochs": 2, "stopping_rounds": 0, **params}
    return DeepWaterEstimator(**options).train(y=y, training_frame=frame, validation_frame=validation_frame)


def scoring_points(n: int, batch: int, total: int, every: int) -> list[int]:
    """Samples at which a run scores when it scores every `every` samples: after each mini-batch whose
    count since the last scoring reaches `every`, plus once at the end. Batches never cross a pass."""
    sizes = []
    while sum(sizes) < total:
        for start in range(0, n, batch):
            sizes.append(min(batch, n - start, total - sum(sizes)))
            if sum(sizes) == total:
                break
    points, seen, last = [], 0, 0
    for size in sizes:
        seen += size
        if seen - last >= every:
            points.append(seen)
            last = seen
    if not points or points[-1] != seen:
        points.append(seen)
    return points


# --------------------------------------------------------------------------- reproducibility

def test_same_seed_gives_the_same_history(blobs, blobs_valid):
    first = fit(blobs, validation_frame=blobs_valid, train_samples_per_iteration=100)
    second = fit(blobs, validation_frame=blobs_valid, train_samples_per_iteration=100)
    a = first.scoring_history().drop(columns=TIMING_COLUMNS)
    b = second.scoring_history().drop(columns=TIMING_COLUMNS)
    assert len(a) > 2
    pd.testing.assert_frame_equal(a, b)
    np.testing.assert_array_equal(first.predict(blobs_valid)[["a", "b", "c"]].to_numpy(),
                                  second.predict(blobs_valid)[["a", "b", "c"]].to_numpy())


def test_different_seeds_give_different_histories(blobs):
    first = fit(blobs, train_samples_per_iteration=100, seed=1).scoring_history()
    second = fit(blobs, train_samples_per_iteration=100, seed=2).scoring_history()
    assert list(first["samples"]) == list(second["samples"])
    assert not np.allclose(first["training_logloss"], second["training_logloss"])
    assert not np.allclose(first["training_loss"], second["training_loss"])


# --------------------------------------------------------------------------- scoring history

def test_history_columns_for_classification(blobs, blobs_valid):
    history = fit(blobs, validation_frame=blobs_valid, epochs=1).scoring_history()
    metrics = ["logloss", "classification_error", "mean_per_class_error", "mse", "rmse"]
    expected = (["timestamp", "duration", "training_speed", "epochs", "samples", "training_loss"]
                + [f"training_{m}" for m in metrics] + [f"validation_{m}" for m in metrics])
    assert set(expected) <= set(history.columns)
    assert "training_auc" not in history.columns  # AUC only for two classes


def test_history_columns_for_regression(linear):
    history = fit(linear, y="y", epochs=1).scoring_history()
    for metric in ["mse", "rmse", "mae", "r2", "mean_residual_deviance"]:
        assert f"training_{metric}" in history.columns
    assert not any(c.startswith("validation_") for c in history.columns)


@pytest.mark.parametrize("epochs", [1.5, 0.25, 2])
def test_fractional_epochs_are_reached_exactly(blobs, epochs):
    n, every = len(blobs), 100
    model = fit(blobs, epochs=epochs, train_samples_per_iteration=every)
    history = model.scoring_history()
    total = round(epochs * n)
    assert history["samples"].tolist() == scoring_points(n, 32, total, every)
    assert history["samples"].iloc[-1] == total
    np.testing.assert_allclose(history["epochs"], history["samples"] / n)
    assert history["epochs"].iloc[-1] == pytest.approx(epochs)
    assert model.summary()["samples"] == total
    assert model.summary()["stop_reason"] == "epochs done"
    assert history["duration"].is_monotonic_increasing
    assert history["timestamp"].is_monotonic_increasing
    assert (history["training_speed"] > 0).all()


def test_time_based_scoring_scores_at_least_at_the_end(blobs):
    history = fit(blobs, epochs=1, score_interval=3600).scoring_history()
    assert history["samples"].tolist() == [len(blobs)]


# --------------------------------------------------------------------------- should_stop

def h2o_stop_early(history, k, tolerance, larger_is_better):
    """H2O's ScoreKeeper.stopEarly rule, written from its description: k + 1 moving averages of length k
    over the last 2k scorings; the oldest is the reference; stop when the best of the k later ones does
    not improve on it by more than `tolerance` (relative). A NaN average never stops; a reference of 0
    for a metric bounded below by 0 (all here but AUC) has converged."""
    if k == 0 or len(history) < 2 * k:
        return False
    last = np.asarray(history[-2 * k:], dtype=float)
    averages = [last[i:i + k].mean() for i in range(k + 1)]
    if any(np.isnan(a) for a in averages):
        return False
    reference, later = averages[0], averages[1:]
    if larger_is_better:
        return max(later) / reference <= 1 + tolerance
    if reference == 0:
        return True
    return min(later) / reference >= 1 - tolerance


def test_should_stop_needs_two_k_scorings():
    assert not should_stop([0.5, 0.5, 0.5], 2, 1e-3, False)
    assert should_stop([0.5, 0.5, 0.5, 0.5], 2, 1e-3, False)
    assert not should_stop([], 1, 1e-3, False)


def test_should_stop_is_off_with_zero_rounds():
    assert not should_stop([1.0] * 20, 0, 1e-3, False)


def test_should_stop_one_round():
    assert not should_stop([1.0, 0.5], 1, 1e-3, False)       # 50 % better
    assert should_stop([1.0, 0.9995], 1, 1e-3, False)        # 0.05 % better: below tolerance
    assert should_stop([1.0, 1.2], 1, 1e-3, False)           # worse
    assert not should_stop([1.0, 0.98], 1, 0.01, False)      # 2 % better with a 1 % tolerance
    assert should_stop([1.0, 0.995], 1, 0.01, False)


def test_should_stop_uses_moving_averages():
    # k=2 over [1.0, 0.6, 1.0, 1.0]: averages 0.8 (reference), 0.8, 1.0 -> no improvement -> stop,
    # although the single last values look flat and the best single value (0.6) is not the reference.
    assert should_stop([1.0, 0.6, 1.0, 1.0], 2, 1e-3, False)
    # k=2 over [1.0, 1.0, 0.5, 1.0]: averages 1.0 (reference), 0.75, 0.75 -> improved -> go on
    assert not should_stop([1.0, 1.0, 0.5, 1.0], 2, 1e-3, False)


def test_should_stop_looks_only_at_the_last_two_k_scorings():
    tail = [0.5, 0.5]
    assert should_stop([100.0, 50.0, 1.0] + tail, 1, 1e-3, False)
    assert not should_stop([100.0, 50.0, 1.0] + tail, 2, 1e-3, False)  # reference (50+1)/2 -> 0.5 improves


def test_should_stop_larger_is_better():
    assert not should_stop([0.80, 0.90], 1, 1e-3, True)      # AUC up by 12 %
    assert should_stop([0.90, 0.85], 1, 1e-3, True)          # AUC down
    assert should_stop([0.90, 0.9004], 1, 1e-3, True)        # up by less than the tolerance
    assert not should_stop([0.90, 0.9004], 1, 1e-4, True)    # ... but more than a smaller one


def test_should_stop_reference_zero_has_converged():
    assert should_stop([0.0, 0.0], 1, 1e-3, False)
    assert should_stop([0.0, 0.1], 1, 1e-3, False)


def test_should_stop_agrees_with_h2o_rule_on_random_histories():
    rng = np.random.default_rng(42)
    checked = 0
    for _ in range(600):
        k = int(rng.integers(1, 5))
        length = int(rng.integers(0, 12))
        larger = bool(rng.integers(0, 2))
        tolerance = float(rng.choice([0.0, 1e-3, 0.05, 0.3]))
        # a decreasing-or-noisy metric in (0.05, 2): like a logloss or an AUC
        history = list(np.clip(1.0 + np.cumsum(rng.normal(-0.02, 0.1, size=length)), 0.05, 2.0))
        assert should_stop(history, k, tolerance, larger) == h2o_stop_early(history, k, tolerance, larger), (
            history, k, tolerance, larger)
        checked += len(history) >= 2 * k
    assert checked > 200  # most cases had enough scorings to decide


def test_should_stop_never_stops_on_nan_averages():
    nan = float("nan")
    for history in ([1.0, 1.0, 1.0, nan], [1.0, 1.0, nan, 1.0], [nan, 1.0, 1.0, 1.0], [1.0, nan]):
        for larger in (False, True):
            k = 1 if len(history) == 2 else 2
            assert not should_stop(history, k, 1e-3, larger), (history, larger)


# --------------------------------------------------------------------------- ScoringSchedule

def test_schedule_by_samples_ignores_time():
    schedule = ScoringSchedule(interval=1e9, duty_cycle=0.0, samples_per_iteration=100, start=0.0)
    assert not schedule.due(99, now=1e12)
    assert schedule.due(100, now=0.0)
    schedule.record(130, began=0.0, ended=5.0)
    assert schedule.last_samples == 130
    assert not schedule.due(229, now=0.0)
    assert schedule.due(230, now=0.0)


def test_schedule_by_time_waits_for_the_interval():
    schedule = ScoringSchedule(interval=5.0, duty_cycle=1.0, samples_per_iteration=0, start=100.0)
    assert not schedule.due(10, now=104.9)
    assert schedule.due(10, now=105.0)
    schedule.record(10, began=105.0, ended=106.0)
    assert schedule.last_end == 106.0
    assert not schedule.due(20, now=110.9)   # 5 s counts from the end of the last scoring
    assert schedule.due(20, now=111.0)


@pytest.mark.parametrize("samples_per_iteration", [0, -1, -2])
def test_schedule_non_positive_samples_per_iteration_means_time(samples_per_iteration):
    schedule = ScoringSchedule(interval=5.0, duty_cycle=1.0, samples_per_iteration=samples_per_iteration, start=0.0)
    assert not schedule.due(10 ** 9, now=1.0)
    assert schedule.due(1, now=5.0)


def test_schedule_duty_cycle_limits_scoring_time():
    schedule = ScoringSchedule(interval=0.0, duty_cycle=0.1, samples_per_iteration=0, start=0.0)
    schedule.record(10, began=0.0, ended=3.0)  # 3 s of scoring
    assert schedule.scoring_seconds == 3.0
    assert not schedule.due(20, now=10.0)      # 3 / 10 = 30 % > 10 %
    assert not schedule.due(20, now=29.9)
    assert schedule.due(20, now=30.0)          # 3 / 30 = 10 %
    schedule.record(20, began=30.0, ended=31.0)
    assert schedule.scoring_seconds == 4.0
    assert not schedule.due(30, now=39.0)
    assert schedule.due(30, now=40.0)


# --------------------------------------------------------------------------- Trainer with a stand-in net

class CountingNet:
    """Counts optimiser steps; its state is the step count; remembers what set_state loaded."""

    def __init__(self) -> None:
        self.steps = 0
        self.rows = 0
        self.loaded: list[dict] = []

    def train_batch(self, x, y, weights=None) -> float:
        self.steps += 1
        self.rows += len(x)
        return float(len(x))

    def get_state(self) -> dict:
        return {"steps": np.array(self.steps)}

    def set_state(self, state: dict) -> None:
        self.loaded.append(state)
        self.steps = int(state["steps"])


def run_trainer(values, *, n=10, batch=5, every=10, epochs=None, rounds=0, tolerance=1e-3, overwrite=True,
                larger=False, max_runtime=0.0):
    net = CountingNet()
    source = ArraySource(np.zeros((n, 1), dtype=np.float32), np.zeros(n, dtype=np.int64))
    script = iter(values)

    def evaluate():
        return {"training": ModelMetrics("classification", {"logloss": next(script)}, n)}

    epochs = epochs if epochs is not None else len(values) * every / n
    settings = LoopSettings(epochs, batch, 5.0, 0.1, every, max_runtime, overwrite, True, "test")
    rule = StoppingRule("logloss", larger, rounds, tolerance, "training")
    outcome = Trainer(net, source, evaluate, rule, settings, np.random.default_rng(0)).run()
    return net, outcome


def test_trainer_restores_the_best_scoring():
    net, outcome = run_trainer([0.5, 0.3, 0.4, 0.6])
    assert [row["training_logloss"] for row in outcome.history] == [0.5, 0.3, 0.4, 0.6]
    assert outcome.best_index == 1
    # the best scoring came after 20 samples = 4 steps of 5 rows; those weights are loaded at the end
    assert [int(s["steps"]) for s in net.loaded] == [4]
    assert net.steps == 4
    assert outcome.samples == 40
    assert outcome.final_metrics["training"].logloss() == 0.3  # the metrics of the weights kept


def test_trainer_restores_the_best_for_larger_is_better():
    net, outcome = run_trainer([0.5, 0.9, 0.7], larger=True)
    assert outcome.best_index == 1
    assert [int(s["steps"]) for s in net.loaded] == [4]


def test_trainer_keeps_the_last_weights_when_they_are_best():
    net, outcome = run_trainer([0.5, 0.4, 0.3])
    assert outcome.best_index == 2
    assert net.loaded == []


def test_trainer_without_overwrite_keeps_the_last_weights():
    net, outcome = run_trainer([0.5, 0.3, 0.4, 0.6], overwrite=False)
    assert net.loaded == []
    assert outcome.best_index is None
    assert net.steps == 8


def test_trainer_stops_early_by_the_rule():
    values = [0.5, 0.3, 0.2999, 0.1, 0.1]
    net, outcome = run_trainer(values, rounds=1, tolerance=0.01)
    assert outcome.stop_reason == "early stopping"
    assert len(outcome.history) == 3
    assert outcome.samples == 30
    assert outcome.best_index == 2  # 0.2999 is the best so far, and the last: nothing to restore
    assert net.loaded == []


def test_trainer_scores_the_end_of_a_run_once():
    # 10 rows, batches of 3: 3, 6, 9, 10 samples; every 7 -> a scoring at 9, then the end at 10
    net, outcome = run_trainer([0.5, 0.4], batch=3, every=7, epochs=1.0)
    assert [row["samples"] for row in outcome.history] == [9, 10]
    assert net.rows == 10


def test_trainer_training_loss_is_the_mean_since_the_last_scoring():
    # CountingNet's loss is the batch size: batches 3, 3, 3 | 1 -> means 3 and 1
    _, outcome = run_trainer([0.5, 0.4], batch=3, every=7, epochs=1.0)
    assert [row["training_loss"] for row in outcome.history] == [3.0, 1.0]


# --------------------------------------------------------------------------- stopping end to end

def test_early_stopping_end_to_end(blobs):
    model = fit(blobs, epochs=5, train_samples_per_iteration=50, stopping_rounds=1, stopping_tolerance=1e9)
    summary = model.summary()
    assert summary["stop_reason"] == "early stopping"
    assert summary["epochs"] < 5
    assert len(model.scoring_history()) == 2  # the rule needs 2k = 2 scorings and then always stops


def test_no_early_stopping_with_zero_rounds(blobs):
    model = fit(blobs, epochs=3, train_samples_per_iteration=50, stopping_rounds=0, stopping_tolerance=1e9)
    assert model.summary()["stop_reason"] == "epochs done"
    assert model.summary()["epochs"] == 3


def test_early_stopping_watches_validation_when_given(blobs, blobs_valid):
    model = fit(blobs, validation_frame=blobs_valid, epochs=5, train_samples_per_iteration=50,
                stopping_rounds=1, stopping_tolerance=1e9, stopping_metric="misclassification")
    assert model.summary()["stop_reason"] == "early stopping"
    assert "validation_classification_error" in model.scoring_history().columns


def test_max_runtime_secs_stops_early(blobs):
    model = fit(blobs, epochs=50, max_runtime_secs=1e-6)
    summary = model.summary()
    assert "max_runtime_secs" in summary["stop_reason"]
    assert summary["samples"] < 50 * len(blobs)
    history = model.scoring_history()
    assert len(history) >= 1 and history["samples"].iloc[-1] == summary["samples"]


def noisy_labels(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = frame.copy()
    out["label"] = pd.Categorical(rng.choice(["a", "b", "c"], len(frame)), categories=["a", "b", "c"])
    return out


def test_overwrite_with_best_model_restores_the_best_validation_scoring(blobs_valid):
    # 60 rows with random labels and a wide net: it memorises them, so validation logloss gets worse
    train = noisy_labels(blobs_valid.head(60), seed=0)
    options = {"validation_frame": blobs_valid, "epochs": 40, "hidden": [64, 64],
               "train_samples_per_iteration": 60}
    best = fit(train, **options)
    history = best.scoring_history()["validation_logloss"]
    assert history.idxmin() != len(history) - 1, "the setup should make the last scoring not the best"
    assert best.model_performance(valid=True).logloss() == pytest.approx(history.min(), rel=1e-6)
    assert best.model_performance(blobs_valid).logloss() == pytest.approx(history.min(), rel=1e-5)

    last = fit(train, overwrite_with_best_model=False, **options)
    last_history = last.scoring_history()["validation_logloss"]
    assert last.model_performance(valid=True).logloss() == pytest.approx(last_history.iloc[-1], rel=1e-6)


# --------------------------------------------------------------------------- sources

def test_batches_in_order_without_rng():
    assert [b.tolist() for b in batches(10, 3)] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]


def test_batches_cover_total_rows_with_reshuffles():
    n, size, total = 10, 4, 27
    groups = list(batches(n, size, total, np.random.default_rng(1)))
    rows = np.concatenate(groups)
    assert len(rows) == total
    assert all(1 <= len(g) <= size for g in groups)
    passes = [rows[i:i + n] for i in range(0, total, n)]
    assert sorted(passes[0].tolist()) == list(range(n))
    assert sorted(passes[1].tolist()) == list(range(n))
    assert len(set(passes[2].tolist())) == len(passes[2]) == total - 2 * n
    assert passes[0].tolist() != passes[1].tolist()  # reshuffled each pass
    assert passes[0].tolist() != list(range(n))
    # no batch straddles two passes
    boundaries = np.cumsum([len(g) for g in groups])
    assert n in boundaries and 2 * n in boundaries


def test_batches_total_smaller_than_one_pass():
    groups = list(batches(10, 4, 5))
    assert [g.tolist() for g in groups] == [[0, 1, 2, 3], [4]]
    assert list(batches(10, 4, 0)) == []


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_prefetch_yields_items_in_order(depth):
    assert list(prefetch(iter(range(50)), depth)) == list(range(50))


@pytest.mark.parametrize("depth", [0, 2])
def test_prefetch_propagates_an_exception_from_the_producer(depth):
    def produce():
        yield 1
        yield 2
        raise KeyError("broken producer")

    received = []
    items = prefetch(produce(), depth)
    received.append(next(items))
    received.append(next(items))
    with pytest.raises(KeyError, match="broken producer"):
        next(items)
    assert received == [1, 2]


def test_prefetch_runs_the_producer_on_another_thread():
    seen = []

    def produce():
        for i in range(3):
            seen.append(threading.current_thread())
            yield i

    assert list(prefetch(produce(), 2)) == [0, 1, 2]
    assert all(t is not threading.current_thread() for t in seen)


def test_prefetch_stops_its_thread_when_the_consumer_stops():
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    generator = prefetch(endless(), 2)
    assert [next(generator) for _ in range(5)] == [0, 1, 2, 3, 4]
    before = {t for t in threading.enumerate() if t.name == "deepwater-prefetch"}
    assert before
    generator.close()
    assert not any(t.is_alive() for t in before)


def test_iterate_array_source_batches():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    w = np.linspace(0, 1, 10, dtype=np.float32)
    source = ArraySource(x, y, w)
    out = list(iterate(source, batches(10, 4)))
    assert [b.rows.tolist() for b in out] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    np.testing.assert_array_equal(np.concatenate([b.x for b in out]), x)
    np.testing.assert_array_equal(np.concatenate([b.y for b in out]), y)
    np.testing.assert_array_equal(np.concatenate([b.w for b in out]), w)


def test_image_source_prefetches_only_while_images_still_need_decoding(tmp_path):
    from deepwater.data.images import ImageReader, ImageShape
    from deepwater.data.sources import ImageSource, epochs, iterate_epochs

    uris = [str(write_png(tmp_path / f"{i}.png", 40 * i, size=8)) for i in range(6)]
    with ImageReader(ImageShape(8, 8, 1)) as reader:
        source = ImageSource(uris, reader, None, y=np.arange(6))
        assert source.prefetch_depth > 0
        seen = [batch.rows.tolist() for batch in iterate_epochs(source, epochs(6, 4, total=12))]
        assert source.prefetch_depth == 0  # every image is in the decoded cache now
    assert sorted(sum(seen[:2], [])) == list(range(6)) and sorted(sum(seen[2:], [])) == list(range(6))


def test_preload_images_decodes_image_sources_before_training(tmp_path, capsys, monkeypatch):
    from deepwater.data.images import ImageReader, ImageShape
    from deepwater.data.sources import ArraySource, ImageSource, preload_images

    uris = [str(write_png(tmp_path / f"{i}.png", 40 * i, size=8)) for i in range(5)]
    monkeypatch.setenv("DEEPWATER_PROGRESS", "lines")
    with ImageReader(ImageShape(8, 8, 1)) as reader:
        train, valid = ImageSource(uris[:3], reader, None), ImageSource(uris[2:], reader, None)
        assert not reader.holds(uris)
        preload_images([ArraySource(np.zeros((2, 3), np.float32)), train, None, valid])
        assert reader.holds(uris) and train.prefetch_depth == 0
    assert "decoding images" in capsys.readouterr().err


@pytest.mark.parametrize("backend", installed_backends())
def test_training_that_diverges_stops_with_an_error_naming_the_epoch_and_the_fix(backend):
    """A NaN loss stops training at the next scoring, never as scikit-learn's 'Input contains NaN' from the metrics."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(200, 3))
    frame = pd.DataFrame(values, columns=["a", "b", "c"]).assign(y=values @ [1e6, 2e6, 3e6])
    model = DeepWaterEstimator(backend=backend, hidden=[8], epochs=3, standardize=False, learning_rate=10.0,
                               clip_gradient=None, gpu=False, quiet_mode=True, seed=1)
    with pytest.raises(dw.DivergenceError, match=r"training diverged: the training loss became (nan|inf) by epoch "
                                                 r"[0-9.]+ \(\d+ samples\).*Lower learning_rate") as info:
        model.train(y="y", training_frame=frame)
    assert info.value.epochs > 0 and isinstance(info.value, dw.DeepWaterError)


# --------------------------------------------------------------------------- optimisers and rate schedules

def rates(spec: OptimizerSpec, samples: list[float]) -> list[float]:
    return [float(spec.rate(s)) for s in samples]


def test_the_h2o_schedule_anneals_and_constant_stays():
    h2o = OptimizerSpec(learning_rate=0.1, learning_rate_annealing=0.01)
    assert rates(h2o, [0, 100]) == pytest.approx([0.1, 0.05])
    assert rates(replace(h2o, lr_schedule="constant"), [0, 100, 1e6]) == pytest.approx([0.1] * 3)


def test_cosine_falls_to_zero_at_the_end_of_the_run_and_stays_there():
    cosine = OptimizerSpec(learning_rate=0.1, lr_schedule="cosine", total_samples=400)
    assert rates(cosine, [0, 100, 200, 400, 500]) == pytest.approx([0.1, 0.1 * (1 + 2**-0.5) / 2, 0.05, 0, 0])


def test_step_multiplies_by_gamma_every_step():
    step = OptimizerSpec(learning_rate=0.1, lr_schedule="step", step_samples=100, step_gamma=0.5)
    assert rates(step, [0, 99, 100, 250]) == pytest.approx([0.1, 0.1, 0.05, 0.025])


def test_one_cycle_rises_over_the_first_quarter_then_falls():
    cycle = OptimizerSpec(learning_rate=0.1, lr_schedule="one_cycle", total_samples=400)
    start, middle_rise, peak, middle_fall, end = rates(cycle, [0, 50, 100, 250, 400])
    assert start == pytest.approx(0.1 / 25) and peak == pytest.approx(0.1) and end == pytest.approx(0.1 / 1e5)
    assert middle_rise == pytest.approx((0.1 + 0.1 / 25) / 2) and middle_fall == pytest.approx((0.1 + 1e-6) / 2)


def test_warm_up_rises_linearly_then_leaves_the_schedule_alone():
    cosine = OptimizerSpec(learning_rate=0.1, lr_schedule="cosine", total_samples=400)
    warm = replace(cosine, warmup_samples=99)
    assert rates(warm, [0, 49, 99, 200]) == pytest.approx([0.1 / 100, cosine.rate(49) / 2, cosine.rate(99),
                                                           cosine.rate(200)])


def test_epochs_and_training_rows_set_the_schedule():
    params = table.resolve({"epochs": 3, "warmup_epochs": 0.5, "lr_step_epochs": 2})
    spec = OptimizerSpec.from_params(params, rows=200)
    assert (spec.total_samples, spec.warmup_samples, spec.step_samples) == (600, 100, 400)
    unknown = OptimizerSpec.from_params(params)  # a net that only scores: no end to the run
    assert (unknown.total_samples, unknown.warmup_samples) == (float("inf"), 0.0)
    scoring = OptimizerSpec.from_params({**params, "epochs": 0, "lr_schedule": "cosine", "warmup_epochs": 0}, rows=200)
    assert scoring.total_samples == float("inf") and scoring.rate(0) == pytest.approx(scoring.learning_rate)


@pytest.mark.parametrize("backend", installed_backends())
def test_a_fine_tuning_recipe_trains_on_every_backend(blobs, backend):
    """AdamW, a cosine rate with warm-up and label smoothing, spelled as parameters: the net gets them, with the
    run's length in rows, and learns."""
    model = fit(blobs, backend=backend, optimizer="adamw", weight_decay=0.01, lr_schedule="cosine",
                warmup_epochs=0.5, label_smoothing=0.1, learning_rate=0.01, train_samples_per_iteration=300)
    net = model._fitted.net
    assert (net.spec.method, net.spec.total_samples, net.spec.warmup_samples) == ("adamw", 2 * len(blobs), 150)
    assert model._fitted.task.label_smoothing == 0.1
    history = model.scoring_history()
    assert history["training_classification_error"].iloc[-1] < 0.5, history
