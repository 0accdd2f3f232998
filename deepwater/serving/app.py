"""The FastAPI application: POST /predict (JSON rows), POST /predict/images (multipart uploads), GET /health,
GET /model; OpenAPI docs at /docs.

The event loop moves bytes and reads small requests itself (a handoff to a thread costs more than reading a few
rows); larger ones are parsed, encoded and answered on worker threads. The micro-batcher scores the rows of the
requests that came together in one network call. Every refusal is a 4xx JSON {"error": ..., "field": ...};
anything unexpected is a 500 with a one-line message, its traceback only in the server's log.
"""
from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import numpy as np
import orjson
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from deepwater.deploy import inference
from deepwater.deploy.inference import Scorer
from deepwater.serving.batcher import MicroBatcher
from deepwater.serving.config import ServeConfig
from deepwater.serving.json_errors import add_json_error_handlers, json_error
from deepwater.serving.limits import BodyLimit
from deepwater.serving.rows import RequestError, RowEncoder, check_rows
from deepwater.storage.saved_models import json_values
from deepwater.version import __version__

log = logging.getLogger("deepwater.serving")
INLINE_BYTES = 16 * 1024  # a body up to this size is read on the event loop (an MNIST row is about 9 KB)
INLINE_ROWS = 16  # an answer of up to this many rows is written on the event loop


class PredictRequest(BaseModel):
    """POST /predict's body."""

    rows: list[dict[str, Any]] = Field(description="one object per row: {column: value} for a dataset model; "
                                                   '{"image": base64} or {"uri": "https://..." or a path under '
                                                   "--allow-dir} for an image model")


class PredictResponse(BaseModel):
    """POST /predict's answer."""

    predictions: list[dict[str, Any]] = Field(description='per row, in order: {"predict": label or value, '
                                                          '"<class>": probability, ...}')


def create_app(config: ServeConfig, scorer: Scorer | None = None) -> FastAPI:
    """The service over the bundle config.bundle (or an already loaded `scorer` of it)."""
    scorer = scorer or inference.load(config.bundle, device=config.device, threads=config.threads)
    encoder = RowEncoder(scorer, config)
    batcher = MicroBatcher(scorer.outputs, config.max_batch, config.max_wait_ms / 1000.0)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        batcher.start()
        yield
        await batcher.stop()
        scorer.close()

    app = FastAPI(title="deepwater prediction service", version=__version__, lifespan=lifespan,
                  description=f"Scores the bundle {scorer.bundle['model_id']!r} ({scorer.bundle['network']}).")
    app.state.scorer, app.state.batcher = scorer, batcher
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    _add_error_handlers(app)
    model = describe(scorer, encoder, config)

    async def answer(x: np.ndarray) -> Response:
        out = await batcher.score(x)
        body = _predictions_json(scorer, out) if len(out) <= INLINE_ROWS else \
            await run_in_threadpool(_predictions_json, scorer, out)
        return Response(body, media_type="application/json")

    @app.get("/health", summary="the service is up")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/model", summary="what the service scores: inputs, classes, versions, limits")
    async def model_info() -> dict[str, Any]:
        return {**model, "batching": {"max_batch": batcher.max_batch, "max_wait_ms": config.max_wait_ms,
                                      "requests": batcher.requests, "network_calls": batcher.calls}}

    @app.post("/predict", response_model=PredictResponse, summary="score rows",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": PredictRequest.model_json_schema()}}}})
    async def predict(request: Request) -> Response:
        body = await request.body()
        if len(body) <= INLINE_BYTES:
            return await answer(_encode_body(encoder, body, config.max_rows))
        return await answer(await run_in_threadpool(_encode_body, encoder, body, config.max_rows))

    @app.post("/predict/images", response_model=PredictResponse, summary="score uploaded image files")
    async def predict_images(images: list[UploadFile] = File(description="image files (multipart field 'images')")
                             ) -> Response:
        if len(images) > config.max_rows:
            raise RequestError(413, "images", f"{len(images):,} files are more than the {config.max_rows:,} one "
                                              "request may carry.")
        data = [await image.read() for image in images]
        fields = [f"images[{i}] ({image.filename})" for i, image in enumerate(images)]
        return await answer(await run_in_threadpool(encoder.encode_images, data, fields))

    return app


def app_from_environment() -> FastAPI:
    """The app of the settings `deepwater serve` put in the environment (uvicorn's factory for --workers N)."""
    return create_app(ServeConfig.from_environment())


def describe(scorer: Scorer, encoder: RowEncoder, config: ServeConfig) -> dict[str, Any]:
    """GET /model's answer: the model, its inputs and response, the versions and the service's limits."""
    bundle, inputs = scorer.bundle, scorer.inputs
    if encoder.images:
        described = {"kind": "image", "column": inputs.column, "shape": json_values(vars(inputs.shape)),
                     "row_keys": ["image", *encoder.uri_keys], "upload": "/predict/images"}
    else:
        described = {"kind": "dataset",
                     "columns": [{"name": c.name, "type": "number"} for c in inputs.encoder.numeric]
                     + [{"name": c.name, "type": "category", "levels": c.levels} for c in inputs.encoder.categorical],
                     "ignored": inputs.encoder.dropped}
    response = scorer.response
    return json_values({
        "model_id": bundle["model_id"], "network": bundle["network"], "backend": bundle["backend"],
        "problem_type": bundle["problem_type"], "inputs": described,
        "response": {"name": response.name, "kind": response.kind, "classes": response.classes},
        "versions": bundle["versions"], "device": scorer.device,
        "limits": {"max_rows": config.max_rows, "max_body_bytes": config.max_body_bytes,
                   "max_image_pixels": config.max_image_pixels, "local_files": config.allow_dir is not None}})


def _encode_body(encoder: RowEncoder, body: bytes, max_rows: int) -> np.ndarray:
    """The network input of a /predict body."""
    try:
        request = _parsed(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise RequestError(422, "body", f"is not JSON ({error}); send {{\"rows\": [{{column: value}}, ...]}}.") \
            from None
    except RecursionError:  # Python's parser gives up on arrays or objects nested about 1,000 deep
        raise RequestError(422, "body", "nests arrays or objects too deeply to be read; a request is 3 levels "
                                        'deep: send {"rows": [{column: value, ...}, ...]}.') from None
    if not isinstance(request, dict) or "rows" not in request:
        raise RequestError(422, "rows", 'missing: send {"rows": [{column: value, ...}, ...]}.')
    return encoder.encode_rows(check_rows(request["rows"], max_rows))


def _parsed(body: bytes) -> Any:
    """The JSON value of `body`: orjson's reading, or where orjson refuses it (NaN, Infinity, integers beyond 64
    bits, deep nesting) Python's, which reads those or gives the errors the service names."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)


def _predictions_json(scorer: Scorer, out: np.ndarray) -> bytes:
    """{"predictions": [...]} of the outputs, with scorer.predict()'s columns; missing values null."""
    return orjson.dumps({"predictions": scorer.records(out)}, option=orjson.OPT_SERIALIZE_NUMPY)


def _add_error_handlers(app: FastAPI) -> None:
    """Refusals as 4xx JSON naming the field; anything else a 500 without its traceback."""

    @app.exception_handler(RequestError)
    async def refused(_: Request, exc: RequestError) -> JSONResponse:
        return json_error(exc.status, f"{exc.field}: {exc.message}", exc.field)

    @app.exception_handler(ClientDisconnect)
    async def gone(_: Request, exc: ClientDisconnect) -> Response:
        return Response(status_code=400)  # nobody reads it; nothing to log

    add_json_error_handlers(app, "the service could not score this request", log)
