"""The report's HTML pieces: numbers as text, tables, notes, figures and images, escaped.

Every helper escapes what it is given unless it is :class:`markupsafe.Markup`, which is how a
trusted fragment (one built by these helpers) says so; a class or file name holding ``<`` or
``&`` therefore shows as written and can never break the page. Build fragments with
:func:`html`, which escapes its arguments into a trusted template.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from markupsafe import Markup
from matplotlib.figure import Figure

from cnnlab.inspect import confusion
from cnnlab.inspect.figures import figure_png, png_of, shorten_middle


def html(template: str, *args: object, **kwargs: object) -> Markup:
    """``template`` (trusted HTML) with ``{}`` fields filled in, each escaped unless Markup."""
    return Markup(template).format(*args, **kwargs)


def join(parts: Iterable[object]) -> Markup:
    """The parts one after another, each escaped unless Markup."""
    return Markup("").join(parts)


# ------------------------------------------------------------------------------ numbers
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


def badge(metrics: dict) -> Markup:
    level, words = accuracy_level(metrics)
    return html('<span class="badge {}">{}</span>', level, words)


# ------------------------------------------------------------------------------ blocks
def note(message: str) -> Markup:
    return html('<div class="note">{}</div>', message)


def failure_note(what: str, error: BaseException) -> Markup:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return note(f"{what} could not be drawn: {reason}")


def guarded(what: str, build: Callable[[], Markup]) -> Markup:
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
) -> Markup:
    """An HTML table; columns flagged ``numeric`` are right-aligned with tabular digits."""
    numeric = list(numeric or [False] * len(header))
    number_class = Markup(' class="num"')

    def cells(values: Sequence[object], tag: str) -> Markup:
        return join(
            html(f"<{tag}{{}}>{{}}</{tag}>", number_class if numeric[i] else "", value)
            for i, value in enumerate(values)
        )

    head = html("<thead><tr>{}</tr></thead>", cells(header, "th"))
    body = join(html("<tr>{}</tr>", cells(row, "td")) for row in rows)
    foot = html("<tfoot><tr>{}</tr></tfoot>", cells(footer, "td")) if footer else ""
    return html(
        '<div class="table-wrap"><table class="{}">{}<tbody>{}</tbody>{}</table></div>',
        css,
        head,
        body,
        foot,
    )


def key_values(title: str, values: dict, describe: Callable[[object], str]) -> Markup:
    """A titled two-column table of settings: the names (underscores as spaces) and values."""
    rows = join(
        html("<tr><th>{}</th><td>{}</td></tr>", key.replace("_", " "), describe(value))
        for key, value in values.items()
    )
    return html('<div class="kv"><h3>{}</h3><table>{}</table></div>', title, rows)


# ------------------------------------------------------------------------------ pictures
def figure_html(figure: Figure, alt: str, caption: str | Markup = "", css: str = "") -> Markup:
    """A matplotlib figure as a ``<figure>`` with its PNG embedded (rendered in memory)."""
    data = base64.b64encode(figure_png(figure)).decode("ascii")
    caption_html = html("<figcaption>{}</figcaption>", caption) if caption else ""
    return html(
        '<figure class="{}"><img src="data:image/png;base64,{}" alt="{}">{}</figure>',
        css,
        data,
        alt,
        caption_html,
    )


def guarded_figure(
    what: str, build: Callable[[], Figure], caption: str | Markup = "", css: str = ""
) -> Markup:
    """:func:`figure_html` of ``build()``, or a note saying why ``what`` could not be drawn."""
    return guarded(what, lambda: figure_html(build(), what, caption, css))


def png_img(pixels, alt: str, scale: float = 1.0, css: str = "px") -> Markup:
    """An ``<img>`` of 8-bit pixels, embedded as PNG data and shown ``scale`` times larger.

    Small images are enlarged by the browser (``image-rendering: pixelated`` keeps each pixel a
    sharp square) instead of being resampled into a bigger PNG: the file stays small and a
    28 px digit looks exactly as the network sees it.
    """
    height, width = pixels.shape[:2]
    data = base64.b64encode(png_of(pixels)).decode("ascii")
    return html(
        '<img class="{}" src="data:image/png;base64,{}" alt="{}" width="{}" height="{}">',
        css,
        data,
        alt,
        round(width * scale),
        round(height * scale),
    )


def zoom_for(pixels_high: int, target: int) -> float:
    """A whole-number enlargement bringing images ``pixels_high`` tall near ``target`` px."""
    return float(max(1, round(target / max(pixels_high, 1))))


def probability_bars(
    probabilities: Sequence[float], names: Sequence[str], true: int, predicted: int
) -> Markup:
    """Every class's probability as a bar: green the true class, red the predicted one."""
    rows = []
    for index, (name, p) in enumerate(zip(names, probabilities, strict=True)):
        kind = "true" if index == true else "pred" if index == predicted else "other"
        rows.append(
            html(
                '<div class="pb-row {}"><span class="pb-name" title="{}">{}</span>'
                '<span class="pb-track"><span class="pb-bar" style="width:{:.1f}%"></span>'
                '</span><span class="pb-value">{:.2f}</span></div>',
                kind,
                name,
                shorten_middle(str(name), 10),
                100 * float(p),
                float(p),
            )
        )
    return html('<div class="pb{}">{}</div>', " many" if len(names) > 10 else "", join(rows))


def file_label(path: str, width: int = 30) -> Markup:
    """A source file name as text: shortened in the middle, whole in the tooltip."""
    name = shorten_middle(Path(path).name, width)
    return html('<code class="file" title="{}">{}</code>', path, name)


BAR_LEGEND = Markup(
    '<div class="pb-legend"><span class="true">true class</span>'
    '<span class="pred">predicted class</span><span class="other">other classes</span></div>'
)


# ------------------------------------------------------------------------------ confusion
def _rgb(colour: tuple[int, int, int]) -> str:
    return f"rgb({colour[0]},{colour[1]},{colour[2]})"


def confusion_html(matrix: Sequence[Sequence[int]], names: Sequence[str]) -> Markup:
    """A confusion matrix as a table heatmap: counts and shares of each true class per cell.

    Rows are the true classes, columns the predicted ones; each cell holds its count and, below
    it, its share of the row (the diagonal share is the class's recall). Shares and colours come
    from :mod:`cnnlab.inspect.confusion`, as in the PNG figure. Real table cells keep the
    numbers crisp and selectable at any zoom.
    """
    counts = confusion.confusion_counts(matrix, names)
    shares = confusion.row_shares(counts)
    k = len(names)
    size = "" if k <= 10 else " small" if k <= 20 else " tiny"
    body = []
    for i, row in enumerate(counts.tolist()):
        support = sum(row)
        cells = []
        for j, count in enumerate(row):
            background, ink = confusion.share_colour(count, shares[i, j], i == j)
            style = f"background:{_rgb(background)};color:{ink}"
            if count == 0:
                cells.append(html('<td class="zero" style="{}">0</td>', style))
                continue
            cells.append(
                html(
                    '<td class="{}" style="{}" title="true {}, predicted {}: {} of {} ({:.1%})">'
                    "<b>{:,}</b><small>{:.1f}%</small></td>",
                    "diag" if i == j else "off",
                    style,
                    names[i],
                    names[j],
                    count,
                    support,
                    shares[i, j],
                    count,
                    100 * shares[i, j],
                )
            )
        body.append(
            html(
                '<tr><th scope="row">{}</th>{}<td class="total">{:,}</td></tr>',
                names[i],
                join(cells),
                support,
            )
        )
    predicted = counts.sum(axis=0).tolist()
    head = join(html('<th scope="col">{}</th>', name) for name in names)
    foot = join(html('<td class="total">{:,}</td>', count) for count in predicted)
    return html(
        '<div class="cm"><div class="table-wrap"><table class="cm-table{}">'
        '<thead><tr><th class="cm-corner">true ↓ · predicted →</th>{}'
        '<th class="total">images</th></tr></thead><tbody>{}</tbody>'
        '<tfoot><tr><th scope="row">predicted</th>{}<td class="total">{:,}</td></tr></tfoot>'
        "</table></div>{}</div>",
        size,
        head,
        join(body),
        foot,
        sum(predicted),
        confusion_legend(),
    )


def confusion_legend() -> Markup:
    """The two colour scales of :func:`confusion_html` with their share ticks."""
    ticks = join(
        html(
            '<span style="left:{:.1f}%">{}</span>',
            100 * confusion.share_scale(v),
            "0" if v == 0 else f"{v:.0%}",
        )
        for v in confusion.LEGEND_TICKS
    )
    scales = join(
        html(
            '<div class="cm-scale"><div class="cm-bar" style="background:'
            'linear-gradient(90deg,#fff,{})"></div><span>{}</span></div>',
            _rgb(colour),
            words,
        )
        for colour, words in ((confusion.CORRECT, "correct"), (confusion.MISTAKEN, "mistaken"))
    )
    return html(
        '<div class="cm-legend"><div class="cm-legend-title">share of the true class</div>'
        '{}<div class="cm-ticks">{}</div></div>',
        scales,
        ticks,
    )
