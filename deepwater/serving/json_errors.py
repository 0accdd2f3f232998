"""Errors as JSON, the same on every HTTP face (the prediction service and Flow): {"error": ..., "field": ...}."""
from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException


def json_error(status: int, message: str, field: str | None = None) -> JSONResponse:
    """A refusal as JSON: the message, and the field of the request it names when there is one."""
    return JSONResponse({"error": message, **({"field": field} if field else {})}, status_code=status)


def add_json_error_handlers(app: FastAPI, failed: str, log: logging.Logger) -> None:
    """A body FastAPI could not validate is a 422 naming its first bad field, an HTTPException keeps its status,
    and anything else is a 500 saying `failed` (e.g. "the service could not score this request"), its traceback
    in `log` only."""

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
        return json_error(422, f"{field}: {first.get('msg', 'invalid')}", field)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return json_error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return json_error(500, f"{failed} ({type(exc).__name__}); see its log.")
