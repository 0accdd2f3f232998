"""What Flow holds, recorded in SQLite under its data folder: frames (parquet files), models (saved model files),
grids and jobs, so that a restarted server lists them again. One connection, one lock: each call reads or writes
under it."""
from __future__ import annotations

import io
import json
import math
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd

from deepwater.files import write_atomically
from deepwater.storage.saved_models import json_values, load_model, save_model

DATABASE = "catalogue.sqlite"
FRAMES, MODELS = "frames", "models"
RUNNING_STATES = ("queued", "running")
SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (id TEXT PRIMARY KEY, created REAL, info TEXT);
CREATE TABLE IF NOT EXISTS models (id TEXT PRIMARY KEY, created REAL, info TEXT);
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created REAL, info TEXT);
CREATE TABLE IF NOT EXISTS grids (id TEXT PRIMARY KEY, created REAL, info TEXT);
"""
TABLES = ("frames", "models", "jobs", "grids")


class NotInCatalogue(KeyError):
    """No frame, model or job of that id."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"{kind} {key!r}")
        self.kind, self.key = kind, key


def finite(value: Any) -> Any:
    """A JSON value with NaN and infinities as None (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def new_id(prefix: str) -> str:
    """A fresh id: `prefix`, '_' and 8 hex digits."""
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


class Catalogue:
    """Frames, models and jobs of one data folder. Records are JSON objects ('info') keyed by id."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir)
        for folder in (self.root, self.root / FRAMES, self.root / MODELS):
            folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.root / DATABASE, check_same_thread=False, isolation_level=None)
        self._db.executescript(SCHEMA)
        self._models: dict[str, Any] = {}  # loaded models by id

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # --- records ---------------------------------------------------------------------------
    def _put(self, table: str, key: str, info: dict[str, Any]) -> dict[str, Any]:
        text = json.dumps(finite(json_values(info)), allow_nan=False, default=str)
        with self._lock:
            self._db.execute(f"INSERT INTO {table} (id, created, info) VALUES (?, ?, ?) "
                             "ON CONFLICT(id) DO UPDATE SET info = excluded.info", (key, time.time(), text))
        return json.loads(text)

    def _get(self, table: str, key: str) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute(f"SELECT info FROM {table} WHERE id = ?", (key,)).fetchone()
        if row is None:
            raise NotInCatalogue(table[:-1], key)
        return json.loads(row[0])

    def _all(self, table: str) -> list[dict[str, Any]]:
        """Every record of `table`, newest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT info FROM {table} ORDER BY created DESC, rowid DESC").fetchall()
        return [json.loads(row[0]) for row in rows]

    def has(self, table: str, key: str) -> bool:
        """True when `table` holds `key`."""
        with self._lock:
            return self._db.execute(f"SELECT 1 FROM {table} WHERE id = ?", (key,)).fetchone() is not None

    # --- frames ----------------------------------------------------------------------------
    def add_frame(self, frame: pd.DataFrame, info: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        """Store `frame` as parquet and record it with `info` (its name, source, parse setup); returns the record."""
        key = key or new_id("frame")
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        write_atomically(self.frame_path(key), buffer.getvalue())
        return self._put("frames", key, {**info, "id": key, "rows": len(frame), "columns": len(frame.columns)})

    def frame_path(self, key: str) -> Path:
        """Where frame `key`'s parquet file lies."""
        return self.root / FRAMES / f"{key}.parquet"

    def frame(self, key: str) -> dict[str, Any]:
        """Frame `key`'s record."""
        return self._get("frames", key)

    def frames(self) -> list[dict[str, Any]]:
        """Every frame's record, newest first."""
        return self._all("frames")

    def load_frame(self, key: str) -> pd.DataFrame:
        """Frame `key`'s rows."""
        self.frame(key)
        return pd.read_parquet(self.frame_path(key))

    # --- models ----------------------------------------------------------------------------
    def add_model(self, model: Any, info: dict[str, Any]) -> dict[str, Any]:
        """Save the trained `model` (deepwater.save_model, one file) and record it; returns the record."""
        key = model.model_id
        path = save_model(model, self.root / MODELS, force=True, filename=key)
        self._models[key] = model
        return self._put("models", key, {**info, "id": key, "path": path})

    def model(self, key: str) -> dict[str, Any]:
        """Model `key`'s record."""
        return self._get("models", key)

    def models(self) -> list[dict[str, Any]]:
        """Every model's record, newest first."""
        return self._all("models")

    def load_model(self, key: str) -> Any:
        """Model `key`, loaded from its file once and then held."""
        record = self.model(key)
        if key not in self._models:
            self._models[key] = load_model(record["path"])
        return self._models[key]

    # --- grids -----------------------------------------------------------------------------
    def put_grid(self, info: dict[str, Any]) -> dict[str, Any]:
        """Record grid info['id'] (its leaderboard, models and failures)."""
        return self._put("grids", info["id"], info)

    def grid(self, key: str) -> dict[str, Any]:
        """Grid `key`'s record."""
        return self._get("grids", key)

    def grids(self) -> list[dict[str, Any]]:
        """Every grid's record, newest first."""
        return self._all("grids")

    # --- jobs ------------------------------------------------------------------------------
    def put_job(self, info: dict[str, Any]) -> dict[str, Any]:
        """Record job info['id'] as `info` (a new job, or its new state)."""
        return self._put("jobs", info["id"], info)

    def job(self, key: str) -> dict[str, Any]:
        """Job `key`'s record."""
        return self._get("jobs", key)

    def jobs(self) -> list[dict[str, Any]]:
        """Every job's record, newest first."""
        return self._all("jobs")

    def mark_interrupted(self) -> list[str]:
        """Jobs left queued or running by a server that stopped, marked 'interrupted'; returns their ids."""
        stopped = [job for job in self.jobs() if job["status"] in RUNNING_STATES]
        for job in stopped:
            self.put_job({**job, "status": "interrupted",
                          "error": "the server stopped before this job finished; resume it from its newest "
                                   "checkpoint (POST /api/jobs/<id>/resume, or Resume on its page) or submit it "
                                   "again."})
        return [job["id"] for job in stopped]
