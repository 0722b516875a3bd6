"""The predictor scores: ratios to b*_fit, median |log₂ ratio| and the share within 2×, against hand counts; the
rules that keep a predictor from scoring where it says nothing (another target's ε, no constants)."""

import math
from types import SimpleNamespace

import pytest

from empirical import predictors
from empirical.predictors import Cell, Row, Value, score
from empirical.report import TheoryPrediction


def _cell(b_fit: float | None, control: bool = True, optimizer: str = "sgd", target: float = 0.05,
          b_star: int | None = None, restart: int = 256) -> Cell:
    """A cell whose expected SFO with restarts is smallest at `restart` (a batch size whose median K is ∞, as where
    some seeds miss, so it leaves the fit's bound at b = 64)."""
    summaries = [SimpleNamespace(batch_size=b, median_k=100.0, n_reached=3, ert=1e9, restart_sfo=b * 1e9)
                 for b in (64, 128)]
    summaries.append(SimpleNamespace(batch_size=restart, median_k=math.inf, n_reached=1, ert=10.0,
                                     restart_sfo=restart * 10.0))
    group = SimpleNamespace(fit=None if b_fit is None else SimpleNamespace(b_star=b_fit, c=b_fit / 2),
                            optimizer=optimizer, target_fid=target, floor=None, b_star=b_star, lr_d=0.05, lr_g=0.0125,
                            summaries=summaries)
    return Cell("sweep", "preset", group, control)


def test_scores_are_the_hand_counted_ones():
    """Ratios 1.5, 0.25, 4, 2 (control) and 0.5 (neural) to b*_fit: |log₂| = 0.585, 2, 2, 1, 1, so the median is 1
    and 3 of 5 lie within 2× (the bounds 2 and 0.5 count as within); a cell without b*_fit and a valueless
    predictor do not count."""
    rows = [Row(_cell(10.0, b_star=16, restart=8), {"p": Value(15.0)}),
            Row(_cell(8.0, b_star=8, restart=4), {"p": Value(2.0)}),
            Row(_cell(4.0, b_star=4, restart=16), {"p": Value(16.0)}),
            Row(_cell(3.0, b_star=2, restart=32), {"p": Value(6.0)}),
            Row(_cell(20.0, control=False, b_star=64, restart=32), {"p": Value(10.0)}),
            Row(_cell(None), {"p": Value(3.0)}), Row(_cell(7.0), {"p": Value(None, "no constants")})]
    s = score(rows, "p")
    assert (s.n_cells, s.n_valued) == (6, 5)
    assert s.median_log2 == pytest.approx(1.0)
    assert s.within_2x == pytest.approx(3 / 5)  # 1.5, 2, 0.5 within; 0.25 and 4 not
    assert s.within_2x_control == (2, 4) and s.within_2x_neural == (1, 1)
    assert s.median_ratio == pytest.approx(1.5)
    # against the grid's argmin: 15/16, 2/8, 16/4, 6/2, 10/64 -> within 2× only 15/16
    assert s.within_2x_measured == pytest.approx(1 / 5)
    # against b*_restart: 15/8, 2/4, 16/16, 6/32, 10/32 -> within 2× the first three
    assert s.within_2x_restart == pytest.approx(3 / 5)


def test_a_predictor_outside_two_x_by_a_hair_is_not_within():
    rows = [Row(_cell(1.0), {"p": Value(2.0 * (1 + 1e-9))}), Row(_cell(1.0), {"p": Value(0.5 * (1 - 1e-9))})]
    assert score(rows, "p").within_2x == 0.0


def test_sgd_steps_in_the_identity_metric_adam_without_a_measured_one_has_none():
    file = SimpleNamespace(noise_scale={"D": 10.0, "G": 3.0}, noise_scale_preconditioned={}, source={})
    sgd = predictors.noise_values(_cell(5.0), file)
    assert sgd["2·B_simple"].value == 20.0 and sgd["2·B_noise,H"].value == 20.0  # 2·max over players
    adam = predictors.noise_values(_cell(5.0, optimizer="adam"), file)
    assert adam["2·B_noise,H"].value is None and "preconditioned" in adam["2·B_noise,H"].why
    measured = SimpleNamespace(noise_scale={"D": 10.0, "G": 3.0}, noise_scale_preconditioned={"D": 1.0, "G": 4.0},
                               source={"status": "not_reached"})
    got = predictors.noise_values(_cell(5.0, optimizer="adam"), measured)["2·B_noise,H"]
    assert got.value == 8.0 and got.mark == predictors.MISSED  # from a reference run that missed its target
    assert predictors.noise_values(_cell(5.0), None)["2·B_simple"].value is None


def test_a_family_gives_no_number_at_a_target_its_epsilon_was_not_measured_at():
    made = TheoryPrediction("sgd-frozen", "measured", b_star_joint=9.0)
    out = predictors.family_values(_cell(5.0, target=0.025), object(), 0.05, lambda g: [made])
    assert out["sgd-frozen"].value is None and "0.05" in out["sgd-frozen"].why
    unknown = predictors.family_values(_cell(5.0), object(), None, lambda g: [made])
    assert unknown["sgd-frozen"].value is None and "no FID target" in unknown["sgd-frozen"].why
    same = predictors.family_values(_cell(5.0, target=0.05), object(), 0.05, lambda g: [made])
    assert same["sgd-frozen"].value == 9.0 and same["sgd-frozen"].ratio(5.0) == pytest.approx(1.8)
    adam_family = TheoryPrediction("adam", "measured", b_star_joint=9.0)
    assert predictors.family_values(_cell(5.0), object(), 0.05, lambda g: [adam_family]) == {}  # out of scope
    defaulted = TheoryPrediction("sgd-frozen", "x; so this b* is not a prediction for these runs", b_star_joint=9.0)
    assert predictors.family_values(_cell(5.0), object(), 0.05, lambda g: [defaulted])["sgd-frozen"].value is None


def test_ratio_refuses_what_is_not_a_positive_number():
    assert Value(math.nan).ratio(3.0) is None and Value(-1.0).ratio(3.0) is None and Value(2.0).ratio(None) is None


def test_a_censored_fit_is_no_reference():
    """c at its bound (the smallest b with a finite K) makes b*_fit only an upper bound: the cell is not scored."""
    cell = _cell(10.0)
    assert cell.b_fit == 10.0
    cell.group.summaries[0].batch_size = 5  # c = 5 sits at the smallest finite b
    assert cell.b_fit is None
    assert score([Row(cell, {"p": Value(10.0)})], "p").n_cells == 0
