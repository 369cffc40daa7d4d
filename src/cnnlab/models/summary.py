"""A Keras-style layer table: each layer's output shape and parameter count.

Courses ask students to recompute these numbers by hand, so the table shows every leaf layer
(activations and poolings included, with 0 parameters) under its attribute path, e.g.
``features.conv1``, which is also the name inspection hooks and state dicts use. Shapes come from
running one zero batch through the model with torchinfo, so they are what the layers really
produce, not what a formula predicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torchinfo
from torch import nn

from cnnlab.errors import CnnlabError
from cnnlab.models.registry import normalize_input_size


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
    input_shape = (batch_size, in_chans, height, width)
    names = {id(module): name for name, module in model.named_modules()}
    stats = torchinfo.summary(
        model,
        input_size=input_shape,
        verbose=0,
        col_names=("output_size", "num_params", "mult_adds"),
        depth=64,
        mode="eval",
    )
    rows = []
    seen: set[int] = set()
    for layer in stats.summary_list:
        # A module called twice would appear twice; a layer table lists each layer once.
        if not layer.is_leaf_layer or id(layer.module) in seen:
            continue
        seen.add(id(layer.module))
        rows.append(
            {
                "name": names.get(id(layer.module), layer.var_name),
                "type": layer.class_name,
                "output_shape": tuple(layer.output_size),
                "params": count_parameters(layer.module),
                "mult_adds": int(layer.macs),
            }
        )
    config = getattr(model, "cnnlab_config", None) or {}
    title = f"Model: {config['name']}" if "name" in config else f"Model: {type(model).__name__}"
    return ModelSummary(
        rows=rows,
        total_params=int(stats.total_params),
        trainable_params=int(stats.trainable_params),
        total_mult_adds=int(stats.total_mult_adds),
        input_shape=input_shape,
        title=title,
    )
