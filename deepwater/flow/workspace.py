"""Flow's workspace: the catalogue and the job queue, and what the API and the pages do with them (import a frame,
queue a training, predict, export a bundle)."""
from __future__ import annotations

import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from deepwater.errors import DeepWaterError
from deepwater.files import write_atomically
from deepwater.flow import frames as flow_frames
from deepwater.flow.catalogue import Catalogue
from deepwater.flow.config import FlowConfig
from deepwater.flow.jobs import JobQueue, TrainingRequest
from deepwater.flow.pictures import GRADCAM, THUMBNAIL_ROWS, shown_rows, thumbnail
from deepwater.flow.refusals import FieldError
from deepwater.flow.submissions import frame_columns, grid_request, training_request

BUNDLES = "bundles"


class Flow:
    """What the routes share: the settings, the catalogue and the job queue."""

    def __init__(self, config: FlowConfig) -> None:
        self.config = config
        self.catalogue = Catalogue(config.data_dir)
        self.catalogue.mark_interrupted()  # jobs a stopped server left queued or running
        self.image_roots = (*config.allow_dirs, os.path.realpath(config.data_dir))  # pictures are read only here
        self.jobs = JobQueue(self.catalogue, self.image_roots)

    # --- frames ----------------------------------------------------------------------------
    def import_path(self, path: object, name: str | None) -> dict[str, Any]:
        """Import the file, image folder or zip file `path` (under an allowed folder), or the images under an
        object store prefix (one of the allowed prefixes), as a frame."""
        if flow_frames.is_store_prefix(path):
            prefix = flow_frames.allowed_prefix(path, self.config.allow_stores)
            return self.add_frame(self._read(prefix, "path"), name or prefix, {"prefix": prefix})
        real = flow_frames.allowed_path(path, self.config.allow_dirs)
        if not os.path.exists(real):
            raise FieldError("path", f"{path!r} does not exist under {', '.join(self.config.allow_dirs)}.", 404)
        return self.add_frame(self._read(real, "path"), name or Path(real).name, {"path": real})

    def import_upload(self, data: bytes, filename: str | None, name: str | None) -> dict[str, Any]:
        """Import an uploaded file's bytes as a frame."""
        suffix = flow_frames.upload_suffix(filename)
        folder = Path(tempfile.mkdtemp(prefix="upload-", dir=self.catalogue.root))
        try:
            staged = folder / f"upload{suffix}"
            staged.write_bytes(data)
            frame = self._read(staged, "file")
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return self.add_frame(frame, name or Path(filename or "upload").name, {"upload": filename})

    @staticmethod
    def _read(path: str | Path, field: str) -> Any:
        try:
            return flow_frames.read_frame(path)
        except DeepWaterError as error:  # messages name the file by its path: say it as the field
            raise FieldError(field, str(error)) from None

    def add_frame(self, frame: Any, name: str, source: dict[str, Any]) -> dict[str, Any]:
        """Record `frame` with its parse setup and column summaries."""
        setup = flow_frames.parse_setup(frame)
        return self.catalogue.add_frame(frame, {"name": name, "source": source, "setup": setup,
                                                "summaries": flow_frames.summaries(frame, setup["column_types"])})

    def frame_page(self, key: str) -> dict[str, Any]:
        """A frame's record with its first rows."""
        record = self.catalogue.frame(key)
        frame = self.catalogue.load_frame(key)
        column = record["setup"]["image_column"]
        shown = [] if column is None else shown_rows(frame, column, self.image_roots, THUMBNAIL_ROWS)
        return {**record, "head": flow_frames.first_rows(frame), "thumbnails": shown}

    def thumbnail(self, key: str, row: int) -> bytes:
        """The PNG thumbnail of frame `key`'s image on row `row` (only an image under the allowed folders)."""
        column = self.catalogue.frame(key)["setup"]["image_column"]
        return thumbnail(self.catalogue.load_frame(key), column, row, self.image_roots)

    def gradcam_file(self, key: str, name: str) -> Path:
        """The Grad-CAM overlay `name` of model `key` (one its record lists)."""
        if name not in {picture["file"] for picture in self.catalogue.model(key).get("gradcam") or []}:
            raise FieldError("file", f"{name!r} is no Grad-CAM overlay of model {key!r}; its model page lists "
                                     "them.", 404)
        return self.catalogue.root / GRADCAM / key / name

    # --- models ----------------------------------------------------------------------------
    def train(self, body: dict[str, Any]) -> dict[str, Any]:
        """Check a training request and queue it; returns the job's record."""
        request, model_id = training_request(self.catalogue, body)
        return self.jobs.submit(request, model_id)

    def grid(self, body: dict[str, Any]) -> dict[str, Any]:
        """Check a grid search request (a training request with "hyper_params") and queue it as one job."""
        request, grid_id = grid_request(self.catalogue, body)
        return self.jobs.submit(request, grid_id)

    def resume(self, key: str) -> dict[str, Any]:
        """Queue a job that continues interrupted job `key` from its newest checkpoint (a grid: keeping the models
        it had trained, training the rest); returns the new job."""
        job = self.catalogue.job(key)
        if job["status"] != "interrupted":
            raise FieldError("job", f"{key!r} is {job['status']}; only a job the server stopped (interrupted) "
                                    "resumes.", 409)
        if not job["request"].get("hyper_params") and not any(self.jobs.checkpoints(key).glob("*")):
            raise FieldError("job", f"{key!r} stopped before its first scoring, so it has no checkpoint; submit it "
                                    "again.", 409)
        resumed = self.jobs.submit(TrainingRequest(**{**job["request"], "resume": key}), job["model_id"])
        self.catalogue.put_job({**self.catalogue.job(key), "status": "resumed", "resumed_by": resumed["id"]})
        return resumed

    def predict(self, key: str, frame_key: object) -> dict[str, Any]:
        """Score frame `frame_key` with model `key`; the predictions become a frame, whose record is returned."""
        frame_columns(self.catalogue, frame_key, "frame")
        model = self.catalogue.load_model(key)
        try:
            predictions = model.predict(self.catalogue.load_frame(frame_key))
        except DeepWaterError as error:
            raise FieldError("frame", str(error)) from None
        return self.add_frame(predictions.reset_index(drop=True), f"predictions of {key} on {frame_key}",
                              {"model": key, "frame": frame_key})

    def bundle(self, key: str) -> Path:
        """Model `key`'s ONNX bundle (model.export) as a zip file, made once."""
        target = self.catalogue.root / BUNDLES / f"{key}.zip"
        if target.is_file():
            return target
        model = self.catalogue.load_model(key)
        with tempfile.TemporaryDirectory(dir=self.catalogue.root) as staging:
            folder = Path(model.export(Path(staging) / key))
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for file in sorted(folder.rglob("*")):
                    if file.is_file():
                        archive.write(file, f"{key}/{file.relative_to(folder).as_posix()}")
        target.parent.mkdir(exist_ok=True)
        return write_atomically(target, buffer.getvalue())
