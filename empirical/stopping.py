"""When a run stops: at the target, or, when the noise floor is measured, once its FID has settled.

Shared by train() and the batched trainers so that a run stops at the same evaluation whichever trains it.

- Without `config.floor`: at the first evaluation at or below the target (status reached), else at max_steps
  (not_reached).
- With `config.floor`: a run that reached the target goes on until its FID settles on its floor (the plateau of
  empirical.floors.detect_plateau, first seen at step t₁ and still there at t ≥ 2·t₁, so that the window (t/2, t]
  whose mean is the floor holds no transient), so F(b) is measured at every batch size; K stays the first hit. A
  run that settles clearly above the target (empirical.floors.settled_above) stops there as "settled": a censored
  miss like not_reached, without burning max_steps on a target below its floor.
- A NaN/inf FID (or loss, or parameter) stops the run as diverged; a run that had already met the target and was
  measuring its floor keeps status reached and its K, with the step where it diverged in diverged_at.

Several targets (`python -m empirical.sweep --targets`): a run stops by the tightest (config.target_fid), and the K
of every looser target is read from its FID history afterwards (:func:`steps_to`): the trajectory does not depend on
the target, so that is the K a run stopped at the looser target would have had.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from empirical.config import TrainConfig
from empirical.floors import detect_plateau, settled_above

REACHED, NOT_REACHED, SETTLED, DIVERGED = "reached", "not_reached", "settled", "diverged"


class Stopper:
    """Feed it each evaluation (step, FID); it says when the run is over and with which status."""

    def __init__(self, config: TrainConfig) -> None:
        self.target, self.floor = config.target_fid, config.floor
        self.steps: list[int] = []
        self.fids: list[float] = []
        self.reached_at: int | None = None
        self.settled_from: int | None = None  # the first evaluation at which a plateau was detected
        self.diverged_at: int | None = None

    def start(self, fid: float) -> None:
        """The evaluation before the first step: part of the history, never a stop (K counts training steps)."""
        self.steps.append(0)
        self.fids.append(fid)

    def diverge(self, step: int) -> str:
        """The status of a run that became NaN/inf at `step`: diverged, unless it had met the target already."""
        self.diverged_at = step
        return REACHED if self.reached_at is not None else DIVERGED

    def update(self, step: int, fid: float) -> str | None:
        """The run's final status if it stops at this evaluation, else None."""
        if not math.isfinite(fid):
            return self.diverge(step)
        self.steps.append(step)
        self.fids.append(fid)
        if self.reached_at is None and fid <= self.target:
            self.reached_at = step
            if not self.floor:
                return REACHED
        if not self.floor:
            return None
        plateau = detect_plateau(self.steps, self.fids)
        if plateau is None:
            return None
        if self.settled_from is None:
            self.settled_from = step
        if step < 2 * self.settled_from:
            return None  # confirm: the window (t/2, t] that gives the floor must start after the first detection
        if self.reached_at is not None:
            return REACHED
        return SETTLED if settled_above(plateau, self.target) else None

    def final_status(self) -> str:
        """The status of a run that ran to max_steps without stopping."""
        return NOT_REACHED if self.reached_at is None else REACHED


def steps_to(history: Iterable[tuple[int, float]], target: float) -> int | None:
    """K at `target` from a run's (step, FID) evaluations: the first step after the start whose FID is at or below
    it, as :class:`Stopper` finds it (the evaluation at step 0 never counts; a NaN/inf FID never meets a target).
    None when no evaluation met it."""
    return next((step for step, fid in history if step > 0 and math.isfinite(fid) and fid <= target), None)
