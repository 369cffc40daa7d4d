"""One HTML page per run: everything a person wants to see after training, in one file.

The report is a single self-contained file (pictures embedded as base64 PNG data or inline SVG,
CSS inline, no JavaScript, nothing fetched from the network), so it opens from disk, survives
being mailed or copied to a course platform, and still shows everything years later.

It is built only from the run folder: the numbers come from ``config.json``, ``history.csv``,
``metrics.json`` and ``run.json``; the model is reloaded from its saved files and the data from
the run's configuration and ``split.csv``. Every section is drawn on its own: when one part
cannot be drawn (the data folder has moved, a model has no convolution filters to show) that
part shows a short note and the rest of the report is still written.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.files import write_text
from cnnlab.inspect import plots
from cnnlab.runs.folder import target_of
from cnnlab.runs.reading import headline_subset, load_run_split

REPORT_NAME = "report.html"
SUBSET_TITLES = {"train": "Training set", "valid": "Validation set", "test": "Test set"}
SUBSET_SHORT = {"train": "Training", "valid": "Validation", "test": "Test"}
WORST_CASES = 16
MAX_EXPLAINED = 20_000  # images scored for the worst-case gallery (keeps the report fast)


@dataclass
class RunFiles:
    """The plain-data files of a finished run folder."""

    path: Path
    config: dict
    metrics: dict
    run: dict
    history: list[dict]

    @property
    def headline_subset(self) -> str:
        return headline_subset(self.metrics)

    @property
    def class_names(self) -> list[str]:
        resolved = self.config.get("resolved") or {}
        if resolved.get("class_names"):
            return list(resolved["class_names"])
        return list(self.metrics[self.headline_subset].get("class_names") or [])


def read_run(run_dir: str | Path) -> RunFiles:
    """The files of a finished run; a one-line error when ``run_dir`` holds none."""
    path = Path(run_dir)
    for name in ("metrics.json", "run.json"):
        if not (path / name).is_file():
            raise CnnlabError(
                f"{path}: no finished run here ({name} missing); train first or pass the "
                "folder of a finished run"
            )
    config = _read_json(path / "config.json") if (path / "config.json").is_file() else {}
    history_path = path / "history.csv"
    history = plots.read_history(history_path) if history_path.is_file() else []
    return RunFiles(
        path=path,
        config=config,
        metrics=_read_json(path / "metrics.json"),
        run=_read_json(path / "run.json"),
        history=history,
    )


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CnnlabError(f"{path}: unreadable ({error}); is the run folder damaged?") from error
    if not isinstance(data, dict):
        raise CnnlabError(f"{path}: expected a JSON object; is the run folder damaged?")
    return data


# ------------------------------------------------------------------------------ formatting
def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def percent(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def number(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:.{digits}f}"


def p_value(value: float | None) -> str:
    if value is None:
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def duration(seconds: float | None) -> str:
    """``0.42 s``, ``35.2 s``, ``4 min 05 s`` or ``1 h 02 min``: as long as it needs to be."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def option_text(value: object) -> str:
    if value is None or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        if all(isinstance(v, int | float) for v in value) and len(value) == 2:
            return (
                "×".join(str(v) for v in value)
                if all(isinstance(v, int) for v in value)
                else (", ".join(str(v) for v in value))
            )
        return ", ".join(option_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {option_text(v)}" for k, v in value.items())
    return str(value)


def accuracy_level(metrics: dict) -> tuple[str, str]:
    """(css class, words) for the accuracy badge.

    Red when the model is not significantly better than always answering the largest class (the
    no-information rate), amber when it is but stays below 90 %, green from 90 % on.
    """
    accuracy = metrics.get("accuracy") or 0.0
    p = metrics.get("p_value_acc_gt_nir")
    if p is not None and p >= 0.05:
        return "bad", "no better than guessing"
    if accuracy >= 0.9:
        return "good", "good"
    return ("fair", "fair") if accuracy >= 0.7 else ("bad", "weak")


# ------------------------------------------------------------------------------ HTML pieces
def note(message: str) -> str:
    return f'<div class="note">{esc(message)}</div>'


def failure_note(what: str, error: BaseException) -> str:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return note(f"{what} could not be drawn: {reason}")


def guarded(what: str, build: Callable[[], str]) -> str:
    """``build()``, or a short note saying why ``what`` is missing; the report goes on."""
    try:
        return build()
    except Exception as error:  # one broken picture must not lose the report
        return failure_note(what, error)


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    numeric: Sequence[bool] | None = None,
    css: str = "",
    footer: Sequence[object] | None = None,
) -> str:
    """An HTML table; columns flagged ``numeric`` are right-aligned with tabular digits."""
    numeric = list(numeric or [False] * len(header))

    def cells(values: Sequence[object], tag: str) -> str:
        return "".join(
            f"<{tag}{' class=num' if numeric[i] else ''}>{value}</{tag}>"
            for i, value in enumerate(values)
        )

    head = f"<thead><tr>{cells([esc(h) for h in header], 'th')}</tr></thead>"
    body = "".join(f"<tr>{cells(row, 'td')}</tr>" for row in rows)
    foot = f"<tfoot><tr>{cells(footer, 'td')}</tr></tfoot>" if footer else ""
    inner = f"{head}<tbody>{body}</tbody>{foot}"
    return f'<div class="table-wrap"><table class="{css}">{inner}</table></div>'


class Figures:
    """Draws figures into a scratch folder and returns them as embeddable ``<figure>`` HTML."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.count = 0

    def embed(
        self, draw: Callable[[Path], object], alt: str, caption: str = "", css: str = ""
    ) -> str:
        self.count += 1
        path = self.folder / f"figure-{self.count}.png"
        draw(path)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        caption_html = f"<figcaption>{caption}</figcaption>" if caption else ""
        return (
            f'<figure class="{css}"><img src="data:image/png;base64,{data}" alt="{esc(alt)}">'
            f"{caption_html}</figure>"
        )

    def guarded(
        self, what: str, draw: Callable[[Path], object], caption: str = "", css: str = ""
    ) -> str:
        return guarded(what, lambda: self.embed(draw, what, caption, css))


def png_img(pixels, alt: str, scale: float = 1.0, css: str = "px") -> str:
    """An ``<img>`` of 8-bit pixels, embedded as PNG data and shown ``scale`` times larger.

    Small images are enlarged by the browser (``image-rendering: pixelated`` keeps each pixel a
    sharp square) instead of being resampled into a bigger PNG: the file stays small and a
    28 px digit looks exactly as the network sees it.
    """
    from cnnlab.inspect.plots import png_of

    height, width = pixels.shape[:2]
    data = base64.b64encode(png_of(pixels)).decode("ascii")
    return (
        f'<img class="{css}" src="data:image/png;base64,{data}" alt="{esc(alt)}" '
        f'width="{round(width * scale)}" height="{round(height * scale)}">'
    )


def zoom_for(pixels_high: int, target: int) -> float:
    """A whole-number enlargement bringing images ``pixels_high`` tall near ``target`` px."""
    return float(max(1, round(target / max(pixels_high, 1))))


def share_colour(share: float, diagonal: bool) -> tuple[str, str]:
    """(background, text colour) of a confusion cell holding ``share`` of its true class.

    The square root spreads the small shares where mistakes live (1 % is already visible), and
    correct answers (blue) read apart from mistakes (red) even at a glance.
    """
    t = math.sqrt(min(max(share, 0.0), 1.0))
    target = (37, 99, 235) if diagonal else (220, 38, 38)
    rgb = tuple(round(255 + (c - 255) * t) for c in target)
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})", "#fff" if t > 0.62 else "#1f2937"


LEGEND_TICKS = (0.0, 0.01, 0.05, 0.25, 0.5, 1.0)


def confusion_html(confusion: Sequence[Sequence[int]], names: Sequence[str]) -> str:
    """A confusion matrix as a table heatmap: counts and shares of each true class per cell.

    Rows are the true classes, columns the predicted ones; each cell holds its count and, below
    it, its share of the row (the diagonal share is the class's recall). Colours follow the
    share, blue on the diagonal and red off it, so a small class's mistakes show as clearly as
    a large one's. Real table cells keep the numbers crisp and selectable at any zoom.
    """
    k = len(names)
    matrix = [[int(v) for v in row] for row in confusion]
    if len(matrix) != k or any(len(row) != k for row in matrix):
        raise CnnlabError(f"confusion matrix of {len(matrix)} rows for {k} class names")
    size = "" if k <= 10 else " small" if k <= 20 else " tiny"
    head = "".join(f'<th scope="col">{esc(name)}</th>' for name in names)
    body = []
    for i, row in enumerate(matrix):
        support = sum(row)
        cells = []
        for j, count in enumerate(row):
            share = count / support if support else 0.0
            if count == 0:
                cells.append('<td class="zero">0</td>')
                continue
            background, ink = share_colour(share, i == j)
            title = f"true {names[i]}, predicted {names[j]}: {count} of {support} ({share:.1%})"
            cells.append(
                f'<td class="{"diag" if i == j else "off"}" style="background:{background};'
                f'color:{ink}" title="{esc(title)}"><b>{count:,}</b>'
                f"<small>{100 * share:.1f}%</small></td>"
            )
        body.append(
            f'<tr><th scope="row">{esc(names[i])}</th>{"".join(cells)}'
            f'<td class="total">{support:,}</td></tr>'
        )
    predicted = [sum(row[j] for row in matrix) for j in range(k)]
    foot = "".join(f'<td class="total">{count:,}</td>' for count in predicted)
    total = sum(predicted)
    ticks = "".join(
        f'<span style="left:{100 * math.sqrt(v):.1f}%">{"0" if v == 0 else f"{v:.0%}"}</span>'
        for v in LEGEND_TICKS
    )
    legend = (
        '<div class="cm-legend"><div class="cm-legend-title">share of the true class</div>'
        '<div class="cm-scale"><div class="cm-bar diag"></div><span>correct</span></div>'
        '<div class="cm-scale"><div class="cm-bar off"></div><span>mistaken</span></div>'
        f'<div class="cm-ticks">{ticks}</div></div>'
    )
    return (
        f'<div class="cm"><div class="table-wrap"><table class="cm-table{size}">'
        '<thead><tr><th class="cm-corner">true ↓ · predicted →</th>'
        f'{head}<th class="total">images</th></tr></thead>'
        f"<tbody>{''.join(body)}</tbody>"
        f'<tfoot><tr><th scope="row">predicted</th>{foot}<td class="total">{total:,}</td></tr>'
        f"</tfoot></table></div>{legend}</div>"
    )


def probability_bars(
    probabilities: Sequence[float], names: Sequence[str], true: int, predicted: int
) -> str:
    """Every class's probability as a bar: green the true class, red the predicted one."""
    rows = []
    for index, (name, p) in enumerate(zip(names, probabilities, strict=True)):
        kind = "true" if index == true else "pred" if index == predicted else "other"
        rows.append(
            f'<div class="pb-row {kind}"><span class="pb-name" title="{esc(name)}">'
            f'{esc(plots.shorten_middle(str(name), 10))}</span><span class="pb-track">'
            f'<span class="pb-bar" style="width:{100 * float(p):.1f}%"></span></span>'
            f'<span class="pb-value">{float(p):.2f}</span></div>'
        )
    return f'<div class="pb{" many" if len(names) > 10 else ""}">{"".join(rows)}</div>'


def file_label(path: str, width: int = 30) -> str:
    """A source file name as text: shortened in the middle, whole in the tooltip."""
    name = Path(path).name
    return f'<code class="file" title="{esc(path)}">{esc(plots.shorten_middle(name, width))}</code>'


BAR_LEGEND = (
    '<div class="pb-legend"><span class="true">true class</span>'
    '<span class="pred">predicted class</span><span class="other">other classes</span></div>'
)


class Loaded:
    """Something expensive loaded at most once; a failure is remembered and raised again."""

    def __init__(self, load: Callable[[], object]) -> None:
        self._load = load
        self._value: object = None
        self._error: BaseException | None = None
        self._done = False

    def get(self):
        if not self._done:
            self._done = True
            try:
                self._value = self._load()
            except Exception as error:  # raised again to every section needing it
                self._error = error
        if self._error is not None:
            raise self._error
        return self._value


# ------------------------------------------------------------------------------ the report
class Report:
    """Builds the sections of one run's report."""

    def __init__(
        self,
        run: RunFiles,
        figures: Figures,
        image_index: int | None,
        model: object = None,
        split: object = None,
    ) -> None:
        self.run = run
        self.figures = figures
        self.image_index = image_index
        self.model = Loaded(self._load_model if model is None else lambda: self._adopt(model))
        self.split = Loaded(self._load_split if split is None else lambda: split)
        self.samples: dict[str, Loaded] = {}

    # ---------------------------------------------------------------- loading
    def _load_model(self):
        from cnnlab.export.saved import load

        return load(self.run.path)

    def _adopt(self, model):
        """A CPU copy of the in-memory ``model``, described like :func:`load` describes one.

        The copy leaves the caller's model (its device, mode and hooks) untouched; the
        description (class names, architecture) comes from the run's own ``model.json``.
        """
        import copy

        from cnnlab.export.saved import read_model_meta

        adopted = copy.deepcopy(model).to("cpu").eval()
        meta = read_model_meta(self.run.path)
        adopted.class_names = tuple(meta["class_names"])
        adopted.bit_depth = int(meta.get("bit_depth", 8))
        adopted.cnnlab_meta = meta
        return adopted

    def _load_split(self):
        return load_run_split(self.run.path, quiet=True)

    def subset(self, name: str):
        dataset = dict(self.split.get().items()).get(name)
        if dataset is None:
            raise CnnlabError(f"the run has no {name} set")
        return dataset

    def scored(self, name: str) -> tuple[object, dict]:
        """The subset (at most MAX_EXPLAINED images) and its per-image model results."""
        if name not in self.samples:

            def score() -> tuple[object, dict]:
                dataset = self.subset(name)
                if len(dataset) > MAX_EXPLAINED:
                    dataset = dataset.select(range(MAX_EXPLAINED))
                return dataset, _score(self.model.get(), dataset)

            self.samples[name] = Loaded(score)
        return self.samples[name].get()

    # ---------------------------------------------------------------- page
    def sections(self) -> list[tuple[str, str, Callable[[], str]]]:
        return [
            ("settings", "Settings", self.settings_section),
            ("data", "Data", self.data_section),
            ("model", "Model", self.model_section),
            ("training", "Training", self.training_section),
            ("evaluation", "Evaluation", self.evaluation_section),
            ("mistakes", "Mistakes", self.mistakes_section),
            ("inside", "Inside the network", self.inside_section),
        ]

    def html(self) -> str:
        parts = []
        toc = []
        for anchor, title, build in self.sections():
            toc.append(f'<a href="#{anchor}">{esc(title)}</a>')
            body = guarded(f"the {title.lower()} section", build)
            parts.append(
                f'<section id="{anchor}" class="card"><h2>{esc(title)}</h2>{body}</section>'
            )
        title = self.title()
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="cnnlab {esc(self.version())}">'
            f"<title>{esc(title)} · cnnlab report</title><style>{CSS}</style></head><body>"
            f"{self.header(title)}"
            f'<nav class="toc"><div class="wrap">{"".join(toc)}</div></nav>'
            f'<main class="wrap">{"".join(parts)}</main>'
            f'<footer class="wrap">Written by cnnlab {esc(self.version())} on '
            f"{dt.datetime.now().strftime('%Y-%m-%d %H:%M')} from {esc(target_of(self.run.path))}"
            "</footer></body></html>\n"
        )

    def version(self) -> str:
        from cnnlab import __version__

        return __version__

    def title(self) -> str:
        config = self.run.config
        model = config.get("model") or "model"
        return f"{model} on {self.data_name()}"

    def data_name(self) -> str:
        data = self.run.config.get("data") or ["?"]
        names = [d if d == "mnist" else Path(d).name or d for d in data]
        return " + ".join(names)

    def header(self, title: str) -> str:
        run = self.run.run
        subset = self.run.headline_subset
        metrics = self.run.metrics[subset]
        level, words = accuracy_level(metrics)
        low, high = metrics.get("accuracy_ci") or (None, None)
        finished = run.get("finished")
        try:
            when = dt.datetime.fromisoformat(finished).astimezone().strftime("%Y-%m-%d %H:%M")
        except (TypeError, ValueError):
            when = "—"
        resolved = self.run.config.get("resolved") or {}
        classes = resolved.get("class_names") or []
        size = resolved.get("size")
        data_line = f"{len(classes)} classes"
        if size:
            data_line += f" · {size[0]}×{size[1]} px"
        if resolved.get("bit_depth"):
            data_line += f" · {resolved['bit_depth']}-bit"
        epochs = run.get("epochs_run")
        tiles = [
            (
                f"{SUBSET_TITLES.get(subset, subset).split()[0].lower()} accuracy",
                f'{percent(metrics.get("accuracy"))} <span class="badge {level}">{words}</span>',
                f"95% CI {percent(low)} – {percent(high)} · {metrics.get('n', '?')} images",
            ),
            (
                "chance level (NIR)",
                percent(metrics.get("no_information_rate")),
                f"p(accuracy > NIR) {p_value(metrics.get('p_value_acc_gt_nir'))}",
            ),
            (
                "kappa · macro F1",
                f"{number(metrics.get('kappa'), 2)} · {number(metrics.get('macro_f1'), 2)}",
                "agreement beyond chance · mean per-class F1",
            ),
            (
                "training time",
                duration(run.get("train_seconds")),
                f"{epochs if epochs is not None else '?'} epochs · best epoch "
                f"{run.get('best_epoch', '—')}",
            ),
        ]
        tile_html = "".join(
            f'<div class="tile"><div class="tile-label">{esc(label)}</div>'
            f'<div class="tile-value">{value}</div><div class="tile-sub">{esc(sub)}</div></div>'
            for label, value, sub in tiles
        )
        return (
            '<header class="hero"><div class="wrap">'
            '<div class="eyebrow">cnnlab · training report</div>'
            f"<h1>{esc(title)}</h1>"
            f'<div class="meta">{esc(data_line)} · finished {esc(when)} · '
            f"<code>{esc(target_of(self.run.path).name)}</code></div>"
            f'<div class="tiles">{tile_html}</div></div></header>'
        )

    # ---------------------------------------------------------------- sections
    def settings_section(self) -> str:
        config = dict(self.run.config)
        if not config:
            return note("config.json is missing: the run's settings are unknown")
        train = config.pop("train", {}) or {}
        resolved = config.pop("resolved", {}) or {}
        config.pop("out", None)
        resolved = dict(resolved)
        subsets = resolved.pop("subsets", None)
        if subsets:
            resolved["images"] = ", ".join(f"{k} {v}" for k, v in subsets.items())

        def kv(title: str, values: dict) -> str:
            rows = "".join(
                f"<tr><th>{esc(key.replace('_', ' '))}</th><td>{esc(option_text(value))}</td></tr>"
                for key, value in values.items()
            )
            return f'<div class="kv"><h3>{esc(title)}</h3><table>{rows}</table></div>'

        return (
            f'<div class="chips">{self.key_settings(config, train)}</div>'
            "<details><summary>All options (<code>config.json</code>)</summary>"
            '<div class="grid3">'
            + kv("Run", config)
            + kv("Training", train)
            + kv("Resolved", resolved)
            + "</div></details>"
        )

    def key_settings(self, config: dict, train: dict) -> str:
        """The handful of choices that explain a result, as chips; the rest stays folded."""
        optimizer = train.get("optimizer")
        lr = train.get("lr")  # config.json holds the rate the run used, defaults resolved
        size = (self.run.config.get("resolved") or {}).get("size") or config.get("size")
        items = [
            ("model", config.get("model")),
            ("optimizer", optimizer),
            ("learning rate", f"{lr:g}" if isinstance(lr, int | float) else lr),
            ("schedule", train.get("schedule")),
            ("epochs", train.get("epochs")),
            ("batch size", train.get("batch_size")),
            ("weight decay", train.get("weight_decay")),
            ("patience", train.get("patience")),
            ("image size", size),
            ("split %", config.get("split")),
            ("augment", config.get("augment")),
            ("seed", train.get("seed")),
        ]
        return "".join(
            f'<span class="chip"><span>{esc(label)}</span>{esc(option_text(value))}</span>'
            for label, value in items
            if value not in (None, [], "")
        )

    def class_counts(self) -> dict[str, dict[str, int]]:
        """subset -> class -> images, from the supports in metrics.json (no data needed)."""
        table: dict[str, dict[str, int]] = {}
        for subset in ("train", "valid", "test"):
            metrics = self.run.metrics.get(subset)
            if metrics and metrics.get("per_class"):
                table[subset] = {
                    c: int(v.get("support", 0)) for c, v in metrics["per_class"].items()
                }
        return table

    def data_section(self) -> str:
        counts = self.class_counts()
        parts = [
            f'<p class="lead">{esc(self.data_name())}: {esc(", ".join(self.run.class_names))}.</p>'
        ]
        if counts:
            subsets = list(counts)
            classes = list(next(iter(counts.values())))
            rows = []
            for name in classes:
                values = [counts[s].get(name, 0) for s in subsets]
                rows.append([esc(name), *values, sum(values)])
            totals = [sum(counts[s].values()) for s in subsets]
            # The bar chart grows with the classes: beside the table only while it stays legible.
            layout = "split" if len(classes) * len(subsets) <= 12 else "stacked"
            parts.append(
                f'<div class="{layout}">'
                + table(
                    ["class", *subsets, "total"],
                    rows,
                    numeric=[False] + [True] * (len(subsets) + 1),
                    footer=["<b>total</b>", *totals, sum(totals)],
                    css="compact",
                )
                + self.figures.guarded(
                    "the class counts", lambda p: plots.plot_class_counts(counts, p)
                )
                + "</div>"
            )
            parts.append(self.balance_notes(counts))
        parts.append("<h3>Sample images of the training set</h3>")
        parts.append(guarded("the sample images", self.sample_grid))
        return "".join(parts)

    def sample_grid(self, per_class: int = 10) -> str:
        """Random training images, one row per class: a label and one picture per row."""
        dataset = self.subset("train").raw()
        rows = plots.sample_rows(dataset, per_class)
        tiles = [
            [plots.display_pixels(dataset.images[int(i)]) for i in chosen] for *_, chosen in rows
        ]
        sizes = [t.shape[:2] for row in tiles for t in row]
        if not sizes:
            return note("the training set has no images to show")
        cell = (max(h for h, _ in sizes), max(w for _, w in sizes))
        zoom = zoom_for(cell[0], 60)
        html_rows = "".join(
            f'<div class="sample-label">{esc(name)}<span>{count:,} images</span></div>'
            + png_img(
                plots.tile_grid([row], per_class, gap=2, cell=cell),
                f"training images of class {name}",
                zoom,
            )
            for (name, count, _), row in zip(rows, tiles, strict=True)
        )
        return (
            f'<figure class="samples"><div class="sample-grid">{html_rows}</div>'
            "<figcaption>Random training images, one row per class (16-bit images are "
            "contrast-stretched per image).</figcaption></figure>"
        )

    def balance_notes(self, counts: dict[str, dict[str, int]]) -> str:
        """The data layer's warnings about missing or rare classes, from the counts alone."""
        from cnnlab.data.split import balance_warnings

        problems = balance_warnings({subset: _Counts(c) for subset, c in counts.items()})
        items = "".join(f"<li>{esc(problem)}</li>" for problem in problems)
        return f'<ul class="warnings">{items}</ul>' if items else ""

    def model_section(self) -> str:
        from cnnlab.inspect.graph import legend_svg, network_graph_svg
        from cnnlab.models import model_summary

        model = self.model.get()
        meta = getattr(model, "cnnlab_meta", {}) or {}
        summary = model_summary(model)
        rows = [
            [
                f"<code>{esc(row['name'])}</code>",
                esc(row["type"]),
                esc("×".join(str(s) for s in row["output_shape"][1:])),
                f"{row['params']:,}",
            ]
            for row in summary.rows
        ]
        arch = meta.get("architecture") or {}
        options = arch.get("kwargs") or {}
        describe = f"<b>{esc(arch.get('name', type(model).__name__))}</b>"
        if options:
            describe += " with " + esc(option_text(options))
        graph = guarded(
            "the network graph",
            lambda: (
                f'<div class="graph">{network_graph_svg(model)}</div>'
                f'<div class="legend">{legend_svg()}</div>'
            ),
        )
        return (
            f'<p class="lead">{describe}: {summary.total_params:,} parameters '
            f"({summary.trainable_params:,} trainable), "
            f"{summary.total_mult_adds:,} multiply-adds per image, input "
            f"{esc('×'.join(str(s) for s in summary.input_shape[1:]))}.</p>"
            f"{graph}"
            "<details open><summary>Layer table</summary>"
            + table(
                ["layer", "type", "output shape", "parameters"],
                rows,
                numeric=[False, False, True, True],
                footer=["<b>total</b>", "", "", f"<b>{summary.total_params:,}</b>"],
                css="compact",
            )
            + "</details>"
        )

    def training_section(self) -> str:
        history = self.run.history
        run = self.run.run
        if not history:
            return note("history.csv is missing: no learning curves to draw")
        seconds = [row["seconds"] for row in history if isinstance(row.get("seconds"), float)]
        best = run.get("best_epoch")
        best_row = next((r for r in history if r.get("epoch") == best), None)
        facts = [
            ("epochs", str(run.get("epochs_run", len(history)))),
            ("best epoch", str(best) if best is not None else "—"),
            ("stopped because", run.get("stop_reason") or "all epochs done"),
            ("training time", duration(run.get("train_seconds"))),
            ("per epoch", duration(sum(seconds) / len(seconds)) if seconds else "—"),
        ]
        if best_row is not None and best_row.get("valid_accuracy") is not None:
            facts.insert(2, ("validation accuracy there", percent(best_row["valid_accuracy"])))
        fact_html = "".join(
            f'<div class="fact"><span>{esc(k)}</span><b>{esc(v)}</b></div>' for k, v in facts
        )
        rows = [
            [
                int(row["epoch"]),
                number(row.get("train_loss"), 4),
                percent(row.get("train_accuracy"), 2),
                number(row.get("valid_loss"), 4),
                percent(row.get("valid_accuracy"), 2),
                f"{row['lr']:.3g}" if isinstance(row.get("lr"), float) else "—",
                number(row.get("seconds"), 1),
            ]
            for row in history
        ]
        return (
            f'<div class="facts">{fact_html}</div>'
            + self.figures.guarded(
                "the learning curves",
                lambda p: plots.plot_learning_curves(history, p, best_epoch=best),
                caption="Loss and accuracy per epoch. The star marks the best epoch, whose "
                "weights the run kept; a validation loss that rises while the training loss "
                "falls is overfitting.",
            )
            + self.figures.guarded(
                "the epoch times",
                lambda p: plots.plot_epoch_times(history, p),
                caption="Seconds per epoch (training plus validation).",
            )
            + "<details><summary>History table</summary>"
            + table(
                ["epoch", "train loss", "train acc.", "valid loss", "valid acc.", "lr", "s"],
                rows,
                numeric=[True] * 7,
                css="compact",
            )
            + "</details>"
        )

    def evaluation_section(self) -> str:
        metrics = self.run.metrics
        subsets = [s for s in ("train", "valid", "test") if s in metrics]
        rows = []
        for subset in subsets:
            m = metrics[subset]
            level, words = accuracy_level(m)
            low, high = m.get("accuracy_ci") or (None, None)
            rows.append(
                [
                    f"<b>{esc(SUBSET_SHORT[subset])}</b>",
                    m.get("n", "—"),
                    f'{percent(m.get("accuracy"), 2)} <span class="badge {level}">{words}</span>',
                    f"{percent(low)} – {percent(high)}",
                    number(m.get("kappa")),
                    percent(m.get("no_information_rate")),
                    p_value(m.get("p_value_acc_gt_nir")),
                    number(m.get("macro_f1")),
                    number(m.get("loss"), 4),
                ]
            )
        parts = [
            '<p class="lead">How well the kept model classifies each subset. The test set was '
            "never used for training or for choosing the epoch, so its numbers are the honest "
            "ones; a training accuracy far above them means overfitting.</p>",
            table(
                [
                    "subset",
                    "images",
                    "accuracy",
                    "95% CI",
                    "kappa",
                    "NIR",
                    "p (acc > NIR)",
                    "macro F1",
                    "loss",
                ],
                rows,
                numeric=[False] + [True] * 8,
            ),
        ]
        for subset in reversed(subsets):
            parts.append(guarded(f"the {subset} details", lambda s=subset: self.subset_details(s)))
        return "".join(parts)

    def subset_details(self, subset: str) -> str:
        m = self.run.metrics[subset]
        names = list(m.get("class_names") or m["per_class"].keys())
        rows = []
        for name in names:
            stats = m["per_class"].get(name, {})
            rows.append(
                [
                    esc(name),
                    stats.get("support", "—"),
                    number(stats.get("precision")),
                    number(stats.get("recall")),
                    number(stats.get("f1")),
                    number(stats.get("specificity")),
                ]
            )
        confused = m.get("most_confused") or []
        confused_html = ""
        if confused:
            items = "".join(
                f"<li><b>{esc(c['true'])}</b> taken for <b>{esc(c['predicted'])}</b>: "
                f"{c['count']} image{'s' if c['count'] != 1 else ''} "
                f"({percent(c.get('share_of_true'))} of {esc(c['true'])})</li>"
                for c in confused[:3]
            )
            confused_html = f'<div class="confused"><h4>Most confused</h4><ul>{items}</ul></div>'
        open_attr = " open" if subset == self.run.headline_subset else ""
        return (
            f'<details class="subset"{open_attr}><summary>{esc(SUBSET_TITLES[subset])} · '
            f"{percent(m.get('accuracy'), 2)} of {m.get('n', '?')} images</summary>"
            + table(
                ["class", "images", "precision", "recall", "F1", "specificity"],
                rows,
                numeric=[False] + [True] * 5,
                css="compact",
            )
            + confused_html
            + guarded(
                f"the {subset} confusion matrix",
                lambda: (
                    f'<figure class="cm-figure">{confusion_html(m["confusion"], names)}'
                    "<figcaption>Confusion matrix: rows are the true classes, columns the "
                    "predicted ones. Each cell holds the number of images and, below it, their "
                    "share of the true class; the diagonal share is each class's recall."
                    "</figcaption></figure>"
                ),
            )
            + "</details>"
        )

    def mistakes_section(self) -> str:
        subset = next((s for s in ("test", "valid") if s in self.run.metrics), "train")
        dataset, samples = self.scored(subset)
        scope = f"{len(dataset)} {SUBSET_TITLES[subset].lower()} images"
        if len(dataset) < len(self.subset(subset)):
            scope = f"the first {scope}"
        return (
            f'<p class="lead">The {min(WORST_CASES, len(dataset))} images of the '
            f"{esc(SUBSET_TITLES[subset].lower())}"
            " with the highest loss: the ones the model gets most confidently wrong (or right "
            "only by a hair). Look for mislabelled files, odd crops and classes that really "
            f"look alike. Scored: {esc(scope)}.</p>"
            + guarded("the worst cases", lambda: self.worst_cases(dataset, samples))
            + "<h3>Most confused pairs of classes</h3>"
            + guarded("the confused pairs", lambda: self.confused_pairs(dataset, samples))
        )

    def worst_cases(self, dataset, samples: dict) -> str:
        """One card per worst image: verdict, the image, every class's probability, file."""
        dataset = dataset.raw()
        names = list(dataset.class_names)
        cards = []
        for index in plots.worst_indices(samples["loss"], WORST_CASES).tolist():
            true, predicted = int(samples["labels"][index]), int(samples["predictions"][index])
            probabilities = samples["probabilities"][index]
            pixels = plots.display_pixels(dataset.images[index])
            verdict = "right" if true == predicted else "wrong"
            cards.append(
                f'<figure class="case {verdict}"><div class="case-head">true '
                f"<b>{esc(plots.shorten_middle(names[true], 12))}</b> · predicted "
                f"<b>{esc(plots.shorten_middle(names[predicted], 12))}</b> "
                f'<span class="p">p={float(probabilities[predicted]):.2f}</span></div>'
                '<div class="case-body">'
                + png_img(pixels, f"image {index}", zoom_for(pixels.shape[0], 84))
                + probability_bars(probabilities, names, true, predicted)
                + f"</div><figcaption>{file_label(dataset.paths[index])}</figcaption></figure>"
            )
        if not cards:
            return note("no images were scored")
        return (
            f'<div class="cases">{"".join(cards)}</div>{BAR_LEGEND}'
            '<p class="caption">Each image with its true and predicted class, the probability '
            "the model gave every class and its file name (hover it for the whole path).</p>"
        )

    def confused_pairs(self, dataset, samples: dict, pairs: int = 3, per_pair: int = 5) -> str:
        """The most frequent mix-ups, each with its most confident mistakes and their files."""
        dataset = dataset.raw()
        names = dataset.class_names
        labels, predictions = samples["labels"], samples["predictions"]
        chosen = plots.confused_pairs(labels, predictions, len(names), pairs)
        if not chosen:
            return '<p class="lead">No mistakes: no pair of classes is confused.</p>'
        confidence = samples["probabilities"][np.arange(len(labels)), predictions]
        rows = []
        for true, predicted, count in chosen:
            members = np.flatnonzero((labels == true) & (predictions == predicted))
            members = members[np.argsort(-confidence[members], kind="stable")][:per_pair]
            thumbs = []
            for index in members.tolist():
                pixels = plots.display_pixels(dataset.images[index])
                thumbs.append(
                    '<figure class="thumb">'
                    + png_img(pixels, f"image {index}", zoom_for(pixels.shape[0], 72))
                    + f'<figcaption><span class="p">p={float(confidence[index]):.2f}</span>'
                    f"{file_label(dataset.paths[index], 16)}</figcaption></figure>"
                )
            rows.append(
                f'<div class="pair"><div class="pair-label">true <b>{esc(names[true])}</b><br>'
                f"→ predicted <b>{esc(names[predicted])}</b><span>{count:,} image"
                f"{'s' if count != 1 else ''}</span></div>"
                f'<div class="thumbs">{"".join(thumbs)}</div></div>'
            )
        return (
            f'<div class="pairs">{"".join(rows)}</div><p class="caption">The most frequent '
            "mix-ups, each with its most confident mistakes (p: the probability the model gave "
            "the wrong class).</p>"
        )

    def inside_section(self) -> str:
        from cnnlab.inspect import activations, saliency

        subset = next((s for s in ("test", "valid") if s in self.run.metrics), "train")
        model = self.model.get()
        dataset = self.subset(subset).raw()
        index = 0 if self.image_index is None else self.image_index
        if not 0 <= index < len(dataset):
            raise CnnlabError(
                f"image_index {index} is outside the {subset} set (0 to {len(dataset) - 1})"
            )
        image = dataset.images[index]
        names = list(getattr(model, "class_names", None) or dataset.class_names)
        label = dataset.class_names[int(dataset.labels[index])]
        source = Path(dataset.paths[index]).name
        return (
            f'<p class="lead">One {esc(subset)} image followed through the network: image '
            f"#{index} (<code>{esc(source)}</code>, true class <b>{esc(label)}</b>).</p>"
            "<h3>Activations</h3>"
            + self.figures.guarded(
                "the activations",
                lambda p: activations.plot_activations(model, image, p, class_names=names),
                caption="What every layer makes of the image, up to the class probabilities.",
            )
            + "<h3>Saliency</h3>"
            + self.figures.guarded(
                "the saliency map",
                lambda p: saliency.plot_saliency(model, image, p, class_names=names),
                caption="Where the model looks: the pixels that most change its answer.",
            )
            + "<h3>First-layer filters</h3>"
            + self.figures.guarded(
                "the filters",
                lambda p: activations.plot_filters(model, p),
                caption="The learned kernels of the first convolution.",
            )
        )


def _score(model, dataset) -> dict:
    """Per-image results of ``model`` on ``dataset`` (:func:`cnnlab.evaluate.per_sample`).

    Scored on one CPU thread: for the small networks cnnlab trains, a second
    thread saves little on an idle laptop but costs many times over when the other core is
    busy (the threads wait for each other at every layer), and the report is often written
    while other work runs.
    """
    import torch

    from cnnlab.evaluate import per_sample

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return per_sample(model, dataset)
    finally:
        torch.set_num_threads(threads)


class _Counts:
    """A subset's class counts where :func:`cnnlab.data.split.balance_warnings` wants a dataset.

    The counts come from ``metrics.json``, so the warnings appear even when the data cannot be
    re-loaded.
    """

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def class_counts(self) -> dict[str, int]:
        return dict(self.counts)


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    image_index: int | None = None,
    *,
    model: object = None,
    split: object = None,
) -> Path:
    """Writes the HTML report of the finished run in ``run_dir``; returns its path.

    ``out`` defaults to ``run_dir/report.html``. ``image_index`` picks the test image (else
    validation image) followed through the network in the last section (default: the first).
    ``model`` and ``split`` are the run's trained model and its
    :class:`~cnnlab.data.split.Split`, for a caller that still holds them (``cnnlab train``):
    they spare re-loading both from disk. Left out, both are re-loaded from the run folder.
    """
    run = read_run(run_dir)
    if image_index is not None:
        # Asked for explicitly: a bad index is the user's error, not a note inside the page.
        subset = next((s for s in ("test", "valid") if s in run.metrics), "train")
        size = run.metrics[subset]["n"]
        if not 0 <= image_index < size:
            raise CnnlabError(
                f"--image {image_index}: the {subset} set has images 0 to {size - 1}; choose one"
            )
    target = Path(out) if out is not None else run.path / REPORT_NAME
    with tempfile.TemporaryDirectory(prefix="cnnlab-report-") as scratch:
        report = Report(run, Figures(Path(scratch)), image_index, model=model, split=split)
        page = report.html()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_text(target, page)
    except OSError as error:
        raise CnnlabError(f"cannot write the report {target}: {error.strerror or error}") from None
    return target


CSS = """
:root{--bg:#f3f5f9;--card:#fff;--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--zebra:#f8fafc;
--accent:#2563eb;--good:#15803d;--good-bg:#dcfce7;--fair:#b45309;--fair-bg:#fef3c7;--bad:#b91c1c;
--bad-bg:#fee2e2}
*{box-sizing:border-box}
html{scroll-behavior:smooth}
body{margin:0;background:var(--bg);color:var(--ink);
font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.wrap{max-width:1100px;margin:0 auto;padding:0 20px}
code{font:0.9em ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eef2f7;
padding:1px 5px;border-radius:4px}
.hero{background:linear-gradient(135deg,#1e3a8a 0%,#2563eb 60%,#3b82f6 100%);color:#fff;
padding:26px 0 24px}
.hero code{background:rgba(255,255,255,.16);color:#fff}
.eyebrow{text-transform:uppercase;letter-spacing:.08em;font-size:12px;opacity:.8}
.hero h1{margin:4px 0 2px;font-size:30px;font-weight:700;letter-spacing:-.01em}
.meta{opacity:.9;font-size:14px}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:12px;
margin-top:18px}
.tile{background:rgba(255,255,255,.12);border:1px solid rgba(255,255,255,.18);border-radius:12px;
padding:12px 16px}
.tile-label{font-size:12px;text-transform:uppercase;letter-spacing:.05em;opacity:.85}
.tile-value{font-size:26px;font-weight:700;margin:2px 0;font-variant-numeric:tabular-nums}
.tile-sub{font-size:12.5px;opacity:.85}
.badge{display:inline-block;vertical-align:middle;padding:2px 10px;border-radius:999px;
font-size:12px;font-weight:600;letter-spacing:.02em}
.badge.good{background:var(--good-bg);color:var(--good)}
.badge.fair{background:var(--fair-bg);color:var(--fair)}
.badge.bad{background:var(--bad-bg);color:var(--bad)}
.toc{position:sticky;top:0;z-index:10;background:rgba(255,255,255,.94);
border-bottom:1px solid var(--line);box-shadow:0 1px 6px rgba(15,23,42,.06)}
.toc .wrap{display:flex;gap:4px;flex-wrap:wrap;padding-top:8px;padding-bottom:8px}
.toc a{color:var(--ink);text-decoration:none;font-size:14px;padding:4px 12px;border-radius:999px}
.toc a:hover{background:#e8eefc;color:var(--accent)}
main{padding-bottom:12px}
section.card{background:var(--card);border-radius:14px;margin:20px 0;padding:22px 26px;
box-shadow:0 1px 3px rgba(15,23,42,.07),0 1px 2px rgba(15,23,42,.04);scroll-margin-top:60px}
h2{margin:0 0 10px;font-size:21px;letter-spacing:-.01em}
h3{margin:22px 0 8px;font-size:16px}
h4{margin:0 0 6px;font-size:14px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.lead{color:#374151;margin:0 0 14px;max-width:80ch}
figure{margin:14px 0;text-align:center}
figure img{max-width:100%;height:auto;border-radius:6px}
figcaption{color:var(--muted);font-size:13px;margin-top:4px;max-width:85ch;margin-left:auto;
margin-right:auto}
.table-wrap{overflow-x:auto;margin:8px 0}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:7px 12px;text-align:left;border-bottom:1px solid var(--line);vertical-align:top}
thead th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);
border-bottom:2px solid var(--line);white-space:nowrap}
tbody tr:nth-child(even){background:var(--zebra)}
tfoot td{border-top:2px solid var(--line);border-bottom:none}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.compact th,table.compact td{padding:5px 10px}
.grid3{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:16px}
.kv h3{margin:0 0 6px}
.chips{display:flex;flex-wrap:wrap;gap:8px}
.chip{display:inline-flex;align-items:baseline;gap:8px;background:#eef3fd;border:1px solid #d7e2f8;
border-radius:999px;padding:5px 14px;font-weight:600;font-size:14px}
.chip span{font-weight:400;color:var(--muted);font-size:12.5px}
.kv table{font-size:13.5px}
.kv th{width:42%;color:var(--muted);font-weight:500;text-transform:none;letter-spacing:0;
font-size:13.5px;border-bottom:1px solid var(--line)}
.kv td{word-break:break-word}
.split{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.3fr);gap:20px;
align-items:start}
.split figure{margin-top:8px}
@media (max-width:800px){.split{grid-template-columns:1fr}}
.stacked .table-wrap{max-width:640px}
.graph{overflow-x:auto;padding:4px 0}
.graph svg{max-width:100%;height:auto;display:block;margin:0 auto}
.legend{text-align:center;margin:6px 0 10px}
.legend svg{max-width:100%;height:auto}
.facts{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:6px}
.fact{background:var(--zebra);border:1px solid var(--line);border-radius:10px;padding:8px 14px;
display:flex;flex-direction:column;min-width:130px}
.fact span{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
.fact b{font-size:17px}
details{margin:12px 0}
details>summary{cursor:pointer;font-weight:600;padding:6px 0;color:#1f2937}
details.subset{border:1px solid var(--line);border-radius:10px;padding:6px 16px;margin:14px 0}
.confused ul{margin:0;padding-left:18px;font-size:14px}
.confused{background:var(--zebra);border-radius:10px;padding:10px 14px;margin:8px 0}
.note{background:#fffbeb;border-left:4px solid #f59e0b;color:#78350f;padding:8px 12px;
border-radius:6px;margin:10px 0;font-size:14px}
ul.warnings{margin:6px 0;padding-left:20px;color:#92400e;font-size:14px}
footer{color:var(--muted);font-size:12.5px;padding:8px 20px 28px}
img.px{image-rendering:pixelated;max-width:100%;height:auto;display:block;border-radius:3px}
.caption{color:var(--muted);font-size:13px;margin:6px auto 0;max-width:85ch;text-align:center}
.sample-grid{display:inline-grid;grid-template-columns:auto auto;gap:6px 14px;
align-items:center;max-width:100%;text-align:left}
.sample-label{font-weight:600;text-align:right;line-height:1.25;overflow-wrap:anywhere;
max-width:16ch}
.sample-label span{display:block;font-weight:400;font-size:12px;color:var(--muted)}
.cm{display:flex;flex-wrap:wrap;gap:10px 24px;align-items:flex-end;justify-content:center}
.cm .table-wrap{max-width:100%}
table.cm-table{width:auto;border-collapse:separate;border-spacing:2px;font-size:13px}
.cm-table th,.cm-table td{border:none;padding:0}
.cm-table thead th{text-transform:none;letter-spacing:0;font-size:12.5px;color:var(--ink);
font-weight:600;text-align:center;padding:2px 4px;white-space:nowrap;vertical-align:bottom}
.cm-table th.cm-corner{color:var(--muted);font-weight:500;font-size:11.5px;text-align:right}
.cm-table tbody th,.cm-table tfoot th{font-weight:600;text-align:right;padding:0 8px;
white-space:nowrap;vertical-align:middle}
.cm-table tfoot th{color:var(--muted);font-weight:500;font-size:11.5px}
.cm-table tbody tr:nth-child(even){background:none}
.cm-table td{min-width:54px;height:44px;text-align:center;vertical-align:middle;
border-radius:4px;font-variant-numeric:tabular-nums;line-height:1.15}
.cm-table td b{display:block;font-size:13px}
.cm-table td small{display:block;font-size:11px;opacity:.85}
.cm-table td.zero{color:#c0c6cf;background:#fafbfc}
.cm-table td.diag{box-shadow:inset 0 0 0 2px rgba(30,58,138,.55)}
.cm-table td.total{color:var(--muted);font-size:12px;min-width:44px;background:none}
.cm-table.small td{min-width:40px;height:36px}
.cm-table.small td small{display:none}
.cm-table.tiny td{min-width:26px;height:24px;font-size:10px}
.cm-table.tiny td b{font-size:10px}
.cm-table.tiny td small{display:none}
.cm-legend{font-size:12px;color:var(--muted);width:220px;margin-bottom:6px;text-align:left}
.cm-legend-title{margin-bottom:4px}
.cm-scale{display:flex;align-items:center;gap:8px;margin:3px 0}
.cm-bar{height:10px;width:160px;border-radius:3px;border:1px solid var(--line)}
.cm-bar.diag{background:linear-gradient(90deg,#fff,rgb(37,99,235))}
.cm-bar.off{background:linear-gradient(90deg,#fff,rgb(220,38,38))}
.cm-ticks{position:relative;width:160px;height:16px;font-size:10.5px}
.cm-ticks span{position:absolute;transform:translateX(-50%)}
.cm-figure figcaption{margin-top:8px}
.cases{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:12px;
margin-top:8px}
figure.case{margin:0;border:1px solid var(--line);border-radius:10px;padding:8px 10px;
text-align:left;background:#fff;min-width:0}
figure.case.wrong{border-top:3px solid #c62828}
figure.case.right{border-top:3px solid #2e7d32}
.case-head{font-size:13px;margin-bottom:6px}
.case-head .p,.thumb .p{color:var(--muted);font-variant-numeric:tabular-nums}
.case.wrong .case-head b:last-of-type{color:#c62828}
.case-body{display:flex;gap:10px;align-items:flex-start}
.case-body img{flex:none}
figure.case figcaption{margin-top:6px;text-align:left;max-width:none}
code.file{display:block;font-size:11.5px;overflow:hidden;text-overflow:ellipsis;
white-space:nowrap;background:none;padding:0;color:#475569}
.pb{flex:1;min-width:0;display:grid;gap:1px;font-size:11px;line-height:13px}
.pb.many{font-size:9.5px;line-height:10px}
.pb-row{display:grid;grid-template-columns:minmax(0,4.5em) 1fr 2.3em;gap:4px;align-items:center}
.pb-name{text-align:right;overflow:hidden;white-space:nowrap;color:#374151}
.pb-track{background:#f1f3f6;height:9px;border-radius:2px;overflow:hidden}
.pb.many .pb-track{height:7px}
.pb-bar{display:block;height:100%;background:#b0b7c3}
.pb-row.true .pb-bar{background:#2e7d32}
.pb-row.pred .pb-bar{background:#c62828}
.pb-row.true .pb-name,.pb-row.pred .pb-name{font-weight:700;color:var(--ink)}
.pb-value{text-align:right;font-variant-numeric:tabular-nums;color:var(--muted)}
.pb-legend{display:flex;gap:18px;justify-content:center;font-size:12.5px;color:var(--muted);
margin-top:10px}
.pb-legend span::before{content:"";display:inline-block;width:12px;height:10px;
border-radius:2px;margin-right:5px;vertical-align:-1px;background:#b0b7c3}
.pb-legend .true::before{background:#2e7d32}
.pb-legend .pred::before{background:#c62828}
.pairs{display:grid;gap:10px}
.pair{display:flex;gap:16px;align-items:center;border:1px solid var(--line);border-radius:10px;
padding:8px 12px;flex-wrap:wrap}
.pair-label{width:170px;font-size:14px;line-height:1.4}
.pair-label span{display:block;color:var(--muted);font-size:12.5px}
.thumbs{display:flex;gap:10px;flex-wrap:wrap;flex:1;min-width:0}
figure.thumb{margin:0;width:124px;text-align:center}
figure.thumb img{margin:0 auto}
figure.thumb figcaption{font-size:11.5px;margin-top:2px}
"""
