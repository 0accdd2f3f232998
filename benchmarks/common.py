"""Helpers shared by the benchmarks: timing side by side and writing results."""
from __future__ import annotations

import json
import os
import platform
import time
from datetime import datetime, timezone
from typing import Any, Callable

RESULTS_DIR = os.path.join(os.path.dirname(__file__), "results")


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of one call, and its result."""
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def alternate(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[tuple[float, Any]]]:
    """Run each contender `repeats` times, interleaved (A B A B ...), so machine noise hits both alike."""
    out: dict[str, list[tuple[float, Any]]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            out[name].append(timed(run))
    return out


def write_result(name: str, result: dict[str, Any], folder: str = RESULTS_DIR) -> str:
    """Save a benchmark's result as JSON in `folder` (default benchmarks/results/, atomically); return the path."""
    os.makedirs(folder, exist_ok=True)
    result = {"benchmark": name, "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
              **result}
    path = os.path.join(folder, f"{name}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(result, handle, indent=2, default=str)
    os.replace(tmp, path)
    return path
