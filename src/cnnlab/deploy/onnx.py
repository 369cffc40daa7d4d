"""ONNX export: the whole network in one file that ONNX Runtime (or any ONNX tool) runs.

The graph is made by the exporter torch 2.13 recommends, ``torch.onnx.export(..., dynamo=True)``
(``torch.export`` then onnxscript's translation and graph optimizer), with a dynamic batch axis.
The legacy TorchScript-based exporter is not used: torch deprecates it and it would add a second
path to test.

Every export is checked before it is written: ``onnx.checker`` with ``full_check`` (which also
infers every shape), then ONNX Runtime runs it on a batch of example images and its
probabilities must match PyTorch's, so a file that would predict differently is never written.
cnnlab's facts about the model (classes, input, normalization, source run, weights checksum) are
the ONNX model's ``metadata_props``, one ``cnnlab.KEY`` each, read back by
:mod:`cnnlab.deploy.runtime`.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnlab.deploy.network import (
    INPUT_NAME,
    OUTPUT_NAME,
    describe,
    example_input,
    exportable,
)
from cnnlab.deploy.output import check_target
from cnnlab.errors import CnnlabError
from cnnlab.files import write_bytes

#: The prefix of cnnlab's keys in an ONNX model's metadata_props.
METADATA_PREFIX = "cnnlab."
#: Largest difference in any class probability between ONNX Runtime and PyTorch that an export
#: accepts, the agreement the tests demand on whole test sets: float32 rounding in another
#: order of operations stays orders of magnitude below it.
TOLERANCE = 1e-4
INSTALL_HINT = "pip install 'cnnlab[onnx]'"


def require_onnx() -> None:
    """Fails with the install line when an optional ONNX package is missing."""
    for package in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(package)
        except ImportError:
            raise CnnlabError(
                f"ONNX needs the package {package}, which is not installed: {INSTALL_HINT}"
            ) from None


def onnx_model(
    model: nn.Module,
    *,
    class_names: tuple[str, ...] | list[str] | None = None,
    bit_depth: int | None = None,
    source: str | None = None,
):
    """The checked ``onnx.ModelProto`` of ``model``: raw pixels in, class probabilities out.

    ``class_names`` and ``bit_depth`` default to those of a loaded model; ``source`` names the
    run folder it came from (see :func:`cnnlab.deploy.network.describe`).
    """
    require_onnx()
    import onnx

    facts = describe(model, class_names=class_names, bit_depth=bit_depth, source=source)
    network = exportable(model)
    example = example_input(network.classifier)
    batch = torch.export.Dim("batch")
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            network,
            (example,),
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={"image": {0: batch}},
            verbose=False,
        )
    proto = program.model_proto
    proto.doc_string = (
        f"cnnlab {facts['model']} classifier of {', '.join(facts['class_names'])}. "
        f"Input {facts['input']}. Output {facts['output']}."
    )
    for key, value in facts.items():
        entry = proto.metadata_props.add()
        entry.key = METADATA_PREFIX + key
        entry.value = value if isinstance(value, str) else json.dumps(value)
    onnx.checker.check_model(proto, full_check=True)
    _check_agreement(proto.SerializeToString(), network, example)
    return proto


def onnx_bytes(model: nn.Module, **facts) -> bytes:
    """The serialized ONNX file of ``model`` (for packages that hold it, e.g. bioimage.io)."""
    return onnx_model(model, **facts).SerializeToString()


def export_onnx(
    model: nn.Module,
    out: str | Path,
    *,
    overwrite: bool = False,
    class_names: tuple[str, ...] | list[str] | None = None,
    bit_depth: int | None = None,
    source: str | None = None,
) -> Path:
    """Writes ``model`` as an ONNX file at ``out`` (atomically); returns the path.

    An existing file is replaced only with ``overwrite``.
    """
    out = check_target(out, overwrite, ".onnx")
    data = onnx_bytes(model, class_names=class_names, bit_depth=bit_depth, source=source)
    write_bytes(out, data)
    return out


def _check_agreement(data: bytes, network: nn.Module, example: torch.Tensor) -> None:
    """ONNX Runtime must give PyTorch's probabilities for the example batch and for one image.

    One image as well as the traced batch of two: a graph that took the batch size as a
    constant would fail here, not in a user's hands.
    """
    from cnnlab.deploy.runtime import session_of

    session = session_of(data, "the exported graph")
    with torch.no_grad():
        expected = network(example).numpy()
    for images, wanted in ((example, expected), (example[:1], expected[:1])):
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})
        difference = float(np.max(np.abs(got - wanted)))
        if got.shape != wanted.shape or not difference <= TOLERANCE:
            raise CnnlabError(
                f"the ONNX export of {type(network.classifier).__name__} gives other "
                f"probabilities than PyTorch (shape {got.shape}, largest difference "
                f"{difference:.3g}); it was not written. Please report it"
            )


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silences what the exporter says about itself, which is no news to a cnnlab user.

    Its log lines (operators of torchvision, which cnnlab does not use, left unregistered) and
    its progress prints are dropped, as are a pytree FutureWarning from inside torch.export and
    PyTorch's notice about its own deprecations; any other warning reaches the caller.
    """
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*", category=FutureWarning)
            yield
    finally:
        logger.setLevel(level)
