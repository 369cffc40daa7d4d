"""The report page: its sections in order, the header, and the one HTML file written."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2
from markupsafe import Markup

from cnnlab.errors import CnnlabError
from cnnlab.files import write_text
from cnnlab.inspect.report import relabel, results, sections
from cnnlab.inspect.report.context import ReportContext
from cnnlab.inspect.report.html import badge, duration, guarded, number, p_value, percent
from cnnlab.inspect.report.run import read_run
from cnnlab.runs.folder import target_of
from cnnlab.version import __version__

REPORT_NAME = "report.html"

#: (anchor, title, builder) of every section, in page order.
SECTIONS: tuple[tuple[str, str, Callable[[ReportContext], Markup]], ...] = (
    ("settings", "Settings", sections.settings_section),
    ("data", "Data", sections.data_section),
    ("relabel", "Label decisions", relabel.relabel_section),
    ("model", "Model", sections.model_section),
    ("training", "Training", sections.training_section),
    ("evaluation", "Evaluation", results.evaluation_section),
    ("mistakes", "Mistakes", results.mistakes_section),
    ("inside", "Inside the network", results.inside_section),
)


@dataclass(frozen=True)
class Tile:
    """One headline number of the header: what it is, its value, and a line of context."""

    label: str
    value: str | Markup
    sub: str


@functools.cache
def environment() -> jinja2.Environment:
    """The templates of this package, every value escaped unless it is Markup."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("cnnlab.inspect.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def stylesheet() -> Markup:
    """The report's CSS, a package file, to be inlined into the page (trusted: it is ours)."""
    text = resources.files("cnnlab.inspect.report").joinpath("report.css").read_text("utf-8")
    return Markup(text)


def render(report: ReportContext) -> str:
    """The whole page: header, table of contents, every section (or a note where one fails)."""
    built = [
        {
            "anchor": anchor,
            "title": title,
            "body": guarded(f"the {title.lower()} section", lambda b=build: b(report)),
        }
        for anchor, title, build in SECTIONS
        if anchor != "relabel" or relabel.relabel_record(report) is not None
    ]
    finished = report.run.run.get("finished")
    try:
        when = dt.datetime.fromisoformat(finished).astimezone().strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        when = "—"
    return (
        environment()
        .get_template("page.html")
        .render(
            version=__version__,
            title=report.title(),
            css=stylesheet(),
            data_line=data_line(report),
            provenance=provenance_line(report),
            finished=when,
            run_name=target_of(report.run.path).name,
            tiles=header_tiles(report),
            sections=built,
            written=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
            source=str(target_of(report.run.path)),
        )
    )


def data_line(report: ReportContext) -> str:
    resolved = report.run.config.get("resolved") or {}
    line = f"{len(resolved.get('class_names') or [])} classes"
    size = resolved.get("size")
    if size:
        line += f" · {size[0]}×{size[1]} px"
    if resolved.get("bit_depth"):
        line += f" · {resolved['bit_depth']}-bit"
    return line


def provenance_line(report: ReportContext) -> str | None:
    """Where a fine-tuned run's weights came from, what was re-made and what was frozen.

    ``run.json`` and ``config.json`` both hold the ``init`` record the run wrote when it
    started; None for a run trained from scratch with nothing frozen.
    """
    init = report.run.run.get("init") or report.run.config.get("init")
    if not isinstance(init, dict):
        return None
    frozen = init.get("frozen") == "features"
    if not init.get("from"):
        return "Features frozen at their random initial values; only the head trained"
    digest = str(init.get("weights_sha256") or "?")
    parts = [f"Weights initialised from {init['from']} (sha256 {digest[:12]}…)"]
    classes = init.get("classes") or []
    if init.get("head") == "re-made":
        parts.append(f"head re-made for {len(classes)} classes")
    else:
        parts.append(f"head kept for the same {len(classes)} classes")
    parts.append("features frozen" if frozen else "all layers trained")
    return ", ".join(parts)


def header_tiles(report: ReportContext) -> list[Tile]:
    run = report.run.run
    subset = report.run.headline_subset
    metrics = report.run.metrics[subset]
    low, high = metrics.get("accuracy_ci") or (None, None)
    epochs = run.get("epochs_run")
    title = results.SUBSET_TITLES.get(subset, subset).split()[0].lower()
    return [
        Tile(
            f"{title} accuracy",
            Markup("{} {}").format(percent(metrics.get("accuracy")), badge(metrics)),
            f"95% CI {percent(low)} – {percent(high)} · {metrics.get('n', '?')} images",
        ),
        Tile(
            "chance level (NIR)",
            percent(metrics.get("no_information_rate")),
            f"p(accuracy > NIR) {p_value(metrics.get('p_value_acc_gt_nir'))}",
        ),
        Tile(
            "kappa · macro F1",
            f"{number(metrics.get('kappa'), 2)} · {number(metrics.get('macro_f1'), 2)}",
            "agreement beyond chance · mean per-class F1",
        ),
        Tile(
            "training time",
            duration(run.get("train_seconds")),
            f"{epochs if epochs is not None else '?'} epochs · best epoch "
            f"{run.get('best_epoch', '—')}",
        ),
    ]


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    image_index: int | None = None,
    *,
    model: object = None,
    split: object = None,
    scores: Mapping[str, dict] | None = None,
) -> Path:
    """Writes the HTML report of the finished run in ``run_dir``; returns its path.

    ``out`` defaults to ``run_dir/report.html``. ``image_index`` picks the test image (else
    validation image) followed through the network in the last section (default: the first).
    ``model`` and ``split`` are the run's trained model and its
    :class:`~cnnlab.data.split.Split`, for a caller that still holds them (``cnnlab train``):
    they spare re-loading both from disk. Left out, both are re-loaded from the run folder.
    ``scores`` are that model's per-image results on those subsets
    (:func:`cnnlab.evaluate.per_sample_subsets`): given, the model is not run over them again.
    """
    run = read_run(run_dir)
    if image_index is not None:
        # Asked for explicitly: a bad index is the user's error, not a note inside the page.
        subset = run.headline_subset
        size = run.metrics[subset]["n"]
        if not 0 <= image_index < size:
            raise CnnlabError(
                f"--image {image_index}: the {subset} set has images 0 to {size - 1}; choose one"
            )
    target = Path(out) if out is not None else run.path / REPORT_NAME
    page = render(ReportContext(run, image_index, model=model, split=split, scores=scores))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text(target, page)
    except OSError as error:
        raise CnnlabError(f"cannot write the report {target}: {error.strerror or error}") from None
    return target
