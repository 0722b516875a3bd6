"""The theory's own measure: running means and K_ε against hand computations, the joint rule, the fit's b* on exact
hyperbolas, the ε-mapping check, and ε read from a constants file."""

import math
from types import SimpleNamespace

import pytest

from empirical.theory_measure import (
    EpsilonSquared,
    MeasureRun,
    analyse_measure,
    epsilon_squared,
    from_points,
    k_epsilon,
    running_mean,
    value_at,
)
from theory.schema import parse_constants


def run(values_d, values_g, steps, b=8, seed=0, k_fid=None):
    return MeasureRun(b, seed, tuple(steps), {"D": tuple(values_d), "G": tuple(values_g)}, k_fid)


def test_even_spacing_is_the_plain_mean_over_evaluations_after_step_0():
    steps = (0, 5, 10, 15, 20)
    values = (99.0, 8.0, 4.0, 6.0, 2.0)  # step 0's 99 is left out
    assert running_mean(steps, values) == [(5, 8.0), (10, 6.0), (15, 6.0), (20, 5.0)]


def test_uneven_spacing_weights_each_evaluation_by_the_steps_it_stands_for():
    # Evaluations at 10, 20, 40, 100 stand for 10, 10, 20 and 60 steps:
    # 30/10 = 3; (30 + 10)/20 = 2; (40 + 20·1)/40 = 1.5; (60 + 60·0.5)/100 = 0.9.
    steps = (0, 10, 20, 40, 100)
    values = (None, 3.0, 1.0, 1.0, 0.5)
    curve = running_mean(steps, values)
    assert [s for s, _ in curve] == [10, 20, 40, 100]
    assert [v for _, v in curve] == pytest.approx([3.0, 2.0, 1.5, 0.9])
    r = run(values, values, steps)
    assert k_epsilon(r, {"D": 1.5, "G": 1.0}) == {"D": 40, "G": 100, "joint": 100}
    # The unweighted mean over evaluations would be (3 + 1 + 1)/3 = 1.67 > 1.6 at step 40, and K would be 100.
    assert k_epsilon(r, {"D": 1.6, "G": 1.6})["D"] == 40


def test_a_missing_evaluation_folds_its_steps_into_the_next_measured_one():
    # 20 is not measured: 40 stands for (10, 40], 30 steps. (10·4 + 30·2)/40 = 2.5.
    assert running_mean((0, 10, 20, 40), (None, 4.0, None, 2.0)) == [(10, 4.0), (40, 2.5)]
    assert running_mean((0, 10, 20), (None, 4.0, math.nan)) == [(10, 4.0)]  # NaN: not measured


def test_a_run_that_never_reaches_epsilon_gives_none_and_so_does_its_joint():
    r = run((None, 5.0, 4.0, 3.0), (None, 0.1, 0.1, 0.1), (0, 10, 20, 30))
    assert k_epsilon(r, {"D": 2.0, "G": 1.0}) == {"D": None, "G": 10, "joint": None}
    assert k_epsilon(r, {"D": 4.0, "G": 1.0}) == {"D": 30, "G": 10, "joint": 30}  # (50 + 40 + 30)/30 = 4 ≤ 4
    assert k_epsilon(r, {"D": 10.0, "G": 0.05}) == {"D": 10, "G": None, "joint": None}


def test_stays_is_the_step_from_which_the_mean_never_goes_back_above():
    # Means: 0.5, (5 + 30)/20 = 1.75, (35 + 10)/30 = 1.5, (45 + 2)/40 = 1.175.
    r = run((None, 0.5, 3.0, 1.0, 0.2), (None, 0.5, 0.5, 0.5, 0.5), (0, 10, 20, 30, 40))
    assert k_epsilon(r, {"D": 1.6, "G": 1.0}) == {"D": 10, "G": 10, "joint": 10}  # a dip at the start
    assert k_epsilon(r, {"D": 1.6, "G": 1.0}, "stays") == {"D": 30, "G": 10, "joint": 30}
    assert k_epsilon(r, {"D": 1.0, "G": 1.0}, "stays") == {"D": None, "G": 10, "joint": None}  # 1.175 > 1 at the end


def test_value_at_the_fid_hit_is_the_running_mean_there():
    curve = running_mean((0, 10, 20, 40), (None, 4.0, 2.0, 1.0))  # 4, 3, 2
    assert value_at(curve, 20) == 3.0 and value_at(curve, 39) == 3.0 and value_at(curve, 5) is None


def test_bad_runs_are_refused():
    with pytest.raises(ValueError, match="3 values for 4 steps"):
        run((1, 2, 3), (1, 2, 3, 4), (0, 1, 2, 3))
    with pytest.raises(ValueError, match="steps must increase"):
        run((1, 2), (1, 2), (5, 5))


def test_from_points_reads_the_history_fields_and_none_where_absent():
    pts = [SimpleNamespace(step=0, grad_sq_d=None, grad_sq_g=None),
           SimpleNamespace(step=5, grad_sq_d=2.0, grad_sq_g=3.0)]
    r = from_points(4, 1, 5, pts, "grad_sq")
    assert r.values == {"D": (None, 2.0), "G": (None, 3.0)} and r.measured
    assert not from_points(4, 1, 5, pts, "vi_gap").measured  # no vi_gap_* attributes: not measured


def hitting_run(k_d, k_g, b, seed):
    """A run whose running mean first falls to ≤ 0.5 exactly at step K_P: player P is measured at step 1 (value 1)
    and at K_P (value 0), so its mean is 1, then 1/K_P ≤ 0.5 (K_P ≥ 2); at the other player's K it is not measured."""
    steps = tuple(sorted({0, 1, k_d, k_g}))
    return run(tuple(1.0 if t == 1 else 0.0 if t == k_d else None for t in steps),
               tuple(1.0 if t == 1 else 0.0 if t == k_g else None for t in steps), steps, b=b, seed=seed)


def test_the_fit_recovers_the_hyperbolas_b_star_from_k_epsilon_and_joint_is_the_later_player():
    # K = 96·b/(b − 4) is an integer on b = 5, 6, 8, 12, 20, 36 (b − 4 = 1, 2, ..., 32): 480, 288, ..., 108.
    k_d = {b: 96 * b // (b - 4) for b in (5, 6, 8, 12, 20, 36)}
    assert all(96 * b % (b - 4) == 0 for b in k_d)
    k_g = {b: 2 * b for b in k_d}  # G earlier than D (10 < 480, ..., 40 < 120) ...
    k_g[36] = 150  # ... except at b = 36, where G (150) is later than D (108)
    runs = [hitting_run(k_d[b], k_g[b], b, s) for b in k_d for s in range(3)]
    a = analyse_measure(runs, "grad_sq", EpsilonSquared(0.5, 0.5, "sgd-frozen", False), n_resamples=20)
    for r in a.runs:
        b = r.batch_size
        assert r.k == {"D": k_d[b], "G": k_g[b], "joint": max(k_d[b], k_g[b])}
    fit = a.k["D"].fit
    assert fit.c == pytest.approx(4.0, rel=1e-6) and fit.k_inf == pytest.approx(96.0, rel=1e-6)
    assert fit.b_star == pytest.approx(8.0, rel=1e-6) and fit.r2 == pytest.approx(1.0)
    assert a.k["D"].b_star == 8  # b·K = 2400, 1728, 1536, 1728, 2400, 3888: smallest at b = 8
    assert a.k["D"].boot.b_star_fit.low == pytest.approx(8.0, rel=1e-6)  # identical seeds: no spread
    assert a.k["joint"].summaries[-1].median_k == 150 and a.k["joint"].summaries[0].median_k == 480


def test_epsilon_mapping_reports_the_running_mean_at_the_fid_hit():
    # b = 4: FID hit at step 10 (mean D = 4, G = 1); b = 16: at 20 (mean D = 3, G = 1) or 40 (2), one seed missed.
    r1 = run((None, 4.0, 2.0, 1.0), (None, 1.0, 1.0, 1.0), (0, 10, 20, 40), b=4, seed=0, k_fid=10)
    r2 = run((None, 4.0, 2.0, 1.0), (None, 1.0, 1.0, 1.0), (0, 10, 20, 40), b=16, seed=0, k_fid=20)
    r3 = run((None, 4.0, 2.0, 1.0), (None, 1.0, 1.0, 1.0), (0, 10, 20, 40), b=16, seed=1, k_fid=40)
    r4 = run((None, 4.0, 2.0, 1.0), (None, 1.0, 1.0, 1.0), (0, 10, 20, 40), b=16, seed=2, k_fid=None)
    unmeasured = run((None,) * 4, (None,) * 4, (0, 10, 20, 40), b=16, seed=3, k_fid=10)
    a = analyse_measure([r1, r2, r3, r4, unmeasured], "grad_sq", EpsilonSquared(2.5, 1.0, "sgd", True), 10)
    assert a.n_unmeasured == 1
    m4, m16 = a.mapping
    assert (m4.n_runs, m4.n_hit, m4.median["D"], m4.n_below["D"], m4.n_below["G"]) == (1, 1, 4.0, 0, 1)
    assert (m16.n_runs, m16.n_hit, m16.median["D"], m16.low["D"], m16.high["D"]) == (3, 2, 2.5, 2.0, 3.0)
    assert m16.n_below == {"D": 1, "G": 2}
    assert analyse_measure([unmeasured], "grad_sq", EpsilonSquared(1, 1, "sgd", True)) is None


def doc(epsilon):
    return {"schema": "ttur-constants/1", "constants": {"alpha_D": 0.1}, "epsilon": epsilon}


def test_epsilon_comes_from_the_measures_family_squared_one_value_for_both_players():
    f = parse_constants(doc({"sgd": 2.0, "adam": {"value": 0.5, "method": "m"}}), "t")
    assert epsilon_squared(f, "grad_sq") == EpsilonSquared(4.0, 4.0, "sgd", False)  # no sgd-frozen: sgd's
    assert epsilon_squared(f, "vi_gap") == EpsilonSquared(0.25, 0.25, "adam", False)
    assert epsilon_squared(parse_constants(doc({"adam": 1.0}), "t"), "grad_sq") is None
    assert epsilon_squared(None, "grad_sq") is None


def test_per_player_epsilon_is_used_when_the_file_has_it():
    f = SimpleNamespace(epsilon={"sgd-frozen": 3.0}, epsilon_details={"sgd-frozen": {"players": {"D": 1.0, "G": 3.0}}})
    assert epsilon_squared(f, "grad_sq") == EpsilonSquared(1.0, 9.0, "sgd-frozen", True)
