"""A drawing of the network, like MXNet's ``graph.viz``, with no graphviz to install.

cnnlab's networks are chains: every layer feeds the next. So instead of a graph layout engine,
the drawing takes the leaf layers in the order they really run on one zero image, with the shape
each one produces (:func:`cnnlab.models.trace.trace_model`, the same trace as the layer table),
and lays them out as a chain of rounded boxes. The result is a self-contained SVG string (no
fonts, scripts or files to fetch) that an HTML report can include inline, or a PNG through
matplotlib for slides.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.base import Standardize
from cnnlab.models.trace import trace_model

#: Fill and border colour of each kind of layer (pale fills keep the text readable).
KIND_COLOURS: dict[str, tuple[str, str]] = {
    "input": ("#eef1f5", "#8a94a6"),
    "conv": ("#dbe8f7", "#4e79a7"),
    "pool": ("#dcefe9", "#2f8a6f"),
    "activation": ("#fdebd3", "#c0700f"),
    "dense": ("#ece0f3", "#8e5ea8"),
    "norm": ("#fbf3c9", "#9a7d0a"),
    "dropout": ("#f9dde3", "#c4536b"),
    "reshape": ("#eceff3", "#7b8594"),
    "other": ("#eceff3", "#7b8594"),
    "output": ("#dff0dc", "#4b8f3f"),
}
KIND_LABELS = {
    "conv": "convolution",
    "pool": "pooling",
    "activation": "activation",
    "dense": "dense",
    "norm": "normalization",
    "dropout": "dropout",
    "reshape": "reshape",
}
BOX_WIDTH = 150
BOX_HEIGHT = 66
GAP = 24
MARGIN = 12
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


@dataclass(frozen=True)
class Layer:
    """One leaf module as it ran: attribute path, type, kind, key parameters, output shape."""

    name: str
    type: str
    kind: str
    params: str
    output_shape: tuple[int, ...]
    parameters: int

    @property
    def shape_text(self) -> str:
        return "×".join(str(size) for size in self.output_shape) if self.output_shape else "?"


def layer_kind(module: nn.Module) -> str:
    """The colour group of a layer: conv, pool, activation, dense, norm, dropout, reshape."""
    groups: tuple[tuple[str, tuple[type, ...]], ...] = (
        ("conv", (nn.modules.conv._ConvNd,)),
        (
            "pool",
            (
                nn.modules.pooling._MaxPoolNd,
                nn.modules.pooling._AvgPoolNd,
                nn.modules.pooling._AdaptiveAvgPoolNd,
                nn.modules.pooling._AdaptiveMaxPoolNd,
            ),
        ),
        ("dense", (nn.Linear, nn.Bilinear)),
        ("norm", (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, Standardize)),
        ("dropout", (nn.modules.dropout._DropoutNd,)),
        ("reshape", (nn.Flatten, nn.Unflatten, nn.Identity)),
    )
    for kind, types in groups:
        if isinstance(module, types):
            return kind
    if type(module).__module__.startswith("torch.nn.modules.activation"):
        return "activation"
    return "other"


def _pair(value: object) -> str:
    if isinstance(value, tuple | list):
        return str(value[0]) if len(set(value)) == 1 else "x".join(str(v) for v in value)
    return str(value)


def layer_params(module: nn.Module) -> str:
    """The few numbers a course asks about: filters, kernel, stride, padding, units, rate."""
    if isinstance(module, nn.modules.conv._ConvNd):
        k = module.kernel_size
        parts = [f"{module.out_channels} filters {'x'.join(str(v) for v in k)}"]
        if _pair(module.stride) != "1":
            parts.append(f"stride {_pair(module.stride)}")
        if isinstance(module.padding, str):
            parts.append(f"pad {module.padding}")
        elif _pair(module.padding) != "0":
            parts.append(f"pad {_pair(module.padding)}")
        return ", ".join(parts)
    if isinstance(module, nn.modules.pooling._MaxPoolNd | nn.modules.pooling._AvgPoolNd):
        kind = "max" if isinstance(module, nn.modules.pooling._MaxPoolNd) else "avg"
        kernel = _pair(module.kernel_size)
        stride = _pair(module.stride)
        return f"{kind} {kernel}x{kernel}, stride {stride}"
    if isinstance(module, nn.modules.pooling._AdaptiveAvgPoolNd):
        return f"global average to {_pair(module.output_size)}"
    if isinstance(module, nn.modules.pooling._AdaptiveMaxPoolNd):
        return f"global max to {_pair(module.output_size)}"
    if isinstance(module, nn.Linear):
        return f"{module.in_features} → {module.out_features} units"
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return f"rate {module.p:g}"
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return f"{module.num_features} channels"
    if isinstance(module, Standardize):
        return "z-score (train stats)"
    if isinstance(module, nn.Flatten):
        return "to a vector"
    if layer_kind(module) == "activation":
        return type(module).__name__.lower()
    return ""


def trace_layers(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> list[Layer]:
    """The leaf modules of ``model`` in the order they run on one zero image, with shapes.

    ``input_shape`` is (C, H, W); by default the model's own ``in_chans`` and ``input_size``.
    A module called twice is listed once, at its first call. The model runs in eval mode (so
    batch norm accepts a batch of one) and gets its previous mode back; an input the layers
    refuse is an :class:`~cnnlab.models.InputTooSmallError`.
    """
    if input_shape is None:
        in_chans = getattr(model, "in_chans", None)
        size = getattr(model, "input_size", None)
        if in_chans is None or size is None:
            raise CnnlabError(
                "drawing the network needs a cnnlab model (with in_chans and input_size) "
                "or an input_shape (C, H, W)"
            )
        input_shape = (int(in_chans), *(int(s) for s in size))
    return [
        Layer(
            name=layer.name,
            type=layer.type,
            kind=layer_kind(layer.module),
            params=layer_params(layer.module),
            output_shape=layer.output_shape[1:],
            parameters=layer.params,
        )
        for layer in trace_model(model, input_shape).layers
    ]


# ------------------------------------------------------------------------------ SVG
def _box(x: float, y: float, kind: str, lines: list[tuple[str, str]], css_class: str) -> str:
    fill, stroke = KIND_COLOURS.get(kind, KIND_COLOURS["other"])
    rx = BOX_HEIGHT / 2 if css_class != "layer" else 10
    parts = [
        f'<g class="{css_class}" data-kind="{kind}">',
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{BOX_WIDTH}" height="{BOX_HEIGHT}" rx="{rx:.1f}" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>',
    ]
    top = y + BOX_HEIGHT / 2 - (len(lines) - 1) * 8.5
    for row, (text, style) in enumerate(lines):
        size, weight, colour = {
            "title": (12.5, 600, "#1f2937"),
            "detail": (10.5, 400, "#374151"),
            "shape": (10.5, 600, stroke),
        }[style]
        # A title "Conv2d|conv1" shows the layer's name after its type, lighter.
        head, _, tail = _fit(text, size).partition("|")
        content = html.escape(head)
        if tail:
            content += f'<tspan font-weight="400" fill="#6b7280"> {html.escape(tail)}</tspan>'
        parts.append(
            f'<text x="{x + BOX_WIDTH / 2:.1f}" y="{top + row * 17:.1f}" font-size="{size}" '
            f'font-weight="{weight}" fill="{colour}" text-anchor="middle" '
            f'dominant-baseline="middle">{content}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def _fit(text: str, size: float) -> str:
    """``text`` cut to what fits in a box (about 0.58 em per character)."""
    room = int((BOX_WIDTH - 12) / (0.58 * size))
    if len(text) <= room:
        return text
    head, bar, tail = text.partition("|")
    if bar and len(head) < room - 2:
        return head + bar + tail[: room - len(head) - 2] + "…"
    return head[: room - 1] + "…"


def _arrow(points: list[tuple[float, float]]) -> str:
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return (
        f'<polyline points="{path}" fill="none" stroke="#9aa3b2" stroke-width="1.6" '
        f'marker-end="url(#cnnlab-arrow)"/>'
    )


def network_graph_svg(
    model: nn.Module,
    direction: str = "horizontal",
    per_row: int | None = None,
    max_width: int = 1060,
    input_shape: tuple[int, ...] | None = None,
) -> str:
    """The network as an inline SVG: an input node, one box per leaf layer, an output node.

    Each layer box shows the layer type and name, its key parameters and its output shape
    (``6×28×28``), coloured by kind. ``direction="vertical"`` stacks the boxes top to bottom
    (like ``graph.viz`` in R); ``"horizontal"`` runs them left to right and wraps into rows that
    fit ``max_width`` pixels (or ``per_row`` boxes), which reads better on a wide screen.
    """
    if direction not in ("horizontal", "vertical"):
        raise CnnlabError(f"direction must be 'horizontal' or 'vertical', not {direction!r}")
    layers = trace_layers(model, input_shape)
    if input_shape is None:
        input_shape = (int(model.in_chans), *(int(s) for s in model.input_size))
    classes = getattr(model, "class_names", None)
    nodes: list[tuple[str, list[tuple[str, str]], str]] = [
        ("input", [("input image", "title"), ("×".join(map(str, input_shape)), "shape")], "io")
    ]
    for layer in layers:
        short = layer.name.rsplit(".", 1)[-1]
        lines = [(layer.type if short == layer.type.lower() else f"{layer.type}|{short}", "title")]
        if layer.params:
            lines.append((layer.params, "detail"))
        lines.append((layer.shape_text, "shape"))
        nodes.append((layer.kind, lines, "layer"))
    outputs = layers[-1].output_shape[-1] if layers and layers[-1].output_shape else "?"
    nodes.append(
        (
            "output",
            [
                ("softmax", "title"),
                (
                    f"{outputs} class probabilities" if not classes else _class_list(classes),
                    "detail",
                ),
            ],
            "io",
        )
    )
    if direction == "vertical":
        columns = 1
    else:
        fit = max(1, int((max_width - 2 * MARGIN + GAP) // (BOX_WIDTH + GAP)))
        columns = max(1, min(per_row or fit, len(nodes)))
    rows = math.ceil(len(nodes) / columns)
    row_gap = GAP + 8
    width = 2 * MARGIN + columns * BOX_WIDTH + (columns - 1) * GAP
    height = 2 * MARGIN + rows * BOX_HEIGHT + (rows - 1) * row_gap
    positions = []
    for index in range(len(nodes)):
        row, column = divmod(index, columns)
        positions.append(
            (MARGIN + column * (BOX_WIDTH + GAP), MARGIN + row * (BOX_HEIGHT + row_gap))
        )
    body = []
    for index in range(1, len(nodes)):
        (x0, y0), (x1, y1) = positions[index - 1], positions[index]
        if y0 == y1:
            points = [(x0 + BOX_WIDTH, y0 + BOX_HEIGHT / 2), (x1 - 2, y1 + BOX_HEIGHT / 2)]
        elif x0 == x1:
            points = [(x0 + BOX_WIDTH / 2, y0 + BOX_HEIGHT), (x1 + BOX_WIDTH / 2, y1 - 2)]
        else:  # wrap to the next row: down, back to the left, down into the next box
            middle = y0 + BOX_HEIGHT + row_gap / 2
            points = [
                (x0 + BOX_WIDTH / 2, y0 + BOX_HEIGHT),
                (x0 + BOX_WIDTH / 2, middle),
                (x1 + BOX_WIDTH / 2, middle),
                (x1 + BOX_WIDTH / 2, y1 - 2),
            ]
        body.append(_arrow(points))
    for (kind, lines, css_class), (x, y) in zip(nodes, positions, strict=True):
        body.append(_box(x, y, kind, lines, css_class))
    title = getattr(model, "cnnlab_config", {}).get("name") or type(model).__name__
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="cnnlab-graph" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'font-family="{html.escape(FONT)}">'
        f"<title>{html.escape(str(title))}: {len(layers)} layers</title>"
        '<defs><marker id="cnnlab-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#9aa3b2"/></marker></defs>' + "".join(body) + "</svg>"
    )


def _class_list(classes: tuple[str, ...] | list[str]) -> str:
    shown = ", ".join(str(c) for c in classes[:4])
    return shown + (f" +{len(classes) - 4}" if len(classes) > 4 else "")


def legend_svg() -> str:
    """A one-line colour key for the layer kinds, to place under the graph."""
    items, x = [], 0
    for kind, label in KIND_LABELS.items():
        fill, stroke = KIND_COLOURS[kind]
        items.append(
            f'<rect x="{x}" y="3" width="14" height="14" rx="3" fill="{fill}" stroke="{stroke}"/>'
            f'<text x="{x + 19}" y="14.5" font-size="12" fill="#374151">{label}</text>'
        )
        x += 30 + int(len(label) * 7.2)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="cnnlab-graph-legend" '
        f'viewBox="0 0 {x} 20" width="{x}" height="20" font-family="{html.escape(FONT)}">'
        + "".join(items)
        + "</svg>"
    )


def write_network_graph(model: nn.Module, path: str | Path, **options: object) -> Path:
    """Writes :func:`network_graph_svg` to ``path`` (an .svg file a browser opens)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(network_graph_svg(model, **options), encoding="utf-8")
    return path
