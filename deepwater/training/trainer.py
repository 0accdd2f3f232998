"""The training loop, written once for every backend: batches, scoring, early stopping, time limit."""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Callable

import numpy as np

from deepwater.analysis.metrics import ModelMetrics
from deepwater.data.sources import Source, epochs, iterate_epochs
from deepwater.errors import DivergenceError
from deepwater.progress import DataWait, progress
from deepwater.training.schedule import ScoringSchedule, should_stop

Evaluate = Callable[[], dict[str, ModelMetrics]]  # {"training": ..., "validation": ...}
Scored = Callable[["TrainingOutcome"], None]        # told the outcome so far after each scoring


@dataclass
class StoppingRule:
    """Which metric decides early stopping and the best model, and how."""

    key: str                 # metric key, e.g. "logloss"
    larger_is_better: bool
    rounds: int
    tolerance: float
    on: str                  # "validation" or "training"


@dataclass
class LoopSettings:
    """The estimator parameters the loop reads."""

    epochs: float
    mini_batch_size: int
    score_interval: float
    score_duty_cycle: float
    train_samples_per_iteration: int
    max_runtime_secs: float
    overwrite_with_best_model: bool
    quiet: bool
    description: str


@dataclass
class TrainingOutcome:
    """What happened in a run: the scoring history and why it ended.

    `best_index` is the history row whose weights the net holds when they are not the last row's (the
    best model restored); `rng_state` is the batch shuffler's state, so that a checkpoint restart draws
    the batches a run that never stopped would have drawn.
    """

    history: list[dict] = field(default_factory=list)
    stop_reason: str = "epochs done"
    samples: int = 0
    epochs: float = 0.0
    best_index: int | None = None
    run_seconds: float = 0.0
    final_metrics: dict[str, ModelMetrics] = field(default_factory=dict)  # of the weights the net ends with
    rng_state: dict | None = None

    def snapshot(self) -> TrainingOutcome:
        """This outcome as it stands mid-run, for a checkpoint whose weights are the last scoring's."""
        return replace(self, history=list(self.history), best_index=None, stop_reason="checkpoint",
                       rng_state=copy.deepcopy(self.rng_state))


class Trainer:
    """Runs mini-batches through net.train_batch and scores on H2O's schedule."""

    def __init__(self, net, source: Source, evaluate: Evaluate, rule: StoppingRule, settings: LoopSettings,
                 rng: np.random.Generator, on_scored: Scored | None = None) -> None:
        self.net, self.source, self.evaluate = net, source, evaluate
        self.rule, self.settings, self.rng = rule, settings, rng
        self.on_scored = on_scored
        self._best_value: float | None = None
        self._best_state: dict | None = None
        self._best_metrics: dict[str, ModelMetrics] | None = None
        self._last_metrics: dict[str, ModelMetrics] = {}
        self._resumed = TrainingOutcome()

    def resume(self, previous: TrainingOutcome, metrics: dict[str, ModelMetrics]) -> None:
        """Continue `previous` (a checkpoint's run, whose final weights scored `metrics`): its history,
        samples and shuffler state go on, and its final weights are the best so far."""
        if previous.rng_state is not None:
            self.rng.bit_generator.state = copy.deepcopy(previous.rng_state)
        index = len(previous.history) - 1 if previous.best_index is None else previous.best_index
        self._resumed = replace(previous, best_index=index)
        if previous.history and self.settings.overwrite_with_best_model:
            value = previous.history[index].get(f"{self.rule.on}_{self.rule.key}", float("nan"))
            if not np.isnan(value):
                self._best_value, self._best_state, self._best_metrics = value, self.net.get_state(), metrics
        self._last_metrics = metrics

    def run(self) -> TrainingOutcome:
        s, previous = self.settings, self._resumed
        outcome = TrainingOutcome(history=list(previous.history), samples=previous.samples, epochs=previous.epochs,
                                  best_index=previous.best_index if self._best_state is not None else None)
        start = time.monotonic()
        schedule = ScoringSchedule(s.score_interval, s.score_duty_cycle, s.train_samples_per_iteration, start,
                                   previous.samples)
        total = round(s.epochs * self.source.n) - previous.samples if math.isfinite(s.epochs) \
            else math.inf  # epochs=inf: until max_runtime_secs
        losses: list = []  # numbers, or losses left on the device until scoring reads them (LazyLoss)
        step = getattr(self.net, "train_step", self.net.train_batch)
        prefetch = getattr(self.net, "prefetch", None)
        on_next = None if prefetch is None else lambda batch: prefetch(batch.x, batch.y, batch.w)
        wait, postfix = DataWait(), {}  # the progress line: rows (images) per second, loss, share waiting for data
        with progress(total=total, unit=self.source.unit, desc=s.description, disable=s.quiet, leave=False) as bar:
            for batch in wait.timed(iterate_epochs(self.source, epochs(self.source.n, s.mini_batch_size, total,
                                                                       self.rng), on_next)):
                if len(batch.rows):
                    losses.append(step(batch.x, batch.y, batch.w))
                    outcome.samples += len(batch.rows)
                bar.set_postfix(postfix | wait.postfix(), refresh=False)
                bar.update(len(batch.rows))
                now = time.monotonic()
                if s.max_runtime_secs and now - start >= s.max_runtime_secs:
                    outcome.stop_reason = f"max_runtime_secs={s.max_runtime_secs:g} reached"
                    break
                if schedule.due(outcome.samples, now):
                    stop = self._score(outcome, schedule, start, losses)
                    postfix["loss"] = f"{outcome.history[-1]['training_loss']:.4g}"
                    if stop:
                        outcome.stop_reason = "early stopping"
                        break
        if not outcome.history or outcome.history[-1]["samples"] != outcome.samples:
            self._score(outcome, schedule, start, losses)
        self._restore_best(outcome)
        outcome.final_metrics = self._best_metrics if self._best_metrics is not None else self._last_metrics
        outcome.run_seconds = previous.run_seconds + time.monotonic() - start
        outcome.rng_state = self.rng.bit_generator.state
        return outcome

    def _score(self, outcome: TrainingOutcome, schedule: ScoringSchedule, start: float, losses: list[float]) -> bool:
        """Score now, append a history row, keep the best weights; True when training should stop."""
        training_loss = _mean(losses)  # the steps' losses read from the device once, before the scoring
        if losses and not math.isfinite(training_loss):
            raise DivergenceError(training_loss, outcome.samples / self.source.n, outcome.samples)
        losses.clear()
        began = time.monotonic()
        metrics = self.evaluate()
        ended = time.monotonic()
        schedule.record(outcome.samples, began, ended)
        training_seconds = max(ended - start - schedule.scoring_seconds, 1e-9)
        outcome.epochs = outcome.samples / self.source.n
        row = {
            "timestamp": datetime.now(),
            "duration": self._resumed.run_seconds + ended - start,
            "training_speed": (outcome.samples - self._resumed.samples) / training_seconds,
            "epochs": outcome.epochs,
            "samples": outcome.samples,
            "training_loss": training_loss,
        }
        for part, part_metrics in metrics.items():
            row.update({f"{part}_{k}": v for k, v in part_metrics.values.items()})
        outcome.history.append(row)
        self._last_metrics = metrics
        self._track_best(outcome, metrics)
        if self.on_scored is not None:
            outcome.rng_state = self.rng.bit_generator.state
            outcome.final_metrics = metrics
            self.on_scored(outcome)
        series = [r[f"{self.rule.on}_{self.rule.key}"] for r in outcome.history]
        return should_stop(series, self.rule.rounds, self.rule.tolerance, self.rule.larger_is_better)

    def _track_best(self, outcome: TrainingOutcome, metrics: dict[str, ModelMetrics]) -> None:
        value = metrics[self.rule.on].values[self.rule.key]
        if not self.settings.overwrite_with_best_model or np.isnan(value):
            return
        better = self._best_value is None or (
            value > self._best_value if self.rule.larger_is_better else value < self._best_value)
        if better:
            self._best_value = value
            self._best_state = self.net.get_state()
            self._best_metrics = metrics
            outcome.best_index = len(outcome.history) - 1

    def _restore_best(self, outcome: TrainingOutcome) -> None:
        if self._best_state is not None and outcome.best_index != len(outcome.history) - 1:
            self.net.set_state(self._best_state)


def _mean(losses: list) -> float:
    """The mean of the steps' losses, read from the device now; NaN for none."""
    return float(np.mean([float(loss) for loss in losses])) if losses else float("nan")
