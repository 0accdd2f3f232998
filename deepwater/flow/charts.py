"""The scoring-history chart: an inline SVG drawn on the server (no chart library), a line per series."""
from __future__ import annotations

import html
import math
from typing import Any

WIDTH, HEIGHT, MARGIN = 560, 260, 44
METRICS = ("logloss", "rmse", "MSE", "deviance")  # the first the history holds is drawn
COLOURS = {"training": "#1f77b4", "validation": "#d62728"}


def chart_metric(history: list[dict[str, Any]]) -> str | None:
    """The metric the chart draws: the first of METRICS the history's training rows hold."""
    keys = set().union(*history) if history else set()
    return next((m for m in METRICS if f"training_{m}" in keys), None)


def history_svg(history: list[dict[str, Any]]) -> str:
    """The chart of `history` (rows with 'epochs' and 'training_<metric>', 'validation_<metric>'): the metric
    against epochs, a dot per scoring; a note when there is no scoring yet."""
    metric = chart_metric(history)
    if metric is None:
        return '<p class="muted" id="chart-empty">No scoring yet: the chart starts at the first scoring.</p>'
    series = {part: [(row["epochs"], row[f"{part}_{metric}"]) for row in history
                     if _finite(row.get(f"{part}_{metric}")) and _finite(row.get("epochs"))]
              for part in COLOURS}
    points = [p for values in series.values() for p in values]
    if not points:
        return '<p class="muted" id="chart-empty">No finite score yet.</p>'
    x_low, x_high = 0.0, max(max(x for x, _ in points), 1e-9)
    y_low, y_high = min(y for _, y in points), max(y for _, y in points)
    if y_high - y_low < 1e-12:
        y_low, y_high = y_low - 0.5, y_high + 0.5

    def at(x: float, y: float) -> tuple[float, float]:
        return (MARGIN + (x - x_low) / (x_high - x_low) * (WIDTH - 2 * MARGIN),
                HEIGHT - MARGIN - (y - y_low) / (y_high - y_low) * (HEIGHT - 2 * MARGIN))

    parts = [f'<svg class="chart" id="history-chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
             f'height="{HEIGHT}" role="img" aria-label="scoring history: {metric} by epoch">',
             f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" y2="{HEIGHT - MARGIN}" '
             'stroke="#888"/>',
             f'<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="#888"/>',
             f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle">epochs (0 to {x_high:.3g})</text>',
             f'<text x="6" y="{MARGIN - 14}">{html.escape(metric)} ({y_low:.4g} to {y_high:.4g})</text>']
    for i, (part, values) in enumerate(series.items()):
        if not values:
            continue
        xy = [at(x, y) for x, y in values]
        colour = COLOURS[part]
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                     + " ".join(f"{x:.1f},{y:.1f}" for x, y in xy) + '"/>')
        parts += [f'<circle class="point {part}" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in xy]
        parts.append(f'<text x="{WIDTH - MARGIN - 90}" y="{MARGIN + 16 * i}" fill="{colour}">{part}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def roc_svg(points: list[list[float]], auc: float | None) -> str:
    """The ROC curve of a binomial model: `points` are [false positive rate, true positive rate] from (0, 0) to
    (1, 1), drawn over the diagonal of a model that guesses."""
    if len(points) < 2:
        return '<p class="muted" id="roc-empty">No ROC curve: the rows scored hold one class only.</p>'
    size = HEIGHT

    def at(x: float, y: float) -> tuple[float, float]:
        return MARGIN + x * (size - 2 * MARGIN), size - MARGIN - y * (size - 2 * MARGIN)

    corner, top = at(0.0, 0.0), at(1.0, 1.0)
    area = "" if auc is None else f", AUC {auc:.4f}"
    return "".join([
        f'<svg class="chart roc" viewBox="0 0 {size} {size}" width="{size}" height="{size}" role="img" '
        f'aria-label="ROC curve{area}">',
        f'<rect x="{corner[0]}" y="{top[1]}" width="{top[0] - corner[0]}" height="{corner[1] - top[1]}" '
        'fill="none" stroke="#888"/>',
        f'<line x1="{corner[0]}" y1="{corner[1]}" x2="{top[0]}" y2="{top[1]}" stroke="#bbb" stroke-dasharray="4"/>',
        '<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="'
        + " ".join("{:.1f},{:.1f}".format(*at(x, y)) for x, y in points) + '"/>',
        f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle">false positive rate</text>',
        f'<text x="6" y="{MARGIN - 14}">true positive rate{html.escape(area)}</text>',
        "</svg>"])
