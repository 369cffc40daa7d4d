"""What the report's sections share: the run's files, and the model and data loaded once."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path

from cnnlab.errors import CnnlabError
from cnnlab.inspect.report.run import RunFiles
from cnnlab.runs.reading import load_run_split

MAX_EXPLAINED = 20_000  # images scored for the worst-case gallery (keeps the report fast)


class Loaded:
    """Something expensive loaded at most once; a failure is remembered and raised again."""

    def __init__(self, load: Callable[[], object]) -> None:
        self._load = load
        self._value: object = None
        self._error: BaseException | None = None
        self._done = False

    def get(self):
        if not self._done:
            self._done = True
            try:
                self._value = self._load()
            except Exception as error:  # raised again to every section needing it
                self._error = error
        if self._error is not None:
            raise self._error
        return self._value


class ReportContext:
    """The run, the test image followed through the network, and what sections load lazily.

    ``model`` and ``split`` are the run's trained model and its
    :class:`~cnnlab.data.split.Split` when the caller still holds them; otherwise both are
    re-loaded from the run folder the first time a section needs them. ``scores`` are the
    per-image results that evaluating the run gave for those subsets, when the caller has them.
    """

    def __init__(
        self,
        run: RunFiles,
        image_index: int | None = None,
        model: object = None,
        split: object = None,
        scores: Mapping[str, dict] | None = None,
    ) -> None:
        self.run = run
        self.image_index = image_index
        self.model = Loaded(self._load_model if model is None else lambda: self._adopt(model))
        self.split = Loaded(self._load_split if split is None else lambda: split)
        # Scores without the split they were computed on could belong to other images.
        self._scores = dict(scores or {}) if split is not None else {}
        self._scored: dict[str, Loaded] = {}

    def _load_model(self):
        from cnnlab.export.saved import load

        return load(self.run.path)

    def _adopt(self, model):
        """A CPU copy of the in-memory ``model``, described like :func:`load` describes one.

        The copy leaves the caller's model (its device, mode and hooks) untouched; the
        description (class names, architecture) comes from the run's own ``model.json``.
        """
        from cnnlab.export.saved import read_model_meta

        adopted = copy.deepcopy(model).to("cpu").eval()
        meta = read_model_meta(self.run.path)
        adopted.class_names = tuple(meta["class_names"])
        adopted.bit_depth = int(meta.get("bit_depth", 8))
        adopted.cnnlab_meta = meta
        return adopted

    def _load_split(self):
        return load_run_split(self.run.path, quiet=True)

    def subset(self, name: str):
        dataset = dict(self.split.get().items()).get(name)
        if dataset is None:
            raise CnnlabError(f"the run has no {name} set")
        return dataset

    def scored(self, name: str) -> tuple[object, dict]:
        """The subset (at most MAX_EXPLAINED images) and its per-image model results."""
        if name not in self._scored:

            def score() -> tuple[object, dict]:
                from cnnlab.evaluate.evaluate import first_samples

                dataset = self.subset(name)
                given = self._scores.get(name)
                if len(dataset) > MAX_EXPLAINED:
                    dataset = dataset.select(range(MAX_EXPLAINED))
                if given is not None and len(given["labels"]) >= len(dataset):
                    return dataset, first_samples(given, len(dataset))
                return dataset, _score(self.model.get(), dataset)

            self._scored[name] = Loaded(score)
        return self._scored[name].get()

    def data_name(self) -> str:
        data = self.run.config.get("data") or ["?"]
        return " + ".join(d if d == "mnist" else Path(d).name or d for d in data)

    def title(self) -> str:
        return f"{self.run.config.get('model') or 'model'} on {self.data_name()}"


def _score(model, dataset) -> dict:
    """Per-image results of ``model`` on ``dataset`` (:func:`cnnlab.evaluate.per_sample`).

    Scored on one CPU thread: for the small networks cnnlab trains, a second
    thread saves little on an idle laptop but costs many times over when the other core is
    busy (the threads wait for each other at every layer), and the report is often written
    while other work runs.
    """
    import torch

    from cnnlab.evaluate import per_sample

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return per_sample(model, dataset)
    finally:
        torch.set_num_threads(threads)
