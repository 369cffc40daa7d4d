"""An exported ONNX file as a model that ``cnnlab predict`` uses like a run's.

:class:`OnnxModel` runs the file with ONNX Runtime's CPU provider and carries what
:mod:`cnnlab.export.predict` checks images against (channels, input size, bit depth, classes),
read from the file's own ``cnnlab.*`` metadata: predicting from the file needs neither the run
folder nor PyTorch's copy of the network.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from cnnlab.deploy.network import INPUT_NAME, OUTPUT_NAME
from cnnlab.deploy.onnx import METADATA_PREFIX, require_onnx
from cnnlab.errors import CnnlabError
from cnnlab.evaluate.evaluate import INFERENCE_BATCH
from cnnlab.export.saved import BIT_DEPTHS, is_size

#: The metadata a cnnlab ONNX file must hold, and the type each value is read as.
_REQUIRED = {
    "class_names": list,
    "in_chans": int,
    "input_size": list,
    "bit_depth": int,
}

#: The metadata stored as JSON (see :func:`cnnlab.deploy.onnx.onnx_model`); the rest is text.
_JSON = {*_REQUIRED, "format_version", "architecture", "normalization", "largest_source"}


def session_of(source: bytes | str | Path, what: str):
    """An ONNX Runtime session on the CPU, with as many threads as PyTorch is allowed."""
    require_onnx()
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3  # errors only: its notices are not the user's concern
    try:
        return onnxruntime.InferenceSession(
            source if isinstance(source, bytes) else str(source),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
    except Exception as error:  # onnxruntime raises its own untyped errors for bad files
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CnnlabError(f"{what}: not a readable ONNX model ({first})") from error


class OnnxModel:
    """A cnnlab model exported to ONNX, run by ONNX Runtime: what predict needs of a model."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise CnnlabError(f"{self.path}: no such ONNX file")
        self.session = session_of(self.path, str(self.path))
        meta = self.session.get_modelmeta().custom_metadata_map
        self.cnnlab_meta = _read_metadata(meta, self.path)
        self.class_names = tuple(self.cnnlab_meta["class_names"])
        self.num_classes = len(self.class_names)
        self.in_chans = self.cnnlab_meta["in_chans"]
        self.input_size = tuple(self.cnnlab_meta["input_size"])
        self.bit_depth = self.cnnlab_meta["bit_depth"]
        source = self.cnnlab_meta.get("largest_source")
        self.largest_source = tuple(source) if source else None

    def __repr__(self) -> str:
        height, width = self.input_size
        return (
            f"OnnxModel({self.path.name}: {self.cnnlab_meta.get('model', '?')}, "
            f"{self.in_chans}x{height}x{width} {self.bit_depth}-bit, "
            f"{self.num_classes} classes)"
        )

    def predict_proba(
        self, images: torch.Tensor, batch_size: int = INFERENCE_BATCH
    ) -> torch.Tensor:
        """Class probabilities of ``(N, C, H, W)`` raw images, in batches, as a CPU tensor."""
        if batch_size < 1:
            raise CnnlabError(f"batch_size must be at least 1, not {batch_size}")
        expected = (self.in_chans, *self.input_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise CnnlabError(
                f"images of shape {tuple(images.shape)}; {self.path.name} takes (N, "
                f"{', '.join(map(str, expected))})"
            )
        outputs = [np.zeros((0, self.num_classes), np.float32)]
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].float().numpy()
            outputs.extend(self.session.run([OUTPUT_NAME], {INPUT_NAME: batch}))
        return torch.from_numpy(np.concatenate(outputs))


def load_onnx(path: str | Path) -> OnnxModel:
    """An ONNX file that ``cnnlab export`` wrote, ready for :func:`cnnlab.predict`."""
    return OnnxModel(path)


def _read_metadata(props: dict[str, str], path: Path) -> dict:
    """The ``cnnlab.*`` metadata of an ONNX file, checked as a run's model.json is."""
    meta = {}
    for key, raw in props.items():
        if not key.startswith(METADATA_PREFIX):
            continue
        name = key[len(METADATA_PREFIX) :]
        if name not in _JSON:
            meta[name] = raw  # text is stored as it is
            continue
        try:
            meta[name] = json.loads(raw)
        except json.JSONDecodeError:
            raise CnnlabError(f"{path}: metadata {key} is damaged; export again") from None
    missing = [key for key in _REQUIRED if key not in meta]
    if missing:
        raise CnnlabError(
            f"{path}: not an ONNX file of cnnlab (no {METADATA_PREFIX}{missing[0]} in its "
            "metadata); export the model with cnnlab export RUN --format onnx"
        )
    for key, kind in _REQUIRED.items():
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise CnnlabError(f"{path}: metadata {METADATA_PREFIX}{key} is damaged; export again")
    names, size = meta["class_names"], meta["input_size"]
    if not names or not all(isinstance(n, str) and n for n in names):
        raise CnnlabError(f"{path}: metadata {METADATA_PREFIX}class_names is damaged; export again")
    if not is_size(size):
        raise CnnlabError(f"{path}: metadata {METADATA_PREFIX}input_size is damaged; export again")
    if meta["bit_depth"] not in BIT_DEPTHS or meta["in_chans"] not in (1, 3):
        raise CnnlabError(f"{path}: metadata bit_depth or in_chans is damaged; export again")
    if "largest_source" in meta and not is_size(meta["largest_source"]):
        raise CnnlabError(
            f"{path}: metadata {METADATA_PREFIX}largest_source is damaged; export again"
        )
    return meta
