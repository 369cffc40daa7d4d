"""TorchScript export: the network as a traced graph that ``torch.jit.load`` runs without cnnlab.

torch 2.13 deprecates TorchScript in favour of ``torch.export``, but the consumers of bioimage.io
packages (deepImageJ in Fiji, ilastik, the bioimage.io tools) load ``torchscript`` weights, so
the format is still written; its deprecation notice is silenced around the calls only.

The graph is traced (not scripted): cnnlab's networks have no data-dependent control flow, which
the model tests check for every registered model, so the trace records the whole computation.
It is traced from a batch of two, and its output is compared with the model's for a batch of
two and of one before it is written: a trace that recorded the batch size would fail there.
cnnlab's facts about the model (see :func:`cnnlab.deploy.network.describe`) travel inside the
archive as the extra file ``cnnlab.json``.
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from cnnlab.deploy.network import describe, example_input, exportable
from cnnlab.deploy.output import check_target
from cnnlab.errors import CnnlabError
from cnnlab.evaluate.evaluate import TORCHSCRIPT_DEPRECATED
from cnnlab.files import write_bytes

#: The extra file of the archive that holds cnnlab's description of the model.
META_FILE = "cnnlab.json"
#: Largest difference in a class probability that the reloaded graph may show: the same
#: operations in the same order, so anything above float32 rounding is a wrong trace.
TOLERANCE = 1e-6


def torchscript_bytes(
    model: nn.Module,
    *,
    class_names: tuple[str, ...] | list[str] | None = None,
    bit_depth: int | None = None,
    source: str | None = None,
) -> bytes:
    """The ``torch.jit.save`` archive of ``model``: raw pixels in, class probabilities out."""
    facts = describe(model, class_names=class_names, bit_depth=bit_depth, source=source)
    network = exportable(model)
    example = example_input(network.classifier)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # Only torch's notice that TorchScript is deprecated (see the module docstring).
        warnings.filterwarnings(
            "ignore", message=TORCHSCRIPT_DEPRECATED, category=DeprecationWarning
        )
        # torch's own check_trace reruns the model; the reloaded archive is checked below.
        traced = torch.jit.trace(network, example, check_trace=False)
        torch.jit.save(traced, buffer, _extra_files={META_FILE: json.dumps(facts)})
        data = buffer.getvalue()
        reloaded = torch.jit.load(io.BytesIO(data), map_location="cpu")
        for images in (example, example[:1]):
            difference = float((reloaded(images) - network(images)).abs().max())
            if not difference <= TOLERANCE:
                raise CnnlabError(
                    f"the TorchScript export of {type(model).__name__} gives other "
                    f"probabilities than the model (largest difference {difference:.3g}); it "
                    "was not written. Please report it"
                )
    return data


def export_torchscript(
    model: nn.Module,
    out: str | Path,
    *,
    overwrite: bool = False,
    class_names: tuple[str, ...] | list[str] | None = None,
    bit_depth: int | None = None,
    source: str | None = None,
) -> Path:
    """Writes ``model`` as a TorchScript archive at ``out`` (``*.pt``, atomically)."""
    out = check_target(out, overwrite, ".pt")
    data = torchscript_bytes(model, class_names=class_names, bit_depth=bit_depth, source=source)
    write_bytes(out, data)
    return out
