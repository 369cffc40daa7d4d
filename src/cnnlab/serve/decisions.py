"""The review's decisions on one run's images, kept in ``RUN/relabel.csv``.

The file is the truth, not the memory of one server: two ``cnnlab serve`` processes may review
the same run, and each decision is a read-merge-write of the file under an exclusive
``fcntl.flock`` on ``RUN/.relabel.lock``, so a decision saved by the other process is read back
and kept rather than overwritten. The file is replaced atomically (:mod:`cnnlab.files`), so a
reader without the lock sees the old file or the new one; a page that lists decisions re-reads
the file when it has changed (a new file after every write, so its inode tells).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from cnnlab.data.relabel import APPLIED_NAME, Decision, parse_decisions, write_decisions
from cnnlab.errors import CnnlabError

DECISIONS_NAME = "relabel.csv"
LOCK_NAME = ".relabel.lock"
#: Seconds a decision waits for another process's write (a read and a small rewrite).
LOCK_TIMEOUT = 10.0
_POLL = 0.01
_UNREAD = object()


class DecisionsBusy(CnnlabError):
    """Another process held the decisions file's lock for longer than :data:`LOCK_TIMEOUT`."""


class DecisionStore:
    """The decisions on one run's images (``RUN/relabel.csv``), shared with other processes.

    A run trained with decisions (``--relabel``) and not reviewed yet starts from the decisions
    it was trained with (its ``relabel-applied.csv``), so that a second review adds to the
    first. Decisions on images the review no longer lists are kept as they are. A corrupt file
    is a one-line error naming it, at start and at every later read: writing over it would lose
    decisions a person made.
    """

    def __init__(self, run_dir: Path) -> None:
        self.folder = Path(run_dir)
        self.path = self.folder / DECISIONS_NAME
        self.lock_path = self.folder / LOCK_NAME
        real = Path(os.path.realpath(self.path))
        if real.parent != Path(os.path.realpath(self.folder)):
            raise CnnlabError(
                f"{self.path}: a link to a file outside the run folder; the review writes only "
                "inside the run folder, replace the link with a file"
            )
        self._lock = threading.Lock()  # one writer per process; flock orders the processes
        self._seen: object = _UNREAD  # the file's identity when last read (None: no file)
        self.decisions: dict[str, Decision] = {}
        self.refresh()

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            return None
        return status.st_ino, status.st_mtime_ns, status.st_size

    def _read(self) -> dict[str, Decision]:
        source = self.path if self.path.exists() else self.folder / APPLIED_NAME
        try:
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as error:
            raise CnnlabError(f"{source}: cannot read the review decisions ({error})") from None
        return {d.path: d for d in parse_decisions(text, str(source))}

    def refresh(self) -> dict[str, Decision]:
        """The decisions as the file holds them now (re-read only when it has changed)."""
        identity = self._identity()
        if identity != self._seen:
            decisions = self._read()
            self.decisions, self._seen = decisions, identity
        return self.decisions

    def get(self, key: str) -> Decision | None:
        return self.decisions.get(key)

    def set(self, key: str, decision: Decision | None) -> None:
        """Records (or with None removes) the decision on ``key``, merged into the file.

        Under the lock the file is read afresh, changed in ``key`` only and written back, so
        that decisions saved meanwhile by another process survive. A failed write leaves the
        file and the memory as they were.
        """
        with self._lock, exclusive(self.lock_path):
            changed = dict(self._read())
            if decision is None:
                changed.pop(key, None)
            else:
                changed[key] = decision
            write_decisions(self.path, changed.values())
            self.decisions, self._seen = changed, self._identity()


@contextlib.contextmanager
def exclusive(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Holds an exclusive ``flock`` on ``path`` (created, and removed again on release).

    Waits at most ``timeout`` seconds (:data:`LOCK_TIMEOUT` by default). The lock dies with
    its process, so a killed server never blocks the next; a lock file it leaves behind is
    reused. A link is never followed: the review writes nothing outside the run folder.
    """
    timeout = LOCK_TIMEOUT if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as error:
                    if error.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise DecisionsBusy(
                            f"{path.parent / DECISIONS_NAME}: another process has been saving "
                            f"decisions for over {timeout:g} s; try again"
                        ) from None
                    time.sleep(_POLL)
            # The holder before us may have removed the file after we opened it: lock the new one.
            try:
                same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
