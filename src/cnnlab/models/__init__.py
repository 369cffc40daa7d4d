"""cnnlab's model zoo: every network is built by name with :func:`create_model`.

Importing this package registers all built-in models (the MLPs, the LeNet family and the deeper
CNNs); :func:`list_models` names them, :func:`model_info` describes each one's options and
:func:`parse_model_options` reads them from ``KEY=VALUE`` strings (``--model-option``).
"""

from __future__ import annotations

from cnnlab.models import cnn, lenet, mlp  # noqa: F401  (importing registers the models)
from cnnlab.models.base import ImageClassifier, Standardize
from cnnlab.models.options import parse_model_options
from cnnlab.models.registry import (
    create_model,
    list_models,
    min_input_size,
    model_from_config,
    model_info,
    register_model,
)
from cnnlab.models.summary import ModelSummary, count_parameters, model_summary
from cnnlab.models.trace import InputTooSmallError

__all__ = [
    "ImageClassifier",
    "InputTooSmallError",
    "ModelSummary",
    "Standardize",
    "count_parameters",
    "create_model",
    "list_models",
    "min_input_size",
    "model_from_config",
    "model_info",
    "model_summary",
    "parse_model_options",
    "register_model",
]
