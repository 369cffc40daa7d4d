"""The report's first sections: the settings, the data, the model and its training."""

from __future__ import annotations

from markupsafe import Markup

from cnnlab.inspect import plots
from cnnlab.inspect.display import display_pixels
from cnnlab.inspect.figures import tile_grid
from cnnlab.inspect.report.context import ReportContext
from cnnlab.inspect.report.html import (
    duration,
    guarded,
    guarded_figure,
    html,
    join,
    key_values,
    note,
    number,
    option_text,
    percent,
    png_img,
    table,
    zoom_for,
)


# ------------------------------------------------------------------------------ settings
def settings_section(report: ReportContext) -> Markup:
    config = dict(report.run.config)
    if not config:
        return note("config.json is missing: the run's settings are unknown")
    train = config.pop("train", {}) or {}
    resolved = dict(config.pop("resolved", {}) or {})
    if isinstance(resolved.get("relabel"), dict):  # its changes have their own section
        resolved["relabel"] = resolved["relabel"].get("file")
    config.pop("out", None)
    subsets = resolved.pop("subsets", None)
    if subsets:
        resolved["images"] = ", ".join(f"{k} {v}" for k, v in subsets.items())
    return html(
        '<div class="chips">{}</div><details><summary>All options (<code>config.json</code>)'
        '</summary><div class="grid3">{}{}{}</div></details>',
        key_settings(report, config, train),
        key_values("Run", config, option_text),
        key_values("Training", train, option_text),
        key_values("Resolved", resolved, option_text),
    )


def key_settings(report: ReportContext, config: dict, train: dict) -> Markup:
    """The handful of choices that explain a result, as chips; the rest stays folded."""
    lr = train.get("lr")  # config.json holds the rate the run used, defaults resolved
    size = (report.run.config.get("resolved") or {}).get("size") or config.get("size")
    items = [
        ("model", config.get("model")),
        ("optimizer", train.get("optimizer")),
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
    return join(
        html('<span class="chip"><span>{}</span>{}</span>', label, option_text(value))
        for label, value in items
        if value not in (None, [], "")
    )


# ------------------------------------------------------------------------------ data
def class_counts(report: ReportContext) -> dict[str, dict[str, int]]:
    """subset -> class -> images, from the supports in metrics.json (no data needed)."""
    counts: dict[str, dict[str, int]] = {}
    for subset in ("train", "valid", "test"):
        metrics = report.run.metrics.get(subset)
        if metrics and metrics.get("per_class"):
            counts[subset] = {c: int(v.get("support", 0)) for c, v in metrics["per_class"].items()}
    return counts


def data_section(report: ReportContext) -> Markup:
    counts = class_counts(report)
    parts = [
        html('<p class="lead">{}: {}.</p>', report.data_name(), ", ".join(report.run.class_names))
    ]
    if counts:
        subsets = list(counts)
        classes = list(next(iter(counts.values())))
        rows = []
        for name in classes:
            values = [counts[s].get(name, 0) for s in subsets]
            rows.append([name, *values, sum(values)])
        totals = [sum(counts[s].values()) for s in subsets]
        # The bar chart grows with the classes: beside the table only while it stays legible.
        layout = "split" if len(classes) * len(subsets) <= 12 else "stacked"
        parts.append(
            html(
                '<div class="{}">{}{}</div>',
                layout,
                table(
                    ["class", *subsets, "total"],
                    rows,
                    numeric=[False] + [True] * (len(subsets) + 1),
                    footer=[Markup("<b>total</b>"), *totals, sum(totals)],
                    css="compact",
                ),
                guarded_figure("the class counts", lambda: plots.class_counts_figure(counts)),
            )
        )
        parts.append(balance_notes(counts))
    parts.append(Markup("<h3>Sample images of the training set</h3>"))
    parts.append(guarded("the sample images", lambda: sample_grid(report)))
    return join(parts)


def sample_grid(report: ReportContext, per_class: int = 10) -> Markup:
    """Random training images, one row per class: a label and one picture per row."""
    dataset = report.subset("train").raw()
    rows = plots.sample_rows(dataset, per_class)
    tiles = [[display_pixels(dataset.images[int(i)]) for i in chosen] for *_, chosen in rows]
    sizes = [t.shape[:2] for row in tiles for t in row]
    if not sizes:
        return note("the training set has no images to show")
    cell = (max(h for h, _ in sizes), max(w for _, w in sizes))
    zoom = zoom_for(cell[0], 60)
    html_rows = join(
        html('<div class="sample-label">{}<span>{:,} images</span></div>', name, count)
        + png_img(
            tile_grid([row], per_class, gap=2, cell=cell),
            f"training images of class {name}",
            zoom,
        )
        for (name, count, _), row in zip(rows, tiles, strict=True)
    )
    return html(
        '<figure class="samples"><div class="sample-grid">{}</div>'
        "<figcaption>Random training images, one row per class (16-bit images are "
        "contrast-stretched per image).</figcaption></figure>",
        html_rows,
    )


class _Counts:
    """A subset's class counts where :func:`cnnlab.data.split.balance_warnings` wants a dataset.

    The counts come from ``metrics.json``, so the warnings appear even when the data cannot be
    re-loaded.
    """

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def class_counts(self) -> dict[str, int]:
        return dict(self.counts)


def balance_notes(counts: dict[str, dict[str, int]]) -> Markup:
    """The data layer's warnings about missing or rare classes, from the counts alone."""
    from cnnlab.data.split import balance_warnings

    problems = balance_warnings({subset: _Counts(c) for subset, c in counts.items()})
    if not problems:
        return Markup("")
    items = join(html("<li>{}</li>", problem) for problem in problems)
    return html('<ul class="warnings">{}</ul>', items)


# ------------------------------------------------------------------------------ model
def model_section(report: ReportContext) -> Markup:
    from cnnlab.inspect.graph import legend_svg, network_graph_svg
    from cnnlab.models import model_summary

    model = report.model.get()
    meta = getattr(model, "cnnlab_meta", {}) or {}
    summary = model_summary(model)
    rows = [
        [
            html("<code>{}</code>", row["name"]),
            row["type"],
            "×".join(str(s) for s in row["output_shape"][1:]),
            f"{row['params']:,}",
        ]
        for row in summary.rows
    ]
    arch = meta.get("architecture") or {}
    options = arch.get("kwargs") or {}
    describe = html("<b>{}</b>", arch.get("name", type(model).__name__))
    if options:
        describe += " with " + option_text(options)
    # The graph module draws trusted SVG from the model's own layer names, escaped there.
    graph = guarded(
        "the network graph",
        lambda: html(
            '<div class="graph">{}</div><div class="legend">{}</div>',
            Markup(network_graph_svg(model)),
            Markup(legend_svg()),
        ),
    )
    return html(
        '<p class="lead">{}: {:,} parameters ({:,} trainable), {:,} multiply-adds per image, '
        "input {}.</p>{}<details open><summary>Layer table</summary>{}</details>",
        describe,
        summary.total_params,
        summary.trainable_params,
        summary.total_mult_adds,
        "×".join(str(s) for s in summary.input_shape[1:]),
        graph,
        table(
            ["layer", "type", "output shape", "parameters"],
            rows,
            numeric=[False, False, True, True],
            footer=[Markup("<b>total</b>"), "", "", html("<b>{:,}</b>", summary.total_params)],
            css="compact",
        ),
    )


# ------------------------------------------------------------------------------ training
def training_section(report: ReportContext) -> Markup:
    history = report.run.history
    run = report.run.run
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
    kept = run.get("kept_epoch", best)
    if kept != best:
        facts.insert(2, ("weights kept", f"the last epoch, {kept} (--keep last)"))
    if report.run.config.get("valid_on") == "test":
        facts.append(("validated on", "the test set, every epoch (--valid-on test)"))
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
    return html(
        '<div class="facts">{}</div>{}{}<details><summary>History table</summary>{}</details>',
        join(html('<div class="fact"><span>{}</span><b>{}</b></div>', k, v) for k, v in facts),
        guarded_figure(
            "the learning curves",
            lambda: plots.learning_curves_figure(history, best_epoch=best),
            caption="Loss and accuracy per epoch. The star marks the best epoch, whose "
            "weights the run kept unless it kept the last; a validation loss that rises while "
            "the training loss falls is overfitting.",
        ),
        guarded_figure(
            "the epoch times",
            lambda: plots.epoch_times_figure(history),
            caption="Seconds per epoch (training plus validation).",
        ),
        table(
            ["epoch", "train loss", "train acc.", "valid loss", "valid acc.", "lr", "s"],
            rows,
            numeric=[True] * 7,
            css="compact",
        ),
    )
