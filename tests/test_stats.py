"""fgic.stats against values computed by hand (textbook formulas), not against scipy itself."""

import math

import numpy as np
import pytest

from fgic import stats


def test_summarize_mean_std_and_t_interval():
    s = stats.summarize([0.80, 0.82, 0.84])
    assert s.n == 3
    assert s.mean == pytest.approx(0.82)
    assert s.std == pytest.approx(0.02)
    half = 4.302653 * 0.02 / math.sqrt(3)  # t_{0.975, 2} x sd / sqrt(n)
    assert s.ci == pytest.approx((0.82 - half, 0.82 + half), abs=1e-6)
    assert s.format() == "82.0 +- 2.0 (n=3)"


def test_summarize_small_n_and_failed_values():
    assert stats.summarize([0.5]).format() == "50.0 (n=1)"
    assert math.isnan(stats.summarize([0.5]).std)
    assert stats.summarize([]).format() == "no runs"
    with pytest.raises(ValueError, match="failed seeds"):
        stats.summarize([0.5, float("nan")])


def test_paired_seeds_matches_hand_computation():
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641 on 2 df -> p = 0.07418
    c = stats.paired_seeds([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    assert c.diff == pytest.approx(2.0)
    assert c.p == pytest.approx(0.07418, abs=1e-4)
    half = 4.302653 / math.sqrt(3)
    assert c.ci == pytest.approx((2 - half, 2 + half), abs=1e-5)
    assert not c.significant
    assert stats.verdict(c, paper_diff=1.1) == "no significant difference"


def test_paired_seeds_significant_and_verdicts():
    a = np.array([0.70, 0.72, 0.71, 0.69, 0.70])
    b = a + np.array([0.05, 0.06, 0.05, 0.04, 0.05])
    c = stats.paired_seeds(a, b)
    assert c.significant and c.diff == pytest.approx(0.05)
    assert stats.verdict(c, paper_diff=+0.011) == "reproduced"
    assert stats.verdict(c, paper_diff=-0.011) == "contradicted"
    assert stats.verdict(c) == "B better"
    assert "5 seeds" in c.format()


def test_paired_seeds_rejects_unpaired_rows():
    with pytest.raises(ValueError, match="one value per seed"):
        stats.paired_seeds([0.1, 0.2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="at least 2 seeds"):
        stats.paired_seeds([0.1], [0.2])


def test_mcnemar_exact_matches_binomial_by_hand():
    # 10 images only B gets right, 2 only A, 88 both right: p = 2 * P(X <= 2 | 12, 1/2) = 2 * 79 / 4096
    ca = np.array([True] * 88 + [False] * 10 + [True] * 2)
    cb = np.array([True] * 88 + [True] * 10 + [False] * 2)
    c = stats.mcnemar(ca, cb)
    assert c.n == 12
    assert c.p == pytest.approx(158 / 4096)
    assert c.diff == pytest.approx(8 / 100)
    assert c.ci[0] < c.diff < c.ci[1]
    assert c.significant


def test_mcnemar_identical_predictions_is_no_difference():
    ca = np.array([True, False, True])
    c = stats.mcnemar(ca, ca)
    assert (c.diff, c.p, c.n) == (0.0, 1.0, 0)
    assert stats.verdict(c) == "no significant difference"


def test_rerun_significant_is_about_a_half_at_p_005_and_grows_as_p_falls():
    from fgic.stats import ALPHA, rerun_significant

    assert abs(rerun_significant(0.05, 5) - 0.5) < 0.1  # on the line: a coin toss
    qs = [rerun_significant(p, 5) for p in (0.9, 0.3, 0.1, 0.05, 0.01, 0.001)]
    assert qs == sorted(qs) and qs[-1] > 0.99
    assert abs(rerun_significant(1.0, 5) - ALPHA / 2) < 1e-9  # no effect: significant in that direction at alpha/2
    assert rerun_significant(0.0, 5) == 1.0 and math.isnan(rerun_significant(0.04, 1))


def test_expected_changes_sums_the_chance_of_landing_on_the_other_side():
    from fgic.stats import expected_changes, rerun_significant

    q = rerun_significant(0.05, 5)
    assert abs(expected_changes([0.05, 0.05], [5, 5]) - 4 * q * (1 - q)) < 1e-12
    assert expected_changes([0.0, 1e-9], [5, 5]) < 1e-6  # decisive: nothing to change
    assert expected_changes([0.05], [1]) == 0.0  # not a seed comparison: left out
