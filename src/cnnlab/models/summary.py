"""A Keras-style layer table: each layer's output shape and parameter count.

Courses ask students to recompute these numbers by hand, so the table shows every leaf layer
(activations and poolings included, with 0 parameters) under its attribute path, e.g.
``features.conv1``, which is also the name inspection hooks and state dicts use. Shapes come from
running one zero batch through the model (:func:`cnnlab.models.trace.trace_model`, with
torchinfo), so they are what the layers really produce, not what a formula predicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.registry import normalize_input_size
from cnnlab.models.trace import trace_model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter values (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@dataclass
class ModelSummary:
    """Rows ``{"name", "type", "output_shape", "params", "mult_adds"}`` and the totals.

    ``mult_adds`` are counted as torchinfo does: every weight and bias once per output position,
    for the whole batch; they show where the compute goes, not an exact FLOP count.
    """

    rows: list[dict[str, Any]]
    total_params: int
    trainable_params: int
    total_mult_adds: int
    input_shape: tuple[int, ...]
    title: str = field(default="")

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    def __str__(self) -> str:
        header = ("Layer (type)", "Output Shape", "Param #")
        cells = [
            (f"{row['name']} ({row['type']})", str(row["output_shape"]), f"{row['params']:,}")
            for row in self.rows
        ]
        widths = [max(len(line[i]) for line in [header, *cells]) for i in range(3)]

        def line(values: Sequence[str]) -> str:
            return f"{values[0]:<{widths[0]}}   {values[1]:<{widths[1]}}   {values[2]:>{widths[2]}}"

        rule_width = sum(widths) + 6
        parts = []
        if self.title:
            parts.append(self.title)
        parts += [
            f"Input shape: {self.input_shape}",
            "_" * rule_width,
            line(header),
            "=" * rule_width,
            *(line(cell) for cell in cells),
            "=" * rule_width,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            f"Multiply-adds per batch: {self.total_mult_adds:,}",
            "_" * rule_width,
        ]
        return "\n".join(parts)


def model_summary(
    model: nn.Module,
    input_size: int | Sequence[int] | None = None,
    batch_size: int = 1,
) -> ModelSummary:
    """Summarise ``model`` for a batch of ``batch_size`` images of ``input_size`` (h, w).

    ``input_size`` defaults to the size the model was built for (its ``input_size``); the number
    of channels is the model's ``in_chans``. The model runs in eval mode for the summary (so
    batch norm accepts a batch of one) and is left in the mode it was in.
    """
    in_chans = getattr(model, "in_chans", None)
    if input_size is None:
        input_size = getattr(model, "input_size", None)
    if in_chans is None or input_size is None:
        raise CnnlabError(
            "model_summary needs a cnnlab model (with in_chans and input_size) or an input_size"
        )
    height, width = normalize_input_size(input_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise CnnlabError(f"batch size must be a whole number >= 1, got {batch_size!r}")
    trace = trace_model(model, (in_chans, height, width), batch_size)
    rows = [
        {
            "name": layer.name,
            "type": layer.type,
            "output_shape": layer.output_shape,
            "params": layer.params,
            "mult_adds": layer.mult_adds,
        }
        for layer in trace.layers
    ]
    config = getattr(model, "cnnlab_config", None) or {}
    title = f"Model: {config['name']}" if "name" in config else f"Model: {type(model).__name__}"
    return ModelSummary(
        rows=rows,
        total_params=trace.total_params,
        trainable_params=trace.trainable_params,
        total_mult_adds=trace.total_mult_adds,
        input_shape=trace.input_shape,
        title=title,
    )
