"""The ``cnnlab`` command: parses arguments and calls the public API, nothing more.

``main`` owns the error handling; each module adds one group of commands (data and synthetic
data, training, using a model, looking at runs and networks, microscopy fields) and holds only
argument definitions and calls into the library.
"""

from __future__ import annotations

from cnnlab.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
