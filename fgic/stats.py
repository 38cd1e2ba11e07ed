"""Statistics that turn run records into evidence: summaries over seeds and paired comparisons.

A compared cell is a spec trained with several seeds. Two tests, each computed with ``scipy.stats``:

- **Paired t-test over seeds** (``paired_seeds``): row A and row B trained with the same seeds on the
  same data; the per-seed differences of test top-1 are the sample. It answers "does the change move
  the mean over training randomness?", which is the question a table row asks. With 3-5 seeds a
  bootstrap has too few distinct resamples to give an interval, so the t interval is used; its
  assumption (roughly normal differences) is stated beside every table that uses it.
- **McNemar's exact test pooled over seeds** (``mcnemar``): the same test images classified by A and by B;
  only images where exactly one of them is right count (the discordant pairs), and under "no
  difference" each such image is equally likely to favour A or B (``binomtest`` with p = 0.5). It
  uses every test image, so it resolves smaller differences than the seed-level test, but it ignores
  seed-to-seed variation; a verdict that rests on it alone says so.

``rerun_significant`` is the chance that a rerun with as many seeds is significant again, if the true difference were
the one observed (a function of p and n only): about one half at p = 0.05. ``fgic reproduce`` sums it into the
number of verdict changes a mere re-seed would produce, to read a rerun's changes against.

``verdict`` maps a comparison and the paper's reported difference to one of "reproduced",
"not reproduced", "no significant difference" words that a notebook's conclusion cell prints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as st

ALPHA = 0.05  # two-sided significance level of every test and the 95 % intervals


@dataclass(frozen=True)
class Summary:
    """Mean, sample std and 95 % t interval of one row's values over seeds."""

    mean: float
    std: float  # sample standard deviation (ddof=1); nan for n = 1
    n: int
    ci: tuple[float, float]  # 95 % t interval of the mean; (nan, nan) for n < 2

    def format(self, scale: float = 100.0, digits: int = 1) -> str:
        """``"82.7 +- 1.2 (n=3)"`` (values scaled by ``scale``, e.g. accuracy in points)."""
        if self.n == 0:
            return "no runs"
        if self.n == 1:
            return f"{self.mean * scale:.{digits}f} (n=1)"
        return f"{self.mean * scale:.{digits}f} +- {self.std * scale:.{digits}f} (n={self.n})"


def summarize(values: Sequence[float]) -> Summary:
    """``Summary`` of finite ``values`` (raises on a non-finite one: report failed seeds, never average them)."""
    x = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"summarize got non-finite values {values!r}: report failed seeds separately")
    n = len(x)
    if n == 0:
        return Summary(math.nan, math.nan, 0, (math.nan, math.nan))
    if n == 1:
        return Summary(float(x[0]), math.nan, 1, (math.nan, math.nan))
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    if sd == 0:
        return Summary(mean, 0.0, n, (mean, mean))
    lo, hi = st.t.interval(1 - ALPHA, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return Summary(mean, sd, n, (float(lo), float(hi)))


@dataclass(frozen=True)
class Comparison:
    """B minus A: the mean difference, its 95 % interval, the p-value and which test gave them."""

    diff: float
    ci: tuple[float, float]
    p: float
    n: int  # seeds (paired t) or discordant images (McNemar)
    test: str

    @property
    def significant(self) -> bool:
        return bool(self.p < ALPHA)

    def format(self, scale: float = 100.0, digits: int = 1) -> str:
        """``"+1.9 [+0.4, +3.4], p = 0.030 (paired t, 5 seeds)"``."""
        lo, hi = self.ci
        unit = "seeds" if self.test == "paired t" else "discordant images"
        return (
            f"{self.diff * scale:+.{digits}f} [{lo * scale:+.{digits}f}, {hi * scale:+.{digits}f}], "
            f"p = {self.p:.3f} ({self.test}, {self.n} {unit})"
        )


def paired_seeds(a: Sequence[float], b: Sequence[float]) -> Comparison:
    """Paired t-test of ``b - a`` over seeds (``a[i]`` and ``b[i]`` share seed i)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_seeds needs one value per seed in both rows, got {len(a)} and {len(b)}")
    if len(a) < 2:
        raise ValueError(f"paired_seeds needs at least 2 seeds per row, got {len(a)}")
    d = b - a
    if np.ptp(d) <= 1e-12:  # no spread (up to rounding): the t statistic is undefined
        return Comparison(float(d[0]), (float(d[0]), float(d[0])), 0.0 if d[0] != 0 else 1.0, len(d), "paired t")
    res = st.ttest_rel(b, a)
    ci = res.confidence_interval(1 - ALPHA)
    return Comparison(float(d.mean()), (float(ci.low), float(ci.high)), float(res.pvalue), len(d), "paired t")


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> Comparison:
    """McNemar's exact test of B against A on the same images (pool seeds by concatenating them).

    ``diff`` is B's accuracy minus A's; its interval is the Wilson interval of the discordant share
    favouring B, mapped to an accuracy difference.
    """
    ca, cb = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if ca.shape != cb.shape or ca.ndim != 1:
        raise ValueError(f"mcnemar needs two equal-length 1-D vectors, got shapes {ca.shape} and {cb.shape}")
    n_img = len(ca)
    b_only = int(np.sum(cb & ~ca))  # images only B gets right
    a_only = int(np.sum(ca & ~cb))
    m = a_only + b_only
    diff = (b_only - a_only) / max(n_img, 1)
    if m == 0:
        return Comparison(0.0, (0.0, 0.0), 1.0, 0, "McNemar exact")
    res = st.binomtest(b_only, m, 0.5)
    ci = res.proportion_ci(1 - ALPHA, method="wilson")  # share of discordant images favouring B
    scale = m / n_img
    lo, hi = (2 * ci.low - 1) * scale, (2 * ci.high - 1) * scale
    return Comparison(float(diff), (float(lo), float(hi)), float(res.pvalue), m, "McNemar exact")


def verdict(cmp: Comparison, paper_diff: float | None = None) -> str:
    """One word for a conclusion line.

    - no paper number: "B better" / "B worse" / "no significant difference";
    - with the paper's difference (same sign convention, B minus A): "reproduced" when ours is significant
      with the paper's sign, "contradicted" when significant with the opposite sign, else
      "no significant difference" (the paper's effect is neither confirmed nor refuted at this n).
    """
    if not cmp.significant:
        return "no significant difference"
    if paper_diff is None or paper_diff == 0:
        return "B better" if cmp.diff > 0 else "B worse"
    return "reproduced" if (cmp.diff > 0) == (paper_diff > 0) else "contradicted"


def rerun_significant(p: float, n: int) -> float:
    """Chance that a paired t-test over ``n`` new seeds is significant with the same sign, if the true mean difference
    equals the observed one (observed t = the t that gives two-sided ``p`` at ``n - 1`` degrees of freedom).

    It is the noncentral t's mass beyond the critical value: ``P(T' > t_crit)``, ``T' ~ nct(n - 1, t_obs)``. A rough
    guide (the observed effect is a noisy estimate of the true one), used to say how often a verdict changes by chance.
    """
    if n < 2 or not math.isfinite(p):
        return math.nan
    df = n - 1
    crit = st.t.isf(ALPHA / 2, df)
    if p <= 0:
        return 1.0
    t_obs = st.t.isf(min(p, 1.0) / 2, df)  # >= 0
    return float(st.nct.sf(crit, df, t_obs))


def expected_changes(ps: Sequence[float], ns: Sequence[int]) -> float:
    """Expected number of significant <-> not-significant changes if each comparison were rerun with new seeds:
    the sum of ``2 q (1 - q)`` with ``q = rerun_significant(p, n)`` (the chance the two runs land on opposite sides)."""
    q = [rerun_significant(p, n) for p, n in zip(ps, ns)]
    return float(sum(2 * x * (1 - x) for x in q if math.isfinite(x)))
