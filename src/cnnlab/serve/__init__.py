"""``cnnlab serve``: a local web page to try a model, teach convolutions and review mistakes.

:func:`create_app` builds the FastAPI application for one or more run folders; the CLI serves it
with uvicorn on 127.0.0.1. FastAPI and uvicorn are the optional ``serve`` extra, so this package
is imported only by the ``serve`` command and by code that asks for it.
"""

from __future__ import annotations

from cnnlab.serve.app import DEFAULT_MAX_UPLOAD_BYTES, create_app
from cnnlab.serve.images import prepare_drawing
from cnnlab.serve.models import ServedRun, load_runs

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "ServedRun", "create_app", "load_runs", "prepare_drawing"]
