"""The report's last sections: how well the model does, what it gets wrong, and a look inside."""

from __future__ import annotations

from pathlib import Path

from markupsafe import Markup

from cnnlab.errors import CnnlabError
from cnnlab.inspect import mistakes
from cnnlab.inspect.display import display_pixels
from cnnlab.inspect.figures import shorten_middle
from cnnlab.inspect.report.context import ReportContext
from cnnlab.inspect.report.html import (
    BAR_LEGEND,
    badge,
    confusion_html,
    file_label,
    guarded,
    guarded_figure,
    html,
    join,
    note,
    number,
    p_value,
    percent,
    png_img,
    probability_bars,
    table,
    zoom_for,
)

SUBSET_TITLES = {"train": "Training set", "valid": "Validation set", "test": "Test set"}
SUBSET_SHORT = {"train": "Training", "valid": "Validation", "test": "Test"}
WORST_CASES = 16


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'s' if count != 1 else ''}"


# ------------------------------------------------------------------------------ evaluation
def evaluation_section(report: ReportContext) -> Markup:
    metrics = report.run.metrics
    subsets = [s for s in ("train", "valid", "test") if s in metrics]
    rows = []
    for subset in subsets:
        m = metrics[subset]
        low, high = m.get("accuracy_ci") or (None, None)
        rows.append(
            [
                html("<b>{}</b>", SUBSET_SHORT[subset]),
                m.get("n", "—"),
                html("{} {}", percent(m.get("accuracy"), 2), badge(m)),
                f"{percent(low)} – {percent(high)}",
                number(m.get("kappa")),
                percent(m.get("no_information_rate")),
                p_value(m.get("p_value_acc_gt_nir")),
                number(m.get("macro_f1")),
                number(m.get("loss"), 4),
            ]
        )
    header = ["subset", "images", "accuracy", "95% CI", "kappa", "NIR", "p (acc > NIR)"]
    return html(
        '<p class="lead">How well the kept model classifies each subset. The test set was '
        "never used for training or for choosing the epoch, so its numbers are the honest "
        "ones; a training accuracy far above them means overfitting.</p>{}{}",
        table([*header, "macro F1", "loss"], rows, numeric=[False] + [True] * 8),
        join(
            guarded(f"the {subset} details", lambda s=subset: subset_details(report, s))
            for subset in reversed(subsets)
        ),
    )


def subset_details(report: ReportContext, subset: str) -> Markup:
    m = report.run.metrics[subset]
    names = list(m.get("class_names") or m["per_class"].keys())
    rows = []
    for name in names:
        stats = m["per_class"].get(name, {})
        rows.append(
            [
                name,
                stats.get("support", "—"),
                number(stats.get("precision")),
                number(stats.get("recall")),
                number(stats.get("f1")),
                number(stats.get("specificity")),
            ]
        )
    confused = m.get("most_confused") or []
    confused_html = Markup("")
    if confused:
        items = join(
            html(
                "<li><b>{}</b> taken for <b>{}</b>: {} ({} of {})</li>",
                c["true"],
                c["predicted"],
                _plural(c["count"], "image"),
                percent(c.get("share_of_true")),
                c["true"],
            )
            for c in confused[:3]
        )
        confused_html = html('<div class="confused"><h4>Most confused</h4><ul>{}</ul></div>', items)
    return html(
        '<details class="subset"{}><summary>{} · {} of {} images</summary>{}{}{}</details>',
        Markup(" open") if subset == report.run.headline_subset else "",
        SUBSET_TITLES[subset],
        percent(m.get("accuracy"), 2),
        m.get("n", "?"),
        table(
            ["class", "images", "precision", "recall", "F1", "specificity"],
            rows,
            numeric=[False] + [True] * 5,
            css="compact",
        ),
        confused_html,
        guarded(
            f"the {subset} confusion matrix",
            lambda: html(
                '<figure class="cm-figure">{}<figcaption>Confusion matrix: rows are the true '
                "classes, columns the predicted ones. Each cell holds the number of images "
                "and, below it, their share of the true class; the diagonal share is each "
                "class's recall.</figcaption></figure>",
                confusion_html(m["confusion"], names),
            ),
        ),
    )


# ------------------------------------------------------------------------------ mistakes
def mistakes_section(report: ReportContext) -> Markup:
    subset = report.run.headline_subset
    title = SUBSET_TITLES[subset].lower()
    dataset, samples = report.scored(subset)
    scope = f"{len(dataset)} {title} images"
    if len(dataset) < len(report.subset(subset)):
        scope = f"the first {scope}"
    return html(
        '<p class="lead">The {} images of the {} with the highest loss: the ones the model gets '
        "most confidently wrong (or right only by a hair). Look for mislabelled files, odd "
        "crops and classes that really look alike. Scored: {}.</p>{}"
        "<h3>Most confused pairs of classes</h3>{}",
        min(WORST_CASES, len(dataset)),
        title,
        scope,
        guarded("the worst cases", lambda: worst_cases(dataset, samples)),
        guarded("the confused pairs", lambda: confused_pairs(dataset, samples)),
    )


def worst_cases(dataset, samples: dict) -> Markup:
    """One card per worst image: verdict, the image, every class's probability, file."""
    dataset = dataset.raw()
    names = list(dataset.class_names)
    cards = []
    for index in mistakes.worst_indices(samples["loss"], WORST_CASES).tolist():
        true, predicted = int(samples["labels"][index]), int(samples["predictions"][index])
        probabilities = samples["probabilities"][index]
        pixels = display_pixels(dataset.images[index])
        cards.append(
            html(
                '<figure class="case {}"><div class="case-head">true <b>{}</b> · predicted '
                '<b>{}</b> <span class="p">p={:.2f}</span></div><div class="case-body">{}{}'
                "</div><figcaption>{}</figcaption></figure>",
                "right" if true == predicted else "wrong",
                shorten_middle(names[true], 12),
                shorten_middle(names[predicted], 12),
                float(probabilities[predicted]),
                png_img(pixels, f"image {index}", zoom_for(pixels.shape[0], 84)),
                probability_bars(probabilities, names, true, predicted),
                file_label(dataset.paths[index]),
            )
        )
    if not cards:
        return note("no images were scored")
    return html(
        '<div class="cases">{}</div>{}<p class="caption">Each image with its true and predicted '
        "class, the probability the model gave every class and its file name (hover it for "
        "the whole path).</p>",
        join(cards),
        BAR_LEGEND,
    )


def confused_pairs(dataset, samples: dict, pairs: int = 3, per_pair: int = 5) -> Markup:
    """The most frequent mix-ups, each with its most confident mistakes and their files."""
    dataset = dataset.raw()
    names = dataset.class_names
    chosen = mistakes.confused_pairs(samples["labels"], samples["predictions"], len(names), pairs)
    if not chosen:
        return Markup('<p class="lead">No mistakes: no pair of classes is confused.</p>')
    rows = []
    for true, predicted, count in chosen:
        members, confidence = mistakes.pair_members(samples, true, predicted, per_pair)
        thumbs = []
        for index in members.tolist():
            pixels = display_pixels(dataset.images[index])
            thumbs.append(
                html(
                    '<figure class="thumb">{}<figcaption><span class="p">p={:.2f}</span>{}'
                    "</figcaption></figure>",
                    png_img(pixels, f"image {index}", zoom_for(pixels.shape[0], 72)),
                    float(confidence[index]),
                    file_label(dataset.paths[index], 16),
                )
            )
        rows.append(
            html(
                '<div class="pair"><div class="pair-label">true <b>{}</b><br>→ predicted '
                '<b>{}</b><span>{}</span></div><div class="thumbs">{}</div></div>',
                names[true],
                names[predicted],
                _plural(count, "image"),
                join(thumbs),
            )
        )
    return html(
        '<div class="pairs">{}</div><p class="caption">The most frequent mix-ups, each with its '
        "most confident mistakes (p: the probability the model gave the wrong class).</p>",
        join(rows),
    )


# ------------------------------------------------------------------------------ inside
def inside_section(report: ReportContext) -> Markup:
    from cnnlab.inspect import activations, filters, saliency

    subset = report.run.headline_subset
    model = report.model.get()
    dataset = report.subset(subset).raw()
    index = 0 if report.image_index is None else report.image_index
    if not 0 <= index < len(dataset):
        raise CnnlabError(
            f"image_index {index} is outside the {subset} set (0 to {len(dataset) - 1})"
        )
    image = dataset.images[index]
    names = list(getattr(model, "class_names", None) or dataset.class_names)
    label = dataset.class_names[int(dataset.labels[index])]
    return html(
        '<p class="lead">One {} image followed through the network: image #{} '
        "(<code>{}</code>, true class <b>{}</b>).</p><h3>Activations</h3>{}"
        "<h3>Saliency</h3>{}<h3>First-layer filters</h3>{}",
        subset,
        index,
        Path(dataset.paths[index]).name,
        label,
        guarded_figure(
            "the activations",
            lambda: activations.activations_figure(model, image, class_names=names),
            caption="What every layer makes of the image, up to the class probabilities.",
        ),
        guarded_figure(
            "the saliency map",
            lambda: saliency.saliency_figure(model, image, class_names=names),
            caption="Where the model looks: the pixels that most change its answer.",
        ),
        guarded_figure(
            "the filters",
            lambda: filters.filters_figure(model),
            caption="The learned kernels of the first convolution.",
        ),
    )
