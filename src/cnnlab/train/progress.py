"""Where a progress bar can be drawn: a Jupyter widget, a terminal's text bar, or nowhere.

A notebook gets tqdm's widget bar when ipywidgets is there; without it, plain lines (tqdm's own
``tqdm.auto`` would fall back to a text bar and warn "IProgress not found" instead). A terminal
gets a text bar; anything else (a log file, a pipe, CI) gets no carriage-return bars at all,
only the lines its caller prints. ``TQDM_DISABLE`` turns bars off everywhere. cnnlab never
colours its output, so ``NO_COLOR`` holds as it is.

This module imports nothing of cnnlab and no tqdm front end at import time: importing
``tqdm.auto`` alone is enough to print the warning in a notebook without ipywidgets.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Literal, TextIO

BarKind = Literal["widget", "text"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel that can show widgets (notebook, lab, VS Code, Colab).

    The same test as ``tqdm.autonotebook``: an IPython shell of ipykernel's, except the Qt
    console and Spyder, which run that kernel too but draw no widgets.
    """
    zmqshell = sys.modules.get("ipykernel.zmqshell")
    ipython = sys.modules.get("IPython")
    if zmqshell is None or ipython is None:
        return False
    shell = ipython.get_ipython()
    if not isinstance(shell, zmqshell.ZMQInteractiveShell):
        return False
    return not any(name == "QT_API" or name.startswith("SPYDER") for name in os.environ)


def widgets_available() -> bool:
    """Whether ipywidgets can be imported; tqdm's notebook module records that in ``IProgress``
    without warning (it is ``tqdm.autonotebook`` that warns)."""
    try:
        from tqdm.notebook import IProgress
    except ImportError:
        return False
    return IProgress is not None


def bars_disabled() -> bool:
    """``TQDM_DISABLE`` set to anything but an empty or false value, as tqdm reads it."""
    value = os.environ.get("TQDM_DISABLE", "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def bar_kind(stream: TextIO) -> BarKind | None:
    """The bar that ``stream`` can show: ``"widget"`` in a notebook with ipywidgets, ``"text"``
    on a terminal, ``None`` (plain lines) anywhere else."""
    if bars_disabled():
        return None
    if in_notebook():
        return "widget" if widgets_available() else None
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else None


def open_bar(kind: BarKind, stream: TextIO, total: int, description: str) -> Any:
    """A tqdm bar of ``kind`` over ``total`` steps.

    A widget stays in the notebook once closed, as the record of its epoch; a text bar is
    erased, and its caller prints the epoch's line in its place.
    """
    if kind == "widget":
        from tqdm.notebook import tqdm as widget_bar

        return widget_bar(total=total, desc=description, unit="batch", leave=True)
    from tqdm.std import tqdm as text_bar

    return text_bar(
        total=total,
        desc=description,
        unit="batch",
        leave=False,
        file=stream,
        dynamic_ncols=True,
    )
