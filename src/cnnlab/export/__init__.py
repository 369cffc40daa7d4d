"""Saving, loading and using trained models."""

from __future__ import annotations

from cnnlab.export.evaluation import evaluate_saved
from cnnlab.export.predict import PredictionTable, predict
from cnnlab.export.saved import load, read_model_meta, save_model

__all__ = ["PredictionTable", "evaluate_saved", "load", "predict", "read_model_meta", "save_model"]
