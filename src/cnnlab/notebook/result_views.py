"""Jupyter's views of the results: a training history, metrics and a prediction table.

Like the input views (:mod:`cnnlab.notebook.data_views`), each is one self-contained, escaped
HTML fragment, and stays short: a long history shows its first and last epochs, a prediction
table its first :data:`~cnnlab.export.predict.PREVIEW_ROWS` rows and how many more there are.
"""

from __future__ import annotations

from collections.abc import Mapping

from markupsafe import Markup

from cnnlab.export.predict import PredictionTable
from cnnlab.inspect.display import display_pixels
from cnnlab.inspect.plots import learning_curves_figure
from cnnlab.inspect.report.html import (
    confusion_html,
    figure_html,
    file_label,
    html,
    join,
    number,
    p_value,
    percent,
    png_img,
    table,
    zoom_for,
)
from cnnlab.notebook.common import plural, view
from cnnlab.train.loop import History

#: A history longer than this shows its first and last :data:`HISTORY_ENDS` epochs.
HISTORY_ROWS = 24
HISTORY_ENDS = 8
#: Height in screen pixels of a prediction's thumbnail.
THUMBNAIL_HEIGHT = 40
#: Per-class probability columns are shown up to this many classes.
PROBABILITY_COLUMNS = 6


# ------------------------------------------------------------------------------ history
def history_html(history: History) -> str:
    """The learning curves, then one row per epoch (the best one in bold)."""
    if not history.rows:
        return view("cv-history", "History", "no epochs")
    header = ["epoch", "train loss", "train accuracy", "valid loss", "valid accuracy", "seconds"]
    keys = ["train_loss", "train_accuracy", "valid_loss", "valid_accuracy"]

    def cells(row: Mapping) -> list[str]:
        values = [
            number(row.get(key), 4) if "loss" in key else percent(row.get(key), 2) for key in keys
        ]
        return [str(row.get("epoch")), *values, number(row.get("seconds"), 2)]

    shown = history.rows
    if len(shown) > HISTORY_ROWS:
        shown = [*shown[:HISTORY_ENDS], None, *shown[-HISTORY_ENDS:]]
    body = []
    for row in shown:
        if row is None:
            skipped = len(history.rows) - 2 * HISTORY_ENDS
            body.append(
                html('<tr><td class="more" colspan="6">… {} more epochs …</td></tr>', skipped)
            )
            continue
        css = "best" if row.get("epoch") == history.best_epoch else ""
        numeric = Markup(' class="num"')
        body.append(
            html(
                '<tr class="{}">{}</tr>',
                css,
                join(html("<td{}>{}</td>", numeric, value) for value in cells(row)),
            )
        )
    head = join(html("<th>{}</th>", name) for name in header)
    epochs = html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, join(body))
    curves = figure_html(learning_curves_figure(history.rows, history.best_epoch), "curves")
    return view(
        "cv-history", "History", repr(history).removeprefix("History(")[:-1], curves, epochs
    )


# ------------------------------------------------------------------------------ metrics
def metrics_html(metrics: Mapping) -> str:
    """caret's ``confusionMatrix`` block, the per-class statistics and the confusion matrix."""
    names = [str(name) for name in metrics.get("class_names") or metrics.get("per_class", {})]
    low, high = metrics.get("accuracy_ci") or (None, None)
    overall = [
        ("Accuracy", percent(metrics.get("accuracy"), 2)),
        ("95% CI", f"({percent(low, 2)}, {percent(high, 2)})"),
        ("No Information Rate", percent(metrics.get("no_information_rate"), 2)),
        ("P-Value [Acc > NIR]", p_value(metrics.get("p_value_acc_gt_nir"))),
        ("Kappa", number(metrics.get("kappa"), 4)),
        ("Mcnemar's Test P-Value", p_value(metrics.get("mcnemar_p_value"))),
        ("Macro F1", number(metrics.get("macro_f1"), 4)),
    ]
    if metrics.get("loss") is not None:
        overall.append(("Loss (cross-entropy)", number(metrics["loss"], 4)))
    if metrics.get("top2_accuracy") is not None:
        overall.append(("Top-2 accuracy", percent(metrics["top2_accuracy"], 2)))
    block = table(["statistic", "value"], overall, numeric=[False, True], css="cv-overall")
    per_class = metrics.get("per_class") or {}
    stats = ["sensitivity", "specificity", "pos_pred_value", "neg_pred_value", "f1"]
    rows = [
        [name, *(number(values.get(stat), 4) for stat in stats), f"{values.get('support', 0):,}"]
        for name, values in per_class.items()
    ]
    by_class = table(
        ["class", "sensitivity", "specificity", "pos pred value", "neg pred value", "F1", "images"],
        rows,
        numeric=[False, *([True] * 6)],
        css="cv-per-class",
    )
    matrix = confusion_html(metrics["confusion"], names) if "confusion" in metrics else ""
    where = metrics.get("dataset") or metrics.get("subset") or ""
    facts = [plural(int(metrics.get("n") or 0), "image"), plural(len(names), "class")]
    title = f"Metrics of {where}" if where else "Metrics"
    return view("cv-metrics", title, " · ".join(facts), block, by_class, matrix)


# ------------------------------------------------------------------------------ predictions
def predictions_html(predictions: PredictionTable) -> str:
    """The first rows (thumbnail, file, predicted class, probabilities) and how many follow."""
    preview = predictions.preview
    shown = len(preview) if preview is not None else min(len(predictions), 20)
    names = list(predictions.class_names)
    per_class = len(names) <= PROBABILITY_COLUMNS
    header = ["#", "image", "file", "predicted", "probability"]
    header += [f"p({name})" for name in names] if per_class else []
    rows = []
    probabilities = predictions.probabilities[:shown].tolist()
    for i in range(shown):
        thumbnail: object = "—"
        if preview is not None:
            pixels = display_pixels(preview[i])
            thumbnail = png_img(pixels, "image", zoom_for(pixels.shape[0], THUMBNAIL_HEIGHT))
        top = max(probabilities[i])
        row = [i + 1, thumbnail, file_label(predictions.paths[i]), predictions.predicted[i]]
        row.append(f"{top:.3f}")
        row += [f"{p:.3f}" for p in probabilities[i]] if per_class else []
        rows.append(row)
    numeric = [True, False, False, False, True] + [True] * (len(header) - 5)
    body = [table(header, rows, numeric=numeric)]
    if len(predictions) > shown:
        more = len(predictions) - shown
        body.append(html('<div class="more">… and {:,} more rows</div>', more))
    if predictions.skipped:
        skipped = plural(len(predictions.skipped), "image")
        body.append(html('<div class="note">{} skipped (see the table\'s skipped)</div>', skipped))
    counts = {name: predictions.predicted.count(name) for name in names}
    facts = [plural(len(predictions), "image")]
    facts += [f"{name} {count:,}" for name, count in counts.items() if count]
    return view("cv-predictions", "PredictionTable", " · ".join(facts), *body)
