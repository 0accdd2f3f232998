"""Flow's FastAPI application: the REST API under /api/ (OpenAPI at /docs) and the pages (pages.py) over one
catalogue and one job queue. Every refusal is a 4xx JSON {"error": "<field>: <why>", "field": ...}, as the
prediction service answers; anything unexpected a 500 with a one-line message, its traceback only in the log."""
from __future__ import annotations

import hmac
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from deepwater.flow import pages
from deepwater.flow.catalogue import NotInCatalogue
from deepwater.flow.config import FlowConfig
from deepwater.flow.refusals import FieldError
from deepwater.flow.uploads import read_upload
from deepwater.flow.workspace import Flow
from deepwater.serving.json_errors import add_json_error_handlers, json_error
from deepwater.version import __version__

log = logging.getLogger("deepwater.flow")
TOKEN_COOKIE = "deepwater_flow_token"
PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}}}  # a picture's OpenAPI answer


class FrameImport(BaseModel):
    """POST /api/frames's JSON body (a file is uploaded as multipart field 'file' instead)."""

    path: str = Field(description="a .csv, .csv.gz or .parquet file, an image folder (class/file.png) or a zip "
                                  "of images, under one of --allow-dir; or an allowed object store prefix")
    name: str | None = Field(None, description="the frame's name (default: the file's)")


class TrainRequest(BaseModel):
    """POST /api/models's body."""

    frame: str = Field(description="the training frame's id")
    y: str | None = Field(None, description="the response column (none for an autoencoder)")
    x: list[str] | None = Field(None, description="the predictor columns (default: all but y)")
    params: dict[str, Any] = Field(default_factory=dict, description="estimator parameters by name "
                                                                     "(deepwater.training.parameters)")
    validation_frame: str | None = Field(None, description="a validation frame's id")


class GridRequest(TrainRequest):
    """POST /api/grids's body: a training request and the values to search over."""

    hyper_params: dict[str, list[Any]] = Field(description="parameter -> the values to try, e.g. "
                                                           "{\"hidden\": [[8], [16]], \"epochs\": [2, 4]}")


class PredictRequest(BaseModel):
    """POST /api/models/{id}/predict's body."""

    frame: str = Field(description="the id of the frame to score")


def create_app(config: FlowConfig) -> FastAPI:
    """Flow over config.data_dir; its job worker runs while the app does (its lifespan)."""
    flow = Flow(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        flow.jobs.start()
        yield
        await run_in_threadpool(flow.jobs.stop)
        flow.catalogue.close()

    app = FastAPI(title="Deep Water Flow", version=__version__, lifespan=lifespan,
                  description="Import frames, train models in the background, watch them and predict.")
    app.state.flow = flow
    _add_guards(app, config)
    _add_error_handlers(app)
    _add_api(app, flow)
    pages.add_pages(app, flow)
    return app


def _add_api(app: FastAPI, flow: Flow) -> None:
    catalogue = flow.catalogue

    @app.post("/api/frames", status_code=201, summary="import a frame: JSON {\"path\": ...} or a multipart 'file'",
              openapi_extra={"requestBody": {"content": {
                  "application/json": {"schema": FrameImport.model_json_schema()},
                  "multipart/form-data": {"schema": {"type": "object", "properties": {
                      "file": {"type": "string", "format": "binary"}, "name": {"type": "string"}}}}}}})
    async def import_frame(request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            data, filename, name = await read_upload(request, flow.config.max_upload_bytes)
            return await run_in_threadpool(flow.import_upload, data, filename, name)
        body = frame_import(await request.body())
        return await run_in_threadpool(flow.import_path, body.path, body.name)

    @app.get("/api/frames", summary="every frame, newest first")
    async def list_frames() -> dict[str, Any]:
        return {"frames": catalogue.frames()}

    @app.get("/api/frames/{key}", summary="a frame: parse setup, column summaries, first rows")
    async def get_frame(key: str) -> dict[str, Any]:
        return await run_in_threadpool(flow.frame_page, key)

    @app.get("/api/frames/{key}/csv", summary="a frame's rows as csv")
    async def frame_csv(key: str) -> Response:
        frame = await run_in_threadpool(catalogue.load_frame, key)
        return Response(frame.to_csv(index=False), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{key}.csv"'})

    @app.get("/api/frames/{key}/thumbnails/{row}.png", response_class=Response, responses=PNG,
             summary="a thumbnail of an image column's row (an image under the allowed folders only)")
    async def frame_thumbnail(key: str, row: int) -> Response:
        return Response(await run_in_threadpool(flow.thumbnail, key, row), media_type="image/png")

    @app.post("/api/models", status_code=202, summary="train a model in the background: answers with its job")
    async def train(body: TrainRequest) -> dict[str, Any]:
        return await run_in_threadpool(flow.train, body.model_dump(exclude_unset=True))

    @app.post("/api/grids", status_code=202, summary="a grid search (H2OGridSearch) trained as one job: answers "
                                                     "with its job")
    async def grid(body: GridRequest) -> dict[str, Any]:
        return await run_in_threadpool(flow.grid, body.model_dump(exclude_unset=True))

    @app.get("/api/grids", summary="every grid, newest first")
    async def list_grids() -> dict[str, Any]:
        return {"grids": catalogue.grids()}

    @app.get("/api/grids/{key}", summary="a grid: its leaderboard (best first), its failures")
    async def get_grid(key: str) -> dict[str, Any]:
        return catalogue.grid(key)

    @app.get("/api/jobs", summary="every job, newest first")
    async def list_jobs() -> dict[str, Any]:
        return {"jobs": catalogue.jobs()}

    @app.get("/api/jobs/{key}", summary="a job: status, progress 0..1, scoring history, the model when done")
    async def get_job(key: str) -> dict[str, Any]:
        return catalogue.job(key)

    @app.post("/api/jobs/{key}/cancel", summary="stop a job (a running one at its next scoring)")
    async def cancel_job(key: str) -> dict[str, Any]:
        return flow.jobs.cancel(key)

    @app.post("/api/jobs/{key}/resume", status_code=202, summary="continue an interrupted job from its newest "
                                                                  "checkpoint: answers with the new job")
    async def resume_job(key: str) -> dict[str, Any]:
        return await run_in_threadpool(flow.resume, key)

    @app.get("/api/models", summary="every model, newest first")
    async def list_models() -> dict[str, Any]:
        return {"models": catalogue.models()}

    @app.get("/api/models/{key}", summary="a model: parameters, metrics, scoring history, confusion matrix")
    async def get_model(key: str) -> dict[str, Any]:
        return catalogue.model(key)

    @app.post("/api/models/{key}/predict", status_code=201, summary="score a frame: the predictions as a new frame")
    async def predict(key: str, body: PredictRequest) -> dict[str, Any]:
        catalogue.model(key)
        return await run_in_threadpool(flow.predict, key, body.frame)

    @app.get("/api/models/{key}/file", summary="the saved model file (deepwater.load_model reads it)")
    async def model_file(key: str) -> FileResponse:
        return FileResponse(catalogue.model(key)["path"], filename=key, media_type="application/octet-stream")

    @app.get("/api/models/{key}/gradcam/{name}", response_class=FileResponse, responses=PNG,
             summary="a Grad-CAM overlay of an image model (its record lists them under 'gradcam')")
    async def model_gradcam(key: str, name: str) -> FileResponse:
        return FileResponse(flow.gradcam_file(key, name), media_type="image/png")

    @app.get("/api/models/{key}/bundle", summary="the model's ONNX bundle (model.export) as a zip")
    async def model_bundle(key: str) -> FileResponse:
        catalogue.model(key)
        path = await run_in_threadpool(flow.bundle, key)
        return FileResponse(path, filename=f"{key}.zip", media_type="application/zip")


def frame_import(raw: bytes) -> FrameImport:
    """POST /api/frames's JSON body; a FieldError naming the first field at fault."""
    try:
        return FrameImport.model_validate_json(raw)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first.get("loc", ())) or "body"
        raise FieldError(field, f"{first.get('msg', 'invalid')}; send {{\"path\": \"data/train.csv\"}} or upload "
                                "the file as the multipart field 'file'.") from None


def _add_guards(app: FastAPI, config: FlowConfig) -> None:
    """The token rule (every page and API call when a token is set; ?token= sets a cookie for the pages that
    follow) and no cross-site POST (a form on another site cannot drive this one)."""

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Response:
        origin = request.headers.get("origin")
        if request.method == "POST" and origin and urlsplit(origin).netloc != request.headers.get("host"):
            return JSONResponse({"error": f"origin: {origin!r} is another site; Flow takes requests from its own "
                                          "pages and from scripts only.", "field": "origin"}, status_code=403)
        if config.token is None:
            return await call_next(request)
        given = _given_token(request)
        if given is None or not hmac.compare_digest(given.encode(), config.token.encode()):
            return JSONResponse({"error": "token: missing or wrong; open Flow with ?token=<the token it printed at "
                                          "start> or send the header 'Authorization: Bearer <token>'.",
                                 "field": "token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        response = await call_next(request)
        if request.query_params.get("token") is not None:
            response.set_cookie(TOKEN_COOKIE, config.token, httponly=True, samesite="strict")
        return response


def _given_token(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return request.query_params.get("token") or request.cookies.get(TOKEN_COOKIE)


def _add_error_handlers(app: FastAPI) -> None:
    """Refusals as 4xx JSON naming the field (a page for an unknown id); anything else a 500 without its
    traceback."""

    @app.exception_handler(FieldError)
    async def refused(_: Request, exc: FieldError) -> JSONResponse:
        return json_error(exc.status, str(exc), exc.field)

    @app.exception_handler(NotInCatalogue)
    async def missing(request: Request, exc: NotInCatalogue) -> Response:
        if not request.url.path.startswith("/api/"):
            return pages.render("missing.html", 404, kind=exc.kind, key=exc.key)
        return json_error(404, f"{exc.kind}: {exc.key!r} is no {exc.kind} of this Flow; GET /api/{exc.kind}s lists "
                          "them.", exc.kind)

    add_json_error_handlers(app, "Flow could not answer this request", log)
