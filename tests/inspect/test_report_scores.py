"""The report reuses the per-image scores that evaluating the run gave, instead of rescoring."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.evaluate import metrics_of, per_sample, per_sample_subsets
from cnnlab.export.saved import load
from cnnlab.files import read_json
from cnnlab.inspect.report import context as report_context
from cnnlab.inspect.report import read_run
from cnnlab.runs.reading import load_run_split


def test_scores_give_the_saved_metrics_and_spare_the_report_a_rescoring(
    finished_run, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, split = load(finished_run), load_run_split(finished_run, quiet=True)
    scores = per_sample_subsets(model, dict(split.items()))
    saved = read_json(finished_run / "metrics.json", "metrics")
    for name, dataset in split.items():
        alone = per_sample(model, dataset)
        np.testing.assert_allclose(scores[name]["loss"], alone["loss"], rtol=1e-5, atol=1e-7)
        metrics = metrics_of(scores[name], dataset)
        assert metrics["confusion"] == saved[name]["confusion"]
        assert metrics["loss"] == pytest.approx(saved[name]["loss"], rel=1e-5)

    def no_rescoring(*args: object) -> dict:
        raise AssertionError("the model ran over the images again")

    monkeypatch.setattr(report_context, "_score", no_rescoring)
    report = report_context.ReportContext(
        read_run(finished_run), model=model, split=split, scores=scores
    )
    dataset, samples = report.scored("test")
    assert len(dataset) == len(split.test)
    np.testing.assert_array_equal(samples["predictions"], scores["test"]["predictions"])


def test_scores_are_cut_to_the_images_the_report_explains(
    finished_run, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, split = load(finished_run), load_run_split(finished_run, quiet=True)
    scores = per_sample_subsets(model, {"test": split.test})
    monkeypatch.setattr(report_context, "MAX_EXPLAINED", 3)
    report = report_context.ReportContext(
        read_run(finished_run), model=model, split=split, scores=scores
    )
    dataset, samples = report.scored("test")
    assert len(dataset) == 3 and samples["paths"] == split.test.paths[:3]
    np.testing.assert_array_equal(samples["loss"], scores["test"]["loss"][:3])
    assert samples["class_names"] == split.test.class_names
    # Scores without the split they belong to are not trusted: the report scores itself.
    alone = report_context.ReportContext(read_run(finished_run), model=model, scores=scores)
    assert alone._scores == {}
