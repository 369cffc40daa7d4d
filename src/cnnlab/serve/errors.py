"""The server's refusals: a :class:`~cnnlab.errors.CnnlabError` that knows its HTTP status.

Every route turns a request it cannot serve into one of these, and the application answers it
as ``{"detail": "<one line>"}`` with the status; anything else that escapes a route is a bug.
"""

from __future__ import annotations

from cnnlab.errors import CnnlabError

#: The statuses the server gives, by what went wrong.
BAD_REQUEST = 400
NOT_FOUND = 404
TOO_LARGE = 413
NOT_AN_IMAGE = 415
UNPROCESSABLE = 422


class RequestError(CnnlabError):
    """A request the server refuses, with the HTTP status that says why."""

    def __init__(self, message: str, status: int = BAD_REQUEST) -> None:
        super().__init__(message)
        self.status = status
