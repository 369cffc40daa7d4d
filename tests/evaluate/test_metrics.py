"""Metrics against SciPy, closed forms, textbook examples and hand counts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import special, stats

from cnnlab.errors import CnnlabError
from cnnlab.evaluate import classification_metrics, format_metrics
from cnnlab.evaluate.metrics import (
    betainc,
    binomial_upper_tail,
    chi2_sf,
    clopper_pearson,
    mcnemar_test,
)


def labels_from_confusion(confusion: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """y_true / y_pred whose confusion matrix (rows true, columns predicted) is ``confusion``."""
    y_true, y_pred = [], []
    for i, row in enumerate(confusion):
        for j, count in enumerate(row):
            y_true += [i] * count
            y_pred += [j] * count
    return np.array(y_true), np.array(y_pred)


CP_CASES = [
    (0, 1), (1, 1), (0, 10), (10, 10), (3, 7), (5, 10), (1, 100), (50, 100), (99, 100),
    (987, 1000), (9876, 10000), (0, 100000), (1, 100000), (100000, 100000),
    (99999, 100000), (50000, 100000), (98760, 100000),
]  # fmt: skip


@pytest.mark.parametrize(("k", "n"), CP_CASES)
def test_clopper_pearson_matches_scipy_binomtest(k: int, n: int) -> None:
    low, high = clopper_pearson(k, n)
    expected = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    # binomtest finds the bounds with brentq at xtol 2e-12, so compare at 1e-10 absolute ...
    assert low == pytest.approx(expected.low, abs=1e-10)
    assert high == pytest.approx(expected.high, abs=1e-10)
    # ... and to high relative precision against the beta quantiles themselves.
    if k > 0:
        assert low == pytest.approx(special.betaincinv(k, n - k + 1, 0.025), rel=1e-8)
    if k < n:
        assert high == pytest.approx(special.betaincinv(k + 1, n - k, 0.975), rel=1e-8)


def test_clopper_pearson_edges_have_closed_forms() -> None:
    n = 100000
    assert clopper_pearson(0, n) == (0.0, pytest.approx(1 - 0.025 ** (1 / n), rel=1e-9))
    assert clopper_pearson(n, n) == (pytest.approx(0.025 ** (1 / n), rel=1e-12), 1.0)
    # Beta(1, n) has the closed-form quantile 1 - (1 - q)^(1/n).
    low, _ = clopper_pearson(1, n)
    assert low == pytest.approx(-math.expm1(math.log(0.975) / n), rel=1e-8)


P_CASES = [
    (5, 10, 0.5), (10, 10, 0.5), (0, 10, 0.3), (1, 10, 0.3), (60, 100, 0.5), (40, 100, 0.5),
    (987, 1000, 0.1135), (9900, 10000, 0.98), (9000, 10000, 0.98), (50200, 100000, 0.5),
    (99000, 100000, 0.989), (98760, 100000, 0.1135), (30, 50, 0.52),
]  # fmt: skip


@pytest.mark.parametrize(("k", "n", "p"), P_CASES)
def test_binomial_p_value_matches_scipy(k: int, n: int, p: float) -> None:
    expected = stats.binomtest(k, n, p, alternative="greater").pvalue
    assert binomial_upper_tail(k, n, p) == pytest.approx(expected, rel=1e-8, abs=1e-300)


@pytest.mark.parametrize(("a", "b", "x"), [(0.5, 0.5, 0.2), (2, 3, 0.9), (30, 70000, 4e-4)])
def test_incomplete_beta_matches_scipy(a: float, b: float, x: float) -> None:
    assert betainc(a, b, x) == pytest.approx(special.betainc(a, b, x), rel=1e-9)


@pytest.mark.parametrize("df", [1, 2, 3, 6, 45])
@pytest.mark.parametrize("statistic", [0.0, 0.01, 1.0, 3.84, 10.0, 60.0, 300.0])
def test_chi_square_survival_matches_scipy(statistic: float, df: int) -> None:
    assert chi2_sf(statistic, df) == pytest.approx(stats.chi2.sf(statistic, df), rel=1e-9)


def test_kappa_wikipedia_example() -> None:
    # Wikipedia "Cohen's kappa": 50 proposals, 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no.
    y_true, y_pred = labels_from_confusion([[20, 5], [10, 15]])
    metrics = classification_metrics(y_true, y_pred, ["yes", "no"])
    assert metrics["kappa"] == pytest.approx(0.4, abs=1e-12)


def test_kappa_matches_hand_formula_on_random_labels() -> None:
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 5, 400)
    y_pred = np.where(rng.random(400) < 0.6, y_true, rng.integers(0, 5, 400))
    metrics = classification_metrics(y_true, y_pred, list("abcde"))
    observed = np.mean(y_true == y_pred)
    expected = sum(np.mean(y_true == c) * np.mean(y_pred == c) for c in range(5))
    assert metrics["kappa"] == pytest.approx((observed - expected) / (1 - expected), abs=1e-12)


def test_mcnemar_2x2_matches_r_documentation_example() -> None:
    # R: mcnemar.test(matrix(c(794, 86, 150, 570), nrow = 2)), continuity-corrected by default:
    # McNemar's chi-squared = 16.818, df = 1, p-value = 4.115e-05.
    y_true, y_pred = labels_from_confusion([[794, 150], [86, 570]])
    metrics = classification_metrics(y_true, y_pred, ["approve", "disapprove"])
    assert metrics["mcnemar_statistic"] == pytest.approx(16.818, abs=5e-4)
    assert metrics["mcnemar_statistic"] == pytest.approx((150 - 86 - 1) ** 2 / 236, rel=1e-12)
    assert metrics["mcnemar_df"] == 1
    assert metrics["mcnemar_p_value"] == pytest.approx(4.115e-05, rel=1e-3)
    assert metrics["mcnemar_p_value"] == pytest.approx(stats.chi2.sf(63**2 / 236, 1), rel=1e-9)


def test_mcnemar_2x2_without_disagreement_asymmetry_is_one() -> None:
    # R applies the correction only when some n_ij != n_ji; here the statistic is exactly 0.
    statistic, df, p_value = mcnemar_test(np.array([[10, 4], [4, 12]]))
    assert (statistic, df, p_value) == (0.0, 1, 1.0)


def test_bowker_symmetry_test_for_three_classes() -> None:
    confusion = np.array([[30, 5, 2], [9, 25, 1], [7, 6, 20]])
    statistic, df, p_value = mcnemar_test(confusion)
    hand = (5 - 9) ** 2 / 14 + (2 - 7) ** 2 / 9 + (1 - 6) ** 2 / 7  # no continuity correction
    assert statistic == pytest.approx(hand, rel=1e-12)
    assert df == 3
    assert p_value == pytest.approx(stats.chi2.sf(hand, 3), rel=1e-9)


def test_mcnemar_is_none_when_a_pair_is_never_confused() -> None:
    y_true, y_pred = labels_from_confusion([[5, 1, 0], [2, 6, 0], [0, 0, 4]])
    metrics = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert metrics["mcnemar_p_value"] is None
    assert metrics["mcnemar_statistic"] is None


def test_confusion_matrix_counts_true_rows_and_predicted_columns() -> None:
    rng = np.random.default_rng(2)
    y_true, y_pred = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    expected = np.zeros((4, 4), dtype=int)
    for t, p in zip(y_true, y_pred, strict=True):
        expected[t, p] += 1
    metrics = classification_metrics(y_true, y_pred, ["w", "x", "y", "z"])
    assert metrics["confusion"] == expected.tolist()
    assert np.array(metrics["confusion"]).sum(axis=1).tolist() == np.bincount(y_true).tolist()
    assert metrics["n"] == 300
    assert metrics["accuracy"] == np.mean(y_true == y_pred)


def test_per_class_statistics_by_hand() -> None:
    # rows true, columns predicted
    confusion = [[5, 2, 1], [1, 3, 0], [0, 0, 8]]  # n = 20
    metrics = classification_metrics(*labels_from_confusion(confusion), ["cat", "dog", "fox"])
    cat = metrics["per_class"]["cat"]
    # cat: TP 5, FN 3, FP 1, TN 11
    assert cat["precision"] == pytest.approx(5 / 6)
    assert cat["recall"] == cat["sensitivity"] == pytest.approx(5 / 8)
    assert cat["specificity"] == pytest.approx(11 / 12)
    assert cat["f1"] == pytest.approx(2 * (5 / 6) * (5 / 8) / (5 / 6 + 5 / 8))
    assert cat["support"] == 8
    assert cat["prevalence"] == pytest.approx(8 / 20)
    assert cat["detection_rate"] == pytest.approx(5 / 20)
    assert cat["detection_prevalence"] == pytest.approx(6 / 20)
    assert cat["balanced_accuracy"] == pytest.approx((5 / 8 + 11 / 12) / 2)
    assert cat["pos_pred_value"] == pytest.approx(5 / 6)
    assert cat["neg_pred_value"] == pytest.approx(11 / 14)
    dog = metrics["per_class"]["dog"]  # TP 3, FN 1, FP 2, TN 14
    assert (dog["precision"], dog["recall"]) == (pytest.approx(3 / 5), pytest.approx(3 / 4))
    f1 = [2 * 5 / (10 + 1 + 3), 2 * 3 / (6 + 2 + 1), 2 * 8 / (16 + 1 + 0)]
    assert metrics["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert metrics["weighted_f1"] == pytest.approx((8 * f1[0] + 4 * f1[1] + 8 * f1[2]) / 20)
    assert metrics["no_information_rate"] == pytest.approx(8 / 20)
    assert metrics["accuracy"] == pytest.approx(16 / 20)


def test_most_confused_sorted_by_count() -> None:
    confusion = [[10, 1, 4], [6, 10, 0], [2, 4, 10]]
    metrics = classification_metrics(*labels_from_confusion(confusion), ["a", "b", "c"])
    pairs = [(m["true"], m["predicted"], m["count"]) for m in metrics["most_confused"]]
    assert pairs == [("b", "a", 6), ("a", "c", 4), ("c", "b", 4), ("c", "a", 2), ("a", "b", 1)]
    assert metrics["most_confused"][0]["share_of_true"] == pytest.approx(6 / 16)


def test_most_confused_keeps_top_ten() -> None:
    rng = np.random.default_rng(3)
    metrics = classification_metrics(
        rng.integers(0, 6, 500), rng.integers(0, 6, 500), list("abcdef")
    )
    counts = [m["count"] for m in metrics["most_confused"]]
    assert len(counts) == 10
    assert counts == sorted(counts, reverse=True)


def test_undefined_ratios_are_none_and_json_is_strict() -> None:
    # "c" never occurs and is never predicted; "b" is never predicted; everything is "a" or "b".
    confusion = [[4, 0, 0], [2, 0, 0], [0, 0, 0]]
    metrics = classification_metrics(*labels_from_confusion(confusion), ["a", "b", "c"])
    b, c = metrics["per_class"]["b"], metrics["per_class"]["c"]
    assert b["precision"] is None and b["pos_pred_value"] is None
    # Never predicted: no precision, so no F1 (caret prints NA), though recall is 0.
    assert b["recall"] == 0.0 and b["f1"] is None
    assert c["recall"] is None and c["f1"] is None and c["balanced_accuracy"] is None
    assert c["specificity"] == 1.0
    # Only "a" has an F1 (TP 4, FP 2, FN 0): the macro mean skips the undefined ones ...
    assert metrics["macro_f1"] == pytest.approx(2 * 4 / (8 + 2), rel=1e-15)
    # ... while the support-weighted mean counts b's 2 images with F1 0.
    assert metrics["weighted_f1"] == pytest.approx(4 * 0.8 / 6, rel=1e-15)
    assert metrics["mcnemar_p_value"] is None
    text = json.dumps(metrics, allow_nan=False)
    assert json.loads(text)["per_class"]["b"]["f1"] is None


def test_f1_is_zero_when_a_class_is_predicted_but_never_right() -> None:
    # "b" is present (2) and predicted (1) but never correctly: precision = recall = 0.
    confusion = [[3, 1], [2, 0]]
    metrics = classification_metrics(*labels_from_confusion(confusion), ["a", "b"])
    b = metrics["per_class"]["b"]
    assert (b["precision"], b["recall"], b["f1"]) == (0.0, 0.0, 0.0)
    assert metrics["macro_f1"] == pytest.approx((2 * 3 / (6 + 2 + 1) + 0.0) / 2, rel=1e-15)


def test_macro_f1_is_none_when_no_class_has_an_f1() -> None:
    # Every image is "a" and predicted "b": a is never predicted, b never present.
    metrics = classification_metrics([0, 0, 0], [1, 1, 1], ["a", "b"])
    assert [stats["f1"] for stats in metrics["per_class"].values()] == [None, None]
    assert metrics["macro_f1"] is None and metrics["weighted_f1"] == 0.0
    assert "macro_f1" in json.dumps(metrics, allow_nan=False)


def _caret_by_class(confusion: np.ndarray) -> tuple[list, list, list]:
    """precision, recall and F1 per class as caret's precision.table, recall.table and F_meas
    compute them (NA -> None), with NaN from 0/0 in F_meas taken as 0."""
    precision, recall, f1 = [], [], []
    for i in range(len(confusion)):
        predicted, present = confusion[:, i].sum(), confusion[i].sum()
        p = confusion[i, i] / predicted if predicted > 0 else None
        r = confusion[i, i] / present if present > 0 else None
        precision.append(p)
        recall.append(r)
        f1.append(None if p is None or r is None else 0.0 if p + r == 0 else 2 * p * r / (p + r))
    return precision, recall, f1


@pytest.mark.parametrize("seed", range(40))
def test_per_class_f1_and_macro_f1_match_caret_formulas(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 6))
    confusion = rng.integers(0, 4, (k, k)) * (rng.random((k, k)) < 0.6)
    confusion[rng.integers(0, k), rng.integers(0, k)] += 1  # at least one sample
    if seed % 3 == 0:
        confusion[:, rng.integers(0, k)] = 0  # a class never predicted
    if seed % 4 == 0:
        confusion[rng.integers(0, k)] = 0  # a class never present
    if confusion.sum() == 0:
        confusion[0, 0] = 1
    names = [f"c{i}" for i in range(k)]
    metrics = classification_metrics(*labels_from_confusion(confusion.tolist()), names)
    precision, recall, f1 = _caret_by_class(confusion)
    for name, p, r, f in zip(names, precision, recall, f1, strict=True):
        stats = metrics["per_class"][name]
        for got, want in ((stats["precision"], p), (stats["recall"], r), (stats["f1"], f)):
            assert got == (None if want is None else pytest.approx(want, rel=1e-12, abs=1e-15))
    defined = [value for value in f1 if value is not None]
    expected = sum(defined) / len(defined) if defined else None
    assert metrics["macro_f1"] == (None if expected is None else pytest.approx(expected, rel=1e-12))


def test_kappa_is_none_when_chance_agreement_is_perfect() -> None:
    metrics = classification_metrics([0, 0, 0], [0, 0, 0], ["a", "b"])
    assert metrics["kappa"] is None
    assert metrics["accuracy"] == 1.0
    assert metrics["accuracy_ci"] == [pytest.approx(0.025 ** (1 / 3)), 1.0]


def test_p_value_against_no_information_rate() -> None:
    y_true, y_pred = labels_from_confusion([[40, 10], [5, 45]])
    metrics = classification_metrics(y_true, y_pred, ["a", "b"])
    assert metrics["no_information_rate"] == 0.5
    expected = stats.binomtest(85, 100, 0.5, alternative="greater").pvalue
    assert metrics["p_value_acc_gt_nir"] == pytest.approx(expected, rel=1e-9)


def test_top2_accuracy_and_loss() -> None:
    probabilities = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.5, 0.4, 0.1], [0.1, 0.2, 0.7]])
    y_true = np.array([0, 2, 2, 1])  # ranks of the true class: 1st, 2nd, 3rd, 2nd
    metrics = classification_metrics(
        y_true, probabilities.argmax(1), ["a", "b", "c"], probabilities=probabilities, loss=1.25
    )
    assert metrics["top2_accuracy"] == pytest.approx(3 / 4)
    assert metrics["loss"] == 1.25
    two_class = classification_metrics([0, 1], [0, 0], ["a", "b"], probabilities=np.eye(2))
    assert "top2_accuracy" not in two_class and "loss" not in two_class


def test_bad_inputs_raise_cnnlab_error() -> None:
    with pytest.raises(CnnlabError, match="predictions"):
        classification_metrics([0, 1], [0], ["a", "b"])
    with pytest.raises(CnnlabError, match="class index 2"):
        classification_metrics([0, 2], [0, 1], ["a", "b"])
    with pytest.raises(CnnlabError, match="empty"):
        classification_metrics([], [], ["a", "b"])
    with pytest.raises(CnnlabError, match="shape"):
        classification_metrics([0, 1], [0, 1], ["a", "b"], probabilities=np.ones((2, 3)))


def test_format_metrics_reads_like_caret() -> None:
    y_true, y_pred = labels_from_confusion([[40, 10], [5, 45]])
    metrics = classification_metrics(y_true, y_pred, ["ring", "rod"], loss=0.5)
    text = format_metrics(metrics, title="valid")
    lines = text.splitlines()
    assert lines[0] == "valid"
    assert "Accuracy : 0.8500" in text
    low, high = metrics["accuracy_ci"]
    assert f"95% CI : ({low:.4f}, {high:.4f})" in text
    assert "No Information Rate : 0.5000" in text
    assert "P-Value [Acc > NIR] : < 2.2e-16" not in text  # p is about 1e-13, printed as a number
    assert f"Kappa : {metrics['kappa']:.4f}" in text
    assert "Mcnemar's Test P-Value : " in text
    assert "Loss (cross-entropy) : 0.5000" in text
    # The confusion rows are right-aligned under the class columns.
    header = next(line for line in lines if line.startswith("True \\ Predicted"))
    row = next(line for line in lines if line.split() == ["ring", "40", "10"])
    assert len(header) == len(row)
    assert "Class: ring" in text and "Balanced Accuracy" in text


def test_format_metrics_prints_na_for_undefined_values() -> None:
    # "b" is never predicted and "c" never present: their precision and F1 are NA, as in caret.
    confusion = [[4, 0, 1], [2, 0, 0], [0, 0, 0]]
    metrics = classification_metrics(*labels_from_confusion(confusion), ["a", "b", "c"])
    lines = format_metrics(metrics).splitlines()

    def row(label: str) -> list[str]:
        line = next(line.lstrip() for line in lines if line.lstrip().startswith(label + " "))
        return line[len(label) :].split()

    assert row("F1") == [f"{2 * 4 / (8 + 1 + 2):.4f}", "NA", "NA"]
    assert row("Pos Pred Value (Precision)") == ["0.6667", "NA", "0.0000"]
    assert row("Sensitivity (Recall)") == ["0.8000", "0.0000", "NA"]
    # Right-aligned: every row of the class table ends where its header does.
    table = lines[lines.index("Statistics by Class:") + 2 :]
    assert len({len(line) for line in table if line}) == 1


def test_format_metrics_splits_wide_class_tables() -> None:
    names = [f"class_{i:02d}" for i in range(12)]
    rng = np.random.default_rng(4)
    metrics = classification_metrics(rng.integers(0, 12, 300), rng.integers(0, 12, 300), names)
    text = format_metrics(metrics, width=100)
    block_lines = text.split("Statistics by Class:")[1].splitlines()
    assert max(len(line) for line in block_lines) <= 100
    assert all(f"Class: {name}" in text for name in names)
    assert text.count("Balanced Accuracy") >= 2
