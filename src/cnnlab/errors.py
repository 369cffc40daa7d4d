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


class TrainingDiverged(CnnlabError):
    """The loss stopped being a number: resuming from a checkpoint would diverge again."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run; the message says how to continue it."""


# What a user can do about the operating system's common refusals, by errno name.
_OS_HINTS = {
    "ENOSPC": "free some disk space",
    "EDQUOT": "free some disk space (the disk quota is full)",
    "EROFS": "choose a writable place",
    "EACCES": "check its permissions, or choose another place",
    "EPERM": "check its permissions, or choose another place",
    "ENOTDIR": "a part of the path is a file, not a folder; choose another path",
    "EISDIR": "it is a folder; give a file name",
    "ENOENT": "check the path",
    "ELOOP": "remove the loop of symbolic links",
    "ENAMETOOLONG": "choose a shorter name",
    "EIO": "the disk reported an error; check it and try again",
    "EEXIST": "remove it or choose another name",
    "ENOTEMPTY": "remove what is inside or choose another name",
    "EMFILE": "too many open files; raise the limit (ulimit -n)",
}


def describe_os_error(error: OSError) -> str:
    """One line for an operating-system error: the path, what happened, what to do."""
    import errno as errno_names

    name = errno_names.errorcode.get(error.errno or 0, "")
    what = (error.strerror or str(error) or type(error).__name__).rstrip(".")
    where = error.filename if error.filename is not None else "a file"
    if error.filename2 is not None:
        where = f"{error.filename} -> {error.filename2}"
    hint = _OS_HINTS.get(name, "check the path and try again")
    return f"{where}: {what[:1].lower()}{what[1:]}; {hint}"
