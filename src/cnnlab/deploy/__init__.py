"""Taking a trained model elsewhere: ONNX, TorchScript and bioimage.io files.

Every exported graph holds the whole network, its input standardization included, and ends in
a softmax: raw pixel values as float32 in, class probabilities out (see
:mod:`cnnlab.deploy.network`). :func:`export_model` writes a run's model in any format;
:func:`load_onnx` reads an ONNX file back as a model that :func:`cnnlab.predict` takes.
"""

from __future__ import annotations

from cnnlab.deploy.exporting import FORMATS, default_out, export_model
from cnnlab.deploy.onnx import export_onnx, onnx_bytes, onnx_model
from cnnlab.deploy.runtime import OnnxModel, load_onnx
from cnnlab.deploy.torchscript import export_torchscript, torchscript_bytes

__all__ = [
    "FORMATS",
    "OnnxModel",
    "default_out",
    "export_model",
    "export_onnx",
    "export_torchscript",
    "load_onnx",
    "onnx_bytes",
    "onnx_model",
    "torchscript_bytes",
]
