"""The report's section on label decisions: what ``--relabel`` changed before training.

A run trained with the decisions of a review (``cnnlab train --relabel FILE``) learned from
other labels than its data folders hold; the report says which images were relabelled and
which were left out, so that a reader can judge the result knowing that.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import PurePath

from markupsafe import Markup

from cnnlab.inspect.report.context import ReportContext
from cnnlab.inspect.report.html import html, join, note, table


def relabel_record(report: ReportContext) -> dict | None:
    """The decisions the run applied (``config.json``, ``resolved.relabel``), or None."""
    record = (report.run.config.get("resolved") or {}).get("relabel")
    return record if isinstance(record, dict) else None


def relabel_section(report: ReportContext) -> Markup:
    """Counts of relabelled and excluded images, and a table: path, subset, old -> new class."""
    record = relabel_record(report)
    if record is None:
        return note("the run was trained with the labels of its data folders")
    changes = record.get("changes") or []
    summary = html(
        "<p>Trained with the label decisions in <code>{}</code> (copied into the run as "
        "<code>{}</code>, sha256 <code>{}…</code>): <strong>{}</strong> image(s) relabelled, "
        "<strong>{}</strong> excluded, {} kept as they were{}. The split was drawn as without "
        "them, so the test set holds the same images, less the excluded ones.</p>",
        record.get("file", "?"),
        record.get("copy", "?"),
        str(record.get("sha256", "?"))[:12],
        record.get("relabelled", 0),
        record.get("excluded", 0),
        record.get("kept", 0),
        html("; {} decision(s) named images not in the data and were ignored", unmatched)
        if (unmatched := record.get("unmatched"))
        else "",
    )
    if not changes:
        return join([summary, note("no image changed its class or was left out")])
    folders = [str(f) for f in report.run.config.get("data") or () if str(f) != "mnist"]
    rows = [
        (
            html('<code class="file" title="{}">{}</code>', path, image_name(path, folders)),
            subset,
            old,
            html("<strong>{}</strong>", new) if new is not None else Markup("<em>excluded</em>"),
        )
        for path, subset, old, new in changes
    ]
    return join([summary, table(["image", "subset", "old class", "new class"], rows)])


def image_name(path: str, folders: Sequence[str]) -> str:
    """The image as the table names it, never two alike: an MNIST key whole
    (``mnist/train/02676``, not ``02676``, which is also a test image), a file relative to the
    data folder (``a/3.png``; of several folders, relative to their common parent, so that the
    folder's name is kept), a file outside them whole.
    """
    if path.startswith("mnist/") or not folders:
        return path
    try:
        base = folders[0] if len(folders) == 1 else os.path.commonpath(folders)
        return PurePath(path).relative_to(base).as_posix()
    except ValueError:  # moved data, or relative and absolute paths mixed
        return path
