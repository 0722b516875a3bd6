"""Training functions as a user would hand them to `python -m empirical.sweep --entry`, reduced to their FID curve:
F(step) = floor_scale·2/b + 10·exp(−step/50)·(1 + 0.05·ε_seed,step), evaluated every 10 steps, forever (the sweep
stops it). A batch size whose floor 2/b lies above the target never reaches it: the pole at b = 2·floor_scale/target."""

import itertools
import math
import time

import numpy as np


def train(batch_size, seed, floor_scale=1.0, delay=0.0):
    rng = np.random.default_rng(seed)
    for step in itertools.count(0, 10):
        yield step, floor_scale * 2 / batch_size + 10 * math.exp(-step / 50) * (1 + 0.05 * rng.standard_normal())
        if delay:
            time.sleep(delay)


def first_crossing(batch_size, seed, target, max_steps, floor_scale=1.0):
    """K of the same curve, by brute force: the first evaluation after step 0 at or below the target."""
    for step, fid in train(batch_size, seed, floor_scale):
        if step > max_steps:
            return None
        if step > 0 and fid <= target:
            return step
    return None


def failing(batch_size, seed):
    """Raises at b = 16 (a user's bug), trains elsewhere."""
    if batch_size == 16:
        raise RuntimeError("out of memory at b = 16")
    return [(0, 10.0), (10, 0.1)]


def backwards(batch_size, seed):
    """Its steps go back at b = 16: a history that is not increasing."""
    yield 0, 10.0
    yield 10, 5.0
    yield (5 if batch_size == 16 else 20), 0.1


def not_a_history(batch_size, seed):
    return 42
