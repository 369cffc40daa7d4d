"""cnnlab: from a folder of small images to a trained, inspected and exported CNN classifier.

The public API, in the order of the workflow::

    import cnnlab
    train, test = cnnlab.datasets.mnist()
    model = cnnlab.create_model("lenet5", in_chans=1, num_classes=10, input_size=(28, 28))
    history = cnnlab.fit(model, train, valid, epochs=5)
    metrics = cnnlab.evaluate(model, test)
    cnnlab.save_model(model, "my-model", train.class_names)
    table = cnnlab.predict(cnnlab.load("my-model"), ["digit.png"])

In Jupyter these objects show themselves (a dataset as its class table with sample images, a
history as its learning curves, metrics as caret's block and the confusion matrix), and
``cnnlab.show_samples``, ``show_history``, ``show_worst`` and the other ``show_*`` functions
return figures that show inline.
"""

from __future__ import annotations

import os as _os
import sys as _sys

try:
    from cnnlab import datasets
    from cnnlab.data.dataset import ImageDataset, Normalizer, merge
    from cnnlab.errors import CnnlabError
    from cnnlab.evaluate import Metrics, evaluate, evaluate_subsets, format_metrics, predict_proba
    from cnnlab.export.predict import PredictionTable, predict, predict_arrays
    from cnnlab.export.saved import load, save_model
    from cnnlab.models import create_model, list_models
    from cnnlab.notebook import (
        show_activations,
        show_confusion,
        show_filters,
        show_history,
        show_intensities,
        show_kernels,
        show_saliency,
        show_samples,
        show_worst,
    )
    from cnnlab.train.config import TrainConfig
    from cnnlab.train.loop import History, fit
    from cnnlab.train.resume import resume_training
    from cnnlab.train.run import RunConfig, run_training
    from cnnlab.version import __version__
except KeyboardInterrupt:
    # Ctrl-C while the cnnlab command still loads PyTorch (its first second): the command's
    # one line and exit code 130, as later on, not a traceback of the imports. The command is
    # the console script, or `python -m cnnlab` (how --nproc starts its processes, of which
    # only the first speaks, as cnnlab.cli.main does). A Python session that imports cnnlab
    # gets its KeyboardInterrupt as usual.
    _argv = list(getattr(_sys, "orig_argv", []))
    _module = _argv[_argv.index("-m") + 1] if "-m" in _argv[:-1] else None
    _script = _os.path.basename(_sys.argv[0]) if _sys.argv else ""
    if _script.removesuffix(".exe") == "cnnlab" or _module == "cnnlab":
        if _os.environ.get("RANK", "0") == "0":
            print("cnnlab: interrupted", file=_sys.stderr)
        raise SystemExit(130) from None
    raise

__all__ = [
    "CnnlabError",
    "History",
    "ImageDataset",
    "Metrics",
    "Normalizer",
    "PredictionTable",
    "RunConfig",
    "TrainConfig",
    "__version__",
    "create_model",
    "datasets",
    "evaluate",
    "evaluate_subsets",
    "export_model",
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
    "show_activations",
    "show_confusion",
    "show_filters",
    "show_history",
    "show_intensities",
    "show_kernels",
    "show_saliency",
    "show_samples",
    "show_worst",
]


def __getattr__(name: str) -> object:
    # Exporting pulls in the display code (a package's cover image) and ONNX's exporter:
    # imported on first use, so that `import cnnlab` stays light.
    if name == "export_model":
        from cnnlab.deploy import export_model

        return export_model
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
