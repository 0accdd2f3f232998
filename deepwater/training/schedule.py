"""When to score (H2O's schedule) and when to stop (H2O's moving-average rule)."""
from __future__ import annotations

import math
from typing import Sequence


class ScoringSchedule:
    """Decides after each mini-batch whether the model is scored now.

    samples_per_iteration > 0: score exactly every that many samples (a reproducible history).
    Otherwise: score when `interval` seconds have passed since the last scoring and scoring has
    so far taken at most `duty_cycle` of the run time.
    """

    def __init__(self, interval: float, duty_cycle: float, samples_per_iteration: int, start: float,
                 samples: int = 0) -> None:
        """`samples`: training samples already seen (and scored) when the run starts, e.g. a checkpoint's."""
        self.interval = interval
        self.duty_cycle = duty_cycle
        self.samples_per_iteration = samples_per_iteration
        self.start = start
        self.last_end = start
        self.last_samples = samples
        self.scoring_seconds = 0.0

    def due(self, samples: int, now: float) -> bool:
        if self.samples_per_iteration > 0:
            return samples - self.last_samples >= self.samples_per_iteration
        if now - self.last_end < self.interval:
            return False
        elapsed = now - self.start
        return elapsed <= 0 or self.scoring_seconds / elapsed <= self.duty_cycle

    def record(self, samples: int, began: float, ended: float) -> None:
        """Note a scoring that ran from `began` to `ended` after `samples` training samples."""
        self.scoring_seconds += ended - began
        self.last_end = ended
        self.last_samples = samples


def should_stop(history: Sequence[float], rounds: int, tolerance: float, larger_is_better: bool) -> bool:
    """H2O's rule: compare the best of the last `rounds` moving averages with the one before them.

    Moving averages have length `rounds`; with 2 * rounds scorings there are rounds + 1 of them. The
    oldest is the reference; training stops when the best of the others improves on it by less than
    `tolerance` (relative).
    """
    if rounds <= 0 or len(history) < 2 * rounds:
        return False
    recent = list(history[-2 * rounds:])
    averages = [sum(recent[i:i + rounds]) / rounds for i in range(rounds + 1)]
    if any(math.isnan(a) for a in averages):  # e.g. AUC of a one-class sample: no verdict
        return False
    reference, later = averages[0], averages[1:]
    if larger_is_better:
        best = max(later)
        return best <= reference * (1 + tolerance) if reference > 0 else best <= reference
    best = min(later)
    if reference == 0:
        return True
    return best >= reference * (1 - tolerance) if reference > 0 else best >= reference
