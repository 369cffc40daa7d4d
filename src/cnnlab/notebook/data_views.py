"""Jupyter's views of the inputs: a dataset, a split and a model (``_repr_html_``).

Each view is one self-contained HTML fragment: pictures as base64 PNG ``data:`` URIs, the
network graph as inline SVG, every name escaped (a class called ``<b>&"`` shows as written).
They stay small whatever the data: a dataset of 54,000 images shows one strip of at most
:data:`STRIP` images per class, drawn at a fixed seed so the same dataset shows the same strip.
"""

from __future__ import annotations

from markupsafe import Markup

from cnnlab.data.dataset import ImageDataset
from cnnlab.data.split import Split, balance_warnings, class_table
from cnnlab.inspect.display import display_pixels
from cnnlab.inspect.figures import tile_grid
from cnnlab.inspect.graph import legend_svg, network_graph_svg
from cnnlab.inspect.plots import sample_rows
from cnnlab.inspect.report.html import html, join, note, percent, png_img, table, zoom_for
from cnnlab.models.summary import model_summary
from cnnlab.notebook.common import plural, view

#: Images per class in a dataset's strip.
STRIP = 6
#: Height in screen pixels that the strip's images are enlarged to (whole-number zoom).
STRIP_HEIGHT = 36


# ------------------------------------------------------------------------------ dataset
def dataset_facts(dataset: ImageDataset) -> str:
    """``"54,000 images · 1×28×28 · 8-bit (uint8) · 10 classes"``, sizes as a range if mixed."""
    summary = dataset.summary()
    (h_lo, h_hi), (w_lo, w_hi) = summary["height"], summary["width"]
    if (h_lo, w_lo) == (h_hi, w_hi):
        size = f"{dataset.channels}×{h_lo}×{w_lo}"
    else:
        size = f"{dataset.channels}×{h_lo}×{w_lo} to {dataset.channels}×{h_hi}×{w_hi}"
    parts = [plural(len(dataset), "image"), size, f"{dataset.bit_depth}-bit ({summary['dtype']})"]
    parts.append(plural(dataset.num_classes, "class"))
    if dataset.subset:
        parts.append(f"{dataset.subset} set")
    if dataset.normalizer is not None:
        parts.append("normalized (shown in source units)")
    return " · ".join(parts)


def class_strip(dataset: ImageDataset, positions) -> Markup:
    """The images at ``positions`` side by side as one PNG, enlarged by a whole factor."""
    if len(positions) == 0:
        return Markup("")
    tiles = [display_pixels(dataset.images[int(i)]) for i in positions]
    strip = tile_grid([tiles], len(tiles), gap=2)
    return png_img(strip, "samples", zoom_for(strip.shape[0], STRIP_HEIGHT))


def dataset_html(dataset: ImageDataset, per_class: int = STRIP, seed: int = 0) -> str:
    """The class table (images, share, a strip of samples) under a line of sizes and depth."""
    raw = dataset.raw()
    counts = dataset.class_counts()
    rows = []
    for name, count, chosen in sample_rows(raw, per_class, seed):
        share = percent(count / len(dataset)) if len(dataset) else "—"
        rows.append([name, f"{count:,}", share, class_strip(raw, chosen)])
    body = table(
        ["class", "images", "share", f"samples (up to {per_class})"],
        rows,
        numeric=[False, True, True, False],
        footer=["total", f"{sum(counts.values()):,}", "", ""],
    )
    return view("cv-dataset", f"ImageDataset {dataset.name!r}", dataset_facts(dataset), body)


# ------------------------------------------------------------------------------ split
def split_html(split: Split) -> str:
    """Images per class (rows) and subset (columns) with totals, and the balance warnings."""
    counts = class_table(split)
    subsets = list(counts)
    classes = list(split.train.class_names)
    rows = [[name, *(f"{counts[s].get(name, 0):,}" for s in subsets)] for name in classes]
    totals = [sum(counts[s].values()) for s in subsets]
    body = table(
        ["class", *subsets],
        rows,
        numeric=[False, *([True] * len(subsets))],
        footer=["total", *(f"{t:,}" for t in totals)],
    )
    warnings = join(note(message) for message in balance_warnings(split))
    facts = " · ".join(f"{s} {t:,}" for s, t in zip(subsets, totals, strict=True))
    facts += f" · {plural(len(classes), 'class')} · {split.train.bit_depth}-bit"
    return view("cv-split", "Split", facts, body, warnings)


# ------------------------------------------------------------------------------ model
def model_html(model) -> str:
    """The Keras-style layer table (output shapes, parameters) and the network graph as SVG."""
    summary = model_summary(model)
    rows = [
        [row["name"], row["type"], "×".join(str(s) for s in row["output_shape"][1:]), row["params"]]
        for row in summary.rows
    ]
    body = table(
        ["layer", "type", "output", "parameters"],
        [[*row[:3], f"{row[3]:,}"] for row in rows],
        numeric=[False, False, True, True],
        footer=["total", "", "", f"{summary.total_params:,}"],
    )
    graph = html(
        '<div class="cv-graph" style="overflow-x:auto">{}{}</div>',
        Markup(network_graph_svg(model)),
        Markup(legend_svg()),
    )
    name = summary.title.removeprefix("Model: ")
    facts = (
        f"input {'×'.join(str(s) for s in summary.input_shape[1:])} · "
        f"{summary.total_params:,} parameters ({summary.trainable_params:,} trainable) · "
        f"{plural(int(getattr(model, 'num_classes', 0)), 'class')}"
    )
    return view("cv-model", f"Model {name}", facts, graph, body)
