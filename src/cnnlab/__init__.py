"""cnnlab: from a folder of small images to a trained, inspected and exported CNN classifier.

The public API, in the order of the workflow::

    import cnnlab
    train, test = cnnlab.datasets.mnist()
    model = cnnlab.create_model("lenet5", in_chans=1, num_classes=10, input_size=(28, 28))
    history = cnnlab.fit(model, train, valid, epochs=5)
    metrics = cnnlab.evaluate(model, test)
    cnnlab.save_model(model, "my-model", train.class_names)
    table = cnnlab.predict(cnnlab.load("my-model"), ["digit.png"])
"""

from __future__ import annotations

from cnnlab import datasets
from cnnlab.data.dataset import ImageDataset, Normalizer, merge
from cnnlab.errors import CnnlabError
from cnnlab.evaluate import evaluate, evaluate_subsets, format_metrics, predict_proba
from cnnlab.export.predict import PredictionTable, predict, predict_arrays
from cnnlab.export.saved import load, save_model
from cnnlab.models import create_model, list_models
from cnnlab.train.config import TrainConfig
from cnnlab.train.loop import History, fit
from cnnlab.train.run import RunConfig, resume_training, run_training
from cnnlab.version import __version__

__all__ = [
    "CnnlabError",
    "History",
    "ImageDataset",
    "Normalizer",
    "PredictionTable",
    "RunConfig",
    "TrainConfig",
    "__version__",
    "create_model",
    "datasets",
    "evaluate",
    "evaluate_subsets",
    "fit",
    "format_metrics",
    "list_models",
    "load",
    "merge",
    "predict",
    "predict_arrays",
    "predict_proba",
    "resume_training",
    "run_training",
    "save_model",
]
