"""A grid job's progress, read from the grid's export folder while H2OGridSearch trains into it: the models done
(the grid's manifest, which lists each model as it is saved) and the running model's newest checkpoint (its
progress and scoring history), polled on a thread of its own."""
from __future__ import annotations

import threading
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepwater.errors import DeepWaterError
from deepwater.flow.scorings import history_rows, run_progress
from deepwater.selection.grid_search import read_manifest
from deepwater.storage.saved_models import open_saved_model, read_record

POLL_SECONDS = 0.5


def running_checkpoint(folder: Path, grid_id: str, done: set[str]) -> Path | None:
    """The newest checkpoint ('<model_id>-<samples>') of a model of grid `grid_id` that is not done yet."""
    found = [path for path in folder.glob(f"{grid_id}_model_*-*")
             if path.name.rpartition("-")[2].isdigit() and path.name.rpartition("-")[0] not in done]
    return max(found, key=lambda path: path.stat().st_mtime_ns, default=None)


def grid_state(folder: Path, grid_id: str, total: int, rows: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The grid's progress as a job records it, {"done", "total", "running": {"model", "progress"} or None}, and
    the running model's scoring history (none before its first scoring)."""
    done = set(read_manifest(folder, grid_id)) if folder.is_dir() else set()
    state: dict[str, Any] = {"done": len(done), "total": total, "running": None}
    checkpoint = running_checkpoint(folder, grid_id, done) if folder.is_dir() else None
    if checkpoint is None:
        return state, []
    try:
        with open_saved_model(checkpoint) as files:
            record = read_record(files)
    except (DeepWaterError, OSError, zipfile.BadZipFile):  # replaced by a newer one while it was read
        return state, []
    outcome = record["outcome"]
    state["running"] = {"model": record["model_id"],
                        "progress": run_progress(outcome["samples"], float(record["params"]["epochs"]), rows)}
    return state, history_rows(outcome["history"])


def grid_progress(state: dict[str, Any]) -> float:
    """The share of the grid done: the models done and the running one's share, over the models in all."""
    running = (state["running"] or {}).get("progress") or 0.0
    return min((state["done"] + running) / state["total"], 1.0)


class GridWatch:
    """Calls `report(state, history)` with grid_state() each time it changes while the `with` block runs."""

    def __init__(self, folder: Path, grid_id: str, total: int, rows: int,
                 report: Callable[[dict[str, Any], list[dict[str, Any]]], None]) -> None:
        self.folder, self.grid_id, self.total, self.rows, self.report = folder, grid_id, total, rows, report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"deepwater-flow-{grid_id}", daemon=True)
        self._last: tuple[dict[str, Any], list[dict[str, Any]]] | None = None

    def __enter__(self) -> GridWatch:
        self.poll()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def poll(self) -> None:
        """Read the grid's state once; report it when it changed."""
        seen = grid_state(self.folder, self.grid_id, self.total, self.rows)
        if seen != self._last:
            self._last = seen
            self.report(*seen)

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.poll()
