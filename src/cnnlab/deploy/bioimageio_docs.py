"""What a bioimage.io package shows a person: its README and its cover image.

The README is written from the run's own files, ``config.json`` (how the model was trained) and
``metrics.json`` (how it was evaluated), so that it states what the run measured and nothing
else. The cover is a strip of sample images from the run's test data with the class cnnlab
predicts for each, stretched for the screen as cnnlab's own figures are
(:func:`cnnlab.inspect.display.to_display`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from cnnlab.inspect.display import to_display

#: Side of one sample on the cover, in pixels, and the height of its caption below it.
TILE = 96
CAPTION = 28


@dataclass(frozen=True)
class PackageFacts:
    """What the README says about the model, gathered once by the exporter."""

    name: str
    model: str
    class_names: tuple[str, ...]
    in_chans: int
    input_size: tuple[int, int]
    bit_depth: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    authors: tuple[str, ...]
    license: str
    license_is_default: bool
    cite: tuple[str, ...]
    cnnlab_version: str
    weights_sha256: str
    source_run: str


def readme(facts: PackageFacts, config: dict, metrics: dict, headline: str) -> str:
    """The package's ``README.md``: what it classifies, how it was trained and evaluated."""
    height, width = facts.input_size
    channels = "one gray channel" if facts.in_chans == 1 else f"{facts.in_chans} channels (RGB)"
    names = ", ".join(f"`{name}`" for name in facts.class_names)
    default = (
        " (cnnlab's default; choose another with --license)" if facts.license_is_default else ""
    )
    lines = [
        f"# {facts.name}",
        "",
        f"A {facts.model} image classifier trained with cnnlab {facts.cnnlab_version}. It sorts "
        f"small images of single objects into {len(facts.class_names)} classes: {names}.",
        "",
        "## Input",
        "",
        f"- One {height} x {width} pixel image per batch entry, {channels}, "
        "axes (batch, channel, y, x).",
        f"- The **raw pixel values** of the {facts.bit_depth}-bit source image, cast to float32: "
        "no scaling, no normalization. The network standardizes its input itself with the "
        f"training set's mean {_numbers(facts.mean)} and standard deviation "
        f"{_numbers(facts.std)}, which are part of the weights.",
        f"- Crop the object first and resize the crop to {height} x {width} (cnnlab resizes "
        "bilinearly with antialiasing); an image of another bit depth would be misread.",
        "",
        "## Output",
        "",
        "Softmax class probabilities, axes (batch, channel); the channels are the classes, in "
        f"this order: {names}. The predicted class is the channel with the highest probability.",
        "",
        "## Training",
        "",
        *_training(config),
        "",
        "## Validation",
        "",
        *_validation(metrics, headline),
        "",
        "## Package",
        "",
        f"- Authors: {', '.join(facts.authors)}.",
        f"- License: {facts.license}{default}.",
        "- Citation: " + ("; ".join(facts.cite) + "." if facts.cite else "none given (--cite)."),
        f"- Weights: TorchScript and ONNX, converted from the cnnlab weights with SHA-256 "
        f"`{facts.weights_sha256}`.",
        f"- Exported by cnnlab {facts.cnnlab_version} from the run `{facts.source_run}`.",
        "",
    ]
    return "\n".join(lines)


def _numbers(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.6g}" for v in values)


def _training(config: dict) -> list[str]:
    train = config.get("train", {})
    resolved = config.get("resolved", {})
    subsets = resolved.get("subsets", {})
    counts = ", ".join(f"{name} {count:,}" for name, count in subsets.items())
    augment = ", ".join(config.get("augment") or []) or "none"
    # Folder names only: the package is meant to be shared, the paths of this machine are not.
    data = ", ".join(Path(str(d)).name or str(d) for d in config.get("data") or ["mnist"])
    rows = [
        ("data", data),
        ("images per subset", counts or "unknown"),
        ("model", " ".join([str(config.get("model", "?")), *(config.get("model_option") or [])])),
        ("epochs", train.get("epochs")),
        ("batch size", train.get("batch_size")),
        ("optimizer", f"{train.get('optimizer')}, learning rate {train.get('lr')}"),
        ("schedule", train.get("schedule")),
        ("augmentation", augment),
        ("seed", train.get("seed")),
    ]
    return [f"- {name}: {value}" for name, value in rows]


def _validation(metrics: dict, headline: str) -> list[str]:
    """The headline accuracy with its interval, then each class's recall and precision."""
    result = metrics.get(headline)
    if not result:
        return ["The run has no evaluation (metrics.json is empty)."]
    low, high = result.get("accuracy_ci") or (float("nan"), float("nan"))
    lines = [
        f"On the run's {headline} set of {result.get('n', 0):,} images: accuracy "
        f"{_percent(result.get('accuracy'))} (95% Clopper-Pearson interval {_percent(low)} to "
        f"{_percent(high)}), Cohen's kappa {_fixed(result.get('kappa'))}. Other subsets: "
        + (
            ", ".join(
                f"{name} {_percent(other.get('accuracy'))} of {other.get('n', 0):,}"
                for name, other in metrics.items()
                if name != headline and isinstance(other, dict)
            )
            or "none"
        )
        + ".",
        "",
        "| class | recall | precision | images |",
        "| --- | --- | --- | --- |",
    ]
    for name, row in (result.get("per_class") or {}).items():
        lines.append(
            f"| {name} | {_percent(row.get('recall'))} | {_percent(row.get('precision'))} "
            f"| {row.get('support', 0):,} |"
        )
    return lines


def _percent(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.2f}%"


def _fixed(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"


def cover_png(
    images: torch.Tensor, predicted: Sequence[str], probabilities: Sequence[float]
) -> bytes:
    """A PNG strip of ``images`` (``(N, C, H, W)``), each captioned with its predicted class.

    Tiles are laid out two rows high when there are more than four and centred on a canvas of
    the 2:1 aspect ratio that bioimage.io asks for; each image is stretched on its own.
    """
    count = len(images)
    rows = 2 if count > 4 else 1
    columns = -(-count // rows)
    content = (columns * TILE, rows * (TILE + CAPTION))
    width = max(content[0], 2 * content[1])
    canvas = Image.new("RGB", (width, width // 2), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=12)
    left, top = (width - content[0]) // 2, (width // 2 - content[1]) // 2
    for i, (image, name, p) in enumerate(zip(images, predicted, probabilities, strict=True)):
        pixels = np.round(255 * to_display(image)).astype(np.uint8)
        tile = Image.fromarray(pixels).convert("RGB").resize((TILE, TILE), Image.NEAREST)
        x, y = left + (i % columns) * TILE, top + (i // columns) * (TILE + CAPTION)
        canvas.paste(tile, (x, y))
        draw.text((x + TILE // 2, y + TILE + 3), name, fill="black", font=font, anchor="mt")
        draw.text((x + TILE // 2, y + TILE + 15), f"{p:.2f}", fill="gray", font=font, anchor="mt")
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()
