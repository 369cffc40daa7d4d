"""One HTML page per run: everything a person wants to see after training, in one file.

The report is a single self-contained file (pictures embedded as base64 PNG data or inline SVG,
CSS inline, no JavaScript, nothing fetched from the network), so it opens from disk, survives
being mailed or copied to a course platform, and still shows everything years later.

It is built only from the run folder: the numbers come from ``config.json``, ``history.csv``,
``metrics.json`` and ``run.json``; the model is reloaded from its saved files and the data from
the run's configuration and ``split.csv``. Every section is drawn on its own: when one part
cannot be drawn (the data folder has moved, a model has no convolution filters to show) that
part shows a short note and the rest of the report is still written.

The package: :mod:`.run` reads the run's files, :mod:`.context` loads its model and data once,
:mod:`.html` holds the escaping HTML helpers, :mod:`.sections` and :mod:`.results` build the
sections, and :mod:`.page` puts them into ``templates/page.html`` with ``report.css`` inlined.
Figures are rendered to PNG in memory and embedded; nothing is written but the page.
"""

from __future__ import annotations

from cnnlab.inspect.report.page import REPORT_NAME, write_report
from cnnlab.inspect.report.run import RunFiles, read_run

__all__ = ["REPORT_NAME", "RunFiles", "read_run", "write_report"]
