"""Exact binomial and chi-squared probabilities, without SciPy.

The regularized incomplete beta and gamma functions behind the Clopper-Pearson interval, the
binomial test against the no-information rate and McNemar's test. SciPy has them, but it is a
large dependency for a laptop install, so they are implemented here (Numerical Recipes style
continued fractions, evaluated in log space) and checked against SciPy in the tests.
"""

from __future__ import annotations

import math

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
