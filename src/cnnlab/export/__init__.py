"""Saving, loading and using trained models."""

from __future__ import annotations

from cnnlab.export.evaluation import evaluate_saved
from cnnlab.export.predict import PredictionTable, predict, predict_arrays
from cnnlab.export.saved import load, read_model_meta, save_model

__all__ = [
    "PredictionTable",
    "evaluate_saved",
    "load",
    "predict",
    "predict_arrays",
    "read_model_meta",
    "save_model",
]
