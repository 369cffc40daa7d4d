"""Classification metrics as R's caret ``confusionMatrix`` reports them, in plain NumPy.

A single accuracy number hides how sure we can be of it and whether it beats guessing the
largest class. So, like caret, the report carries an exact (Clopper-Pearson) confidence
interval, the no-information rate with a one-sided binomial test against it, Cohen's kappa,
McNemar's (Bowker's) test of symmetry and the one-vs-rest statistics of every class.

The exact tests need the regularized incomplete beta and gamma functions, which
:mod:`cnnlab.evaluate.distributions` implements without SciPy (and the tests check against it).

Every value is a plain Python type so that the result can be written as JSON. Ratios that are
undefined (0/0, e.g. the precision of a class that is never predicted) are ``None`` (JSON
``null``, "NA" in the text report, as caret prints them), never NaN, because NaN is not valid
JSON and is easy to average by mistake.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from cnnlab.errors import CnnlabError
from cnnlab.evaluate.distributions import (
    betainc,
    binomial_upper_tail,
    chi2_sf,
    clopper_pearson,
)

__all__ = [
    "betainc",
    "binomial_upper_tail",
    "chi2_sf",
    "classification_metrics",
    "clopper_pearson",
    "cohen_kappa",
    "confusion_matrix",
    "format_metrics",
    "mcnemar_test",
]


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator else None


def cohen_kappa(confusion: np.ndarray) -> float | None:
    """Cohen's unweighted kappa; None when chance agreement is already perfect (1 - pe = 0)."""
    n = confusion.sum()
    observed = np.trace(confusion) / n
    expected = float((confusion.sum(axis=1) * confusion.sum(axis=0)).sum()) / float(n) ** 2
    if math.isclose(expected, 1.0, rel_tol=0.0, abs_tol=1e-15):
        return None
    return float((observed - expected) / (1.0 - expected))


def mcnemar_test(confusion: np.ndarray) -> tuple[float, int, float] | None:
    """McNemar's (2 classes) or Bowker's (more classes) test of symmetry, as R's mcnemar.test.

    The statistic is ``sum over i < j of (n_ij - n_ji)^2 / (n_ij + n_ji)`` with ``k(k-1)/2``
    degrees of freedom; for a 2x2 table with unequal off-diagonal counts R applies the
    continuity correction ``(|n_12 - n_21| - 1)^2`` by default, and caret passes that through,
    so it is applied here too. When some pair of classes is never confused either way
    (``n_ij + n_ji = 0``) the statistic is 0/0 and R returns NaN; this returns None. Returns
    ``(statistic, df, p_value)``.
    """
    k = confusion.shape[0]
    upper = np.triu_indices(k, 1)
    a = confusion.astype(np.float64)
    pair_sums = (a + a.T)[upper]
    if k < 2 or np.any(pair_sums == 0):
        return None
    differences = np.abs(a - a.T)[upper]
    if k == 2 and np.any(differences != 0):
        differences = differences - 1.0
    statistic = float(np.sum(differences**2 / pair_sums))
    df = k * (k - 1) // 2
    return statistic, df, chi2_sf(statistic, df)


# ------------------------------------------------------------------------ the report


def _as_labels(values: object, what: str, num_classes: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise CnnlabError(f"{what} must be one label per sample, got shape {array.shape}")
    float_typed = array.size and not np.issubdtype(array.dtype, np.integer)
    if float_typed and not np.all(np.equal(np.mod(array, 1), 0)):
        raise CnnlabError(f"{what} must be integer class indices")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise CnnlabError(
            f"{what} holds class index {int(array.min() if array.min() < 0 else array.max())} "
            f"but there are only {num_classes} class names"
        )
    return array


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with rows = true class and columns = predicted class."""
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def _per_class(confusion: np.ndarray, class_names: Sequence[str]) -> dict[str, dict]:
    """caret's ``byClass``: every class against all the others.

    F1 is None where precision or recall is (a class never predicted, or never present), as in
    caret; where both are 0, caret's formula gives 0/0 (NaN) and F1 here is 0, their limit.
    """
    n = int(confusion.sum())
    out: dict[str, dict] = {}
    for i, name in enumerate(class_names):
        tp = int(confusion[i, i])
        support = int(confusion[i].sum())
        predicted = int(confusion[:, i].sum())
        fn, fp = support - tp, predicted - tp
        tn = n - tp - fn - fp
        recall = _ratio(tp, tp + fn)
        specificity = _ratio(tn, tn + fp)
        precision = _ratio(tp, tp + fp)
        # 2TP / (2TP + FP + FN) is the harmonic mean of precision and recall, exactly.
        f1 = None if precision is None or recall is None else _ratio(2 * tp, 2 * tp + fp + fn)
        out[name] = {
            "precision": precision,
            "recall": recall,
            "sensitivity": recall,
            "specificity": specificity,
            "f1": f1,
            "support": support,
            "prevalence": _ratio(support, n),
            "detection_rate": _ratio(tp, n),
            "detection_prevalence": _ratio(predicted, n),
            "balanced_accuracy": (
                None if recall is None or specificity is None else (recall + specificity) / 2
            ),
            "pos_pred_value": precision,
            "neg_pred_value": _ratio(tn, tn + fn),
        }
    return out


def _most_confused(confusion: np.ndarray, class_names: Sequence[str], top: int = 10) -> list[dict]:
    pairs = []
    supports = confusion.sum(axis=1)
    for i, j in zip(*np.nonzero(confusion), strict=True):
        if i != j:
            count = int(confusion[i, j])
            pairs.append(
                {
                    "true": class_names[i],
                    "predicted": class_names[j],
                    "count": count,
                    "share_of_true": count / int(supports[i]),
                }
            )
    # Stable sort: equal counts keep row-major (true class, then predicted class) order.
    pairs.sort(key=lambda pair: -pair["count"])
    return pairs[:top]


def _top_k_accuracy(probabilities: np.ndarray, y_true: np.ndarray, k: int) -> float:
    """Share of samples whose true class is among the ``k`` highest scores (ties count as hits
    only when the true class's score is strictly beaten by fewer than ``k`` others)."""
    true_scores = probabilities[np.arange(len(y_true)), y_true]
    beaten_by = (probabilities > true_scores[:, None]).sum(axis=1)
    return float(np.mean(beaten_by < k))


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    probabilities: np.ndarray | None = None,
    loss: float | None = None,
) -> dict:
    """Everything caret's ``confusionMatrix`` reports, as JSON-ready plain data.

    ``y_true`` and ``y_pred`` are class indices into ``class_names``. ``probabilities``
    (samples x classes), when given, adds ``top2_accuracy`` for more than two classes, and
    ``loss`` is passed through so that one dictionary describes an evaluation.

    ``mcnemar_p_value`` is None when some pair of classes is never confused in either
    direction (R gives NaN there).

    caret has no macro F1: ``macro_f1`` is the mean of the per-class F1 values that are not None
    (None when all are), skipping undefined ones as scikit-learn's ``average="macro"`` with
    ``zero_division=np.nan`` skips NaN. ``weighted_f1`` counts an undefined F1 as 0.
    """
    class_names = tuple(str(name) for name in class_names)
    k = len(class_names)
    if k < 1:
        raise CnnlabError("classification metrics need at least one class name")
    y_true = _as_labels(y_true, "y_true", k)
    y_pred = _as_labels(y_pred, "y_pred", k)
    if len(y_true) != len(y_pred):
        raise CnnlabError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    n = len(y_true)
    if n == 0:
        raise CnnlabError("no samples to evaluate: the dataset is empty")

    confusion = confusion_matrix(y_true, y_pred, k)
    correct = int(np.trace(confusion))
    low, high = clopper_pearson(correct, n)
    nir = float(confusion.sum(axis=1).max() / n)
    mcnemar = mcnemar_test(confusion)
    per_class = _per_class(confusion, class_names)
    f1 = [stats["f1"] for stats in per_class.values()]
    defined = [value for value in f1 if value is not None]
    supports = [stats["support"] for stats in per_class.values()]

    metrics: dict = {
        "n": n,
        "class_names": list(class_names),
        "accuracy": correct / n,
        "accuracy_ci": [low, high],
        "no_information_rate": nir,
        "p_value_acc_gt_nir": binomial_upper_tail(correct, n, nir),
        "kappa": cohen_kappa(confusion),
        "mcnemar_statistic": None if mcnemar is None else mcnemar[0],
        "mcnemar_df": None if mcnemar is None else mcnemar[1],
        "mcnemar_p_value": None if mcnemar is None else mcnemar[2],
        "confusion": confusion.tolist(),
        "per_class": per_class,
        "macro_f1": sum(defined) / len(defined) if defined else None,
        "weighted_f1": sum(s * (v or 0.0) for s, v in zip(supports, f1, strict=True)) / n,
        "most_confused": _most_confused(confusion, class_names),
    }
    if loss is not None:
        metrics["loss"] = float(loss)
    if probabilities is not None:
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if probabilities.shape != (n, k):
            raise CnnlabError(
                f"probabilities must have shape ({n}, {k}), not {tuple(probabilities.shape)}"
            )
        if k > 2:
            metrics["top2_accuracy"] = _top_k_accuracy(probabilities, y_true, 2)
    return metrics


# ------------------------------------------------------------------------ text report


def _number(value: float | None, digits: int = 4) -> str:
    return "NA" if value is None else f"{value:.{digits}f}"


def _p_value(value: float | None) -> str:
    """R's ``format.pval`` style: tiny p-values as "< 2.2e-16" (double precision's limit)."""
    if value is None:
        return "NA"
    if value < 2.2e-16:
        return "< 2.2e-16"
    return f"{value:.4g}"


def _table(
    corner: str, row_labels: Sequence[str], columns: Sequence[str], cells: list[list[str]]
) -> list[str]:
    """Right-aligned columns under their headers, row labels on the left."""
    label_width = max(len(corner), *(len(label) for label in row_labels))
    widths = [max(len(column), *(len(row[j]) for row in cells)) for j, column in enumerate(columns)]
    header = "".join(f" {c:>{w}}" for c, w in zip(columns, widths, strict=True))
    lines = [f"{corner:<{label_width}}{header}"]
    for label, row in zip(row_labels, cells, strict=True):
        text = "".join(f" {c:>{w}}" for c, w in zip(row, widths, strict=True))
        lines.append(f"{label:>{label_width}}{text}")
    return lines


_CLASS_STATISTICS = (
    ("Sensitivity (Recall)", "recall"),
    ("Specificity", "specificity"),
    ("Pos Pred Value (Precision)", "pos_pred_value"),
    ("Neg Pred Value", "neg_pred_value"),
    ("F1", "f1"),
    ("Prevalence", "prevalence"),
    ("Detection Rate", "detection_rate"),
    ("Detection Prevalence", "detection_prevalence"),
    ("Balanced Accuracy", "balanced_accuracy"),
    ("Support", "support"),
)


def format_metrics(metrics: dict, title: str | None = None, width: int = 100) -> str:
    """A text report laid out like caret's ``print(confusionMatrix(...))``.

    The confusion matrix has true classes as rows and predicted classes as columns (the same
    orientation as ``metrics["confusion"]``; caret prints the transpose). The per-class table
    has one column per class and is split into blocks no wider than ``width`` characters.
    """
    names = list(metrics.get("class_names") or metrics["per_class"].keys())
    lines = [title] if title else []
    lines += ["Confusion Matrix and Statistics", ""]
    counts = [[str(count) for count in row] for row in metrics["confusion"]]
    lines += _table("True \\ Predicted", names, names, counts)
    lines.append("")

    low, high = metrics["accuracy_ci"]
    summary = [
        ("Accuracy", _number(metrics["accuracy"])),
        ("95% CI", f"({_number(low)}, {_number(high)})"),
        ("No Information Rate", _number(metrics["no_information_rate"])),
        ("P-Value [Acc > NIR]", _p_value(metrics["p_value_acc_gt_nir"])),
        ("", None),
        ("Kappa", _number(metrics["kappa"])),
        ("", None),
        ("Mcnemar's Test P-Value", _p_value(metrics["mcnemar_p_value"])),
    ]
    if "top2_accuracy" in metrics:
        summary.insert(2, ("Top-2 Accuracy", _number(metrics["top2_accuracy"])))
    if "loss" in metrics:
        summary.insert(0, ("Loss (cross-entropy)", _number(metrics["loss"])))
    label_width = max(len(label) for label, _ in summary)
    for label, value in summary:
        lines.append("" if value is None else f"{label:>{label_width + 1}} : {value}")

    lines += ["", "Statistics by Class:", ""]
    row_labels = [label for label, _ in _CLASS_STATISTICS]
    columns = [f"Class: {name}" for name in names]
    cells_by_class = []
    for name in names:
        stats = metrics["per_class"][name]
        cells_by_class.append(
            [
                str(stats[key]) if key == "support" else _number(stats[key])
                for _, key in _CLASS_STATISTICS
            ]
        )
    label_width = max(len(label) for label in row_labels)
    start = 0
    while start < len(names):
        stop, used = start, label_width
        while stop < len(names):
            column_width = 1 + max(len(columns[stop]), 6)
            if stop > start and used + column_width > width:
                break
            used += column_width
            stop += 1
        cells = [[cells_by_class[j][i] for j in range(start, stop)] for i in range(len(row_labels))]
        lines += _table("", row_labels, columns[start:stop], cells)
        lines.append("")
        start = stop
    return "\n".join(lines).rstrip() + "\n"
