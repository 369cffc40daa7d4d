"""Evaluate a trained classifier: caret-style metrics, per-image results and text reports."""

from __future__ import annotations

from cnnlab.evaluate.evaluate import (
    evaluate,
    evaluate_subsets,
    metrics_of,
    per_sample,
    per_sample_subsets,
    predict_proba,
)
from cnnlab.evaluate.metrics import classification_metrics, format_metrics
from cnnlab.evaluate.result import Metrics

__all__ = [
    "Metrics",
    "classification_metrics",
    "evaluate",
    "evaluate_subsets",
    "format_metrics",
    "metrics_of",
    "per_sample",
    "per_sample_subsets",
    "predict_proba",
]
