"""When a run stops: the first hit without the floor; with it, a confirmed plateau, or settled above the target."""

import math

import numpy as np
import pytest

from empirical.config import TrainConfig
from empirical.stopping import DIVERGED, NOT_REACHED, REACHED, SETTLED, Stopper
from empirical.train import next_evaluation


def drive(config: TrainConfig, fid) -> tuple[str, int, int | None]:
    """Feed fid(step) on the config's schedule until the stopper stops or max_steps; (status, last step, K)."""
    stopper = Stopper(config)
    stopper.start(fid(0))
    step = 0
    while step < config.max_steps:
        step = min(next_evaluation(step, config.eval_every, config.eval_growth), config.max_steps)
        status = stopper.update(step, fid(step))
        if status is not None:
            return status, step, stopper.reached_at
    return stopper.final_status(), step, stopper.reached_at


def decay(floor: float, noise: float = 0.0, seed: int = 0):
    """FID = floor + 10·exp(−t/50) + iid noise (a geometric transient onto a noise floor)."""
    rng = np.random.default_rng(seed)
    return lambda t: floor + 10 * math.exp(-t / 50) + noise * rng.standard_normal()


CONFIG = TrainConfig(max_steps=5000, eval_every=5, eval_growth=0.02, target_fid=1.0)


def test_without_the_floor_a_run_stops_at_its_first_hit():
    status, step, k = drive(CONFIG, decay(0.5))
    assert status == REACHED and step == k
    assert 10 * math.exp(-k / 50) + 0.5 <= 1.0 < 10 * math.exp(-(k - 30) / 50) + 0.5  # the first evaluation below


def test_with_the_floor_a_reached_run_goes_on_until_its_plateau_is_confirmed():
    status, step, k = drive(CONFIG.with_(floor=True), decay(0.5, noise=0.02))
    first_hit = drive(CONFIG, decay(0.5, noise=0.02))[2]
    assert status == REACHED and k == first_hit  # K is the first hit, whatever the floor measurement adds
    assert step > 4 * 50  # the transient (time constant 50) is over before the window that gives the floor
    assert step < CONFIG.max_steps


def test_a_run_settled_clearly_above_the_target_stops_early_as_settled():
    status, step, k = drive(CONFIG.with_(floor=True), decay(3.0, noise=0.05))
    assert (status, k) == (SETTLED, None)
    assert step < 1000


def test_a_floor_within_noise_of_the_target_is_not_given_up():
    """A floor just above the target, with fluctuations that reach below it, is not 'clearly above': the run goes
    on (a fluctuation may still hit the target), to the first hit or max_steps."""
    status, _, _ = drive(CONFIG.with_(floor=True, max_steps=3000), decay(1.05, noise=0.1, seed=3))
    assert status in (REACHED, NOT_REACHED)


def test_a_non_finite_fid_stops_the_run_as_diverged():
    stopper = Stopper(CONFIG.with_(floor=True))
    stopper.start(5.0)
    assert stopper.update(5, 4.0) is None
    assert stopper.update(10, math.nan) == DIVERGED


@pytest.mark.parametrize("floor", [False, True])
def test_a_run_that_never_settles_ends_not_reached(floor):
    status, step, k = drive(CONFIG.with_(floor=floor, max_steps=400), lambda t: 1.5 + 100.0 / math.sqrt(1 + t))
    assert (status, step, k) == (NOT_REACHED, 400, None)


def test_a_run_that_diverges_while_measuring_its_floor_keeps_its_k():
    """With the floor on, a run goes on past its first hit; if it then becomes NaN its K still stands (status
    reached) and diverged_at says where it broke. Without a hit it is diverged."""
    stopper = Stopper(CONFIG.with_(floor=True))
    stopper.start(5.0)
    assert stopper.update(5, 2.0) is None
    assert stopper.update(10, 0.5) is None  # the first hit: K = 10, the run goes on to its floor
    assert stopper.update(15, math.nan) == REACHED
    assert (stopper.reached_at, stopper.diverged_at) == (10, 15)
    fresh = Stopper(CONFIG.with_(floor=True))
    fresh.start(5.0)
    assert fresh.diverge(20) == DIVERGED and fresh.reached_at is None and fresh.diverged_at == 20
