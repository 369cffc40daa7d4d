"""The web application of ``cnnlab serve``: the page, its API and the offline API docs.

Handlers are plain ``def`` functions, so FastAPI runs them in its thread pool and a slow model
call never blocks the event loop. Every refusal is a 4xx with ``{"detail": "<one line>"}``:
:class:`~cnnlab.serve.errors.RequestError` carries its status, any other
:class:`~cnnlab.errors.CnnlabError` is a 400, and FastAPI's own validation errors are folded into
one line; a 500 means a bug in cnnlab, never bad input. Request bodies are capped by
:class:`BodyLimit` before FastAPI parses them, so an oversized upload is a 413 however it is sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import torch
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from cnnlab.errors import CnnlabError
from cnnlab.serve.errors import NOT_FOUND, TOO_LARGE, UNPROCESSABLE, RequestError
from cnnlab.serve.images import (
    check_size,
    decode_upload,
    gray_plane,
    limit_text,
    prepare_drawing,
)
from cnnlab.serve.kernel import kernel_demo, named_kernels
from cnnlab.serve.models import ServedRun, load_runs
from cnnlab.version import __version__

#: The default of ``--max-upload-mb``.
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: Room for the multipart framing and form fields around the files of one request.
FORM_OVERHEAD = 64 * 1024
#: Files one ``/api/predict`` request may carry.
MAX_FILES = 256
STATIC = Path(__file__).parent / "static"
DOCS_ASSETS = "/static/docs"
RUN_FIELD = "a run id of /api/runs [the first]"


class KernelRequest(BaseModel):
    """The kernel demo's request (see :func:`cnnlab.serve.kernel.kernel_demo`)."""

    image: str
    kernel: str = "identity"
    padding: int | str = "valid"
    stride: int = 1
    pool: str | None = None


def create_app(
    runs: Sequence[str | Path], *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
) -> FastAPI:
    """The application serving ``runs`` (run or model folders; the first is the default).

    Every run is loaded here, so a folder that cannot be served is a
    :class:`~cnnlab.errors.CnnlabError` naming it before any request is answered.
    ``max_upload_bytes`` bounds the files of one request together (plus the form's framing).
    """
    if max_upload_bytes < 1:
        raise CnnlabError(f"--max-upload-mb: {max_upload_bytes} bytes is not a size; give > 0")
    served = {run.id: run for run in load_runs(runs)}
    app = FastAPI(
        title="cnnlab serve",
        version=__version__,
        description="Try, teach and review cnnlab's image classifiers.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.runs = served
    app.state.max_upload_bytes = max_upload_bytes
    app.add_middleware(BodyLimit, limit=max_upload_bytes)
    _add_error_handlers(app)
    _add_api(app, served, max_upload_bytes)
    _add_review(app, served)
    _add_pages(app)
    return app


def pick_run(runs: dict[str, ServedRun], run: str | None) -> ServedRun:
    """The run a request names (the first served one when it names none), or a 404."""
    if run is None or not run.strip():
        return next(iter(runs.values()))
    if run not in runs:
        raise RequestError(
            f"run {run!r} is not served; the served runs are {', '.join(runs)}", NOT_FOUND
        )
    return runs[run]


def _upload_name(upload: UploadFile, number: int) -> str:
    """The upload's file name on one printable line, for answers and error messages."""
    name = " ".join("".join(c for c in (upload.filename or "") if c.isprintable()).split())
    return name[:120] or f"file {number}"


def _read_upload(upload: UploadFile, number: int, limit: int) -> tuple[bytes, str]:
    name = _upload_name(upload, number)
    if upload.size is not None:
        check_size(upload.size, limit, name)
    data = upload.file.read(limit + 1)
    check_size(len(data), limit, name)
    return data, name


# ----------------------------------------------------------------------------- the API
def _add_api(app: FastAPI, runs: dict[str, ServedRun], limit: int) -> None:
    @app.get("/api/runs", tags=["models"])
    def list_runs() -> list[dict]:
        """The served runs: classes, input size, channels, bit depth, test accuracy."""
        return [run.describe() for run in runs.values()]

    @app.post("/api/predict", tags=["models"])
    def predict(
        file: Annotated[list[UploadFile], File(description="images (PNG, JPEG, TIFF)")],
        run: Annotated[str | None, Form(description=RUN_FIELD)] = None,
    ) -> dict:
        """Class probabilities of each uploaded image; ``class`` is the first image's top class."""
        served = pick_run(runs, run)
        if len(file) > MAX_FILES:
            raise RequestError(
                f"{len(file)} files in one request; send at most {MAX_FILES}", TOO_LARGE
            )
        arrays, names, depths = [], [], []
        for number, upload in enumerate(file, 1):
            data, name = _read_upload(upload, number, limit)
            array, depth = decode_upload(data, name)
            arrays.append(array)
            names.append(name)
            depths.append(depth)
        probabilities = served.probabilities(served.prepare(arrays, names, depths))
        predictions = [
            {
                "file": name,
                "class": served.class_names[int(row.argmax())],
                "probabilities": served.named(row),
            }
            for name, row in zip(names, probabilities, strict=True)
        ]
        first = predictions[0]
        return {
            "run": served.id,
            "predictions": predictions,
            "class": first["class"],
            "probabilities": first["probabilities"],
        }

    @app.post("/api/analyze", tags=["models"])
    def analyze(
        file: Annotated[UploadFile, File(description="the canvas as PNG, or an image file")],
        source: Annotated[str, Form(description="drawing (made MNIST-like) or file")] = "file",
        run: Annotated[str | None, Form(description=RUN_FIELD)] = None,
    ) -> dict:
        """Probabilities, every layer's activations and the Grad-CAM map for one image."""
        start = time.perf_counter()
        served = pick_run(runs, run)
        if source not in ("drawing", "file"):
            raise RequestError(f"source {source!r}: give 'drawing' or 'file'", UNPROCESSABLE)
        data, name = _read_upload(file, 1, limit)
        array, depth = decode_upload(data, name)
        if source == "drawing":
            if not served.digits:
                raise RequestError(
                    f"run {served.id} takes {served.channels}-channel {served.size[0]}x"
                    f"{served.size[1]} {served.bit_depth}-bit images, not drawn digits "
                    "(gray 28x28 8-bit); drop an image file instead",
                    UNPROCESSABLE,
                )
            image = torch.from_numpy(prepare_drawing(gray_plane(array))[None])
        else:
            image = served.prepare([array], [name], [depth])[0]
        result = served.analyze(image)
        result["milliseconds"] = round((time.perf_counter() - start) * 1000.0, 2)
        return result

    @app.post("/api/kernel", tags=["teach"])
    def kernel(request: KernelRequest) -> dict:
        """A kernel (named or typed 'a,b,c;d,e,f;g,h,i') applied to the image, sizes explained."""
        if len(request.image) > 2 * limit:
            raise RequestError(
                f"image: the data URL ({len(request.image):,} characters) is larger than "
                f"{limit_text(limit)}",
                TOO_LARGE,
            )
        return kernel_demo(
            request.image, request.kernel, request.padding, request.stride, request.pool
        )

    @app.get("/api/kernels", tags=["teach"])
    def kernels() -> list[dict]:
        """The named kernels and their matrices."""
        return named_kernels()


def _add_review(app: FastAPI, runs: dict[str, ServedRun]) -> None:
    """The review router of :mod:`cnnlab.serve.review` (``/api/review...``)."""
    from cnnlab.serve.review import review_router

    app.include_router(review_router(runs))


# ----------------------------------------------------------------------------- pages
def _add_pages(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        page = STATIC / "index.html"
        if not page.is_file():
            raise RequestError("the page is not installed (cnnlab/serve/static)", NOT_FOUND)
        return FileResponse(page)

    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        swagger_ui_path = None
    if swagger_ui_path is not None:
        # Mounted before /static, which would otherwise claim these paths.
        app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if swagger_ui_path is None:
            return HTMLResponse(_plain_docs(app))
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{app.title} - API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            # Swagger UI would otherwise send the schema to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )

    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")


def _plain_docs(app: FastAPI) -> str:
    """The routes as a plain list, when Swagger UI's files are not installed."""
    from html import escape

    rows = []
    for path, methods in app.openapi().get("paths", {}).items():
        for method, operation in methods.items():
            summary = operation.get("description") or operation.get("summary", "")
            rows.append(
                f"<tr><td>{escape(method.upper())}</td><td><code>{escape(path)}</code></td>"
                f"<td>{escape(summary)}</td></tr>"
            )
    return (
        f"<!doctype html><title>{escape(app.title)} - API</title><h1>{escape(app.title)} API</h1>"
        f"<p>The schema: <a href='{app.openapi_url}'>{app.openapi_url}</a></p>"
        f"<table>{''.join(rows)}</table>"
    )


# ----------------------------------------------------------------------------- errors
def _one_line(detail: object) -> str:
    text = detail if isinstance(detail, str) else json.dumps(detail, default=str)
    return " ".join(text.split()) or "error"


def _error(status: int, detail: object) -> JSONResponse:
    return JSONResponse({"detail": _one_line(detail)}, status_code=status)


def _validation_detail(error: RequestValidationError) -> str:
    """FastAPI's list of validation errors as one line: ``file: field required``.

    Pydantic's own wording names its internals (``file.0: value error, expected uploadfile``,
    ``1: json decode error``); the problems a client can make are said in its terms instead.
    """
    problems = [_problem(problem) for problem in error.errors()]
    text = problems[0] if problems else "invalid request"
    return text + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")


def _problem(problem: dict) -> str:
    kind = problem.get("type", "")
    loc = [part for part in problem.get("loc", ()) if part != "body"]
    message = str(problem.get("msg", "invalid")).lower()
    if kind == "json_invalid":
        reason = str((problem.get("ctx") or {}).get("error", "")).lower() or "not valid JSON"
        at = f" (at character {loc[0]})" if loc and isinstance(loc[0], int) else ""
        return f"the body must be JSON: {reason}{at}"
    if not loc:  # the body as a whole: none, or JSON that is not an object
        if kind == "missing":
            return "the body is empty; send a JSON object (see /docs)"
        return "the body must be a JSON object (see /docs)"
    field = str(loc[0])
    if "uploadfile" in message.replace(" ", ""):  # a form field where a file belongs
        return f"{field}: send the image as a multipart upload in the field '{field}'"
    where = ".".join(str(part) for part in loc)
    return f"{where}: {message}"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CnnlabError)
    def cnnlab_error(request: Request, error: CnnlabError) -> JSONResponse:
        return _error(getattr(error, "status", 400), str(error))

    @app.exception_handler(HTTPException)
    def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return _error(error.status_code, error.detail)

    @app.exception_handler(RequestValidationError)
    def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        return _error(UNPROCESSABLE, _validation_detail(error))


class _TooLarge(Exception):
    """Raised into the application when a request body passes :class:`BodyLimit`'s limit."""


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes of files is answered 413, unread.

    The body may hold :data:`FORM_OVERHEAD` bytes more than ``limit`` for the multipart framing
    and the form fields, so that a file of exactly ``limit`` bytes passes; each file is then
    checked against ``limit`` itself (:func:`~cnnlab.serve.images.check_size`). A declared
    ``Content-Length`` over that is refused before the body is read; a chunked body is counted
    as it arrives, and when it passes the limit the application's reading stops and whatever
    it would have answered is replaced by the 413.
    """

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.body_limit = limit + FORM_OVERHEAD

    def _message(self, size: int | None) -> str:
        told = f" ({size:,} bytes)" if size is not None else ""
        return (
            f"the request body{told} is larger than {limit_text(self.limit)}; send smaller or "
            "fewer files, or start cnnlab serve with a larger --max-upload-mb"
        )

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.body_limit:
            await self._refuse(scope, receive, send, int(declared))
            return
        received = 0
        exceeded = False
        answered = False

        async def counted() -> dict:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.body_limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded(message: dict) -> None:
            nonlocal answered
            if not exceeded:
                await send(message)
            elif not answered:
                answered = True
                await self._refuse(scope, receive, send, None)

        try:
            await self.app(scope, counted, guarded)
        except _TooLarge:
            if not answered:
                answered = True
                await self._refuse(scope, receive, send, None)

    async def _refuse(self, scope, receive, send, size: int | None) -> None:
        # The same response class as every other refusal: one format for all the errors.
        await _error(TOO_LARGE, self._message(size))(scope, receive, send)
