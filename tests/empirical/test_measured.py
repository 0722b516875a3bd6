"""The measured critical batch size: censored medians, b* eligibility, the K∞·b/(b − c) fit and its bootstrap."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from empirical.measured import (
    Outcome,
    bootstrap,
    censored_median,
    expected_running_time,
    fit_hyperbola,
    measured_b_star,
    restart_b_star,
    summarise,
)


def hyperbola_runs(k_inf, c, batch_sizes, seeds, noise=0.0, rng=None):
    rng = rng or np.random.default_rng(0)
    return [Outcome(int(b), s, k_inf * b / (b - c) * (1 + rng.uniform(-noise, noise)))
            for b in batch_sizes for s in range(seeds)]


def test_censored_median_counts_misses_as_infinite():
    assert censored_median([300, None, 100]) == 300  # one miss of three: the median is still known
    assert censored_median([None, None, 100]) == math.inf
    assert censored_median([4, 2, 8, None]) == 6.0
    assert censored_median([None, None]) == math.inf


def test_summary_keeps_misses_visible():
    runs = [Outcome(4, 0, 100), Outcome(4, 1, None), Outcome(4, 2, 140), Outcome(8, 0, 50)]
    four, eight = summarise(runs)
    assert (four.n_runs, four.n_reached, four.median_k, four.min_k, four.max_k) == (3, 2, 140, 100, 140)
    assert not four.all_reached and eight.all_reached
    assert eight.median_sfo == 400


def test_b_star_only_among_batch_sizes_where_every_seed_reached():
    # b = 4 has the smallest SFO of the medians but one seed missed there: b = 8 is the measured b*.
    runs = [Outcome(4, 0, 10), Outcome(4, 1, 10), Outcome(4, 2, None),
            Outcome(8, 0, 30), Outcome(8, 1, 30), Outcome(8, 2, 30),
            Outcome(16, 0, 20), Outcome(16, 1, 20), Outcome(16, 2, 20)]
    assert measured_b_star(summarise(runs)) == 8
    assert measured_b_star(summarise([Outcome(4, 0, None)])) is None


def test_b_star_is_interior_for_a_hyperbola():
    # N(b) = K∞·b²/(b − c) is minimised at 2c = 24: on the power-of-two grid, 16 or 32.
    runs = hyperbola_runs(100.0, 12.0, [16, 32, 64, 128, 256], 3)
    sfo = {s.batch_size: s.median_sfo for s in summarise(runs)}
    assert measured_b_star(summarise(runs)) == min(sfo, key=sfo.get) == 32


def test_fit_is_exact_on_noiseless_data():
    fit = fit_hyperbola(summarise(hyperbola_runs(250.0, 5.5, [8, 16, 32, 64, 128, 256, 512], 3)))
    assert fit.c == pytest.approx(5.5, rel=1e-6)
    assert fit.k_inf == pytest.approx(250.0, rel=1e-6)
    assert fit.b_star == pytest.approx(11.0, rel=1e-6)
    assert fit.r2 == pytest.approx(1.0, abs=1e-9)


def test_fit_of_flat_data_has_c_zero():
    fit = fit_hyperbola(summarise([Outcome(b, s, 100) for b in (4, 8, 16, 32) for s in range(3)]))
    assert fit.c == pytest.approx(0.0, abs=1e-6)
    assert fit.k_inf == pytest.approx(100.0)


def test_fit_needs_three_finite_medians():
    assert fit_hyperbola(summarise(hyperbola_runs(100.0, 2.0, [4, 8], 3))) is None


@settings(max_examples=40, deadline=None)
@given(c=st.floats(2.0, 200.0), k_inf=st.floats(10.0, 1e4), seed=st.integers(0, 2**32 - 1))
def test_fit_recovers_c_within_8_and_k_inf_within_5_percent_under_10_percent_noise(c, k_inf, seed):
    # Multiplicative noise uniform in ±10% on every run; 5 seeds on a geometric grid from 1.25c to 200c.
    # In 600 random draws the largest error was 4.9% for c (at c = 2, where rounding b up to integers leaves few
    # distinct batch sizes near c) and 2.8% for K∞; a derandomized CI example hit 5.3% for c, hence 8%.
    batch_sizes = np.unique(np.ceil(np.geomspace(1.25 * c, 200 * c, 24)))
    fit = fit_hyperbola(summarise(hyperbola_runs(k_inf, c, batch_sizes, 5, 0.1, np.random.default_rng(seed))))
    assert fit.c == pytest.approx(c, rel=0.08)
    assert fit.k_inf == pytest.approx(k_inf, rel=0.05)


def test_bootstrap_is_reproducible_and_brackets_the_estimates():
    runs = hyperbola_runs(200.0, 5.0, [4 * 2**k for k in range(8)][1:], 3, 0.2, np.random.default_rng(3))
    a, b = bootstrap(runs, n_resamples=300, seed=7), bootstrap(runs, n_resamples=300, seed=7)
    assert a == b
    fit = fit_hyperbola(summarise(runs))
    assert a.c.low <= fit.c <= a.c.high
    assert a.k_inf.low <= fit.k_inf <= a.k_inf.high
    assert a.b_star.low <= measured_b_star(summarise(runs)) <= a.b_star.high
    assert a.b_star.low in {8, 16, 32, 64, 128, 256, 512}  # b* intervals lie on the grid


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 5000), min_size=1, max_size=8), st.lists(st.integers(1, 5000), max_size=8))
def test_expected_running_time_is_the_mean_cost_of_restarting_until_a_run_reaches(hits, misses):
    """Draw runs uniformly from the seeds until one reaches: the draws before it are misses (each costing its
    steps_run), a geometric number with success probability p, so E[cost] = mean miss·(1 − p)/p + mean K."""
    runs = [Outcome(8, i, k, k) for i, k in enumerate(hits)] + [Outcome(8, 100 + i, None, m)
                                                                 for i, m in enumerate(misses)]
    p = len(hits) / len(runs)
    mean_miss = sum(misses) / len(misses) if misses else 0.0
    assert expected_running_time(runs) == pytest.approx(mean_miss * (1 - p) / p + sum(hits) / len(hits), rel=1e-12)


def test_expected_running_time_by_simulated_restarts():
    """The same quantity from the restart process itself, simulated: within 2% after 200,000 draws."""
    runs = [Outcome(16, 0, 400, 900), Outcome(16, 1, None, 150), Outcome(16, 2, 600, 600), Outcome(16, 3, None, 3000)]
    rng = np.random.default_rng(0)
    totals = []
    for _ in range(50_000):
        total = 0
        while True:
            run = runs[rng.integers(len(runs))]
            if run.steps is not None:
                totals.append(total + run.steps)
                break
            total += run.steps_run
    assert np.mean(totals) == pytest.approx(expected_running_time(runs), rel=0.02)
    assert expected_running_time(runs) == (400 + 150 + 600 + 3000) / 2  # a reached run counts K, not its steps_run


def test_restart_b_star_keeps_a_batch_size_whose_misses_stop_early():
    """b = 64: one seed of four collapses after 100 steps; the every-seed rule drops b = 64 (b* = 128), the expected
    SFO with restarts keeps it: 64·(3·300 + 100)/3 = 21,333 < 128·250 = 32,000."""
    runs = [Outcome(64, s, 300, 300) for s in range(3)] + [Outcome(64, 3, None, 100)]
    runs += [Outcome(128, s, 250, 250) for s in range(4)] + [Outcome(32, s, None, 2000) for s in range(4)]
    summaries = summarise(runs)
    assert measured_b_star(summaries) == 128
    assert restart_b_star(summaries) == 64
    assert [s.ert for s in summaries] == [math.inf, pytest.approx(1000 / 3), 250]
    unknown = [Outcome(8, 0, 5, 5), Outcome(8, 1, None, None), Outcome(16, 0, 10, 10)]  # a miss of unknown cost
    assert restart_b_star(summarise(unknown)) is None
