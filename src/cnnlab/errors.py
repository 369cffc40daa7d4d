"""The one exception type that users see.

Every problem a user can fix (a bad file, a wrong option, a model that does not fit the data)
raises :class:`CnnlabError` with a single line that names the file or option and says what to do.
The CLI prints that line and exits non-zero instead of showing a traceback; anything else that
escapes is a bug in cnnlab, not in the user's input.
"""

from __future__ import annotations


class CnnlabError(Exception):
    """A problem with the user's input, explained in one line."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
