"""The training loop, written once for every backend: batches, scoring, early stopping, time limit."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

import numpy as np
from tqdm import tqdm

from .metrics import ModelMetrics
from .scoring import ScoringSchedule, should_stop
from .sources import Source, epochs, iterate_epochs

Evaluate = Callable[[], dict[str, ModelMetrics]]  # {"training": ..., "validation": ...}


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
    """What happened in a run: the scoring history and why it ended."""

    history: list[dict] = field(default_factory=list)
    stop_reason: str = "epochs done"
    samples: int = 0
    epochs: float = 0.0
    best_index: int | None = None
    run_seconds: float = 0.0
    final_metrics: dict[str, ModelMetrics] = field(default_factory=dict)  # of the weights the net ends with


class Trainer:
    """Runs mini-batches through net.train_batch and scores on H2O's schedule."""

    def __init__(self, net, source: Source, evaluate: Evaluate, rule: StoppingRule, settings: LoopSettings,
                 rng: np.random.Generator) -> None:
        self.net, self.source, self.evaluate = net, source, evaluate
        self.rule, self.settings, self.rng = rule, settings, rng
        self._best_value: float | None = None
        self._best_state: dict | None = None
        self._best_metrics: dict[str, ModelMetrics] | None = None
        self._last_metrics: dict[str, ModelMetrics] = {}

    def run(self) -> TrainingOutcome:
        s = self.settings
        outcome = TrainingOutcome()
        start = time.monotonic()
        schedule = ScoringSchedule(s.score_interval, s.score_duty_cycle, s.train_samples_per_iteration, start)
        total = round(s.epochs * self.source.n) if math.isfinite(s.epochs) else math.inf  # inf: until the time limit
        losses: list[float] = []
        with tqdm(total=total, unit="rows", desc=s.description, disable=s.quiet, leave=False) as bar:
            for batch in iterate_epochs(self.source, epochs(self.source.n, s.mini_batch_size, total, self.rng)):
                if len(batch.rows):
                    losses.append(self.net.train_batch(batch.x, batch.y, batch.w))
                    outcome.samples += len(batch.rows)
                bar.update(len(batch.rows))
                now = time.monotonic()
                if s.max_runtime_secs and now - start >= s.max_runtime_secs:
                    outcome.stop_reason = f"max_runtime_secs={s.max_runtime_secs:g} reached"
                    break
                if schedule.due(outcome.samples, now):
                    bar.set_postfix(loss=f"{np.mean(losses):.4g}", refresh=False)
                    if self._score(outcome, schedule, start, losses):
                        outcome.stop_reason = "early stopping"
                        break
        if not outcome.history or outcome.history[-1]["samples"] != outcome.samples:
            self._score(outcome, schedule, start, losses)
        self._restore_best(outcome)
        outcome.final_metrics = self._best_metrics if self._best_metrics is not None else self._last_metrics
        outcome.run_seconds = time.monotonic() - start
        return outcome

    def _score(self, outcome: TrainingOutcome, schedule: ScoringSchedule, start: float, losses: list[float]) -> bool:
        """Score now, append a history row, keep the best weights; True when training should stop."""
        began = time.monotonic()
        metrics = self.evaluate()
        ended = time.monotonic()
        schedule.record(outcome.samples, began, ended)
        training_seconds = max(ended - start - schedule.scoring_seconds, 1e-9)
        outcome.epochs = outcome.samples / self.source.n
        row = {
            "timestamp": datetime.now(),
            "duration": ended - start,
            "training_speed": outcome.samples / training_seconds,
            "epochs": outcome.epochs,
            "samples": outcome.samples,
            "training_loss": float(np.mean(losses)) if losses else float("nan"),
        }
        losses.clear()
        for part, part_metrics in metrics.items():
            row.update({f"{part}_{k}": v for k, v in part_metrics.values.items()})
        outcome.history.append(row)
        self._last_metrics = metrics
        self._track_best(outcome, metrics)
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
