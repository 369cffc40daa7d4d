"""Review and relabel: a served run's test and validation images, worst first, and decisions.

A classifier is trusted after its mistakes have been looked at, and the mislabelled images among
them fixed. :class:`ReviewQueue` scores a run's test and validation images (the split the run
recorded, :func:`cnnlab.runs.reading.load_run_split`) once with the run's model and orders them
by loss, highest first: the images the model disagrees with most, where wrong labels hide.
:class:`~cnnlab.serve.decisions.DecisionStore` keeps a person's decision per image ("keep",
"relabel" as another class, "exclude") in ``RUN/relabel.csv``, merged into the file under a
lock after every decision (another server on the same run loses nothing) and read back on
start, so decisions survive a restart; ``cnnlab train --relabel RUN/relabel.csv``
applies them to a new run (:mod:`cnnlab.data.relabel`). Nothing else is ever written: not a
file outside the run folder, never anything in the data folders.

:func:`review_router` puts both behind ``GET /api/review`` and ``POST /api/review/decision``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from cnnlab.data.relabel import Decision
from cnnlab.errors import CnnlabError
from cnnlab.runs.folder import is_run_folder
from cnnlab.serve.decisions import DecisionsBusy, DecisionStore
from cnnlab.serve.images import input_pixels, png_data_url

#: The subsets a review shows, in the order ties are listed.
REVIEWED = ("test", "valid")
SUBSET_CHOICES = ("all", *REVIEWED)
MAX_LIMIT = 500


class ReviewQueue:
    """The test and validation images of one run, scored once, ordered by loss (highest first).

    ``order`` holds positions into the parallel arrays (``keys``, ``subsets``, ``labels``,
    ``probabilities``, ``loss``); ``images`` are the images as the run read them, for the
    thumbnails, which are drawn only for the page asked for.
    """

    def __init__(self, run_dir: Path, model: Any) -> None:
        from cnnlab.evaluate import per_sample
        from cnnlab.runs.reading import load_run_split

        split = load_run_split(run_dir, quiet=True)
        keys: list[str] = []
        subsets: list[str] = []
        images, labels, probabilities, losses = [], [], [], []
        subset_of = dict(split.items())
        for name in REVIEWED:
            dataset = subset_of.get(name)
            if dataset is None or len(dataset) == 0:
                continue
            # MNIST validated on its test set holds the same images twice: list them once.
            seen = set(keys)
            fresh = [i for i, key in enumerate(dataset.paths) if key not in seen]
            dataset = dataset.select(fresh)
            scored = per_sample(model, dataset)
            keys += list(dataset.paths)
            subsets += [name] * len(dataset)
            images.append(dataset.images)
            labels.append(scored["labels"])
            probabilities.append(scored["probabilities"])
            losses.append(scored["loss"])
        self.class_names: tuple[str, ...] = tuple(split.train.class_names)
        self.bit_depth = int(split.train.bit_depth)
        self.keys, self.subsets = keys, subsets
        count = len(keys)
        self.images = torch.cat(images) if count else None
        count = len(keys)
        self.labels = np.concatenate(labels) if count else np.zeros(0, np.int64)
        self.probabilities = (
            np.concatenate(probabilities) if count else np.zeros((0, len(self.class_names)))
        )
        self.loss = np.concatenate(losses).astype(np.float64) if count else np.zeros(0)
        # Highest loss first; NaN (a broken image) counts as the worst of all.
        ranked = np.where(np.isnan(self.loss), np.inf, self.loss)
        self.order = np.argsort(-ranked, kind="stable")
        self.position = {key: i for i, key in enumerate(keys)}

    def page(self, subset: str, offset: int, limit: int) -> tuple[int, list[int]]:
        """(how many images ``subset`` holds, the positions of the page asked for)."""
        order = self.order
        if subset != "all":
            order = order[np.asarray(self.subsets, dtype=object)[order] == subset]
        return len(order), order[offset : offset + limit].tolist()

    def item(self, position: int, decision: Decision | None) -> dict:
        """One image as the page shows it (the ``items`` of ``GET /api/review``)."""
        key = self.keys[position]
        probabilities = self.probabilities[position]
        return {
            "key": key,
            "file": key if key.startswith("mnist/") else Path(key).name,
            "subset": self.subsets[position],
            "true": self.class_names[int(self.labels[position])],
            "predicted": self.class_names[int(np.argmax(probabilities))],
            "probabilities": {
                name: float(p) for name, p in zip(self.class_names, probabilities, strict=True)
            },
            "loss": _finite(self.loss[position]),
            # As the model sees it: 8-bit unchanged, 16-bit contrast-stretched to be visible.
            "thumbnail": png_data_url(input_pixels(self.images[position].numpy(), self.bit_depth)),
            "decision": decision_json(decision),
        }

    def decision(self, key: str, action: str, label: str | None) -> Decision:
        """A decision on the image ``key``, recorded with what the review showed of it."""
        position = self.position[key]
        probabilities = self.probabilities[position]
        return Decision(
            path=key,
            action=action,
            new_class=label or "",
            subset=self.subsets[position],
            true_class=self.class_names[int(self.labels[position])],
            predicted_class=self.class_names[int(np.argmax(probabilities))],
            loss=f"{float(self.loss[position]):.6g}",
            decided_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )


class Review:
    """The review of one served run: its queue (scored on first use) and its decisions."""

    def __init__(self, run: Any) -> None:
        self.run = run
        self.path = Path(run.path)
        self.reviewable = is_run_folder(self.path)
        self.store = DecisionStore(self.path) if self.reviewable else None
        self._queue: ReviewQueue | None = None
        self._lock = threading.Lock()

    def queue(self) -> ReviewQueue:
        if not self.reviewable:
            raise HTTPException(
                404,
                f"{self.run.id} is a saved model folder: it has no test or validation images to "
                "review; serve its run folder",
            )
        with self._lock:  # scored once, even when two requests arrive together
            if self._queue is None:
                try:
                    # The model is shared with the other routes, which hold its lock to use it.
                    with getattr(self.run, "lock", None) or contextlib.nullcontext():
                        self._queue = ReviewQueue(self.path, self.run.model)
                except CnnlabError as error:
                    raise HTTPException(409, f"{self.run.id}: cannot review: {error}") from None
            return self._queue


def review_router(runs: Mapping[str, Any] | Iterable[Any]) -> APIRouter:
    """``GET /api/review`` and ``POST /api/review/decision`` for the served ``runs``.

    ``runs`` maps run ids to :class:`cnnlab.serve.models.ServedRun` (or is a sequence of them);
    the first is the default. Each needs ``id``, ``path`` and ``model``. The decisions files
    are read here, so a corrupt one fails the server's start with a one-line
    :class:`~cnnlab.errors.CnnlabError` naming it.
    """
    served = list(runs.values() if isinstance(runs, Mapping) else runs)
    reviews = {run.id: Review(run) for run in served}
    router = APIRouter(tags=["review"])

    def review_of(run: str | None) -> Review:
        if run in (None, ""):
            return next(iter(reviews.values()))
        if run not in reviews:
            raise HTTPException(
                404, f"unknown run {run!r}; the served runs are {', '.join(reviews)}"
            )
        return reviews[run]

    @router.get("/api/review")
    def review(
        run: str | None = None,
        subset: str = "all",
        offset: str = "0",
        limit: str = "50",
    ) -> dict:
        """The run's test and validation images, highest loss first, with their decisions."""
        if subset not in SUBSET_CHOICES:
            raise HTTPException(
                400, f"subset {subset!r}: choose one of {', '.join(SUBSET_CHOICES)}"
            )
        first = _count("offset", offset, 0, None)
        size = _count("limit", limit, 1, MAX_LIMIT)
        chosen = review_of(run)
        queue = chosen.queue()
        total, positions = queue.page(subset, first, size)
        assert chosen.store is not None
        try:  # decisions saved by another server on this run show too
            decided = chosen.store.refresh()
        except CnnlabError as error:
            raise HTTPException(409, str(error)) from None
        items = [queue.item(p, decided.get(queue.keys[p])) for p in positions]
        return {"run": chosen.run.id, "total": total, "items": items}

    @router.post(
        "/api/review/decision",
        openapi_extra={"requestBody": {"content": {"application/json": {"schema": _BODY}}}},
    )
    async def decide(request: Request) -> dict:
        """Saves a decision (``undo`` removes it) and rewrites ``RUN/relabel.csv``."""
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(422, "the body must be JSON: {run, key, action, label}") from None
        if not isinstance(body, dict):
            raise HTTPException(422, "the body must be a JSON object: {run, key, action, label}")
        chosen = review_of(_text(body, "run"))
        for name in _BODY["required"]:  # before the queue is scored: a bad body costs nothing
            if _text(body, name) is None:
                raise HTTPException(422, f"{name}: field required")
        return await run_in_threadpool(_decide, chosen, body)

    return router


def _decide(chosen: Review, body: dict) -> dict:
    key, action, label = _text(body, "key"), _text(body, "action"), _text(body, "label")
    queue = chosen.queue()
    assert chosen.store is not None
    if key not in queue.position:
        raise HTTPException(404, f"key {key!r}: not an image of the review of {chosen.run.id}")
    actions = ("keep", "relabel", "exclude", "undo")
    if action not in actions:
        raise HTTPException(400, f"action {action!r}: choose one of {', '.join(actions)}")
    if action == "relabel":
        if label not in queue.class_names:
            raise HTTPException(
                400, f"label {label!r}: choose one of the classes {', '.join(queue.class_names)}"
            )
    elif label not in (None, ""):
        raise HTTPException(400, f"label {label!r}: only 'relabel' takes a label")
    decision = None if action == "undo" else queue.decision(key, action, label)
    try:
        chosen.store.set(key, decision)
    except DecisionsBusy as error:
        raise HTTPException(503, str(error)) from None
    except CnnlabError as error:  # the file was made unreadable meanwhile: never write over it
        raise HTTPException(409, str(error)) from None
    except OSError as error:
        raise HTTPException(
            507, f"cannot save {chosen.store.path}: {error.strerror or error}"
        ) from None
    return {"run": chosen.run.id, "key": key, "decision": decision_json(decision)}


_BODY = {
    "type": "object",
    "required": ["key", "action"],
    "properties": {
        "run": {"type": "string"},
        "key": {"type": "string"},
        "action": {"enum": ["keep", "relabel", "exclude", "undo"]},
        "label": {"type": ["string", "null"]},
    },
}


def decision_json(decision: Decision | None) -> dict | None:
    if decision is None:
        return None
    return {"action": decision.action, "label": decision.new_class or None}


def _text(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise HTTPException(422, f"{name} {value!r}: must be a string")
    return value


def _count(name: str, value: str, low: int, high: int | None) -> int:
    try:
        number = int(value)
    except ValueError:
        number = low - 1
    if number < low or (high is not None and number > high):
        span = f"{low} or more" if high is None else f"{low} to {high}"
        raise HTTPException(400, f"{name} {value!r}: must be a whole number, {span}")
    return number


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
