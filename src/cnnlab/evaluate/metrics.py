"""Classification metrics as R's caret ``confusionMatrix`` reports them, in plain NumPy.

A single accuracy number hides how sure we can be of it and whether it beats guessing the
largest class. So, like caret, the report carries an exact (Clopper-Pearson) confidence
interval, the no-information rate with a one-sided binomial test against it, Cohen's kappa,
McNemar's (Bowker's) test of symmetry and the one-vs-rest statistics of every class.

The exact tests need the regularized incomplete beta and gamma functions. SciPy has them, but
it is a large dependency for a laptop install, so they are implemented here (Numerical Recipes
style continued fractions, evaluated in log space) and checked against SciPy in the tests.

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

_EPS = 1e-16
_TINY = 1e-300
_MAX_ITER = 100_000

# ------------------------------------------------------------------------ special functions


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method).

    It converges fast for ``x < (a + 1) / (a + b + 2)``; the number of terms grows like
    ``sqrt(max(a, b))``, which is a few hundred even for 100,000 samples.
    """
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = _TINY if abs(d) < _TINY else d
    d = 1.0 / d
    h = d
    for m in range(1, _MAX_ITER + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = _TINY if abs(d) < _TINY else d
        c = 1.0 + aa / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return h
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")


def betainc_pair(a: float, b: float, x: float) -> tuple[float, float]:
    """``(I_x(a, b), 1 - I_x(a, b))``, each computed without cancellation.

    Returning both halves keeps full relative precision in whichever tail is small: a p-value of
    1e-30 stays 1e-30 instead of ``1 - (1 - 1e-30) = 0``.
    """
    if a <= 0 or b <= 0:
        raise ValueError(f"incomplete beta needs a, b > 0, not a={a}, b={b}")
    if x <= 0.0:
        return 0.0, 1.0
    if x >= 1.0:
        return 1.0, 0.0
    log_front = a * math.log(x) + b * math.log1p(-x) - _log_beta(a, b)
    if x < (a + 1.0) / (a + b + 2.0):
        lower = math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
        return lower, 1.0 - lower
    upper = math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b
    return 1.0 - upper, upper


def betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)``."""
    return betainc_pair(a, b, x)[0]


def beta_quantile(q: float, a: float, b: float) -> float:
    """The ``x`` with ``I_x(a, b) = q``, by bisection.

    Bisection is slower than Newton's method but cannot diverge or leave [0, 1], and it stops
    only when the bracket cannot shrink further in double precision, so tiny quantiles (such as
    the lower Clopper-Pearson bound for 1 success in 100,000 trials) keep their relative
    precision.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile level must be in [0, 1], not {q}")
    if q == 0.0:
        return 0.0
    if q == 1.0:
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(2000):
        mid = 0.5 * (low + high)
        if mid in (low, high):
            break
        if betainc(a, b, mid) < q:
            low = mid
        else:
            high = mid
        if high - low <= 1e-15 * high:
            break
    return 0.5 * (low + high)


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``, exact via ``I_p(k, n - k + 1)``."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    return betainc_pair(float(k), float(n - k + 1), p)[0]


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval for ``k`` successes in ``n`` trials.

    This is what R's ``binom.test`` (and so caret) reports: the bounds are beta quantiles, with
    0 as the lower bound when ``k = 0`` and 1 as the upper bound when ``k = n``.
    """
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, not k={k}, n={n}")
    alpha = 1.0 - confidence
    low = 0.0 if k == 0 else beta_quantile(alpha / 2, k, n - k + 1)
    high = 1.0 if k == n else beta_quantile(1 - alpha / 2, k + 1, n - k)
    return low, high


def _gamma_series(a: float, x: float) -> float:
    """Lower regularized incomplete gamma ``P(a, x)`` by its series (good for ``x < a + 1``)."""
    term = total = 1.0 / a
    ap = a
    for _ in range(_MAX_ITER):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            return total * math.exp(-x + a * math.log(x) - math.lgamma(a))
    raise ArithmeticError(f"incomplete gamma series did not converge for a={a}, x={x}")


def _gamma_continued_fraction(a: float, x: float) -> float:
    """Upper regularized incomplete gamma ``Q(a, x)`` by Lentz's method (``x >= a + 1``)."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER + 1):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h
    raise ArithmeticError(f"incomplete gamma fraction did not converge for a={a}, x={x}")


def gammaincc(a: float, x: float) -> float:
    """The upper regularized incomplete gamma function ``Q(a, x) = 1 - P(a, x)``."""
    if a <= 0:
        raise ValueError(f"incomplete gamma needs a > 0, not {a}")
    if x <= 0.0:
        return 1.0
    if x < a + 1.0:
        return 1.0 - _gamma_series(a, x)
    return _gamma_continued_fraction(a, x)


def chi2_sf(statistic: float, df: int) -> float:
    """``P(X >= statistic)`` for a chi-square variable with ``df`` degrees of freedom."""
    return gammaincc(df / 2.0, statistic / 2.0)


# ------------------------------------------------------------------------ tests and ratios


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
