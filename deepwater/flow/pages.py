"""Flow's pages: server-rendered HTML (jinja2 templates shipped with the package) over the same Flow object the API
uses. A form posts to its page; a refusal shows the page again with the message beside the field (status 4xx)."""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from deepwater.flow.charts import history_svg, roc_svg
from deepwater.flow.forms import form_hyper_params, form_parameters, grouped_fields, offered
from deepwater.flow.refusals import FieldError
from deepwater.flow.uploads import read_upload
from deepwater.flow.workspace import Flow
from deepwater.version import __version__

TEMPLATES = Environment(loader=PackageLoader("deepwater.flow", "templates"), autoescape=select_autoescape())
ACTIVE = ("queued", "running")


def render(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    """Template `name` filled with `values`."""
    return HTMLResponse(TEMPLATES.get_template(name).render(version=__version__, **values), status_code=status)


def see(url: str) -> RedirectResponse:
    """A redirect after a form's POST (303: the browser GETs `url`)."""
    return RedirectResponse(url, status_code=303)


def add_pages(app: FastAPI, flow: Flow) -> None:
    """The pages: frames, a frame, build a model, jobs, a job, models, a model, a grid."""
    catalogue = flow.catalogue

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return see("/frames")

    @app.get("/frames", include_in_schema=False)
    async def frames_page() -> Response:
        return render("frames.html", frames=catalogue.frames(), allow_dirs=flow.config.allow_dirs,
                      max_upload_mb=flow.config.max_upload_mb)

    @app.post("/frames/import", include_in_schema=False)
    async def import_frame(request: Request) -> Response:
        from_upload = request.headers.get("content-type", "").startswith("multipart/form-data")
        try:
            if from_upload:
                data, filename, name = await read_upload(request, flow.config.max_upload_bytes)
                record = await run_in_threadpool(flow.import_upload, data, filename, name)
            else:
                form = await request.form()
                record = await run_in_threadpool(flow.import_path, str(form.get("path", "")),
                                                 str(form.get("name", "")) or None)
        except FieldError as error:
            return render("frames.html", error.status, frames=catalogue.frames(), error=error,
                          allow_dirs=flow.config.allow_dirs, max_upload_mb=flow.config.max_upload_mb)
        return see(f"/frames/{record['id']}")

    @app.get("/frames/{key}", include_in_schema=False)
    async def frame_page(key: str) -> Response:
        return render("frame.html", frame=await run_in_threadpool(flow.frame_page, key))

    @app.get("/build", include_in_schema=False)
    async def build_page(frame: str | None = None, checkpoint: str | None = None) -> Response:
        values: dict[str, Any] = {"frame": frame, "checkpoint": checkpoint}
        if checkpoint and catalogue.has("models", checkpoint):
            request = catalogue.model(checkpoint)["request"]
            values.update(frame=frame or request["frame"], y=request["y"], x=request["x"])
        return _build_form(flow, values, {})

    @app.post("/build", include_in_schema=False)
    async def build(request: Request) -> Response:
        form = await request.form()
        values = {"frame": form.get("frame"), "y": form.get("y") or None, "x": form.getlist("x") or None,
                  "checkpoint": form.get("checkpoint") or None}
        params, errors = form_parameters(form)
        hyper, grid_errors = form_hyper_params(form)
        errors.update(grid_errors)
        if values["checkpoint"]:
            params["checkpoint"] = values["checkpoint"]
        if errors:
            return _build_form(flow, {**values, "form": form}, errors, 422)
        body = {"frame": values["frame"], "y": values["y"], "x": values["x"], "params": params}
        try:
            if hyper:
                job = await run_in_threadpool(flow.grid, {**body, "hyper_params": hyper})
            else:
                job = await run_in_threadpool(flow.train, body)
        except FieldError as error:
            field = error.field.removeprefix("params.").removeprefix("hyper_params.")
            return _build_form(flow, {**values, "form": form}, {field: error.message}, error.status)
        return see(f"/jobs/{job['id']}")

    @app.get("/jobs", include_in_schema=False)
    async def jobs_page() -> Response:
        return render("jobs.html", jobs=catalogue.jobs())

    @app.get("/jobs/{key}", include_in_schema=False)
    async def job_page(key: str) -> Response:
        return _job_page(catalogue.job(key))

    @app.get("/jobs/{key}/chart", include_in_schema=False)
    async def job_chart(key: str) -> Response:
        return HTMLResponse(history_svg(catalogue.job(key)["history"]))

    @app.post("/jobs/{key}/resume", include_in_schema=False)
    async def resume(key: str) -> Response:
        try:
            resumed = await run_in_threadpool(flow.resume, key)
        except FieldError as error:
            return _job_page(catalogue.job(key), error.status, refresh=False, resume_error=error)
        return see(f"/jobs/{resumed['id']}")

    @app.get("/grids/{key}", include_in_schema=False)
    async def grid_page(key: str) -> Response:
        return render("grid.html", grid=catalogue.grid(key))

    @app.post("/jobs/{key}/cancel", include_in_schema=False)
    async def cancel(key: str) -> Response:
        flow.jobs.cancel(key)
        return see(f"/jobs/{key}")

    @app.get("/models", include_in_schema=False)
    async def models_page() -> Response:
        return render("models.html", models=catalogue.models())

    @app.get("/models/{key}", include_in_schema=False)
    async def model_page(key: str) -> Response:
        return _model_page(flow, key)

    @app.post("/models/{key}/predict", include_in_schema=False)
    async def predict(request: Request, key: str) -> Response:
        form = await request.form()
        try:
            record = await run_in_threadpool(flow.predict, key, form.get("frame"))
        except FieldError as error:
            return _model_page(flow, key, error)
        return see(f"/frames/{record['id']}")


def _job_page(job: dict[str, Any], status: int = 200, refresh: bool = True, **extra: Any) -> Response:
    """A job's page: its state and scoring-history chart, refreshed while it is queued or running (and `refresh`)."""
    return render("job.html", status, job=job, chart=history_svg(job["history"]),
                  active=refresh and job["status"] in ACTIVE, **extra)


def _model_page(flow: Flow, key: str, error: FieldError | None = None) -> Response:
    """A model's page: its summary, actions, charts (scoring history, ROC curves), metrics, variable importances,
    cross-validation summary, Grad-CAM overlays and parameters; `error`: a refused prediction."""
    model = flow.catalogue.model(key)
    rocs = {part: roc_svg(m["roc"], m["values"].get("auc")) for part, m in model["metrics"].items() if m.get("roc")}
    return render("model.html", error.status if error else 200, model=model, chart=history_svg(model["history"]),
                  rocs=rocs, frames=flow.catalogue.frames(), error=error)


def _build_form(flow: Flow, values: dict[str, Any], errors: dict[str, str], status: int = 200) -> Response:
    """The Build a model page: the frame picker, y and x from the chosen frame, the parameter groups."""
    catalogue = flow.catalogue
    frames = catalogue.frames()
    frame = next((f for f in frames if f["id"] == values.get("frame")), frames[0] if frames else None)
    beside = set(offered()) | {"y", "checkpoint"}  # the fields a message can stand beside
    general = [f"{field}: {message}" for field, message in errors.items() if field not in beside]
    errors = {field: message for field, message in errors.items() if field in beside}
    if general:
        errors["form"] = " ".join(general)
    return render("build.html", status, frames=frames, frame=frame, groups=grouped_fields(), errors=errors,
                  form=values.get("form") or {}, y=values.get("y") or (frame or {}).get("setup", {}).get(
                      "response_guess"), x=values.get("x") or [], checkpoint=values.get("checkpoint"))
