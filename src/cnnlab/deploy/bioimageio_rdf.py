"""The content of a bioimage.io package's ``rdf.yaml`` (model format 0.5), files named by path.

The file names are those :func:`cnnlab.deploy.bioimageio.bioimageio_bytes` writes; bioimageio.spec
adds each file's SHA-256 when it validates and packages the description.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from cnnlab.deploy.bioimageio_docs import PackageFacts

TAGS = ("cnnlab", "classification", "2d", "pytorch", "onnx", "torchscript")
INPUT_ID = "raw"
OUTPUT_ID = "probabilities"


def rdf_content(
    package: PackageFacts,
    facts: dict,
    cite: list[dict],
    tags: Sequence[str],
    opset: int,
    subset: str,
) -> dict:
    """The content of ``rdf.yaml`` (bioimage.io model format 0.5), files named by path."""
    height, width = package.input_size
    channels = ["gray"] if package.in_chans == 1 else ["red", "green", "blue"][: package.in_chans]
    value_range = (0, 2**package.bit_depth - 1) if package.bit_depth in (8, 16) else (None, None)
    classes = ", ".join(package.class_names)
    return {
        "format_version": "0.5.12",
        "type": "model",
        "name": package.name,
        "description": (
            f"Classifies {height}x{width} crops of single objects into {classes}. Input: the raw "
            f"{package.bit_depth}-bit pixel values cast to float32, not normalized (the network "
            "standardizes them). Output: softmax class probabilities, one channel per class."
        )[:1024],
        "authors": [{"name": author} for author in package.authors],
        "cite": cite,
        "license": package.license,
        "documentation": {"source": "README.md"},
        "covers": [{"source": "cover.png"}],
        "tags": list(dict.fromkeys([*TAGS, *tags])),
        "inputs": [
            {
                "id": INPUT_ID,
                "description": f"raw {package.bit_depth}-bit image as float32",
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": channels},
                    {"type": "space", "id": "y", "size": height},
                    {"type": "space", "id": "x", "size": width},
                ],
                "data": {"type": "float32", "range": list(value_range)},
                "preprocessing": [{"id": "ensure_dtype", "kwargs": {"dtype": "float32"}}],
                "test_tensor": {"source": "test_input.npy"},
                "sample_tensor": {"source": "sample_input.tif"},
            }
        ],
        "outputs": [
            {
                "id": OUTPUT_ID,
                "description": f"class probabilities: {classes}"[:128],
                "axes": [
                    {"type": "batch"},
                    {"type": "channel", "channel_names": list(package.class_names)},
                ],
                "data": {"type": "float32", "range": [0.0, 1.0]},
                "test_tensor": {"source": "test_output.npy"},
                "sample_tensor": {"source": "sample_output.tif"},
            }
        ],
        "weights": {
            "torchscript": {
                "source": "weights.pt",
                "pytorch_version": torch.__version__.split("+")[0],
                "comment": "traced by cnnlab; raw pixels in, softmax probabilities out",
            },
            "onnx": {
                "source": "weights.onnx",
                "opset_version": opset,
                "parent": "torchscript",
                "comment": "exported by cnnlab with torch.onnx (dynamo) from the same network",
            },
        },
        "config": {"cnnlab": {**facts, "test_subset": subset}},
    }
