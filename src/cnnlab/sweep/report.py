"""``sweep.html``: a sweep's results on one self-contained page, styled as the run report.

The page uses the run report's stylesheet and HTML helpers (every value escaped unless it is
trusted Markup) and embeds its figures as base64 PNG data: it opens from disk, with nothing
fetched, and can be mailed or copied like the run report.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from pathlib import Path

import jinja2
from markupsafe import Markup

from cnnlab.files import write_text
from cnnlab.inspect.report.html import duration, html, join, key_values, note, option_text, table
from cnnlab.inspect.report.page import Tile, stylesheet
from cnnlab.sweep.results import FIGURES, SweepResult, columns
from cnnlab.sweep.study import Sweep, shown_url
from cnnlab.version import __version__

# The run report's page (inspect/report/templates/base.html) with the sweep's header: the same
# template, so the same look.
PAGE = """{% extends "base.html" %}
{%- block kind %}sweep{% endblock %}
{%- block extra_css %}pre{overflow-x:auto;background:#eef2f7;border-radius:6px;padding:8px 12px}
pre code{background:none;padding:0}
{% endblock %}
{%- block eyebrow %}sweep report{% endblock %}
{%- block meta %}
<div class="meta">{{ meta }}</div>
{%- endblock %}
"""


def render(sweep: Sweep, result: SweepResult, drawn: dict, best_report: Path | None) -> str:
    environment = jinja2.Environment(
        loader=jinja2.ChoiceLoader(
            [
                jinja2.DictLoader({"sweep.html": PAGE}),
                jinja2.PackageLoader("cnnlab.inspect.report", "templates"),
            ]
        ),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    sections = [
        {"anchor": "best", "title": "Best trial", "body": _best(sweep, result, best_report)},
        {"anchor": "trials", "title": "Trials", "body": _trials(sweep, result)},
    ]
    for name, title, _, _, caption in FIGURES:
        sections.append({"anchor": name, "title": title, "body": _figure(drawn[name], caption)})
    sections.append({"anchor": "settings", "title": "Settings", "body": _settings(sweep)})
    return environment.get_template("sweep.html").render(
        version=__version__,
        title=f"Sweep {sweep.study}",
        css=stylesheet(),
        meta=f"{sweep.direction} {sweep.monitor} · {len(sweep.params)} parameters · "
        f"storage {shown_url(sweep.storage)}",
        tiles=_tiles(sweep, result),
        sections=sections,
        written=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        source=str(sweep.folder),
    )


def _tiles(sweep: Sweep, result: SweepResult) -> list[Tile]:
    counts = result.counts
    finished = counts["complete"] + counts["pruned"]
    seconds = sum(row["seconds"] or 0 for row in result.rows)
    best = "—" if result.best_value is None else f"{result.best_value:.4f}"
    return [
        Tile(f"best {sweep.monitor}", best, f"trial {result.best_trial}" if best != "—" else ""),
        Tile(
            "trials finished",
            f"{finished} / {sweep.trials}",
            f"{counts['complete']} complete · {counts['pruned']} pruned · "
            f"{counts['interrupted']} interrupted · {counts['fail']} failed",
        ),
        Tile("trial time", duration(seconds), "the trials' durations added up"),
    ]


def _best(sweep: Sweep, result: SweepResult, best_report: Path | None) -> Markup:
    if result.best_trial is None:
        return note("No trial has completed yet.")
    values = {"trial": result.best_trial, sweep.monitor: f"{result.best_value:.6g}"}
    values.update(result.best_params)
    parts = [key_values("Values", values, option_text)]
    if result.best_run is not None:
        link = Markup("")
        if best_report is not None and best_report.exists():
            relative = os.path.relpath(best_report, sweep.folder)
            link = html(' · <a href="{}">its report</a>', Path(relative).as_posix())
        parts.append(html("<p>Run folder <code>{}</code>{}</p>", str(result.best_run), link))
    parts.append(html("<p>The same run again:</p><pre><code>{}</code></pre>", result.command))
    return join(parts)


def _trials(sweep: Sweep, result: SweepResult) -> Markup:
    if not result.rows:
        return note("The study holds no trials yet.")
    shown = [c for c in columns(sweep) if c not in ("run", "host")]
    numeric = [c in ("number", sweep.monitor, "epochs", "seconds") for c in shown]
    rows = [[_cell(c, row.get(c)) for c in shown] for row in result.rows]
    lead = html(
        '<p class="lead">{} is the monitored metric at the epoch each run kept (a pruned '
        "trial: at its last epoch); never a test-set figure. A trial's run folder is "
        "<code>trials/NNNN</code> by its number, except when it continues an interrupted "
        "trial: it then resumes that trial's run, in that trial's folder (its note says so). "
        "<code>trials.csv</code> holds this table with the run folders.</p>",
        sweep.monitor,
    )
    return join([lead, table(shown, rows, numeric, css="compact")])


def _cell(column: str, value: object) -> str:
    if value is None:
        return "—"
    if column == "seconds":
        return duration(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _figure(figure: bytes | str, caption: str) -> Markup:
    if isinstance(figure, str):
        return note(f"Not drawn: {figure}.")
    data = base64.b64encode(figure).decode("ascii")
    return html(
        '<figure><img src="data:image/png;base64,{}" alt="{}"><figcaption>{}</figcaption></figure>',
        data,
        caption,
        caption,
    )


def _settings(sweep: Sweep) -> Markup:
    space = {param.name: param.spec().partition("=")[2] for param in sweep.params}
    fixed = {key.replace("_", "-"): value for key, value in sweep.options.items()}
    run = {
        "study": sweep.study,
        "storage": shown_url(sweep.storage),
        "trials": sweep.trials,
        "pruner": sweep.pruner,
        "sampler": f"TPE, seed {sweep.seed}",
        "workers": sweep.jobs,
    }
    return html(
        '<div class="grid3">{}{}{}</div>',
        key_values("Search space", space, option_text),
        key_values("Every trial", fixed, option_text),
        key_values("Sweep", run, option_text),
    )


def write_sweep_report(
    path: Path, sweep: Sweep, result: SweepResult, drawn: dict, best_report: Path | None
) -> Path:
    write_text(path, render(sweep, result, drawn, best_report))
    return path
